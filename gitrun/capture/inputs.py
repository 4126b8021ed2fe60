"""Hashing the data a run read (inputs.tsv), and copying it only when asked (`store_path`).

* a file: `sha256:<hex>` of its content, and its size;
* a directory: `sha256:<hex>` over the sorted lines `<relative path>\\t<sha256>\\t<size>\\n`
  of its files (format.store.dir_digest), walked by artwalk's safe walk (symlinks never
  lead out of it, special files and `.git` skipped); the first MAX_MEMBERS files are
  listed in the run with the count of all, the digest always covers all of them;
* a dataset (pandas / numpy, `gitrun.data`): see gitrun/data.py.

A stat cache (layout.input_cache_path, a small JSON file) maps (path, size, mtime_ns,
inode) to the sha256, so hashing an unchanged file again costs a stat, not a read.  It is
written atomically; a damaged or unreadable cache is ignored, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import Any

from ..errors import InvalidInputError
from ..format import store
from ..format.entities import Input
from ..format.layout import input_cache_path

MAX_MEMBERS = 1000  # files of a directory input listed in the run
_CHUNK = 1024 * 1024
# What the cache saved: `hits` files were not read, `reads` were (this process).
stats = {"hits": 0, "reads": 0}


class StatCache:
    """(path, size, mtime_ns, inode) -> sha256, kept in .git/gitrun/cache/inputs.json."""

    def __init__(self, repo: Any) -> None:
        self.path = input_cache_path(repo) if repo is not None else None
        self.entries: dict[str, list[Any]] = {}
        self.changed = False
        if self.path is None:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError, UnicodeDecodeError):
            pass  # none yet, or damaged: hash again

    def sha256(self, path: str, st: os.stat_result, shown: str) -> str:
        key = os.path.abspath(path)
        sig = [st.st_size, st.st_mtime_ns, st.st_ino]
        e = self.entries.get(key)
        if isinstance(e, list) and len(e) == 4 and e[:3] == sig and isinstance(e[3], str):
            stats["hits"] += 1
            return e[3]
        digest = _hash_file(path, shown)
        stats["reads"] += 1
        self.remember(path, st, digest)
        return digest

    def remember(self, path: str, st: os.stat_result, digest: str) -> None:
        """`path`, as `st` says it is, has content `digest` (sha256 hex)."""
        self.entries[os.path.abspath(path)] = [st.st_size, st.st_mtime_ns, st.st_ino, digest]
        self.changed = True

    def save(self) -> None:
        if not self.changed or self.path is None:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "files": self.entries}, f, separators=(",", ":"))
            os.replace(tmp, self.path)
            self.changed = False
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _hash_file(path: str, shown: str) -> str:
    from .artwalk import open_regular

    fd = open_regular(path, shown, "Input")
    h = hashlib.sha256()
    try:
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def input_name(path: str, root: str | None) -> str:
    """How an input path is recorded: relative to the work tree root ('/'-separated)
    when inside it, else absolute."""
    full = os.path.abspath(path)
    if root:
        real_root = os.path.realpath(root)
        for base in (os.path.abspath(root), real_root):
            rel = os.path.relpath(full, base)
            if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                return "." if rel == "." else rel.replace(os.sep, "/")
    return full


def _named_stat(
    path: str, root: str | None, context: str, shown: str
) -> tuple[str, os.stat_result]:
    """(how the input is recorded, os.stat of it); InvalidInputError when the path or its
    context has control characters, or the path does not exist or cannot be read."""
    from .artwalk import CONTROL_CHARS

    if any(c in path for c in CONTROL_CHARS) or any(c in context for c in CONTROL_CHARS):
        raise InvalidInputError(f"Input {shown!r} or its context contains control characters.")
    name = input_name(path, root)
    try:
        return name, os.stat(path)
    except FileNotFoundError:
        raise InvalidInputError(f"Input '{shown}' does not exist; check the path.") from None
    except OSError as e:
        raise InvalidInputError(f"Input '{shown}' cannot be read ({e.strerror}).") from None


def hash_path(
    path: str, root: str | None, cache: StatCache, context: str = "", shown: str | None = None
) -> Input:
    """The Input for a file or directory (InvalidInputError when it is neither)."""
    from .artwalk import Limits, walk

    shown = path if shown is None else shown
    name, st = _named_stat(path, root, context, shown)
    if stat.S_ISREG(st.st_mode):
        return Input(name, "file", st.st_size, "sha256:" + cache.sha256(path, st, shown), context)
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"Input '{shown}' is not a regular file or a directory.")
    w = walk(path, Limits(0, 0), shown, "input")
    listing: list[tuple[str, str, int]] = []
    for full, rel, _size in w.files:
        fst = os.stat(full)
        listing.append((rel, cache.sha256(full, fst, f"{shown}/{rel}"), fst.st_size))
    return _dir_input(name, listing, context)


def _dir_input(name: str, listing: list[tuple[str, str, int]], context: str) -> Input:
    """A "dir" Input from its files' (relative path, sha256 hex, size): the digest over all
    of them, the first MAX_MEMBERS listed, and their count."""
    listing.sort()
    members = [(rel, size, "sha256:" + sha) for rel, sha, size in listing[:MAX_MEMBERS]]
    total = sum(size for _rel, _sha, size in listing)
    digest = store.dir_digest(listing)
    return Input(name, "dir", total, digest, context, members, len(listing))


def store_path(
    repo: Any, path: str, root: str | None, lim: Any, context: str = "", how: str = "api"
) -> tuple[Input, list[tuple[str, Any]]]:
    """`--store` / log_input(path, store=True): the Input of a file or directory and its
    stored copy, as (artifact path, format.entities.Artifact) pairs under
    store.STORED_INPUTS/<input path>.  Each file goes through the artifact machinery
    (a git blob, or Git LFS / the object store at the large-file threshold, streamed); a
    directory is walked as a directory artifact is, within the artifact limits `lim`
    (artwalk.Limits; ArtifactLimitError before anything is stored).  The digest is the
    one of the content stored, so copy and record always agree."""
    from .artwalk import walk

    name, st = _named_stat(path, root, context, path)
    if os.path.isabs(name):
        raise InvalidInputError(
            f"Input '{path}' is outside the repository work tree, and a stored copy is kept "
            "only for inputs inside it (restored at the same path); copy the data into the "
            "repository, or record the input without storing it."
        )
    base = store.stored_input_path(name)
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"Input '{path}' is not a regular file or a directory.")
    cache = StatCache(repo)
    try:
        if stat.S_ISREG(st.st_mode):
            art = _store_one(repo, cache, path, path)
            copy = [(base, art)]
            return Input(name, "file", art.size, "sha256:" + art.sha256, context), copy
        w = walk(path, lim, path, how)
        copies: list[tuple[str, Any]] = []
        listing: list[tuple[str, str, int]] = []
        for full, rel, _size in w.files:
            art = _store_one(repo, cache, full, f"{path.rstrip('/')}/{rel}")
            copies.append((f"{base}/{rel}", art))
            listing.append((rel, art.sha256, art.size))
        return _dir_input(name, listing, context), copies
    finally:
        cache.save()


def _store_one(repo: Any, cache: StatCache, path: str, shown: str) -> Any:
    """Store one file as an artifact; when it did not change while it was read (same size,
    mtime and inode before and after), its digest goes into the stat cache too, so that
    checking the input later costs a stat, not another read."""
    from .artwalk import store_artifact

    before = os.stat(path)
    art = store_artifact(repo, path, shown)
    try:
        after = os.stat(path)
    except OSError:
        return art
    sig = [before.st_size, before.st_mtime_ns, before.st_ino]
    if sig == [after.st_size, after.st_mtime_ns, after.st_ino] and art.size == after.st_size:
        cache.remember(path, after, art.sha256)
    return art


def hash_paths(repo: Any, paths: list[str], context: str = "") -> list[Input]:
    """Hash several inputs with one cache load and save."""
    cache = StatCache(repo)
    try:
        return [hash_path(p, repo.work_tree, cache, context) for p in paths]
    finally:
        cache.save()


def current(repo: Any, inputs: list[Input]) -> dict[str, tuple[str, str | None]]:
    """For each file/dir input: ("same" | "changed" | "missing", its digest now)."""
    cache = StatCache(repo)
    out: dict[str, tuple[str, str | None]] = {}
    root = repo.work_tree or os.getcwd()
    try:
        for i in inputs:
            if i.kind not in ("file", "dir"):
                continue
            full = i.path if os.path.isabs(i.path) else os.path.join(root, i.path)
            if not os.path.lexists(full):
                out[i.path] = ("missing", None)
                continue
            try:
                now = hash_path(full, root, cache, i.context, i.path)
            except InvalidInputError:
                out[i.path] = ("missing", None)
                continue
            out[i.path] = ("same" if now.digest == i.digest else "changed", now.digest)
    finally:
        cache.save()
    return out
