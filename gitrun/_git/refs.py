"""Refs in the files backend: read (loose, packed-refs, symbolic), compare-and-swap
update under git's own lock-file protocol, delete, reflog.

Functions take the repository's two directories (`git_dir` for per-worktree refs,
`common_dir` for the rest); Repo's ref methods (repo.py) delegate here and send
reftable repositories to git instead.  A gitrun lock holder flocks its lock file, so
a lock nobody flocks and older than STALE_LOCK_AGE was left by a process that died
and can be broken (`break_stale_lock`); one that is held is never broken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable

from ..errors import RefLockedError
from .files import read_text
from .objects import open_in_dir

STALE_LOCK_AGE = 2.0  # seconds; git holds a ref lock for milliseconds


def ref_dir(git_dir: str, common_dir: str, ref: str) -> str:
    """The directory `ref` lives under: per-worktree refs in the worktree's git dir,
    everything else in the shared one."""
    if ref == "HEAD" or ref.startswith(("refs/worktree/", "refs/bisect/")):
        return git_dir
    return common_dir


def read_ref(git_dir: str, common_dir: str, ref: str) -> str | None:
    """The object `ref` points at (following symbolic refs), loose or packed; None if unset."""
    text = read_text(os.path.join(ref_dir(git_dir, common_dir, ref), ref))
    if text is not None:
        text = text.strip()
        if text.startswith("ref:"):
            return read_ref(git_dir, common_dir, text[4:].strip())
        return text or None
    packed = read_text(os.path.join(common_dir, "packed-refs"))
    if packed:
        suffix = " " + ref
        for line in packed.splitlines():
            if line.endswith(suffix) and not line.startswith(("#", "^")):
                return line.split(" ", 1)[0]
    return None


def update_ref(
    git_dir: str,
    common_dir: str,
    ref: str,
    new: str,
    old: str | None,
    *,
    message: str,
    mutex: str,
    identity: Callable[[], tuple[str, str]],
) -> bool:
    """Compare-and-swap: point `ref` at `new` only if it still points at `old`.

    Returns False when the ref moved; raises RefLockedError when another process holds
    the ref's lock file.  `mutex` is the file stale-lock breakers take turns on;
    `identity` names the reflog entry's author (asked only when the ref has a reflog).
    """
    path = os.path.join(ref_dir(git_dir, common_dir, ref), ref)
    lock = path + ".lock"
    try:
        fd = create_lock(lock)
    except FileExistsError:
        if not break_stale_lock(lock, mutex):
            raise RefLockedError(ref, lock) from None
        try:
            fd = create_lock(lock)
        except FileExistsError:
            raise RefLockedError(ref, lock) from None
    renamed = False
    try:
        if read_ref(git_dir, common_dir, ref) != old:
            return False
        data = (new + "\n").encode()
        if os.write(fd, data) != len(data):
            raise OSError(28, "No space left on device", lock)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(lock, path)
        renamed = True
        append_reflog(
            os.path.join(ref_dir(git_dir, common_dir, ref), "logs", ref),
            old,
            new,
            identity,
            message,
        )
        return True
    finally:
        if fd >= 0:
            os.close(fd)
        if not renamed:
            with contextlib.suppress(OSError):
                os.unlink(lock)


def create_lock(lock: str) -> int:
    """git's lock file (O_EXCL), flocked while held: a lock nobody flocks was left by a
    gitrun process that died (see break_stale_lock)."""
    fd = open_in_dir(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def break_stale_lock(lock: str, mutex: str) -> bool:
    """Remove a ref lock left by a gitrun process that died, provably safely.

    A gitrun holder flocks its lock file from creation to rename, so a lock nobody
    flocks is not held by a living gitrun process; one older than STALE_LOCK_AGE is
    not a git command's either (git holds ref locks for milliseconds).  Breakers
    take turns on `mutex` and check again under it, so two of them can never both
    remove a lock and then each "hold" the next one: the second finds the first's
    fresh (young, flocked) lock and leaves it.
    """
    try:
        mfd = os.open(mutex, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError:
        return False  # no gitrun dir, read-only: leave it to the user
    try:
        fcntl.flock(mfd, fcntl.LOCK_EX)
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return True  # gone meanwhile: try again
        except OSError:
            return False
        try:
            if time.time() - os.fstat(fd).st_mtime < STALE_LOCK_AGE:
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a living gitrun process holds it
            st = os.stat(lock, follow_symlinks=False)
            if (st.st_ino, st.st_dev) != (os.fstat(fd).st_ino, os.fstat(fd).st_dev):
                return False
            os.unlink(lock)
            return True
        finally:
            os.close(fd)
    finally:
        os.close(mfd)


def delete_loose_ref(git_dir: str, common_dir: str, ref: str) -> bool:
    """Remove `ref`'s loose file; whether packed-refs still names it (git must then
    rewrite packed-refs: `git update-ref -d`)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(ref_dir(git_dir, common_dir, ref), ref))
    packed = read_text(os.path.join(common_dir, "packed-refs")) or ""
    return (" " + ref + "\n") in packed or packed.endswith(" " + ref)


def append_reflog(
    log: str, old: str | None, new: str, identity: Callable[[], tuple[str, str]], message: str
) -> None:
    # Like git: only refs whose log already exists (or heads) get reflog entries.
    if not os.path.exists(log):
        return
    name, email = identity()
    zero = "0" * len(new)
    line = f"{old or zero} {new} {name} <{email}> {int(time.time())} +0000\t{message}\n"
    with open(log, "a", encoding="utf-8") as f:
        f.write(line)
