"""gitrun checkout: code + artifacts restored, dirty trees refused, crafted runs refused."""

from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid

import pytest
from conftest import git, run_cli, snapshot_state

from gitrun._git import BLOB_MODE, LINK_MODE, TREE_MODE, Repo
from gitrun.errors import DirtyWorkTreeError, GitrunError, UnsafePathError
from gitrun.format import store
from gitrun.format.entities import Artifact, RunRecord
from gitrun.workflows.checkout import checkout, safe_join

TRAIN = """\
import sys
open("model.bin", "w").write("weights-" + open("data.csv").read())
"""


def record_dirty(repo):
    """A run recorded on a dirty tree: an edit to train.py and an untracked data.csv."""
    (repo / "train.py").write_text(TRAIN)
    git(repo, "commit", "-qam", "train")
    (repo / "train.py").write_text(TRAIN + "# tuned\n")
    (repo / "data.csv").write_text("1,2,3\n")
    p = run_cli("record", "-q", "-n", "dirty", "-a", "model.bin", "--", sys.executable, "train.py")
    assert p.returncode == 0, p.stderr
    rid = Repo.discover(str(repo)).read_ref(store.RUNS_REF)
    assert rid
    # back to a clean tree on main
    git(repo, "checkout", "-q", "--", "train.py")
    os.unlink(repo / "data.csv")
    os.unlink(repo / "model.bin")
    return "dirty"


def test_checkout_restores_snapshot_untracked_file_and_artifacts(repo):
    record_dirty(repo)
    before_head = git(repo, "rev-parse", "HEAD").strip()
    p = run_cli("checkout", "dirty")
    assert p.returncode == 0, p.stderr
    assert "Switched to branch gitrun/" in p.stdout
    assert (repo / "train.py").read_text() == TRAIN + "# tuned\n"
    assert (repo / "data.csv").read_text() == "1,2,3\n"
    assert (repo / "model.bin").read_text() == "weights-1,2,3\n"
    branch = git(repo, "branch", "--show-current").strip()
    assert branch.startswith("gitrun/")
    assert git(repo, "rev-parse", "HEAD^").strip() == before_head
    # The restored artifact is not "dirty": checking out again is a no-op, not a refusal.
    p = run_cli("checkout", "dirty")
    assert p.returncode == 0, p.stderr


def test_checkout_refuses_dirty_tree_and_changes_nothing(repo):
    record_dirty(repo)
    (repo / "train.py").write_text("my precious edit\n")
    (repo / "notes.txt").write_text("untracked work\n")
    git(repo, "add", "notes.txt")
    (repo / "scratch.txt").write_text("more\n")
    before = snapshot_state(repo)
    p = run_cli("checkout", "dirty")
    assert p.returncode == 1
    assert "--stash" in p.stderr and "Nothing was changed" in p.stderr
    assert "Traceback" not in p.stderr
    assert snapshot_state(repo) == before


def test_checkout_stash_stashes_and_proceeds(repo):
    record_dirty(repo)
    (repo / "train.py").write_text("my precious edit\n")
    (repo / "scratch.txt").write_text("untracked\n")
    p = run_cli("checkout", "dirty", "--stash")
    assert p.returncode == 0, p.stderr
    assert "git stash pop" in p.stdout
    stash = git(repo, "stash", "list")
    assert "gitrun: before checkout of run" in stash
    assert (repo / "model.bin").exists()
    assert not (repo / "scratch.txt").exists()
    git(repo, "switch", "-q", "main")
    git(repo, "stash", "pop", "-q")
    assert (repo / "train.py").read_text() == "my precious edit\n"
    assert (repo / "scratch.txt").read_text() == "untracked\n"


def test_worktree_mode_leaves_main_tree_byte_identical(repo, tmp_path):
    record_dirty(repo)
    (repo / "wip.txt").write_text("work in progress\n")  # dirty is fine for --worktree
    before = snapshot_state(repo)
    wt = tmp_path / "wt"
    p = run_cli("checkout", "dirty", "--worktree", str(wt))
    assert p.returncode == 0, p.stderr
    assert snapshot_state(repo) == before
    assert (wt / "train.py").read_text() == TRAIN + "# tuned\n"
    assert (wt / "data.csv").read_text() == "1,2,3\n"
    assert (wt / "model.bin").read_text() == "weights-1,2,3\n"
    assert git(wt, "status", "--porcelain") == "?? model.bin\n"


def test_artifacts_only(repo, tmp_path):
    record_dirty(repo)
    before = snapshot_state(repo)
    out = tmp_path / "arts"
    p = run_cli("checkout", "dirty", "--artifacts-only", str(out))
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(out)) == ["model.bin"]
    assert snapshot_state(repo) == before


def test_existing_branch_elsewhere_is_refused(repo):
    record_dirty(repo)
    git(repo, "branch", "taken")
    before = snapshot_state(repo)
    p = run_cli("checkout", "dirty", "--branch", "taken")
    assert p.returncode == 1
    assert "already exists" in p.stderr
    assert snapshot_state(repo) == before


# ---------------------------------------------------------------------------
# crafted runs (history from someone else)
# ---------------------------------------------------------------------------
def craft(repo_path, artifacts, code=True, link=None, cwd=None):
    """Commit a run directly with gitrun.store, bypassing the API's validation.

    artifacts: path -> bytes.  link: (path, target) stored as a symlink tree entry.
    """
    r = Repo.discover(str(repo_path))
    rid = uuid.uuid4().hex
    now = int(time.time() * 1000)
    head = git(repo_path, "rev-parse", "HEAD").strip()
    rec = RunRecord(
        run_id=rid,
        run_name="crafted",
        status="FINISHED",
        start_time=now,
        end_time=now,
        updated_time=now,
        code={"commit": head} if code else {},
        command=["true"],
        cwd=cwd,
        exit_code=0,
    )
    for path, data in artifacts.items():
        rec.artifacts[path] = Artifact(
            path, len(data), hashlib.sha256(data).hexdigest(), "git", r.write_blob(data)
        )
    if link:
        path, target = link
        data = target.encode()
        rec.artifacts[path] = Artifact(
            path, len(data), hashlib.sha256(data).hexdigest(), "git", r.write_blob(data)
        )
        files = {n: r.write_blob(d) for n, d in store.run_files(rec).items()}
        entries = [(BLOB_MODE, n, s) for n, s in files.items()]
        art = r.write_tree([(LINK_MODE, path, r.write_blob(data))])
        entries.append((TREE_MODE, store.ARTIFACTS_DIR, art))
        tree = r.write_tree(entries)
    else:
        tree = store._build_tree(
            r,
            {
                **{n: r.write_blob(d) for n, d in store.run_files(rec).items()},
                **{f"{store.ARTIFACTS_DIR}/{a.path}": a.blob for a in rec.artifacts.values()},
            },
        )
    old = r.read_ref(store.RUNS_REF)
    root = store.put_run_dirs(r, store.tip_tree(r, old), {rid: tree})
    parents = [old or store._root_commit(r)] + ([head] if code else [])
    commit = r.write_commit(root, parents, "crafted\n")
    assert r.update_ref(store.RUNS_REF, commit, old)
    return rid


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


BAD_PATHS = [
    "../escape.txt",
    "sub/../../escape.txt",
    ".git/hooks/post-checkout",
    "sub/.GIT/config",
    "ABSOLUTE",
    "a//b",
    "./x",
    "bad\x01name",
]


@pytest.mark.parametrize("bad", BAD_PATHS)
@pytest.mark.parametrize("mode", ["in-place", "worktree", "artifacts-only"])
def test_crafted_paths_write_nothing(repo, tmp_path, bad, mode):
    outside = tmp_path / "outside"
    outside.mkdir()
    if bad == "ABSOLUTE":
        bad = str(outside / "abs.txt")
    rid = craft(repo, {"good.txt": b"fine\n", bad: b"evil\n"})
    before = snapshot_state(repo)
    target = tmp_path / "target"
    r = Repo.discover(str(repo))
    with pytest.raises(UnsafePathError) as e:
        if mode == "in-place":
            checkout(r, rid)
        elif mode == "worktree":
            checkout(r, rid, worktree=str(target))
        else:
            checkout(r, rid, artifacts_only=str(target))
    assert "nothing was written" in str(e.value)
    assert snapshot_state(repo) == before
    assert files_under(outside) == []
    assert not target.exists()
    assert not (tmp_path / "escape.txt").exists()
    assert git(repo, "worktree", "list").count("\n") == 1


def test_symlink_tree_entry_is_refused(repo, tmp_path):
    rid = craft(repo, {"good.txt": b"ok\n"}, link=("model.bin", "/etc/passwd"))
    before = snapshot_state(repo)
    with pytest.raises(UnsafePathError, match="symlink"):
        checkout(Repo.discover(str(repo)), rid, artifacts_only=str(tmp_path / "t"))
    p = run_cli("checkout", rid[:8])
    assert p.returncode == 1 and "symlink" in p.stderr and "Traceback" not in p.stderr
    assert snapshot_state(repo) == before
    assert not (tmp_path / "t").exists()


def test_symlinked_directory_in_target_is_refused(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "sub")
    rid = craft(repo, {"a.txt": b"a\n", "sub/evil.txt": b"evil\n"})
    with pytest.raises(UnsafePathError, match="symlink"):
        checkout(Repo.discover(str(repo)), rid, artifacts_only=str(target))
    assert files_under(outside) == []
    assert sorted(os.listdir(target)) == ["sub"]


def test_ignored_symlink_in_work_tree_is_refused_in_place(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / ".gitignore").write_text("*.log\nout\n")
    git(repo, "commit", "-qam", "ignore out")
    os.symlink(outside, repo / "out")
    rid = craft(repo, {"out/evil.txt": b"evil\n"})
    before = snapshot_state(repo)
    with pytest.raises(UnsafePathError):
        checkout(Repo.discover(str(repo)), rid)
    assert files_under(outside) == []
    assert snapshot_state(repo) == before
    assert "gitrun/" not in git(repo, "branch")


def test_symlink_in_code_commit_is_refused(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, repo / "models")
    git(repo, "add", "models")
    git(repo, "commit", "-qm", "symlink")
    rid = craft(repo, {"models/evil.txt": b"evil\n"})
    before = snapshot_state(repo)
    with pytest.raises(UnsafePathError, match="symlink"):
        checkout(Repo.discover(str(repo)), rid, worktree=str(tmp_path / "wt"))
    assert files_under(outside) == []
    assert snapshot_state(repo) == before


def test_manifest_hash_mismatch_is_refused(repo, tmp_path):
    rid = craft(repo, {"model.bin": b"real\n"})
    r = Repo.discover(str(repo))
    from gitrun.query import resolve as runs

    rec = runs.load(r, rid)
    rec.artifacts["model.bin"].blob = r.write_blob(b"tampered\n")
    tree = store.write_run_tree(r, rec)
    old = r.read_ref(store.RUNS_REF)
    root = store.put_run_dirs(r, store.tip_tree(r, old), {rid: tree})
    r.update_ref(store.RUNS_REF, r.write_commit(root, [old], "tamper\n"), old)
    with pytest.raises(GitrunError, match="does not match its manifest"):
        checkout(Repo.discover(str(repo)), rid, artifacts_only=str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()


def test_run_without_code_commit(repo, tmp_path):
    rid = craft(repo, {"model.bin": b"w\n"}, code=False)
    r = Repo.discover(str(repo))
    with pytest.raises(GitrunError, match="no code commit"):
        checkout(r, rid)
    res = checkout(r, rid, artifacts_only=str(tmp_path / "t"))
    assert (tmp_path / "t" / "model.bin").read_bytes() == b"w\n"
    assert "Restored 1 artifact" in res.render()


def test_artifacts_restored_under_recorded_cwd(repo, tmp_path):
    (repo / "exp").mkdir()
    (repo / "exp" / "keep.txt").write_text("x\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "exp")
    rid = craft(repo, {"out/model.bin": b"w\n"}, cwd="exp")
    checkout(Repo.discover(str(repo)), rid, worktree=str(tmp_path / "wt"))
    assert (tmp_path / "wt" / "exp" / "out" / "model.bin").read_bytes() == b"w\n"


def test_existing_different_file_is_not_overwritten(repo, tmp_path):
    rid = craft(repo, {"model.bin": b"w\n"})
    target = tmp_path / "t"
    target.mkdir()
    (target / "model.bin").write_text("mine\n")
    with pytest.raises(GitrunError, match="Refusing to overwrite"):
        checkout(Repo.discover(str(repo)), rid, artifacts_only=str(target))
    assert (target / "model.bin").read_text() == "mine\n"


def test_safe_join(tmp_path):
    assert safe_join(str(tmp_path), "a/b.txt") == str(tmp_path / "a" / "b.txt")
    for bad in ("/etc/passwd", "../x", "a/../../x", ".git/config", "", "a/./b"):
        with pytest.raises(UnsafePathError):
            safe_join(str(tmp_path), bad)
    os.symlink("/", tmp_path / "link")
    with pytest.raises(UnsafePathError):
        safe_join(str(tmp_path), "link/etc/x")


def test_dirty_error_class(repo):
    record_dirty(repo)
    (repo / "train.py").write_text("edit\n")
    with pytest.raises(DirtyWorkTreeError):
        checkout(Repo.discover(str(repo)), "dirty")
