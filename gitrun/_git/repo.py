"""Repo: one git repository as gitrun sees it — discovery (walking up to `.git`, or
asking git when GIT_DIR is set or the repository is bare), object reading and writing
(loose, or one pack per batch), refs (delegating to refs.py, or to git for reftable),
config (config.py) and `git status` (status.py).

One Repo per repository and process (`Repo.discover` caches them), so its caches —
config, parsed trees, the `git cat-file` helper — serve every run a process records.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence

from ..errors import GitError, NotAGitRepoError, RefLockedError
from . import config as _cfg
from . import refs as _refs
from .catfile import CatFile
from .files import read_text
from .objects import (
    PACK_LIMIT,
    freshen,
    parse_tree,
    rename_into_place,
    sha256_file,
    tree_sort_key,
    write_new,
    write_pack,
)
from .run import run_git
from .status import WorkTreeStatus, parse_status

_repos: dict[tuple[str, str | None], Repo] = {}

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
        self._config_stamp: _cfg.Stamp = ((), ())
        self._config_watch: tuple[str, ...] = ()
        self._object_format: str | None = None
        self._reftable: bool | None = None
        self._trees: dict[str, list[tuple[str, str, str]]] = {}
        self._commits: dict[str, bytes] = {}  # commits this process packed
        # Objects reachable from a ref this process moved (a run's code commit, say): they
        # cannot be pruned, so missing_objects need not ask git about them again.
        self.reachable: set[str] = set()
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
                text = read_text(dotgit) or ""
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
            cd = read_text(os.path.join(git_dir, "commondir"))
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
    def forget_config(self) -> None:
        """Read the configuration again on the next lookup (after writing it)."""
        self._config = None

    def config(self, key: str) -> str | None:
        """The value git would give for `key` (last one wins); None when unset.

        Read once per process and again only when a file it came from (or a variable
        deciding which files git reads) changes; see config.py for when git is asked.
        """
        if self._config is None or _cfg.stamp(self._config_watch) != self._config_stamp:
            where = self.work_tree or self.git_dir
            self._config, self._config_watch, self._config_stamp = _cfg.read_config(
                self.common_dir, where
            )
        return self._config.get(_cfg.normalize_key(key))

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
    def hash_object(self, header: bytes, data: bytes) -> str:
        """The object id of `header + data` in this repository's hash (sha1 or sha256)."""
        h = hashlib.sha256() if self.object_format == "sha256" else hashlib.sha1()
        h.update(header)
        h.update(data)
        return h.hexdigest()

    def write_object(self, kind: str, data: bytes) -> str:
        header = f"{kind} {len(data)}\0".encode()
        sha = self.hash_object(header, data)
        d = os.path.join(self.common_dir, "objects", sha[:2])
        path = os.path.join(d, sha[2:])
        if self._pending is not None:
            if sha not in self._pending and not freshen(path):
                self._pending[sha] = (kind, data)
            return sha
        if freshen(path):
            return sha
        # Written under a temporary name and renamed, so no reader sees half an object.
        # Loose objects use zlib level 1, git's default core.looseCompression.
        tmp = os.path.join(d, f"tmp_obj_{os.getpid()}_{threading.get_ident()}")
        raw = zlib.compress(header + data, 1)
        write_new(tmp, raw)
        rename_into_place(tmp, path, raw)
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
        ordered = sorted(entries, key=tree_sort_key)
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
            self._cat = CatFile(self.common_dir)
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
            if sha in self.reachable or (self._pending is not None and sha in self._pending):
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

    # -- refs (the files backend in refs.py; reftable through git) ----------
    def read_ref(self, ref: str) -> str | None:
        if self.uses_reftable:
            p = self.git("rev-parse", "-q", "--verify", ref + "^{commit}", check=False)
            return p.stdout.decode().strip() or None
        return _refs.read_ref(self.git_dir, self.common_dir, ref)

    def update_ref(self, ref: str, new: str, old: str | None, message: str = "gitrun") -> bool:
        """Compare-and-swap: point `ref` at `new` only if it still points at `old`.

        Returns False when the ref moved (the caller rebuilds and retries); raises
        RefLockedError when another process holds the ref's lock file.  Uses git's own
        lock-file protocol, so it excludes concurrent git commands.  A lock is broken
        only when provably left by a process that died (refs.break_stale_lock); one
        that is held is never broken.
        """
        if self.uses_reftable:
            zero = "0" * len(new)
            p = self.git("update-ref", "-m", message, ref, new, old or zero, check=False)
            return p.returncode == 0
        return _refs.update_ref(
            self.git_dir,
            self.common_dir,
            ref,
            new,
            old,
            message=message,
            mutex=os.path.join(self.gitrun_dir, "ref-lock-break"),
            identity=self.identity,
        )

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
        if not self.uses_reftable and not _refs.delete_loose_ref(
            self.git_dir, self.common_dir, ref
        ):
            return
        self.git("update-ref", "--no-deref", "-d", ref, check=False)

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
