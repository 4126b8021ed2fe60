"""The tracking API against real repositories."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import yaml

import gitrun
from gitrun._git import Repo
from gitrun.errors import GitrunError, InvalidInputError, NotAGitRepoError, ParamChangedError
from gitrun.format import store
from tests.conftest import git, snapshot_state


def committed(run_id: str):
    repo = Repo.discover()
    return store.read_record(repo, run_id, store.list_run_trees(repo)[run_id])


def test_run_is_a_commit_with_params_metrics_tags_artifacts(repo):
    (repo / "model.pkl").write_bytes(b"weights")
    with gitrun.start_run(run_name="rf-baseline") as run:
        gitrun.log_param("max_depth", 8)
        for step in range(3):
            gitrun.log_metric("loss", 1.0 / (step + 1), step=step)
        gitrun.log_metric("f1_score", 0.91)
        gitrun.set_tag("team", "churn")
        gitrun.log_artifact("model.pkl")
        gitrun.log_dict({"a": 1}, "config.yaml")
        gitrun.log_text("hello", "notes/readme.txt")
    rec = committed(run.info.run_id)
    assert rec.status == "FINISHED"
    assert rec.run_name == "rf-baseline"
    assert rec.params == {"max_depth": "8"}
    assert rec.metrics["loss"] == pytest.approx(1 / 3)
    assert [m.step for m in rec.history["loss"]] == [0, 1, 2]
    assert rec.tags["team"] == "churn"
    assert rec.tags["mlflow.runName"] == "rf-baseline"
    assert rec.tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert rec.tags["mlflow.source.git.branch"] == "main"
    assert set(rec.artifacts) == {"model.pkl", "config.yaml", "notes/readme.txt"}
    blob = rec.artifacts["model.pkl"].blob
    assert git(repo, "cat-file", "-p", blob) == "weights"
    assert yaml.safe_load(git(repo, "show", f"{blob}")) == "weights"
    # One readable commit per run on the ref; the code commit is its second parent.
    log = git(repo, "log", "--first-parent", "--format=%s", store.RUNS_REF).splitlines()
    assert log[0].startswith("rf-baseline (Default): f1_score=0.91")
    second = git(repo, "rev-parse", f"{store.RUNS_REF}^2").strip()
    assert second == rec.code["commit"] == rec.code["snapshot"]  # model.pkl made it dirty
    assert git(repo, "rev-parse", f"{second}^").strip() == git(repo, "rev-parse", "HEAD").strip()


def test_every_file_is_valid_yaml_or_tsv(repo):
    with gitrun.start_run(run_name="odd keys") as run:
        gitrun.log_param("yes", "no")
        gitrun.log_param("a key: with colon", 'quote " and \\ backslash')
        gitrun.log_metric("nan", float("nan"))
        gitrun.log_metric("inf", float("inf"))
        gitrun.log_metric("tiny", 1e-20)
    rid = run.info.run_id
    base = f"{store.RUNS_REF}:runs/{rid[:2]}/{rid}"
    params = yaml.safe_load(git(repo, "show", f"{base}/params.yaml"))
    assert params == {"yes": "no", "a key: with colon": 'quote " and \\ backslash'}
    metrics = yaml.safe_load(git(repo, "show", f"{base}/metrics.yaml"))
    assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf
    assert metrics["tiny"] == 1e-20
    meta = yaml.safe_load(git(repo, "show", f"{base}/run.yaml"))
    assert meta["run_id"] == rid and meta["status"] == "FINISHED"
    rec = committed(rid)
    assert rec.params["a key: with colon"] == 'quote " and \\ backslash'
    assert math.isnan(rec.metrics["nan"]) and rec.metrics["tiny"] == 1e-20


def test_exception_marks_run_failed(repo):
    with pytest.raises(RuntimeError):
        with gitrun.start_run() as run:
            gitrun.log_metric("x", 1)
            raise RuntimeError("boom")
    assert committed(run.info.run_id).status == "FAILED"
    assert gitrun.active_run() is None


def test_param_is_immutable(repo):
    with gitrun.start_run() as run:
        gitrun.log_param("lr", 0.1)
        gitrun.log_param("lr", 0.1)  # same value again is fine
        with pytest.raises(ParamChangedError, match="lr.*0.1.*0.2"):
            gitrun.log_param("lr", 0.2)
    assert committed(run.info.run_id).params == {"lr": "0.1"}


def test_long_param_and_tag_values_one_rule_fluent_and_client(repo, capsys, monkeypatch):
    """MLflow's rule everywhere: truncated with a warning; refused when
    MLFLOW_TRUNCATE_LONG_VALUES is false (fluent API, and client on a finished run)."""
    client = gitrun.MlflowClient()
    with gitrun.start_run() as run:
        gitrun.log_param("p", "x" * 7000)
        gitrun.set_tag("t", "y" * 9000)
    rid = run.info.run_id
    client.log_param(rid, "q", "z" * 7000)
    client.set_tag(rid, "u", "w" * 9000)
    rec = committed(rid)
    assert (len(rec.params["p"]), len(rec.params["q"])) == (6000, 6000)
    assert (len(rec.tags["t"]), len(rec.tags["u"])) == (8000, 8000)
    err = capsys.readouterr().err
    assert all(f"'{k}' is longer than" in err for k in "ptqu")
    monkeypatch.setenv("MLFLOW_TRUNCATE_LONG_VALUES", "false")
    with pytest.raises(InvalidInputError, match="more than the limit of 6000"):
        client.log_param(rid, "r", "z" * 7000)
    with gitrun.start_run():
        with pytest.raises(InvalidInputError, match="more than the limit of 8000"):
            gitrun.set_tag("t", "y" * 9000)


@pytest.mark.parametrize("key", ["", "a//b", "a/", "/abs", "../up", "a\tb", "x" * 251, "a/../b"])
def test_invalid_keys_are_refused(repo, key):
    with gitrun.start_run():
        with pytest.raises(InvalidInputError):
            gitrun.log_param(key, 1)
        with pytest.raises(InvalidInputError):
            gitrun.log_metric(key, 1)


@pytest.mark.parametrize("value", ["0.5", None, True, [1]])
def test_non_numeric_metric_is_refused(repo, value):
    with gitrun.start_run():
        with pytest.raises(InvalidInputError, match="number"):
            gitrun.log_metric("m", value)


def test_latest_metric_is_highest_step_then_timestamp(repo):
    with gitrun.start_run() as run:
        gitrun.log_metric("m", 5.0, step=10, timestamp=1000)
        gitrun.log_metric("m", 7.0, step=2, timestamp=9000)
        gitrun.log_metric("m", 6.0, step=10, timestamp=2000)
    assert committed(run.info.run_id).metrics["m"] == 6.0


def test_numpy_scalars_are_metrics(repo):
    np = pytest.importorskip("numpy")
    with gitrun.start_run() as run:
        gitrun.log_metric("a", np.float32(0.5))
        gitrun.log_metric("b", np.int64(3))
        gitrun.log_metric("c", np.array(2.5))
    m = committed(run.info.run_id).metrics
    assert m == {"a": 0.5, "b": 3.0, "c": 2.5}


def test_nested_runs_and_second_run_needs_nested(repo):
    with gitrun.start_run(run_name="parent") as parent:
        with pytest.raises(GitrunError, match="nested=True"):
            gitrun.start_run()
        with gitrun.start_run(run_name="child", nested=True) as child:
            gitrun.log_metric("x", 1)
    assert committed(child.info.run_id).tags["mlflow.parentRunId"] == parent.info.run_id


def test_log_call_without_run_starts_one(repo):
    gitrun.log_metric("auto", 1.0)
    active = gitrun.active_run()
    assert active is not None
    rid = active.info.run_id
    gitrun.end_run()
    assert committed(rid).metrics == {"auto": 1.0}


def test_set_experiment_and_get_run(repo):
    gitrun.set_experiment("churn")
    with gitrun.start_run(run_name="r") as run:
        gitrun.log_param("p", "v")
    got = gitrun.get_run(run.info.run_id)
    assert got.info.experiment_id == "churn"
    assert got.info.status == "FINISHED"
    assert got.data.params == {"p": "v"}
    assert gitrun.get_run(run.info.run_id[:6]).info.run_id == run.info.run_id
    hist = gitrun.get_metric_history(run.info.run_id, "nope")
    assert hist == []


def test_missing_artifact_is_a_clear_error(repo):
    with gitrun.start_run():
        with pytest.raises(InvalidInputError, match="does not exist"):
            gitrun.log_artifact("nope.bin")


def test_outside_a_git_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotAGitRepoError, match="not inside a git repository"):
        gitrun.start_run()


def test_user_state_is_never_touched(repo):
    (repo / "train.py").write_text("print('edited')\n")  # modified, unstaged
    (repo / "new_file.py").write_text("x = 1\n")  # untracked
    (repo / "debug.log").write_text("ignored\n")  # ignored by .gitignore
    (repo / "staged.py").write_text("y = 2\n")
    git(repo, "add", "staged.py")
    git(repo, "tag", "v1")
    git(repo, "stash", "list")
    before = snapshot_state(repo)
    mtime = os.stat(repo / ".git" / "index").st_mtime_ns
    with gitrun.start_run() as run:
        gitrun.log_metric("m", 1)
    assert snapshot_state(repo) == before
    assert os.stat(repo / ".git" / "index").st_mtime_ns == mtime
    rec = committed(run.info.run_id)
    assert rec.code["dirty"] is True
    snap = rec.code["snapshot"]
    assert git(repo, "show", f"{snap}:train.py") == "print('edited')\n"
    assert git(repo, "show", f"{snap}:new_file.py") == "x = 1\n"
    assert git(repo, "show", f"{snap}:staged.py") == "y = 2\n"
    assert git(repo, "rev-parse", f"{snap}^").strip() == git(repo, "rev-parse", "HEAD").strip()
    assert rec.tags["gitrun.git.dirty"] == "true"
    # ignored files stay out of the snapshot
    assert "debug.log" not in git(repo, "ls-tree", "--name-only", snap)


def test_large_untracked_files_are_listed_not_snapshotted(repo, monkeypatch, capsys):
    monkeypatch.setenv("GITRUN_MAX_UNTRACKED_SIZE", "1k")
    (repo / "big.bin").write_bytes(b"x" * 5000)
    (repo / "small.txt").write_text("s")
    with gitrun.start_run() as run:
        pass
    rec = committed(run.info.run_id)
    names = git(repo, "ls-tree", "--name-only", rec.code["snapshot"]).split()
    assert "small.txt" in names and "big.bin" not in names
    [big] = rec.code["large_untracked"]
    assert big["path"] == "big.bin" and big["size"] == 5000
    import hashlib

    assert big["sha256"] == hashlib.sha256(b"x" * 5000).hexdigest()
    assert "big.bin" in capsys.readouterr().err


def test_repo_without_commits(empty_repo):
    with gitrun.start_run() as run:
        gitrun.log_metric("m", 1)
    rec = committed(run.info.run_id)
    assert rec.code["head"] is None
    with gitrun.start_run() as run2:
        (empty_repo / "a.py").write_text("a")
    # a.py appeared after the start of run2: the snapshot is taken at the start
    assert committed(run2.info.run_id).code.get("snapshot") is None


def test_repo_without_commits_but_files(empty_repo):
    (empty_repo / "a.py").write_text("a")
    with gitrun.start_run() as run:
        pass
    rec = committed(run.info.run_id)
    assert rec.code["dirty"] and rec.code["snapshot"]
    assert git(empty_repo, "show", f"{rec.code['snapshot']}:a.py") == "a"
    assert git(empty_repo, "rev-parse", "--verify", "-q", "HEAD", check=False) == ""


def test_detached_head(repo):
    git(repo, "checkout", "-q", "--detach")
    with gitrun.start_run() as run:
        pass
    rec = committed(run.info.run_id)
    assert rec.code["branch"] is None and rec.code["head"]


def test_linked_worktree(repo, tmp_path, monkeypatch):
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "exp", str(wt))
    monkeypatch.chdir(wt)
    (wt / "train.py").write_text("print('in worktree')\n")
    with gitrun.start_run() as run:
        gitrun.log_metric("m", 2)
    monkeypatch.chdir(repo)  # the run is visible from the main work tree too
    rec = committed(run.info.run_id)
    assert rec.code["branch"] == "exp"
    assert git(repo, "show", f"{rec.code['snapshot']}:train.py") == "print('in worktree')\n"


def test_no_git_identity_needed(repo, monkeypatch):
    for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(k)
    (repo / "dirty.py").write_text("d")
    with gitrun.start_run() as run:
        pass
    assert committed(run.info.run_id).code["snapshot"]
    assert "gitrun@localhost" in git(repo, "log", "-1", "--format=%ae", store.RUNS_REF)


def test_import_is_light():
    code = (
        "import sys, gitrun; bad = [m for m in ('pandas', 'git', 'yaml', 'sklearn', 'mlflow') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_fluent_run_id_argument_logs_to_that_run(repo):
    with gitrun.start_run(run_name="first") as first:
        gitrun.log_metric("a", 1)
    with gitrun.start_run(run_name="second") as second:
        gitrun.log_metric("b", 2.0, run_id=first.info.run_id)
        gitrun.log_params({"p": "x"}, run_id=first.info.run_id)
        gitrun.log_metric("c", 3.0, run_id=second.info.run_id)
    assert committed(first.info.run_id).metrics == {"a": 1.0, "b": 2.0}
    assert committed(first.info.run_id).params == {"p": "x"}
    assert committed(second.info.run_id).metrics == {"c": 3.0}


def test_run_ids_are_uuid4_hex():
    import uuid

    from gitrun.tracking import new_run_id

    ids = {new_run_id() for _ in range(100)}
    assert len(ids) == 100
    for i in ids:
        assert len(i) == 32 and uuid.UUID(i).version == 4 and uuid.UUID(i).hex == i
