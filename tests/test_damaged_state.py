"""Stale and damaged state (issue 9): a runs ref that is not a runs history, a damaged or
unwritable index, a run whose objects are missing, names in history that are not run ids.

Every case goes through the real `gitrun` command; damage is made with git plumbing, real
read-only mounts and a really full file system (a private mount namespace), or, where
mounts are not allowed, an unprivileged user."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import gitrun
from gitrun.errors import GitrunError
from tests.conftest import IDENTITY, git, run_cli
from tests.query_helpers import make_record, put_records

REF = "refs/gitrun/runs"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    p = run_cli(*args, cwd=cwd, env=env)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p


def one_line_error(p: subprocess.CompletedProcess, *words: str) -> str:
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def ls_ids(p: subprocess.CompletedProcess) -> list[str]:
    assert p.returncode == 0, p.stderr
    return [r["run_id"] for r in json.loads(p.stdout)]


def warnings_of(p: subprocess.CompletedProcess) -> list[str]:
    lines = p.stderr.strip().splitlines()
    assert all(line.startswith("gitrun: warning: ") for line in lines), p.stderr
    return lines


def copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def unpack_all(d: Path) -> None:
    """Every packed object as a loose one, so one object can be deleted on its own."""
    packs = d / ".git" / "objects" / "pack"
    saved = d / "packs-saved"
    shutil.move(str(packs), saved)
    packs.mkdir()
    for pack in sorted(saved.glob("*.pack")):
        with open(pack, "rb") as f:
            subprocess.run(["git", "unpack-objects", "-q"], cwd=d, stdin=f, check=True)
    shutil.rmtree(saved)


def loose_path(d: Path, sha: str) -> Path:
    return d / ".git" / "objects" / sha[:2] / sha[2:]


def mktree(d: Path, entries: list[tuple[str, str, str]]) -> str:
    """entries: (mode, id, name), with git's own `git mktree`."""
    text = "".join(
        f"{mode} {'tree' if mode == '040000' else 'blob'} {sha}\t{name}\n"
        for mode, sha, name in entries
    )
    p = subprocess.run(["git", "mktree"], cwd=d, input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def ls_tree(d: Path, treeish: str) -> list[tuple[str, str, str]]:
    out = git(d, "ls-tree", treeish)
    return [(line.split()[0], line.split()[2], line.split("\t", 1)[1]) for line in out.splitlines()]


def commit_runs_tree(d: Path, tree: str) -> None:
    old = git(d, "rev-parse", REF).strip()
    new = git(d, "commit-tree", tree, "-p", old, "-m", "crafted").strip()
    git(d, "update-ref", REF, new, old)


# ---------------------------------------------------------------------------
# templates, built once per module and copied per test
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """Three runs recorded by `gitrun record` (r2 with an artifact), and the healthy
    answers of the read commands."""
    base = tmp_path_factory.mktemp("small")
    env = {**IDENTITY, "HOME": str(base)}
    d = base / "repo"
    d.mkdir()
    git(d, "init", "-q", "-b", "main", env=env)
    (d / "train.py").write_text("print('training')\n")
    (d / "model.txt").write_text("weights\n")
    (d / ".gitignore").write_text("model.txt\nout/\n")
    git(d, "add", "train.py", ".gitignore", env=env)
    git(d, "commit", "-qm", "initial", env=env)
    for i, extra in ((1, []), (2, ["-a", "model.txt"]), (3, [])):
        p = run_cli(
            "record", "-q", "-n", f"r{i}", "-p", f"i={i}", *extra, "--", "true", cwd=d, env=env
        )
        assert p.returncode == 0, p.stderr
    ids = {
        r["run_name"]: r["run_id"]
        for r in json.loads(cli("ls", "--format", "json", cwd=d, env=env).stdout)
    }
    answers = {
        "ls": cli("ls", "--format", "json", cwd=d, env=env).stdout,
        "search": cli("search", "params.i >= 2", "--format", "csv", cwd=d, env=env).stdout,
        "show": cli("show", "r2", "--format", "json", cwd=d, env=env).stdout,
        "diff": cli("diff", "r1", "r3", "--format", "json", cwd=d, env=env).stdout,
    }
    return {"repo": d, "ids": ids, "answers": answers}


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict:
    """2,000 runs (written straight into history, one pack) with a warm index."""
    from gitrun._git import Repo

    base = tmp_path_factory.mktemp("big")
    d = base / "repo"
    d.mkdir()
    git(d, "init", "-q", env=IDENTITY)
    r = Repo.discover(str(d))
    recs = [
        make_record(
            f"{i:032x}"[::-1], f"run-{i}", 1000 + i, params={"i": i}, metrics={"m": [i, i + 1]}
        )
        for i in range(2000)
    ]
    with r.batch():
        put_records(r, recs)
    r.close()
    env = {**IDENTITY, "HOME": str(base)}
    answers = {
        "search": cli("search", "metrics.m > 1990", "--format", "csv", cwd=d, env=env).stdout,
        "ls": cli("ls", "-n", "5", "--format", "json", cwd=d, env=env).stdout,
    }
    assert (
        answers["search"].count("\n") == 11 and (d / ".git" / "gitrun" / "index.sqlite").is_file()
    )
    return {"repo": d, "answers": answers}


# ---------------------------------------------------------------------------
# 1. refs/gitrun/runs that is not a runs history
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["commit", "tree", "blob"])
def test_runs_ref_at_something_else_is_refused_before_anything_runs(
    kind, small, tmp_path, monkeypatch
):
    d = copy_repo(small["repo"], tmp_path / "repo")
    monkeypatch.chdir(d)
    target = {
        "commit": "HEAD",
        "tree": "HEAD^{tree}",
        "blob": "HEAD:train.py",
    }[kind]
    sha = git(d, "rev-parse", target).strip()
    runs_tip = git(d, "rev-parse", REF).strip()
    git(d, "update-ref", REF, sha)
    what = {"commit": "an ordinary commit", "tree": "a tree", "blob": "a blob"}[kind]
    for args in (["ls"], ["search", "params.i = 1"], ["show", "r1"], ["diff", "r1", "r2"]):
        one_line_error(cli(*args, cwd=d), REF, what, f"git update-ref -d {REF}")
    p = cli("record", "-n", "x", "--", "touch", "ran", cwd=d)
    one_line_error(p, REF, what)
    assert not (d / "ran").exists(), "the command ran although its run could not be recorded"
    with pytest.raises(GitrunError, match=f"points at {what}"):
        gitrun.start_run()
    assert git(d, "rev-parse", REF).strip() == sha  # nothing was committed on top
    live = d / ".git" / "gitrun" / "live"
    assert not live.exists() or not [n for n in os.listdir(live) if not n.startswith(".")]
    # Pointing the ref back is all it takes.
    git(d, "update-ref", REF, runs_tip)
    assert sorted(ls_ids(cli("ls", "--format", "json", cwd=d))) == sorted(small["ids"].values())


@pytest.mark.parametrize("value", ["0" * 40, "not an object id"])
def test_runs_ref_at_nothing_is_refused(value, small, tmp_path):
    d = copy_repo(small["repo"], tmp_path / "repo")
    (d / ".git" / "refs" / "gitrun" / "runs").write_text(value + "\n")
    (d / ".git" / "gitrun" / "index.sqlite").unlink()
    for args in (["ls"], ["show", "r1"], ["record", "--", "touch", "ran"]):
        one_line_error(cli(*args, cwd=d), REF, "git update-ref -d")
    assert not (d / "ran").exists()
    assert (d / ".git" / "refs" / "gitrun" / "runs").read_text() == value + "\n"


def test_a_repository_without_runs_stays_fine(empty_repo):
    p = cli("ls", cwd=empty_repo)
    assert p.returncode == 0 and "No runs yet" in p.stderr
    p = cli("record", "-q", "-n", "first", "--", "true", cwd=empty_repo)
    assert p.returncode == 0, p.stderr
    assert git(empty_repo, "cat-file", "-p", f"{REF}:gitrun.yaml") == "format: 1\n"
    assert [
        r["run_name"] for r in json.loads(cli("ls", "--format", "json", cwd=empty_repo).stdout)
    ] == ["first"]


# ---------------------------------------------------------------------------
# 2. a damaged index is a cache: rebuilt, never an error
# ---------------------------------------------------------------------------
def _garbage(path: Path, start: int, end: int) -> None:
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes((i * 7 + 13) % 256 for i in range(end - start)))


def _other_schema(path: Path) -> None:
    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)", [("schema", "1"), ("format", "1"), ("tip", "")]
    )
    conn.execute("CREATE TABLE notes(x)")
    conn.commit()
    conn.close()


DAMAGE = {
    # SQLite's header intact, pages behind it overwritten: the meta table ...
    "pages-4096-8192": lambda p: _garbage(p, 4096, 8192),
    # ... and the runs and metrics tables (queries fail, the meta check passes).
    "pages-40960-49152": lambda p: _garbage(p, 40960, 49152),
    "zero-length": lambda p: p.write_bytes(b""),
    "a-directory": lambda p: (p.unlink(), p.mkdir()),
    "another-schema": _other_schema,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index_is_rebuilt_silently(damage, big, tmp_path):
    d = copy_repo(big["repo"], tmp_path / "repo")
    path = d / ".git" / "gitrun" / "index.sqlite"
    for args, answer in (
        (("search", "metrics.m > 1990", "--format", "csv"), "search"),
        (("ls", "-n", "5", "--format", "json"), "ls"),
    ):
        if path.is_file():
            DAMAGE[damage](path)
        p = cli(*args, cwd=d)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert p.stdout == big["answers"][answer]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2000
    conn.close()
    assert not [n for n in os.listdir(path.parent) if n.startswith("index.sqlite.")]


def test_index_path_taken_by_a_directory_with_files_is_left_alone(big, tmp_path):
    d = copy_repo(big["repo"], tmp_path / "repo")
    path = d / ".git" / "gitrun" / "index.sqlite"
    path.unlink()
    path.mkdir()
    (path / "notes.txt").write_text("mine\n")
    p = cli("search", "metrics.m > 1990", "--format", "csv", cwd=d)
    assert p.returncode == 0 and p.stdout == big["answers"]["search"]
    (warning,) = warnings_of(p)
    assert str(path) in warning and "directory" in warning
    assert (path / "notes.txt").read_text() == "mine\n"


# ---------------------------------------------------------------------------
# 3. an index that cannot be written must not stop a read
# ---------------------------------------------------------------------------
def _can_mount() -> bool:
    with tempfile.TemporaryDirectory() as t:
        try:
            p = subprocess.run(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    "size=4k",
                    "tmpfs",
                    t,
                ],
                capture_output=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return p.returncode == 0


def _can(argv: list[str], cwd: str = "/") -> bool:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _can_chattr() -> bool:
    with tempfile.TemporaryDirectory() as t:
        ok = _can(["chattr", "+i", t])
        _can(["chattr", "-i", t])
        return ok and os.geteuid() == 0


CAN_MOUNT = _can_mount()
CAN_CHATTR = _can_chattr()
# The interpreter must be usable by that user (not under a private home directory).
SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
CAN_SWITCH_USER = os.geteuid() == 0 and _can([*SETPRIV, sys.executable, "-m", "gitrun", "--help"])


class Sandbox:
    """Runs gitrun with part of a repository unwritable, for real (root ignores permission
    bits, not these):
    ro-gitrun / ro-git: .git/gitrun or all of .git bind-mounted read-only (EROFS);
    full: a 64 KiB tmpfs on .git/gitrun, filled to the last byte (ENOSPC);
    immutable: .git/gitrun with the immutable attribute (chattr +i: EPERM);
    other-user: a world-readable copy used by an unprivileged user (EACCES)."""

    def __init__(self, mode: str, d: Path) -> None:
        self.mode, self.d = mode, d
        self.env: dict[str, str] = {}

    def cmd(self, argv: list[str]) -> list[str]:
        g = self.d / ".git"
        if self.mode == "immutable":
            return argv
        if self.mode == "other-user":
            return [*SETPRIV, *argv]
        if self.mode == "full":
            t = g / "gitrun"
            setup = f"mount -t tmpfs -o size=64k tmpfs {t} || exit 99; "
            setup += f"cat /dev/zero > {t}/fill 2>/dev/null;"
        else:
            t = g / "gitrun" if self.mode == "ro-gitrun" else g
            setup = f"mount --bind {t} {t} && mount -o remount,bind,ro {t} {t} || exit 99;"
        script = setup + ' exec "$@"'
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        p = subprocess.run(
            self.cmd([sys.executable, "-m", "gitrun", *args]),
            cwd=self.d,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
        return p

    def python(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.cmd([sys.executable, "-c", code]),
            cwd=self.d,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def sandbox(request, small, tmp_path):
    mode = request.param
    if mode == "other-user":
        if not CAN_SWITCH_USER:
            pytest.skip("needs root, setpriv and an interpreter an unprivileged user can run")
        base = Path(tempfile.mkdtemp(prefix="gitrun-ro-", dir="/tmp"))
        try:
            d = copy_repo(small["repo"], base / "repo")
            for root, dirs, files in os.walk(base):
                for n in dirs + files:
                    p = os.path.join(root, n)
                    extra = stat.S_IROTH | (stat.S_IXOTH if n in dirs else 0)
                    os.chmod(p, os.lstat(p).st_mode | extra)
            os.chmod(base, 0o755)
            out = base / "out"
            out.mkdir()
            os.chmod(out, 0o777)
            box = Sandbox(mode, d)
            box.env = {
                "HOME": str(base),
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "safe.directory",
                "GIT_CONFIG_VALUE_0": "*",
            }
            yield box, out
        finally:
            shutil.rmtree(base)
        return
    if mode == "immutable":
        if not CAN_CHATTR:
            pytest.skip("needs root and a file system with the immutable attribute (chattr)")
    elif not CAN_MOUNT:
        pytest.skip("needs a private mount namespace (unshare -m) for a real read-only disk")
    d = copy_repo(small["repo"], tmp_path / "repo")
    index = d / ".git" / "gitrun" / "index.sqlite"
    if index.exists():
        index.unlink()  # a cold cache: answering needs to write one, and cannot
    if mode != "immutable":
        yield Sandbox(mode, d), tmp_path / "out"
        return
    gitrun_dir = d / ".git" / "gitrun"
    subprocess.run(["chattr", "+i", str(gitrun_dir)], check=True)
    try:
        yield Sandbox(mode, d), tmp_path / "out"
    finally:
        subprocess.run(["chattr", "-i", str(gitrun_dir)], check=True)


@pytest.mark.parametrize(
    "sandbox", ["ro-gitrun", "ro-git", "full", "immutable", "other-user"], indirect=True
)
def test_reads_work_and_writes_refuse_when_the_repository_cannot_be_written(sandbox, small):
    box, out = sandbox
    answers = small["answers"]
    for args, answer in (
        (("ls", "--format", "json"), "ls"),
        (("search", "params.i >= 2", "--format", "csv"), "search"),
        (("show", "r2", "--format", "json"), "show"),
        (("diff", "r1", "r3", "--format", "json"), "diff"),
    ):
        p = box.run(*args)
        assert p.returncode == 0, p.stderr
        assert p.stdout == answers[answer]
        for line in warnings_of(p):  # at most one line, about the index only
            assert "cannot use the search index" in line
        assert len(p.stderr.splitlines()) <= 1
    p = box.run("checkout", "r2", "--artifacts-only", str(out))
    assert p.returncode == 0, p.stderr
    assert (out / "model.txt").read_text() == "weights\n"

    want = "No space left on device" if box.mode == "full" else "is read-only"
    one_line_error(box.run("record", "-n", "x", "--", "touch", "ran"), want)
    assert not (box.d / "ran").exists(), "the command ran although its run could not be recorded"
    p = box.python(
        "import gitrun, sys\n"
        "try:\n    gitrun.start_run()\n"
        "except gitrun.errors.GitrunError as e:\n    print(e)\n    sys.exit(3)\n"
    )
    assert p.returncode == 3 and want in p.stdout, (p.stdout, p.stderr)
    assert cli("ls", "--format", "json", cwd=box.d).stdout == answers["ls"]  # nothing recorded


# ---------------------------------------------------------------------------
# 4. one run's objects missing
# ---------------------------------------------------------------------------
def test_run_with_missing_objects_is_left_out_and_named(small, tmp_path):
    d = copy_repo(small["repo"], tmp_path / "repo")
    ids = small["ids"]
    victim = ids["r2"]
    unpack_all(d)
    blob = git(d, "rev-parse", f"{REF}:runs/{victim[:2]}/{victim}/run.yaml").strip()
    content = git(d, "cat-file", "blob", blob)
    loose_path(d, blob).unlink()
    (d / ".git" / "gitrun" / "index.sqlite").unlink()  # a cold index
    healthy = sorted([ids["r1"], ids["r3"]])
    for _ in range(2):  # and again: the damage is not cached as "indexed"
        p = cli("ls", "--format", "json", cwd=d)
        assert sorted(ls_ids(p)) == healthy
        (warning,) = warnings_of(p)
        assert f"leaving out run {victim[:8]}" in warning and "missing" in warning
    p = cli("search", "params.i >= 1", "--format", "csv", cwd=d)
    assert p.returncode == 0 and len(p.stdout.strip().splitlines()) == 3
    assert len(warnings_of(p)) == 1
    error = f"The objects of run {victim} are missing from this repository"
    one_line_error(cli("show", victim, cwd=d), error, "git fetch --refetch")
    # By prefix, resolving it may also meet the damage (the index): warned, then said.
    p = cli("show", victim[:8], cwd=d)
    *warned, last = p.stderr.strip().splitlines()
    assert p.returncode == 1 and last.startswith("Error: ") and error in last
    assert all(w.startswith("gitrun: warning: ") and victim[:8] in w for w in warned)
    assert json.loads(cli("show", "r1", "--format", "json", cwd=d).stdout)["run_id"] == ids["r1"]
    # The object restored (as a fetch from a clone would): the run is back, no warning.
    subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=d, input=content, text=True, check=True
    )
    p = cli("ls", "--format", "json", cwd=d)
    assert sorted(ls_ids(p)) == sorted(ids.values()) and p.stderr == ""


def test_a_lost_pack_hides_only_its_run(small, tmp_path):
    d = copy_repo(small["repo"], tmp_path / "repo")
    ids = small["ids"]
    victim = ids["r2"]
    tree = git(d, "rev-parse", f"{REF}:runs/{victim[:2]}/{victim}").strip()
    packs = list((d / ".git" / "objects" / "pack").glob("*.idx"))
    lost = []
    for idx in packs:
        with open(idx, "rb") as f:
            listed = subprocess.run(["git", "show-index"], stdin=f, capture_output=True, text=True)
        if tree in listed.stdout:
            lost.append(idx)
    assert len(lost) == 1
    for f in lost[0].parent.glob(lost[0].stem + ".*"):
        f.unlink()
    (d / ".git" / "gitrun" / "index.sqlite").unlink()
    for args in (("ls", "--format", "json"), ("search", "--format", "json")):
        p = cli(*args, cwd=d)
        assert sorted(ls_ids(p)) == sorted([ids["r1"], ids["r3"]])
        assert len(warnings_of(p)) == 1 and "missing from this repository" in p.stderr


# ---------------------------------------------------------------------------
# 5. names read back from history are validated as at creation
# ---------------------------------------------------------------------------
def test_names_in_history_that_are_not_run_ids_are_left_out(tmp_path):
    from gitrun._git import Repo

    d = tmp_path / "repo"
    d.mkdir()
    git(d, "init", "-q")
    r = Repo.discover(str(d))
    good = [f"{i:032x}"[::-1] for i in range(30)]  # 30 buckets: a cold index lists them all
    put_records(r, [make_record(rid, f"run-{i}", 1000 + i) for i, rid in enumerate(good)])
    victim = good[0]
    b = victim[:2]
    vtree = git(d, "rev-parse", f"{REF}:runs/{b}/{victim}").strip()
    blob = git(d, "rev-parse", f"{REF}:gitrun.yaml").strip()
    bucket = ls_tree(d, f"{REF}:runs/{b}")
    other_bucket = next(f"{i:02x}" for i in range(256) if f"{i:02x}" not in {g[:2] for g in good})
    bucket += [
        ("040000", vtree, ".."),  # a path out of the bucket
        ("040000", vtree, (b + "a" * 30).upper()),  # uppercase: not an id gitrun makes
        ("040000", vtree, "ff" + "0" * 30 if b != "ff" else "ee" + "0" * 30),  # wrong bucket
        ("100644", blob, b + "1" * 30),  # a file, not a run directory
        ("040000", vtree, b + "2" * 30),  # a valid id whose run.yaml names another run
    ]
    runs = ls_tree(d, f"{REF}:runs")
    runs = [e for e in runs if e[2] != b] + [
        ("040000", mktree(d, bucket), b),
        ("040000", mktree(d, [("040000", vtree, "x")]), ".."),  # runs/../x
        ("040000", mktree(d, [("040000", vtree, victim)]), "ZZ"),
        ("100644", blob, other_bucket),
    ]
    top = [e for e in ls_tree(d, f"{REF}^{{tree}}") if e[2] != "runs"]
    commit_runs_tree(d, mktree(d, top + [("040000", mktree(d, runs), "runs")]))

    for args in (("ls", "-n", "0", "--format", "json"), ("search", "--format", "json")):
        p = cli(*args, cwd=d)  # a cold index (listing all of runs/), then an update
        assert sorted(ls_ids(p)) == sorted(good)
        warned = warnings_of(p)
        assert len(warned) == 8, p.stderr
        assert all("leaving out" in w for w in warned)
        assert sum(f"run {b}222222" in w and "names another run id" in w for w in warned) == 1
    p = cli("show", b + "2" * 30, cwd=d)
    assert p.returncode == 1 and "names another run id" in p.stderr.splitlines()[-1]
    p = cli("show", "..", cwd=d)
    assert p.returncode == 1 and "No run matches" in p.stderr.splitlines()[-1]
