"""Large artifacts in Git LFS's content-addressed store (docs/format.md, "Large artifacts").

An artifact at or above the large-file threshold is not a git blob: the run tree keeps a
Git LFS pointer file at `artifacts/<path>` (the spec's text, `pointer`) and the content
goes where `git lfs` keeps it, `<git common dir>/lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>`
(`object_path`; `lfs.storage` moves it as it moves git-lfs's), so `git lfs push`,
`git lfs fetch` and GitHub/GitLab/Gitea LFS hosting all understand it.  This module owns
the pointer text, the object path, writing an object (streamed, hashed as it is written,
fsync'd under .../lfs/tmp and renamed, as git-lfs does) and reading one back verified;
moving objects between repositories is `_git/lfs.py`'s (the `git lfs` client).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterator

from .._git import Repo
from ..errors import CorruptRecordError, DiskError, InvalidInputError

SPEC = "https://git-lfs.github.com/spec/v1"
STORAGE = "lfs"  # the artifacts.tsv storage kind
CHUNK = 1 << 20  # read size of every streaming loop (constant memory)
_OID = re.compile("[0-9a-f]{64}")
_POINTER = re.compile(rb"version (\S+)\noid sha256:([0-9a-f]{64})\nsize (0|[1-9][0-9]{0,18})\n")
MAX_POINTER = 1024  # git-lfs's own bound for a blob to be read as a pointer
TMP_PREFIX = "gitrun-"  # gitrun's temporary files in <lfs dir>/tmp (journal.sweep's)


def is_oid(value: object) -> bool:
    """An LFS object id as gitrun writes it: the sha256 of the content, 64 lowercase hex."""
    return isinstance(value, str) and _OID.fullmatch(value) is not None


def pointer(oid: str, size: int) -> bytes:
    """The pointer file text (git-lfs spec v1) for content `oid` of `size` bytes."""
    assert is_oid(oid) and size >= 0
    return f"version {SPEC}\noid sha256:{oid}\nsize {size}\n".encode()


def parse_pointer(data: bytes) -> tuple[str, int] | None:
    """(oid, size) of a pointer file as gitrun (and git-lfs) writes it; None otherwise."""
    if len(data) > MAX_POINTER:
        return None
    m = _POINTER.fullmatch(data)
    if m is None or m.group(1).decode() != SPEC:
        return None
    return m.group(2).decode(), int(m.group(3))


def lfs_dir(repo: Repo) -> str:
    """git-lfs's storage directory: `lfs.storage` (relative to the common git dir), else
    `<common git dir>/lfs` (shared by every worktree, as git-lfs shares it)."""
    configured = repo.config("lfs.storage")
    if configured:
        return os.path.normpath(os.path.join(repo.common_dir, os.path.expanduser(configured)))
    return os.path.join(repo.common_dir, "lfs")


def object_path(repo: Repo, oid: str) -> str:
    """`<lfs dir>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`; the oid comes from history, so it is
    checked to be 64 hex characters (never a path)."""
    if not is_oid(oid):
        raise CorruptRecordError(
            f"{oid[:80]!r} is not a Git LFS object id (64 lowercase hex characters); the "
            "run's record was damaged or not written by gitrun."
        )
    return os.path.join(lfs_dir(repo), "objects", oid[0:2], oid[2:4], oid)


def has_object(repo: Repo, oid: str, size: int) -> bool:
    """Whether the local LFS store has `oid` with the recorded size (content is verified
    when it is read)."""
    try:
        return os.stat(object_path(repo, oid)).st_size == size
    except OSError:
        return False


def store_fd(repo: Repo, fd: int, shown: str, fsync: bool = True) -> tuple[str, int]:
    """Copy an open file into the local LFS store, hashing as it goes: (oid, size).

    Constant memory (one CHUNK buffer); the object is written under `<lfs dir>/tmp`,
    fsync'd and renamed into place, so a reader never sees half an object; an object
    already there is replaced by the fresh copy (same content, same name)."""
    tmp_dir = os.path.join(lfs_dir(repo), "tmp")
    try:
        os.makedirs(tmp_dir, exist_ok=True)
        tmp = os.path.join(
            tmp_dir, f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}"
        )
        out = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644
        )
    except OSError as e:
        raise _disk_error(e, tmp_dir) from None
    h = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        while True:
            try:
                n = os.readv(fd, [buf])
            except OSError as e:
                raise InvalidInputError(
                    f"Artifact '{shown}' cannot be read ({(e.strerror or str(e)).lower()})."
                ) from None
            if not n:
                break
            chunk = view[:n]
            h.update(chunk)
            try:
                while chunk:
                    chunk = chunk[os.write(out, chunk) :]
            except OSError as e:
                raise _disk_error(e, tmp_dir) from None
            size += n
        oid = h.hexdigest()
        path = object_path(repo, oid)
        try:
            if fsync:
                os.fsync(out)
            os.close(out)
            out = -1
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # Replaced even when there: the same content, and a damaged copy is mended.
            os.replace(tmp, path)
        except OSError as e:
            raise _disk_error(e, path) from None
        return oid, size
    finally:
        if out >= 0:
            os.close(out)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _disk_error(e: OSError, where: str) -> DiskError:
    reason = e.strerror or type(e).__name__
    return DiskError(
        f"gitrun cannot write a large artifact to the Git LFS store ({where}: {reason}); "
        "free some space or fix that directory, and run the command again."
    )


def read_verified(path: str, oid: str, size: int, what: str) -> Iterator[memoryview | bytes]:
    """The content of a local object in CHUNK pieces; after the last one, CorruptRecordError
    unless its size and sha256 are the recorded ones (a caller stages what it writes and
    keeps it only when the whole stream was read).  The yielded view is reused."""
    return verified_chunks(_file_chunks(path), oid, size, what)


def _file_chunks(path: str) -> Iterator[memoryview]:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            n = os.readv(fd, [buf])
            if not n:
                return
            yield view[:n]
    finally:
        os.close(fd)


def verified_chunks(
    chunks: Iterator[memoryview | bytes], oid: str, size: int, what: str
) -> Iterator[memoryview | bytes]:
    """Pass `chunks` through, hashing them; raise CorruptRecordError at the end (or as soon
    as there are more bytes than recorded) when they are not the recorded content."""
    h = hashlib.sha256()
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > size:
            break
        h.update(chunk)
        yield chunk
    if seen != size or h.hexdigest() != oid:
        got = f"{seen:,} bytes" if seen != size else f"sha256 {h.hexdigest()[:12]}"
        raise CorruptRecordError(
            f"{what} does not match its record ({got}; recorded {size:,} bytes, sha256 "
            f"{oid[:12]}), so it was refused and nothing was written."
        )
