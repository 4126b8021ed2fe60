"""Unit tests of gitrun._git's modules, each checked against git itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitrun._git import Repo, write_pack
from gitrun._git.catfile import CatFile
from gitrun._git.config import normalize_key, parse_config_file, parse_config_list
from gitrun._git.objects import parse_tree
from gitrun._git.refs import STALE_LOCK_AGE
from gitrun._git.status import parse_status
from gitrun.errors import RefLockedError
from tests.conftest import git

RAW_STATUS = ("--no-optional-locks", "status", "--porcelain=v2", "-z", "--branch")


def fresh_repo(path: Path) -> Repo:
    """A Repo object of its own (not the process-wide cached one)."""
    r = Repo.discover(str(path))
    return Repo(r.git_dir, r.common_dir, r.work_tree)


def git_in(cwd: Path, stdin: str, *args: str) -> str:
    """git with `stdin` as its input."""
    p = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def object_id(r: Repo, kind: str, data: bytes) -> str:
    return r.hash_object(f"{kind} {len(data)}\0".encode(), data)


# -- objects.py: packs and loose objects ------------------------------------------
def test_write_pack_of_every_object_kind_is_verified_by_git(repo):
    r = fresh_repo(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    blob = b"x" * 5000  # a size needing a three-byte pack entry header
    tree = b"100644 f.txt\0" + bytes.fromhex(object_id(r, "blob", blob))
    commit = f"tree {object_id(r, 'tree', tree)}\nparent {head}\n".encode()
    commit += b"author A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\npacked\n"
    tag = f"object {head}\ntype commit\ntag v1\ntagger A <a@x> 1 +0000\n\nt\n".encode()
    objects = {
        object_id(r, kind, data): (kind, data)
        for kind, data in (("blob", blob), ("tree", tree), ("commit", commit), ("tag", tag))
    }
    objects[object_id(r, "blob", b"")] = ("blob", b"")  # an empty object
    packdir = repo / ".git/objects/pack"
    name = write_pack(str(packdir), objects)
    out = git(repo, "verify-pack", "-v", str(packdir / f"{name}.idx"))
    listed = {line.split()[0]: line.split()[1:3] for line in out.splitlines() if " " in line}
    for sha, (kind, data) in objects.items():
        assert listed[sha] == [kind, str(len(data))]
        assert git(repo, "cat-file", "-t", sha).strip() == kind
        raw = subprocess.run(["git", "cat-file", kind, sha], cwd=repo, capture_output=True)
        assert raw.stdout == data
    assert "chain length" not in out  # stored whole, as documented
    assert f"{name}.pack: ok" in out


def test_loose_objects_and_batches_are_readable_by_git(repo):
    r = fresh_repo(repo)
    loose = r.write_blob(b"loose\n")
    assert (repo / ".git/objects" / loose[:2] / loose[2:]).is_file()
    assert git(repo, "cat-file", "-p", loose) == "loose\n"
    assert r.write_blob(b"loose\n") == loose  # written again: the same id, no error

    with r.batch():
        small = r.write_blob(b"small batch\n")  # fewer than 3 objects: written loose
    assert (repo / ".git/objects" / small[:2] / small[2:]).is_file()

    packs_before = set(os.listdir(repo / ".git/objects/pack"))
    with r.batch():
        blobs = [r.write_blob(f"batch {i}\n".encode()) for i in range(4)]
        tree = r.write_tree([("100644", f"f{i}", b) for i, b in enumerate(blobs)])
        commit = r.write_commit(tree, [], "batched\n")
        assert not (repo / ".git/objects" / commit[:2] / commit[2:]).exists()  # not yet
    new_packs = set(os.listdir(repo / ".git/objects/pack")) - packs_before
    assert len([n for n in new_packs if n.endswith(".pack")]) == 1
    for i, b in enumerate(blobs):
        assert git(repo, "cat-file", "-p", b) == f"batch {i}\n"
        assert not (repo / ".git/objects" / b[:2] / b[2:]).exists()  # in the pack
    assert git(repo, "log", "--format=%s", commit) == "batched\n"
    assert fresh_repo(repo).read_commit(commit)[0] == tree  # read back through cat-file
    git(repo, "fsck", "--strict", "--no-dangling")


def test_tree_order_and_parse_tree_match_git(repo):
    r = fresh_repo(repo)
    blob = r.write_blob(b"b\n")
    sub = r.write_tree([("100644", "inner", blob)])
    entries = [
        ("100644", "a.txt", blob),
        ("40000", "a", sub),  # sorts as "a/": after "a.txt", before "a0"
        ("100644", "a0", blob),
        ("100755", "run.sh", blob),
        ("120000", "link", blob),
        ("100644", "é ü.txt", blob),
    ]
    tree = r.write_tree(list(reversed(entries)))
    mktree_in = "".join(
        f"{m.rjust(6, '0')} {'tree' if m == '40000' else 'blob'} {s}\t{n}\n" for m, n, s in entries
    )
    assert git_in(repo, mktree_in, "mktree").strip() == tree
    raw = subprocess.run(["git", "cat-file", "tree", tree], cwd=repo, capture_output=True).stdout
    parsed = parse_tree(raw)
    ls = git(repo, "ls-tree", "-z", tree).split("\0")[:-1]
    expected = []
    for line in ls:
        meta, name = line.split("\t", 1)
        mode, _, sha = meta.split()
        expected.append((mode.lstrip("0"), name, sha))
    assert parsed == expected
    assert [n for _, n, _ in parsed] == ["a.txt", "a", "a0", "link", "run.sh", "é ü.txt"]


# -- status.py -------------------------------------------------------------------------
def test_parse_status_of_real_git_output(repo):
    (repo / "keep.txt").write_text("k\n")
    (repo / "? old name.txt").write_text("r\n")  # read as an entry if mis-parsed
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "more")
    git(repo, "mv", "? old name.txt", "new name ü.txt")  # a staged rename
    (repo / "train.py").write_text("changed\n")  # modified, unstaged
    (repo / "keep.txt").unlink()  # deleted
    (repo / "déjà vu.txt").write_text("u\n")  # untracked, unicode
    (repo / "sub" / "deep").mkdir(parents=True)
    (repo / "sub" / "deep" / "x.bin").write_bytes(b"x")
    (repo / "ignored.log").write_text("ignored\n")
    out = subprocess.run(
        ["git", *RAW_STATUS, "--untracked-files=all"], cwd=repo, capture_output=True
    ).stdout
    st = parse_status(out)
    assert st.head == git(repo, "rev-parse", "HEAD").strip()
    assert st.branch == "main"
    assert sorted(st.changed) == ["keep.txt", "new name ü.txt", "train.py"]
    assert sorted(st.untracked) == ["déjà vu.txt", "sub/deep/x.bin"]
    assert st.dirty
    assert fresh_repo(repo).status().__dict__ == st.__dict__


def test_parse_status_unborn_and_detached(empty_repo, repo):
    st = fresh_repo(empty_repo).status()
    assert (st.head, st.branch, st.dirty) == (None, "main", False)
    git(repo, "checkout", "-q", "--detach")
    st = fresh_repo(repo).status()
    assert st.branch is None and st.head == git(repo, "rev-parse", "HEAD").strip()
    assert not st.dirty


# -- refs.py ---------------------------------------------------------------------------
REF = "refs/gitrun/unit"


def test_update_ref_is_a_compare_and_swap(repo):
    r = fresh_repo(repo)
    a = git(repo, "rev-parse", "HEAD").strip()
    b = r.write_commit(r.read_commit(a)[0], [a], "b\n")
    assert r.update_ref(REF, a, None)
    assert not r.update_ref(REF, b, None)  # moved: it is not unset any more
    assert r.read_ref(REF) == a
    assert r.update_ref(REF, b, a)
    assert not r.update_ref(REF, a, a)  # moved from a to b meanwhile
    assert git(repo, "rev-parse", REF).strip() == b
    assert not (repo / ".git" / (REF + ".lock")).exists()


def _hold_lock(lock: Path, age: float) -> subprocess.Popen[str]:
    """Another process holding `lock` the way a gitrun writer does (flocked)."""
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_CREAT | os.O_EXCL | os.O_WRONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        f"t = time.time() - {age}\n"
        f"os.utime({str(lock)!r}, (t, t))\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


def test_a_held_lock_is_never_broken_and_is_named(repo):
    r = fresh_repo(repo)
    a = git(repo, "rev-parse", "HEAD").strip()
    lock = repo / ".git" / (REF + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    (repo / ".git/gitrun").mkdir()  # so a stale lock could be broken
    holder = _hold_lock(lock, age=STALE_LOCK_AGE + 60)  # old, but held
    try:
        with pytest.raises(RefLockedError) as e:
            r.update_ref(REF, a, None)
        assert str(lock) in str(e.value)
        with pytest.raises(RefLockedError):
            r.cas_ref(REF, a, None, wait=0.2)
        assert lock.exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    assert r.read_ref(REF) is None


def test_a_young_unheld_lock_is_left_alone(repo):
    # A git command's lock (git does not flock) that is seconds old at most.
    r = fresh_repo(repo)
    lock = repo / ".git" / (REF + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    (repo / ".git/gitrun").mkdir()
    lock.write_text("")
    with pytest.raises(RefLockedError, match="is locked by"):
        r.update_ref(REF, git(repo, "rev-parse", "HEAD").strip(), None)
    assert lock.exists()


def test_a_stale_unheld_lock_is_broken(repo):
    r = fresh_repo(repo)
    a = git(repo, "rev-parse", "HEAD").strip()
    lock = repo / ".git" / (REF + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    (repo / ".git/gitrun").mkdir()  # breakers take turns on a mutex there
    old = time.time() - STALE_LOCK_AGE - 5
    os.utime(lock, (old, old))  # left by a process that died
    assert r.update_ref(REF, a, None)
    assert not lock.exists()
    assert git(repo, "rev-parse", REF).strip() == a


def test_delete_ref_of_a_packed_ref(repo):
    r = fresh_repo(repo)
    a = git(repo, "rev-parse", "HEAD").strip()
    assert r.update_ref(REF, a, None)
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / REF).exists()
    assert REF in (repo / ".git/packed-refs").read_text()
    assert r.read_ref(REF) == a  # read through packed-refs
    r.delete_ref(REF)
    assert r.read_ref(REF) is None
    assert git(repo, "show-ref", "--verify", REF, check=False) == ""
    assert REF not in (repo / ".git/packed-refs").read_text()
    assert git(repo, "rev-parse", "main").strip() == a  # nothing else went


def test_read_ref_packed_symbolic_and_per_worktree(repo, tmp_path):
    r = fresh_repo(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git/refs/heads/main").exists()
    assert r.read_ref("refs/heads/main") == head
    assert r.read_ref("HEAD") == head  # symbolic, to a packed ref
    git(repo, "symbolic-ref", "refs/gitrun/sym", "refs/heads/main")
    assert r.read_ref("refs/gitrun/sym") == head
    assert r.read_ref("refs/heads/nope") is None
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "wt"), "HEAD~0")
    (tmp_path / "wt" / "f").write_text("f\n")
    git(tmp_path / "wt", "add", "f")
    git(tmp_path / "wt", "commit", "-qm", "in worktree")
    wt = fresh_repo(tmp_path / "wt")
    assert wt.read_ref("HEAD") == git(tmp_path / "wt", "rev-parse", "HEAD").strip() != head
    assert r.read_ref("HEAD") == head


def test_read_ref_of_an_unborn_branch(empty_repo):
    assert fresh_repo(empty_repo).read_ref("HEAD") is None


# -- repo.py: missing objects, cat-file --------------------------------------------------
def test_missing_objects(repo):
    r = fresh_repo(repo)
    loose = r.write_blob(b"loose\n")
    packed = git(repo, "rev-parse", "HEAD:train.py").strip()
    git(repo, "repack", "-adq")
    assert not (repo / ".git/objects" / packed[:2] / packed[2:]).exists()
    absent = [object_id(r, "blob", b"never written %d" % i) for i in range(2)]
    with r.batch():
        pending = r.write_blob(b"pending\n")
        asked = [absent[1], loose, packed, pending, absent[0], absent[1]]
        assert r.missing_objects(asked) == [absent[1], absent[0]]
        assert r.has_object(pending) and not r.has_object(absent[0])
    assert r.missing_objects([]) == []


def test_cat_file_reads_packed_objects_and_reports_missing(repo):
    r = fresh_repo(repo)
    git(repo, "gc", "-q")
    blob = git(repo, "rev-parse", "HEAD:train.py").strip()
    assert r.read_object(blob) == ("blob", b"print('training')\n")
    cat = CatFile(r.common_dir)
    try:
        absent = "0" * 40
        got = list(cat.read_many([blob, absent, blob]))
        assert got == [
            (blob, "blob", b"print('training')\n"),
            (absent, "missing", b""),
            (blob, "blob", b"print('training')\n"),
        ]
        with pytest.raises(Exception, match="missing"):
            cat.read(absent)
    finally:
        cat.close()


# -- sha256 repositories ---------------------------------------------------------------
def test_sha256_repository_object_ids(tmp_path):
    d = tmp_path / "sha256"
    d.mkdir()
    if subprocess.run(["git", "init", "-q", "--object-format=sha256", str(d)]).returncode:
        pytest.skip("this git cannot create sha256 repositories")
    r = fresh_repo(d)
    assert r.object_format == "sha256"
    blob = r.write_blob(b"hello\n")
    assert len(blob) == 64
    assert blob == git_in(d, "hello\n", "hash-object", "--stdin").strip()
    with r.batch():  # sha256 batches are written loose (write_pack is sha1-only)
        blobs = [r.write_blob(b"%d\n" % i) for i in range(3)]
        tree = r.write_tree([("100644", f"f{i}", b) for i, b in enumerate([blob, *blobs])])
        commit = r.write_commit(tree, [], "sha256 run\n")
    assert git(d, "cat-file", "-t", commit).strip() == "commit"
    assert git(d, "rev-parse", f"{commit}^{{tree}}").strip() == tree
    assert fresh_repo(d).read_tree(tree) == [
        ("100644", f"f{i}", b) for i, b in enumerate([blob, *blobs])
    ]
    assert r.update_ref(REF, commit, None)
    assert r.read_ref(REF) == commit == git(d, "rev-parse", REF).strip()
    git(d, "fsck", "--strict", "--no-dangling")


# -- config.py -------------------------------------------------------------------------
def test_config_keys_and_git_list_parsing(repo):
    assert normalize_key("User.Name") == "user.name"
    assert normalize_key("REMOTE.Up.Stream.URL") == "remote.Up.Stream.url"
    values, includes = parse_config_file('[Remote "Up"]\n\tURL = x\n[includeIf "gitdir:/w/"]\n')
    assert values == {"remote.Up.url": "x"} and includes
    git(repo, "config", "--local", "core.flagonly", "true")
    (repo / ".git/config").write_text((repo / ".git/config").read_text() + "\tbare-key\n")
    out = subprocess.run(
        ["git", "config", "-l", "-z", "--show-origin", "--local"], cwd=repo, capture_output=True
    ).stdout
    listed, origins = parse_config_list(out, str(repo))
    assert listed["core.bare-key"] == "true"  # a key without '=' is a boolean true
    assert listed["core.flagonly"] == "true"
    assert [os.path.realpath(p) for p in origins] == [os.path.realpath(repo / ".git/config")]
    assert fresh_repo(repo).config("core.BARE-KEY") == "true"
