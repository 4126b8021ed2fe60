"""All of gitrun's git plumbing.

Nothing here touches the user's index, work tree, HEAD, branches, stash or tags.
Objects are written as loose objects directly (git's documented format: zlib of
"<type> <size>\\0<data>", named by its hash), which costs ~0.1 ms instead of ~2 ms
for spawning `git hash-object`; refs are updated with git's own lock-file
protocol so that git and gitrun exclude each other.  Anything unusual (reftable,
GIT_DIR in the environment, packed objects) falls back to real git commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence

from ..errors import GitError, NotAGitRepoError, RefLockedError

TREE_MODE = "40000"
BLOB_MODE = "100644"
EXEC_MODE = "100755"
LINK_MODE = "120000"
GITLINK_MODE = "160000"

_repos: dict[tuple[str, str | None], Repo] = {}

# git refuses to start when these leak from a parent git process (hooks, `git rebase -x`).
_GIT_ENV_DROP = ("GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_PREFIX")


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    # Never take optional locks: `git status` would otherwise refresh the user's index.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env.setdefault("LC_ALL", "C")
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str],
    cwd: str | None = None,
    *,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run one git command; raise GitError naming the command and git's message."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env if env is not None else git_env(),
            input=input,
            capture_output=True,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH; install git and try again.") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = msg[-1] if msg else f"exit code {proc.returncode}"
        raise GitError(f"`git {' '.join(args[:3])}` failed: {detail}")
    return proc


def _write_new(path: str, data: bytes, fsync: bool = False) -> None:
    """Create `path` read-only (as git's objects are) holding `data`.

    The directory is (re)created when missing: `git prune-packed` (run by `git gc` and
    `git repack -d`) removes empty objects/xx/ directories at any moment, so like git's
    own object writer this retries when one vanishes between mkdir and open.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = _open_in_dir(path, flags, 0o444)
    except FileExistsError:  # left by a process of ours that died mid-write
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fd = _open_in_dir(path, flags, 0o444)
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


def _open_in_dir(path: str, flags: int, mode: int) -> int:
    """os.open, (re)creating the directory when it is missing, as often as it vanishes
    (`git prune-packed` may remove an empty objects/xx/ between our mkdir and open)."""
    for _ in range(8):
        try:
            return os.open(path, flags, mode)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
    return os.open(path, flags, mode)


def _replace(tmp: str, path: str, data: bytes, fsync: bool = False) -> None:
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
            _write_new(tmp, data, fsync)
    os.replace(tmp, path)


PACK_LIMIT = 50  # as git gc --auto (gc.autoPackLimit)
STALE_LOCK_AGE = 2.0  # seconds; git holds a ref lock for milliseconds
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
        _write_new(tmp, content, fsync=True)
        _replace(tmp, os.path.join(packdir, name + suffix), content, fsync=True)
    return name


def sha256_file(path: str) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


# -- discovery helpers (used by Repo.discover / Repo._from_git) ----------------
_discovered: dict[tuple[str | None, str | None, str], Repo] = {}


def _start_dir(path: str | None) -> str:
    try:
        return os.path.abspath(path or os.getcwd())
    except FileNotFoundError:  # os.getcwd() of a directory that was deleted
        raise NotAGitRepoError(
            "The current directory no longer exists (it was deleted or moved); cd into a "
            "directory inside a git repository and run the command again."
        ) from None


def _check_ownership(git_dir: str, work_tree: str) -> None:
    """Refuse, as git does, a repository owned by someone else (git's safe.directory check).

    Two stat calls decide whether it can matter; only then is git asked (it knows the
    safe.directory settings, SUDO_UID, and its own rules)."""
    if os.environ.get("GIT_TEST_ASSUME_DIFFERENT_OWNER", "").lower() not in (
        "1",
        "true",
        "yes",
        "on",
    ):
        if not hasattr(os, "geteuid"):
            return
        uid = os.geteuid()
        if uid == 0 and os.environ.get("SUDO_UID", "").isdigit():
            uid = int(os.environ["SUDO_UID"])
        try:
            if all(os.stat(p).st_uid == uid for p in (work_tree, git_dir)):
                return
        except OSError:
            return
    proc = run_git(["rev-parse", "--git-dir"], cwd=work_tree, check=False)
    if proc.returncode != 0:
        raise _not_a_repo(work_tree, proc.stderr.decode(errors="replace"))


def _not_a_repo(start: str, stderr: str) -> NotAGitRepoError:
    """The sentence for a failed `git rev-parse` in `start`."""
    if "dubious ownership" in stderr:
        import re

        m = re.search(r"safe\.directory\s+(\S.*)", stderr)
        where = m.group(1).strip() if m else start
        return NotAGitRepoError(
            f"git refuses to work in the repository at {where} because it is owned by "
            "another user (git's dubious-ownership check); if you trust it, run "
            f"`git config --global --add safe.directory {where}` and try again."
        )
    if "not a git repository" not in stderr.lower() and stderr.strip():
        detail = stderr.strip().splitlines()[0].removeprefix("fatal: ")
        return NotAGitRepoError(
            f"git cannot open a repository at {start} ({detail}); fix that, or change to a "
            "directory inside a repository."
        )
    return NotAGitRepoError(
        f"{start} is not inside a git repository; run `git init` there first "
        "or change to a directory inside a repository."
    )


class Repo:
    """A git repository as gitrun sees it."""

    def __init__(self, git_dir: str, common_dir: str, work_tree: str | None) -> None:
        self.git_dir = git_dir  # per-worktree git dir (HEAD, index)
        self.common_dir = common_dir  # objects, refs, config (== git_dir outside worktrees)
        self.work_tree = work_tree
        self._cat: CatFile | None = None
        self._config: dict[str, str] | None = None
        self._config_stamp: tuple[int, ...] = ()
        self._object_format: str | None = None
        self._reftable: bool | None = None
        self._trees: dict[str, list[tuple[str, str, str]]] = {}
        self._commits: dict[str, bytes] = {}  # commits this process packed
        self._pending: dict[str, tuple[str, bytes]] | None = None  # inside batch()

    def __repr__(self) -> str:
        return f"Repo(git_dir={self.git_dir!r}, work_tree={self.work_tree!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Repo):
            return NotImplemented
        return (self.git_dir, self.common_dir, self.work_tree) == (
            other.git_dir,
            other.common_dir,
            other.work_tree,
        )

    __hash__ = None  # type: ignore[assignment]

    # -- discovery -------------------------------------------------------
    @classmethod
    def discover(cls, path: str | None = None, *, bare_ok: bool = False) -> Repo:
        """The repository containing `path` (default: the current directory).

        A bare repository is refused unless `bare_ok` (reading runs needs no work tree,
        recording them does).  Unusual cases (GIT_DIR, bare repositories, directories
        owned by another user) are left to git itself, which knows its own rules.
        """
        start = _start_dir(path)
        if "GIT_DIR" in os.environ:
            return cls._from_git(start, bare_ok)
        d = start
        while True:
            dotgit = os.path.join(d, ".git")
            if os.path.isdir(dotgit) and os.path.isfile(os.path.join(dotgit, "HEAD")):
                if (dotgit, d) not in _repos:
                    _check_ownership(dotgit, d)
                return cls._make(dotgit, d)
            if os.path.isfile(dotgit):
                text = _read_text(dotgit) or ""
                if text.startswith("gitdir:"):
                    gd = text[len("gitdir:") :].strip()
                    gd = os.path.normpath(os.path.join(d, gd))
                    if os.path.isfile(os.path.join(gd, "HEAD")):
                        if (gd, d) not in _repos:
                            _check_ownership(gd, d)
                        return cls._make(gd, d)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        # No work tree above us: a bare repository (or its subdirectory), or none at all.
        return cls._from_git(start, bare_ok)

    @classmethod
    def _make(cls, git_dir: str, work_tree: str | None) -> Repo:
        # One Repo per repository and process, so its caches (config, parsed trees,
        # the cat-file process) serve every run the process records.
        key = (git_dir, work_tree)
        repo = _repos.get(key)
        if repo is None:
            common = git_dir
            cd = _read_text(os.path.join(git_dir, "commondir"))
            if cd:
                common = os.path.normpath(os.path.join(git_dir, cd.strip()))
            repo = _repos[key] = cls(git_dir=git_dir, common_dir=common, work_tree=work_tree)
        return repo

    @classmethod
    def _from_git(cls, start: str, bare_ok: bool = False) -> Repo:
        """Ask git where the repository is (GIT_DIR set, or no .git found by walking up).

        Remembered per GIT_DIR and directory, so that each call does not spawn git and
        build a new Repo (with its own `git cat-file` process)."""
        key = (os.environ.get("GIT_DIR"), os.environ.get("GIT_COMMON_DIR"), start)
        found = _discovered.get(key)
        if found is None:
            proc = run_git(
                [
                    "rev-parse",
                    "--is-bare-repository",
                    "--absolute-git-dir",
                    "--git-common-dir",
                    "--is-inside-work-tree",
                    "--show-cdup",
                ],
                cwd=start,
                check=False,
            )
            if proc.returncode != 0:
                raise _not_a_repo(start, proc.stderr.decode(errors="replace"))
            lines = proc.stdout.decode().splitlines() + ["", "", "", "", ""]
            bare, git_dir, common, inside, cdup = (x.strip() for x in lines[:5])
            common = os.path.normpath(os.path.join(start, common or git_dir))
            work = None
            if bare != "true" and inside == "true":
                work = os.path.normpath(os.path.join(start, cdup))
            repo = _repos.get((git_dir, work))
            if repo is None or repo.common_dir != common:
                repo = cls(git_dir=git_dir, common_dir=common, work_tree=work)
                _repos[(git_dir, work)] = repo
            found = _discovered[key] = repo
        if found.work_tree is None and not bare_ok:
            raise NotAGitRepoError(
                f"{found.git_dir} is a bare git repository (it has no work tree), and gitrun "
                "records runs from a work tree; run it in a clone (`git clone "
                f"{found.git_dir}`) or a worktree (`git worktree add`)."
            )
        return found

    # -- commands --------------------------------------------------------
    def git(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: bytes | None = None,
        check: bool = True,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        return run_git(
            args, cwd=cwd or self.work_tree or self.git_dir, env=env, input=input, check=check
        )

    def gitout(self, *args: str, **kw: object) -> str:
        return self.git(*args, **kw).stdout.decode()  # type: ignore[arg-type]

    @property
    def gitrun_dir(self) -> str:
        """Where gitrun keeps local, unshared state (journals, index, caches)."""
        return os.path.join(self.common_dir, "gitrun")

    # -- config (read directly; spawning `git config` costs ~2 ms) ----------
    def config(self, key: str) -> str | None:
        home = os.path.expanduser("~")
        xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        paths = (
            "/etc/gitconfig",
            os.path.join(xdg, "git", "config"),
            os.path.join(home, ".gitconfig"),
            os.path.join(self.common_dir, "config"),
        )
        stamp = tuple(_mtime_ns(p) for p in paths)
        if self._config is None or stamp != self._config_stamp:
            cfg: dict[str, str] = {}
            for path in paths:
                text = _read_text(path)
                if text:
                    cfg.update(parse_config(text))
            self._config = cfg
            self._config_stamp = stamp
        return self._config.get(key.lower())

    @property
    def object_format(self) -> str:
        # Fixed when the repository is created: read once.
        if self._object_format is None:
            self._object_format = (self.config("extensions.objectformat") or "sha1").lower()
        return self._object_format

    @property
    def uses_reftable(self) -> bool:
        if self._reftable is None:
            storage = (self.config("extensions.refstorage") or "files").lower()
            self._reftable = storage == "reftable"
        return self._reftable

    def identity(self) -> tuple[str, str]:
        """(name, email) for gitrun's commits; never fails when git has no identity."""
        name = os.environ.get("GIT_COMMITTER_NAME") or self.config("user.name") or "gitrun"
        email = os.environ.get("GIT_COMMITTER_EMAIL") or self.config("user.email")
        return name, email or "gitrun@localhost"

    # -- objects ---------------------------------------------------------
    def _hash(self, header: bytes, data: bytes) -> str:
        h = hashlib.sha256() if self.object_format == "sha256" else hashlib.sha1()
        h.update(header)
        h.update(data)
        return h.hexdigest()

    def write_object(self, kind: str, data: bytes) -> str:
        header = f"{kind} {len(data)}\0".encode()
        sha = self._hash(header, data)
        d = os.path.join(self.common_dir, "objects", sha[:2])
        path = os.path.join(d, sha[2:])
        if self._pending is not None:
            if sha not in self._pending and not _freshen(path):
                self._pending[sha] = (kind, data)
            return sha
        if _freshen(path):
            return sha
        # Written under a temporary name and renamed, so no reader sees half an object.
        # Loose objects use zlib level 1, git's default core.looseCompression.
        tmp = os.path.join(d, f"tmp_obj_{os.getpid()}_{threading.get_ident()}")
        raw = zlib.compress(header + data, 1)
        _write_new(tmp, raw)
        _replace(tmp, path, raw)
        return sha

    def write_blob(self, data: bytes) -> str:
        return self.write_object("blob", data)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Objects written inside go to disk together, as one pack, when the block ends.

        A run's ~10 small objects then cost two file creations instead of ten (creating a
        file in a fresh objects/xx/ directory is the slowest part of recording a run).
        Objects of the batch are readable from memory until it ends.
        """
        if self._pending is not None:  # nested: the outer batch writes everything
            yield
            return
        self._pending = {}
        try:
            yield
            pending, self._pending = self._pending, None
            self._write_pending(pending)
        finally:
            self._pending = None

    def _write_pending(self, pending: dict[str, tuple[str, bytes]]) -> None:
        # While a `git gc` runs (gc.pid is its lock), write loose objects as git itself
        # does: repack never deletes loose objects, but a concurrent `repack -A -d` was
        # seen deleting a fresh pack (even one with a .keep) whose commit the ref had
        # just come to point at, losing a run.
        gc_running = os.path.exists(os.path.join(self.common_dir, "gc.pid"))
        if len(pending) < 3 or self.object_format != "sha1" or gc_running:
            for kind, data in pending.values():
                self.write_object(kind, data)
            return
        for sha, (kind, data) in pending.items():
            if kind == "commit":
                self._commits[sha] = data
        write_pack(os.path.join(self.common_dir, "objects", "pack"), pending)
        self._maybe_consolidate_packs()

    def _maybe_consolidate_packs(self) -> None:
        # One pack per run would pile up; like `git gc --auto`, roll the small ones up
        # once there are many.  --geometric keeps every object of the packs it combines
        # (reachable or not), so a concurrent writer's new objects are never dropped.
        packdir = os.path.join(self.common_dir, "objects", "pack")
        try:
            names = set(os.listdir(packdir))
        except OSError:
            return
        # Kept packs are left alone by repack: count only those it can roll up.
        count = sum(1 for n in names if n.endswith(".idx") and n[:-4] + ".keep" not in names)
        if count > PACK_LIMIT:
            self.git("repack", "-d", "-q", "--geometric=2", check=False)

    def write_blob_file(self, path: str) -> tuple[str, str, int]:
        """Store a file as a blob; return (blob id, sha256, size)."""
        size = os.path.getsize(path)
        if size <= 32 * 1024 * 1024:
            with open(path, "rb") as f:
                data = f.read()
            return self.write_blob(data), hashlib.sha256(data).hexdigest(), len(data)
        # Large files stream through git instead of being held in memory.
        blob = self.gitout("hash-object", "-w", "--no-filters", "--", os.path.abspath(path))
        return blob.strip(), sha256_file(path), size

    def write_tree(self, entries: Iterable[tuple[str, str, str]]) -> str:
        """entries: (mode, name, sha).  Sorted the way git sorts trees."""
        ordered = sorted(entries, key=_tree_sort_key)
        parts = [f"{mode} {name}\0".encode() + bytes.fromhex(sha) for mode, name, sha in ordered]
        tree = self.write_object("tree", b"".join(parts))
        self._remember_tree(tree, ordered)
        return tree

    def write_commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: str,
        when_ms: int | None = None,
        author: tuple[str, str] | None = None,
    ) -> str:
        name, email = author or self.identity()
        name = name.replace("<", "").replace(">", "").replace("\n", " ")
        email = email.replace("<", "").replace(">", "").replace("\n", "")
        secs = int((when_ms if when_ms is not None else time.time() * 1000) // 1000)
        lines = [f"tree {tree}"]
        lines += [f"parent {p}" for p in parents]
        lines.append(f"author {name} <{email}> {secs} +0000")
        lines.append(f"committer {name} <{email}> {secs} +0000")
        body = "\n".join(lines) + "\n\n" + message
        if not body.endswith("\n"):
            body += "\n"
        return self.write_object("commit", body.encode())

    def read_object(self, sha: str) -> tuple[str, bytes]:
        if self._pending is not None and sha in self._pending:
            return self._pending[sha]
        if sha in self._commits:
            return "commit", self._commits[sha]
        path = os.path.join(self.common_dir, "objects", sha[:2], sha[2:])
        try:
            with open(path, "rb") as f:
                raw = zlib.decompress(f.read())
        except FileNotFoundError:
            return self.cat_file().read(sha)
        nul = raw.index(b"\0")
        kind = raw[:nul].split(b" ", 1)[0].decode()
        return kind, raw[nul + 1 :]

    def cat_file(self) -> CatFile:
        # A helper closed at interpreter exit is started again for an atexit handler
        # that still reads (a run ended at exit, rebuilding on a tip that moved).
        if self._cat is None or self._cat.closed:
            self._cat = CatFile(self)
        return self._cat

    def read_tree(self, sha: str) -> list[tuple[str, str, str]]:
        cached = self._trees.get(sha)
        if cached is not None:
            return list(cached)
        kind, data = self.read_object(sha)
        if kind != "tree":
            raise GitError(f"object {sha} is a {kind}, not a tree.")
        entries = parse_tree(data, 32 if self.object_format == "sha256" else 20)
        self._remember_tree(sha, entries)
        return list(entries)

    def _remember_tree(self, sha: str, entries: list[tuple[str, str, str]]) -> None:
        # Objects are immutable, so a tree read or written once never needs parsing again
        # (the next run's commit starts from the trees this one wrote).
        if len(self._trees) > 4096:
            self._trees.clear()
        self._trees[sha] = entries

    def read_commit(self, sha: str) -> tuple[str, list[str], str]:
        """(tree, parents, message)."""
        kind, data = self.read_object(sha)
        if kind != "commit":
            raise GitError(f"object {sha} is a {kind}, not a commit.")
        head, _, message = data.decode(errors="replace").partition("\n\n")
        tree = ""
        parents: list[str] = []
        for line in head.splitlines():
            if line.startswith("tree "):
                tree = line[5:]
            elif line.startswith("parent "):
                parents.append(line[7:])
        return tree, parents, message

    def missing_objects(self, shas: Iterable[str]) -> list[str]:
        """Which of `shas` this repository does not have (loose files checked directly,
        the rest by one `git cat-file --batch-check`)."""
        todo = []
        for sha in dict.fromkeys(shas):
            if self._pending is not None and sha in self._pending:
                continue
            if not os.path.exists(os.path.join(self.common_dir, "objects", sha[:2], sha[2:])):
                todo.append(sha)
        if not todo:
            return []
        out = self.git(
            "cat-file", "--batch-check", input="".join(s + "\n" for s in todo).encode()
        ).stdout.decode()
        return [line.split()[0] for line in out.splitlines() if line.endswith(" missing")]

    def has_object(self, sha: str) -> bool:
        return not self.missing_objects([sha])

    # -- refs ------------------------------------------------------------
    def _ref_dir(self, ref: str) -> str:
        # Per-worktree refs live in the worktree's git dir; everything else is shared.
        if ref == "HEAD" or ref.startswith(("refs/worktree/", "refs/bisect/")):
            return self.git_dir
        return self.common_dir

    def read_ref(self, ref: str) -> str | None:
        if self.uses_reftable:
            p = self.git("rev-parse", "-q", "--verify", ref + "^{commit}", check=False)
            return p.stdout.decode().strip() or None
        base = self._ref_dir(ref)
        text = _read_text(os.path.join(base, ref))
        if text is not None:
            text = text.strip()
            if text.startswith("ref:"):
                return self.read_ref(text[4:].strip())
            return text or None
        packed = _read_text(os.path.join(self.common_dir, "packed-refs"))
        if packed:
            suffix = " " + ref
            for line in packed.splitlines():
                if line.endswith(suffix) and not line.startswith(("#", "^")):
                    return line.split(" ", 1)[0]
        return None

    def update_ref(self, ref: str, new: str, old: str | None, message: str = "gitrun") -> bool:
        """Compare-and-swap: point `ref` at `new` only if it still points at `old`.

        Returns False when the ref moved (the caller rebuilds and retries); raises
        RefLockedError when another process holds the ref's lock file.  Uses git's own
        lock-file protocol, so it excludes concurrent git commands.  A lock is broken
        only when provably left by a process that died (_break_stale_lock); one that
        is held is never broken.
        """
        if self.uses_reftable:
            zero = "0" * len(new)
            p = self.git("update-ref", "-m", message, ref, new, old or zero, check=False)
            return p.returncode == 0
        path = os.path.join(self._ref_dir(ref), ref)
        lock = path + ".lock"
        try:
            fd = _create_lock(lock)
        except FileExistsError:
            if not self._break_stale_lock(lock):
                raise RefLockedError(ref, lock) from None
            try:
                fd = _create_lock(lock)
            except FileExistsError:
                raise RefLockedError(ref, lock) from None
        renamed = False
        try:
            if self.read_ref(ref) != old:
                return False
            data = (new + "\n").encode()
            if os.write(fd, data) != len(data):
                raise OSError(28, "No space left on device", lock)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(lock, path)
            renamed = True
            self._append_reflog(ref, old, new, message)
            return True
        finally:
            if fd >= 0:
                os.close(fd)
            if not renamed:
                with contextlib.suppress(OSError):
                    os.unlink(lock)

    def _break_stale_lock(self, lock: str) -> bool:
        """Remove a ref lock left by a gitrun process that died, provably safely.

        A gitrun holder flocks its lock file from creation to rename, so a lock nobody
        flocks is not held by a living gitrun process; one older than STALE_LOCK_AGE is
        not a git command's either (git holds ref locks for milliseconds).  Breakers
        take turns on a mutex and check again under it, so two of them can never both
        remove a lock and then each "hold" the next one: the second finds the first's
        fresh (young, flocked) lock and leaves it.
        """
        try:
            mutex = os.open(
                os.path.join(self.gitrun_dir, "ref-lock-break"), os.O_CREAT | os.O_RDWR, 0o644
            )
        except OSError:
            return False  # no gitrun dir, read-only: leave it to the user
        try:
            fcntl.flock(mutex, fcntl.LOCK_EX)
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
            os.close(mutex)

    def cas_ref(
        self, ref: str, new: str, old: str | None, message: str = "gitrun", wait: float = 3.0
    ) -> bool:
        """update_ref, waiting up to `wait` seconds while another process holds the lock.

        A concurrent writer holds it for well under a millisecond; one held for seconds
        was left by a process that died, and is named to the user (RefLockedError).
        """
        deadline = time.monotonic() + wait
        delay = 0.0005
        while True:
            try:
                return self.update_ref(ref, new, old, message)
            except RefLockedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def delete_ref(self, ref: str) -> None:
        """Remove a ref of gitrun's own (loose or packed by `git pack-refs`)."""
        if not self.uses_reftable:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._ref_dir(ref), ref))
            packed = _read_text(os.path.join(self.common_dir, "packed-refs")) or ""
            if (" " + ref + "\n") not in packed and not packed.endswith(" " + ref):
                return
        self.git("update-ref", "--no-deref", "-d", ref, check=False)

    def _append_reflog(self, ref: str, old: str | None, new: str, message: str) -> None:
        # Like git: only refs whose log already exists (or heads) get reflog entries.
        log = os.path.join(self._ref_dir(ref), "logs", ref)
        if not os.path.exists(log):
            return
        name, email = self.identity()
        zero = "0" * len(new)
        line = f"{old or zero} {new} {name} <{email}> {int(time.time())} +0000\t{message}\n"
        with open(log, "a", encoding="utf-8") as f:
            f.write(line)

    # -- status ----------------------------------------------------------
    def status(self) -> WorkTreeStatus:
        """HEAD, branch and changes in one `git status` (porcelain v2) call."""
        out = self.git(
            "--no-optional-locks",
            "status",
            "--porcelain=v2",
            "-z",
            "--branch",
            "--untracked-files=all",
            "--ignore-submodules=none",
        ).stdout
        return parse_status(out)

    def close(self) -> None:
        if self._cat is not None:
            self._cat.close()
            self._cat = None


def _freshen(path: str) -> bool:
    """Whether a loose object exists; like git, touch it so that a `git gc` running
    now does not prune it as old and unreachable just before we point at it."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(path)  # read-only objects directory


def _create_lock(lock: str) -> int:
    """git's lock file (O_EXCL), flocked while held: a lock nobody flocks was left by a
    gitrun process that died (see Repo._break_stale_lock)."""
    fd = _open_in_dir(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


class WorkTreeStatus:
    def __init__(
        self, head: str | None, branch: str | None, changed: list[str], untracked: list[str]
    ) -> None:
        self.head = head  # None on an unborn branch
        self.branch = branch  # None when detached
        self.changed = changed  # tracked paths with changes (staged or not)
        self.untracked = untracked

    @property
    def dirty(self) -> bool:
        return bool(self.changed or self.untracked)


def parse_status(out: bytes) -> WorkTreeStatus:
    head: str | None = None
    branch: str | None = None
    changed: list[str] = []
    untracked: list[str] = []
    items = out.split(b"\0")
    i = 0
    while i < len(items):
        item = items[i].decode("utf-8", "surrogateescape")
        i += 1
        if not item:
            continue
        if item.startswith("# branch.oid "):
            oid = item[len("# branch.oid ") :]
            head = None if oid == "(initial)" else oid
        elif item.startswith("# branch.head "):
            b = item[len("# branch.head ") :]
            branch = None if b == "(detached)" else b
        elif item.startswith("1 "):
            changed.append(item.split(" ", 8)[8])
        elif item.startswith("2 "):
            changed.append(item.split(" ", 9)[9])
            i += 1  # the original path of a rename follows
        elif item.startswith("u "):
            changed.append(item.split(" ", 10)[10])
        elif item.startswith("? "):
            untracked.append(item[2:])
    return WorkTreeStatus(head=head, branch=branch, changed=changed, untracked=untracked)


def _tree_sort_key(entry: tuple[str, str, str]) -> bytes:
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


def parse_config(text: str) -> dict[str, str]:
    """A small reader for git's config format: enough for user.* and remote.*.url."""
    out: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            inner = line[1 : line.find("]")] if "]" in line else line[1:]
            if '"' in inner:
                sec, _, sub = inner.partition('"')
                section = sec.strip().lower() + "." + sub.rstrip('"')
            else:
                section = inner.strip().lower()
            continue
        key, eq, value = line.partition("=")
        value = value.strip() if eq else "true"
        for c in ("#", ";"):
            if c in value and not value.startswith('"'):
                value = value.split(c, 1)[0].strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[f"{section}.{key.strip().lower()}"] = value
    return out


class CatFile:
    """A long-lived `git cat-file --batch` for objects that are not loose (packed)."""

    def __init__(self, repo: Repo) -> None:
        self._proc = subprocess.Popen(
            ["git", "cat-file", "--batch"],
            cwd=repo.common_dir,
            env=git_env({"GIT_DIR": repo.common_dir}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a missing/corrupt object is reported by gitrun
        )
        self._lock = threading.Lock()
        self.closed = False
        import atexit

        atexit.register(self.close)  # Repo objects live for the process

    def read(self, sha: str) -> tuple[str, bytes]:
        with self._lock:
            assert self._proc.stdin and self._proc.stdout
            self._proc.stdin.write(sha.encode() + b"\n")
            self._proc.stdin.flush()
            header = self._proc.stdout.readline().decode().split()
            if len(header) < 3 or header[1] == "missing":
                raise GitError(f"git object {sha} is missing from this repository.")
            size = int(header[2])
            data = self._proc.stdout.read(size)
            self._proc.stdout.read(1)
            return header[1], data

    def read_many(self, shas: Sequence[str]) -> Iterator[tuple[str, str, bytes]]:
        """Stream many objects; writes on a thread so the pipe never deadlocks."""
        with self._lock:
            assert self._proc.stdin and self._proc.stdout
            stdin = self._proc.stdin

            def feed() -> None:
                stdin.write(b"".join(s.encode() + b"\n" for s in shas))
                stdin.flush()

            t = threading.Thread(target=feed, daemon=True)
            t.start()
            out = self._proc.stdout
            for sha in shas:
                header = out.readline().decode().split()
                if len(header) < 3 or header[1] == "missing":
                    yield sha, "missing", b""
                    continue
                data = out.read(int(header[2]))
                out.read(1)
                yield sha, header[1], data
            t.join()

    def close(self) -> None:
        self.closed = True
        try:
            if self._proc.stdin:
                self._proc.stdin.close()
            self._proc.wait(timeout=5)
            if self._proc.stdout:
                self._proc.stdout.close()
        except Exception:
            self._proc.kill()
