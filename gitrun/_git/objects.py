"""Git objects on disk: loose objects and packs written the way git writes them.

Loose objects are zlib of "<type> <size>\\0<data>" named by their hash, created under a
temporary name and renamed (`write_new`, `rename_into_place`, `open_in_dir`); `write_pack`
writes a batch as one v2 pack + index; `freshen` touches an existing object as git
does; `parse_tree` / `tree_sort_key` read and order tree entries; the file modes
(TREE_MODE, BLOB_MODE, ...) and `sha256_file` live here too.  The Repo class
(repo.py) decides what to write; this module only knows the formats.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import zlib

TREE_MODE = "40000"
BLOB_MODE = "100644"
EXEC_MODE = "100755"
LINK_MODE = "120000"
GITLINK_MODE = "160000"


def write_new(path: str, data: bytes, fsync: bool = False) -> None:
    """Create `path` read-only (as git's objects are) holding `data`.

    The directory is (re)created when missing: `git prune-packed` (run by `git gc` and
    `git repack -d`) removes empty objects/xx/ directories at any moment, so like git's
    own object writer this retries when one vanishes between mkdir and open.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = open_in_dir(path, flags, 0o444)
    except FileExistsError:  # left by a process of ours that died mid-write
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fd = open_in_dir(path, flags, 0o444)
    try:
        view = memoryview(data)
        while view:
            # A short write (a full disk) is an error, never a silently shorter object.
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def open_in_dir(path: str, flags: int, mode: int) -> int:
    """os.open, (re)creating the directory when it is missing, as often as it vanishes
    (`git prune-packed` may remove an empty objects/xx/ between our mkdir and open)."""
    for _ in range(8):
        try:
            return os.open(path, flags, mode)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
    return os.open(path, flags, mode)


def rename_into_place(tmp: str, path: str, data: bytes, fsync: bool = False) -> None:
    """Rename `tmp` to `path`; rewrite `tmp` when its directory vanished meanwhile."""
    for _ in range(8):
        try:
            os.replace(tmp, path)
            return
        except FileNotFoundError:
            if os.path.exists(path):  # another process wrote the same object
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                return
            write_new(tmp, data, fsync)
    os.replace(tmp, path)


PACK_LIMIT = 50  # as git gc --auto (gc.autoPackLimit)
_PACK_TYPES = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}


def write_pack(packdir: str, objects: dict[str, tuple[str, bytes]]) -> str:
    """Write `objects` (sha1 id -> (kind, data)) as one pack + index (git's v2 formats).

    Every object is stored whole (no deltas).  The .pack is renamed into place before the
    .idx, since git finds packs by their index.  Returns the pack's name.
    """
    os.makedirs(packdir, exist_ok=True)
    body = bytearray(b"PACK" + (2).to_bytes(4, "big") + len(objects).to_bytes(4, "big"))
    where: dict[str, tuple[int, int]] = {}  # sha -> (offset, crc32)
    for sha, (kind, data) in objects.items():
        size = len(data)
        c = (_PACK_TYPES[kind] << 4) | (size & 0x0F)
        size >>= 4
        head = bytearray()
        while size:
            head.append(c | 0x80)
            c = size & 0x7F
            size >>= 7
        head.append(c)
        entry = bytes(head) + zlib.compress(data, 1)
        where[sha] = (len(body), zlib.crc32(entry))
        body += entry
    pack_sum = hashlib.sha1(body).digest()
    body += pack_sum
    names = sorted(where)
    fanout = [0] * 256
    for n in names:
        fanout[int(n[:2], 16)] += 1
    idx = bytearray(b"\377tOc" + (2).to_bytes(4, "big"))
    total = 0
    for count in fanout:
        total += count
        idx += total.to_bytes(4, "big")
    for n in names:
        idx += bytes.fromhex(n)
    for n in names:
        idx += where[n][1].to_bytes(4, "big")
    for n in names:
        idx += where[n][0].to_bytes(4, "big")
    idx += pack_sum
    idx += hashlib.sha1(idx).digest()
    name = "pack-" + pack_sum.hex()
    tag = f"{os.getpid()}_{threading.get_ident()}"
    for suffix, content in ((".pack", bytes(body)), (".idx", bytes(idx))):
        tmp = os.path.join(packdir, f"tmp_{suffix[1:]}_{tag}")
        # fsync'd before the rename, as git does for packs (core.fsync's default), so the
        # ref that will point into this pack never survives a power loss without it.
        write_new(tmp, content, fsync=True)
        rename_into_place(tmp, os.path.join(packdir, name + suffix), content, fsync=True)
    return name


def sha256_file(path: str) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def freshen(path: str) -> bool:
    """Whether a loose object exists; like git, touch it so that a `git gc` running
    now does not prune it as old and unreachable just before we point at it."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(path)  # read-only objects directory


def tree_sort_key(entry: tuple[str, str, str]) -> bytes:
    mode, name, _ = entry
    b = name.encode()
    return b + b"/" if mode == TREE_MODE else b


def parse_tree(data: bytes, hash_len: int = 20) -> list[tuple[str, str, str]]:
    entries = []
    i = 0
    n = len(data)
    while i < n:
        sp = data.index(b" ", i)
        nul = data.index(b"\0", sp)
        mode = data[i:sp].decode()
        name = data[sp + 1 : nul].decode("utf-8", "surrogateescape")
        sha = data[nul + 1 : nul + 1 + hash_len].hex()
        entries.append((mode, name, sha))
        i = nul + 1 + hash_len
    return entries
