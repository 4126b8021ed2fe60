"""gitrun diff: params, metrics with deltas, tags, artifacts and code between two runs."""

from __future__ import annotations

import json

from click.testing import CliRunner

import gitrun
from gitrun.cli import cli
from tests.conftest import git, run_cli


def two_runs(repo):
    with gitrun.start_run(run_name="base"):
        gitrun.log_params({"depth": 3, "seed": 1})
        gitrun.log_metric("acc", 0.8)
        gitrun.log_metric("loss", 0.5)
        gitrun.set_tag("team", "a")
        gitrun.log_text("weights v1", "model.txt")
    (repo / "train.py").write_text("print('training harder')\nEPOCHS = 10\n")
    git(repo, "commit", "-qam", "more epochs")
    with gitrun.start_run(run_name="deeper"):
        gitrun.log_params({"depth": 8, "seed": 1})
        gitrun.log_metric("acc", 0.9)
        gitrun.log_metric("loss", 0.5)
        gitrun.set_tag("team", "b")
        gitrun.log_text("weights v2", "model.txt")


def test_diff_json(repo):
    two_runs(repo)
    res = CliRunner().invoke(cli, ["diff", "base", "deeper", "--format", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["params"] == {"depth": {"a": "3", "b": "8"}}
    assert list(d["metrics"]) == ["acc"]
    assert abs(d["metrics"]["acc"]["delta"] - 0.1) < 1e-9
    assert d["tags"]["team"] == {"a": "a", "b": "b"}
    assert set(d["artifacts"]) == {"model.txt"}
    assert "train.py" in d["code"]["diff"] and "1 file changed" in d["code"]["diff"]


def test_diff_table_and_patch(repo):
    two_runs(repo)
    res = CliRunner().invoke(cli, ["diff", "base", "deeper"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "depth" in out and "+0.1" in out and "model.txt" in out and "train.py" in out
    assert "seed" not in out  # same in both
    res = CliRunner().invoke(cli, ["diff", "base", "deeper", "--patch"])
    assert "+EPOCHS = 10" in res.output


def test_diff_unknown_run_is_one_sentence(repo):
    two_runs(repo)
    res = CliRunner().invoke(cli, ["diff", "base", "nosuchrun"])
    assert res.exit_code == 1 and "nosuchrun" in res.output and "Traceback" not in res.output


def test_diff_workflow_returns_what_json_prints_and_infinities_render(repo):
    from gitrun._git import Repo
    from gitrun.workflows.diff import diff

    with gitrun.start_run(run_name="a"):
        gitrun.log_metric("loss", 1.0)
        gitrun.log_metric("nan", float("nan"))
    with gitrun.start_run(run_name="b"):
        gitrun.log_metric("loss", float("inf"))
        gitrun.log_metric("nan", float("nan"))
    d = diff(Repo.discover(str(repo)), "a", "b")
    assert d["metrics"] == {"loss": {"a": 1.0, "b": "inf", "delta": "inf"}}  # NaN == NaN
    assert d["code"]["a"] == d["code"]["b"] and d["code"]["diff"] == ""
    res = CliRunner().invoke(cli, ["diff", "a", "b", "--format", "json"])
    assert json.loads(res.output) == d
    res = CliRunner().invoke(cli, ["diff", "a", "b"])  # was an internal error
    assert res.exit_code == 0, res.output
    assert "+inf" in res.output and "same commit" in res.output


def test_two_snapshots_of_the_same_work_tree_are_the_same_code(repo):
    """Each run of a dirty tree gets its own snapshot commit; when their trees are equal the
    diff says the code is the same instead of showing two commits with "no changes"."""
    import gitrun

    (repo / "notes.txt").write_text("uncommitted\n")
    ids = []
    for _ in range(2):
        with gitrun.start_run() as run:
            gitrun.log_metric("m", 1.0)
        ids.append(run.info.run_id)
    p = run_cli("diff", ids[0], ids[1], cwd=repo)
    assert p.returncode == 0, p.stderr
    assert "same code" in p.stdout and "no changes" not in p.stdout
