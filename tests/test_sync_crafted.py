"""A pulled history is someone else's: only runs laid out as gitrun writes them join ours."""

from __future__ import annotations

import subprocess

from tests.conftest import git, run_cli


def _record(clone, name):
    p = run_cli("record", "-q", "-n", name, "--", "true", cwd=clone)
    assert p.returncode == 0, p.stderr


def _craft_push(clone, bare):
    """Push a runs commit that adds entries gitrun never writes: a bucket that is not two
    hex digits, a non-id run directory, a run in the wrong bucket, a file as a bucket."""
    tip = git(clone, "rev-parse", "refs/gitrun/runs").strip()
    env = {"GIT_INDEX_FILE": str(clone / ".git" / "crafted-index")}
    git(clone, "read-tree", tip, env=env)
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=clone, input=b"evil\n", capture_output=True
        )
        .stdout.decode()
        .strip()
    )
    for path in (
        "runs/XY/" + "a" * 32 + "/run.yaml",
        "runs/ab/not-a-run-id/run.yaml",
        "runs/cd/" + "e" * 32 + "/run.yaml",
        "runs/ef",
    ):
        git(clone, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
    tree = git(clone, "write-tree", env=env).strip()
    commit = git(clone, "commit-tree", tree, "-p", tip, "-m", "crafted").strip()
    git(clone, "push", "-q", str(bare), f"{commit}:refs/gitrun/runs")


def test_pull_leaves_out_what_gitrun_never_writes(tmp_path, bare_remote):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        git(tmp_path, "clone", "-q", str(bare_remote), str(d))
        (d / "f.txt").write_text("x\n")
        git(d, "add", ".")
        git(d, "commit", "-qm", "code")
    _record(a, "theirs")
    assert run_cli("push", "-q", cwd=a).returncode == 0
    _craft_push(a, bare_remote)
    _record(b, "ours")  # diverged: the pull merges the two trees
    p = run_cli("pull", "-q", cwd=b)
    assert p.returncode == 0, p.stderr
    names = git(b, "ls-tree", "-r", "--name-only", "refs/gitrun/runs").split()
    assert not [n for n in names if n.startswith(("runs/XY", "runs/ab/not", "runs/cd/", "runs/ef"))]
    p = run_cli("ls", "--format", "json", cwd=b)
    assert sorted(r["run_name"] for r in __import__("json").loads(p.stdout)) == ["ours", "theirs"]


def test_a_crafted_code_commit_never_reaches_git_as_an_option(repo):
    """run.yaml's code commit comes from someone's push: `--output=FILE` there must not make
    `gitrun diff` (or checkout/rerun) write a file; it is read as no commit at all."""
    from gitrun._git import Repo
    from gitrun.format import store
    from gitrun.format.entities import RunRecord

    _record(repo, "ok")
    r = Repo.discover(str(repo))
    evil = RunRecord(
        run_id="e" * 32,
        run_name="crafted",
        experiment="Default",
        status="FINISHED",
        start_time=1,
        end_time=2,
        command=["true"],
        code={"commit": f"--output={repo}/pwned", "head": "--help", "snapshot": None},
    )
    old = r.read_ref(store.RUNS_REF)
    root = store.put_run_dirs(
        r, store.tip_tree(r, old), {evil.run_id: store.write_run_tree(r, evil)}
    )
    assert r.cas_ref(store.RUNS_REF, r.write_commit(root, [old], "crafted\n"), old, "test")
    for args in (["diff", "ok", "crafted"], ["checkout", "crafted"], ["rerun", "crafted"]):
        p = run_cli(*args, cwd=repo)
        assert "Traceback" not in p.stderr, p.stderr
        assert not (repo / "pwned").exists(), args
    assert run_cli("checkout", "crafted", cwd=repo).returncode == 1
