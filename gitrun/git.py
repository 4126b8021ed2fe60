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
import hashlib
import os
import subprocess
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence

from .errors import GitError, NotAGitRepoError

TREE_MODE = "40000"
BLOB_MODE = "100644"
EXEC_MODE = "100755"
LINK_MODE = "120000"
GITLINK_MODE = "160000"

_known_dirs: set[str] = set()
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


def _write_new(path: str, data: bytes) -> None:
    """Create `path` read-only (as git's objects are) holding `data`."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o444)
    except FileExistsError:  # left by a process of ours that died mid-write
        os.unlink(path)
        fd = os.open(path, flags, 0o444)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


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
        _write_new(tmp, content)
        os.replace(tmp, os.path.join(packdir, name + suffix))
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
    def discover(cls, path: str | None = None) -> Repo:
        start = os.path.abspath(path or os.getcwd())
        if "GIT_DIR" in os.environ:
            return cls._from_git(start)
        d = start
        while True:
            dotgit = os.path.join(d, ".git")
            if os.path.isdir(dotgit) and os.path.isfile(os.path.join(dotgit, "HEAD")):
                return cls._make(dotgit, d)
            if os.path.isfile(dotgit):
                text = _read_text(dotgit) or ""
                if text.startswith("gitdir:"):
                    gd = text[len("gitdir:") :].strip()
                    gd = os.path.normpath(os.path.join(d, gd))
                    if os.path.isfile(os.path.join(gd, "HEAD")):
                        return cls._make(gd, d)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        raise NotAGitRepoError(
            f"{start} is not inside a git repository; run `git init` there first "
            "or change to a directory inside a repository."
        )

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
    def _from_git(cls, start: str) -> Repo:
        proc = run_git(
            ["rev-parse", "--absolute-git-dir", "--git-common-dir", "--show-toplevel"],
            cwd=start,
            check=False,
        )
        if proc.returncode != 0:
            raise NotAGitRepoError(
                f"{start} is not inside a git repository; run `git init` there first "
                "or change to a directory inside a repository."
            )
        lines = proc.stdout.decode().splitlines()
        git_dir = lines[0]
        common = os.path.normpath(os.path.join(start, lines[1])) if len(lines) > 1 else git_dir
        work = lines[2] if len(lines) > 2 else None
        return cls(git_dir=git_dir, common_dir=common, work_tree=work)

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
            if sha not in self._pending and not os.path.exists(path):
                self._pending[sha] = (kind, data)
            return sha
        if os.path.exists(path):
            return sha
        if d not in _known_dirs:
            os.makedirs(d, exist_ok=True)
            _known_dirs.add(d)
        # Written under a temporary name and renamed, so no reader sees half an object.
        # Loose objects use zlib level 1, git's default core.looseCompression.
        tmp = os.path.join(d, f"tmp_obj_{os.getpid()}_{threading.get_ident()}")
        _write_new(tmp, zlib.compress(header + data, 1))
        os.replace(tmp, path)
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
        if len(pending) < 3 or self.object_format != "sha1":
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
            count = sum(1 for n in os.listdir(packdir) if n.endswith(".idx"))
        except OSError:
            return
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
        if self._cat is None:
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

    def has_object(self, sha: str) -> bool:
        path = os.path.join(self.common_dir, "objects", sha[:2], sha[2:])
        if os.path.exists(path):
            return True
        return self.git("cat-file", "-e", sha, check=False).returncode == 0

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

        Returns False when the ref moved (the caller rebuilds and retries).
        Uses git's own lock-file protocol, so it excludes concurrent git commands.
        """
        if self.uses_reftable:
            zero = "0" * len(new)
            p = self.git("update-ref", "-m", message, ref, new, old or zero, check=False)
            return p.returncode == 0
        path = os.path.join(self._ref_dir(ref), ref)
        lock = path + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                # A lock older than a minute belongs to a process that died between
                # creating and renaming it (git would leave it for ever).
                if time.time() - os.path.getmtime(lock) > 60:
                    os.unlink(lock)
            except OSError:
                pass
            return False
        renamed = False
        try:
            if self.read_ref(ref) != old:
                return False
            os.write(fd, (new + "\n").encode())
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
                try:
                    os.unlink(lock)
                except OSError:
                    pass

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
        )
        self._lock = threading.Lock()
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
        try:
            if self._proc.stdin:
                self._proc.stdin.close()
            self._proc.wait(timeout=5)
            if self._proc.stdout:
                self._proc.stdout.close()
        except Exception:
            self._proc.kill()
