"""The CLI surface: help everywhere, one-sentence errors, CliRunner and real processes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import gitrun
from gitrun.cli import COMMANDS, cli, load_all
from tests.conftest import run_cli


def all_commands():
    return sorted(COMMANDS)


def test_command_table_matches_the_registered_commands():
    load_all()
    assert sorted(cli.commands) == sorted(COMMANDS)


@pytest.mark.parametrize("name", all_commands())
def test_every_command_has_help_with_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output, f"`gitrun {name} --help` shows no example"


def test_top_level_help_lists_core_commands():
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in ("record", "ls", "show", "demo"):
        assert name in out


def test_not_a_git_repo(tmp_path):
    p = run_cli("ls", cwd=tmp_path)
    assert p.returncode == 1
    assert "is not inside a git repository" in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_unknown_run(repo):
    with gitrun.start_run(run_name="known"):
        pass
    p = run_cli("show", "nosuchrun", cwd=repo)
    assert p.returncode == 1
    assert "No run matches 'nosuchrun'" in p.stderr and "Traceback" not in p.stderr


def test_no_runs_yet(repo):
    p = run_cli("show", "abcd", cwd=repo)
    assert p.returncode == 1 and "no runs yet" in p.stderr


def test_ambiguous_name_lists_candidates(repo):
    ids = []
    for _ in range(2):
        with gitrun.start_run(run_name="twin") as r:
            ids.append(r.info.run_id)
    result = CliRunner().invoke(cli, ["show", "twin"])
    assert result.exit_code == 1
    assert "2 runs are named 'twin'" in result.output
    for i in ids:
        assert i[:8] in result.output


def test_ambiguous_prefix(repo, monkeypatch):
    from gitrun import tracking

    ids = iter(["abcd1111" + "0" * 24, "abcd2222" + "0" * 24])
    monkeypatch.setattr(tracking.live, "new_run_id", lambda: next(ids))
    for _ in range(2):
        with gitrun.start_run():
            pass
    result = CliRunner().invoke(cli, ["show", "abcd"])
    assert result.exit_code == 1
    assert "'abcd' is a prefix of 2 runs: abcd1111" in result.output and "abcd2222" in result.output
    assert CliRunner().invoke(cli, ["show", "abcd2"]).exit_code == 0
    result = CliRunner().invoke(cli, ["show", "abc"])
    assert result.exit_code == 1 and "at least 4 characters" in result.output


def test_show_by_prefix_and_name_and_json(repo):
    with gitrun.start_run(run_name="shown") as r:
        gitrun.log_param("depth", 3)
        gitrun.log_metric("acc", 0.75, step=0)
        gitrun.log_metric("acc", 0.8, step=1)
    rid = r.info.run_id
    out = CliRunner().invoke(cli, ["show", rid[:6]]).output
    assert rid in out and "depth" in out and "acc" in out and "2 points" in out
    data = json.loads(CliRunner().invoke(cli, ["show", "shown", "--format", "json"]).output)
    assert data["run_id"] == rid
    assert data["params"] == {"depth": "3"}
    assert [m["value"] for m in data["metric_history"]["acc"]] == [0.75, 0.8]


def test_ls_table_and_formats(repo):
    for n in range(3):
        with gitrun.start_run(run_name=f"r{n}"):
            gitrun.log_metric("acc", n / 10)
    res = CliRunner().invoke(cli, ["ls"])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].split()[:4] == ["run", "name", "experiment", "status"]
    assert [ln.split()[1] for ln in lines[1:]] == ["r2", "r1", "r0"]  # newest first
    rows = json.loads(CliRunner().invoke(cli, ["ls", "--format", "json"]).output)
    assert [r["run_name"] for r in rows] == ["r2", "r1", "r0"]
    csv_out = CliRunner().invoke(cli, ["ls", "--format", "csv"]).output
    assert csv_out.splitlines()[0].startswith("run_id,")


def test_git_log_shows_one_readable_commit_per_run(repo):
    from tests.conftest import git

    gitrun.set_experiment("churn")
    with gitrun.start_run(run_name="rf"):
        gitrun.log_metric("f1_score", 0.912)
    subject = git(repo, "log", "-1", "--format=%s", "refs/gitrun/runs").strip()
    assert subject == "rf (churn): f1_score=0.912 [FINISHED]"


def test_cli_search_covers_every_experiment_unless_told(repo, monkeypatch):
    for exp in ("churn", "fraud"):
        gitrun.set_experiment(exp)
        with gitrun.start_run(run_name=f"in-{exp}"):
            gitrun.log_metric("f1", 0.9)
    res = CliRunner().invoke(cli, ["search", "metrics.f1 > 0.5", "--format", "json"])
    rows = json.loads(res.output)
    assert sorted(r["tags.mlflow.runName"] for r in rows) == ["in-churn", "in-fraud"]
    out = CliRunner().invoke(cli, ["search", "-e", "fraud", "--format", "json"]).output
    assert [r["tags.mlflow.runName"] for r in json.loads(out)] == ["in-fraud"]
    monkeypatch.setenv("GITRUN_EXPERIMENT_NAME", "churn")
    out = CliRunner().invoke(cli, ["search", "--format", "json"]).output
    assert [r["tags.mlflow.runName"] for r in json.loads(out)] == ["in-churn"]


def test_a_corrupted_record_is_left_out_with_one_warning(repo):
    from gitrun._git import Repo
    from gitrun.format import store

    with gitrun.start_run(run_name="good"):
        pass
    with gitrun.start_run(run_name="victim") as victim:
        pass
    r = Repo.discover()
    rid = victim.info.run_id
    entries = {n: (m, s) for m, n, s in r.read_tree(store.list_run_trees(r)[rid])}
    entries["run.yaml"] = ("100644", r.write_blob(b"{{{ not: [valid"))
    tree = r.write_tree((m, n, s) for n, (m, s) in entries.items())
    old = r.read_ref(store.RUNS_REF)
    root = store.put_run_dirs(r, store.tip_tree(r, old), {rid: tree})
    assert r.update_ref(store.RUNS_REF, r.write_commit(root, [old], "damage"), old)

    p = run_cli("ls", "--format", "json", cwd=repo)
    assert p.returncode == 0
    assert [x["run_name"] for x in json.loads(p.stdout)] == ["good"]
    assert f"leaving out run {rid[:8]}" in p.stderr and "malformed" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = run_cli("show", rid[:8], cwd=repo)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "is malformed" in p.stderr.splitlines()[-1]


def test_a_table_wider_than_the_terminal_names_the_columns_it_leaves_out():
    from gitrun.cli.render import table

    out = table(["run", "name", "metric_one", "metric_two"], [["a1", "n", 1, 2]], max_width=24)
    first, *_, last = out.splitlines()
    assert first.split() == ["run", "name", "metric_one"]  # whole columns, none cut mid-word
    assert "metric_two" in last and "more column" in last


def test_a_mistyped_command_gets_the_command_meant(repo):
    p = run_cli("serch", "metrics.a > 1", cwd=repo)
    assert p.returncode == 2 and "Did you mean 'search'?" in p.stderr


def test_config_without_a_key_lists_every_setting(repo):
    assert run_cli("config", "large-file-threshold", "2MB", cwd=repo).returncode == 0
    p = run_cli("config", cwd=repo)
    assert p.returncode == 0, p.stderr
    settings = dict(line.split(None, 1) for line in p.stdout.splitlines())
    assert settings == {
        "auto-push": "false",
        "large-file-threshold": "2MB",
        "artifact-store": "none",
    }
