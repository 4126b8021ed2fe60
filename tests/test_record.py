"""`gitrun record` as a real subprocess wrapping real commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from gitrun._git import Repo
from gitrun.format import store
from tests.conftest import git, run_cli, snapshot_state


def runs(repo_dir):
    repo = Repo.discover(str(repo_dir))
    trees = store.list_run_trees(repo)
    return store.read_records(repo, trees, list(store.DEFAULT_FILES) + [store.HISTORY_FILE])


def only_run(repo_dir):
    recs = runs(repo_dir)
    assert len(recs) == 1, recs
    return next(iter(recs.values()))


TRAIN = textwrap.dedent(
    """
    import sys, gitrun
    with gitrun.start_run(run_name="from-script"):
        gitrun.log_param("depth", sys.argv[1] if len(sys.argv) > 1 else "none")
        for step in range(3):
            gitrun.log_metric("loss", 1.0 / (step + 1), step=step)
        gitrun.log_metric("f1_score", 0.9)
        open("model.bin", "wb").write(b"model")
        gitrun.log_artifact("model.bin")
    print("trained", flush=True)
    print("warning on stderr", file=sys.stderr)
    """
)


def test_record_wraps_a_python_script(repo):
    (repo / "train.py").write_text(TRAIN)
    git(repo, "commit", "-qam", "script")
    p = run_cli(
        "record",
        "-n",
        "rf-baseline",
        "-e",
        "churn",
        "-p",
        "seed=1",
        "-t",
        "owner=me",
        "--",
        sys.executable,
        "train.py",
        "8",
        cwd=repo,
    )
    assert p.returncode == 0, p.stderr
    assert "trained" in p.stdout
    assert "warning on stderr" in p.stderr
    rec = only_run(repo)
    assert p.stderr.splitlines()[0].startswith(f"gitrun: run {rec.run_id} (rf-baseline) started")
    assert "FINISHED" in p.stderr.splitlines()[-1]
    assert rec.run_name == "rf-baseline"  # the CLI name wins over start_run(run_name=...)
    assert rec.experiment == "churn"
    assert rec.status == "FINISHED" and rec.exit_code == 0
    assert rec.params == {"seed": "1", "depth": "8"}
    assert rec.tags["owner"] == "me"
    assert rec.metrics == {"loss": pytest.approx(1 / 3), "f1_score": 0.9}
    assert rec.command == [sys.executable, "train.py", "8"] and rec.cwd == "."
    assert "model.bin" in rec.artifacts
    out = git(repo, "show", f"{rec.output_blob}")
    assert "trained" in out and "warning on stderr" in out


def test_failing_command_is_failed_and_exit_code_passed_through(repo):
    p = run_cli("record", "--", sys.executable, "-c", "import sys; sys.exit(3)", cwd=repo)
    assert p.returncode == 3
    rec = only_run(repo)
    assert rec.status == "FAILED" and rec.exit_code == 3


def test_command_not_found_is_127_and_failed(repo):
    p = run_cli("record", "--", "no-such-command-xyz", cwd=repo)
    assert p.returncode == 127
    assert "command not found: no-such-command-xyz" in p.stderr
    assert "Traceback" not in p.stderr
    assert only_run(repo).status == "FAILED"


def test_record_without_command_is_a_usage_error(repo):
    p = run_cli("record", cwd=repo)
    assert p.returncode == 2
    assert "needs a command" in p.stderr
    assert runs(repo) == {}


def test_params_file_metrics_file_and_artifacts(repo):
    (repo / "params.yaml").write_text("model:\n  depth: 4\n  kind: rf\nlr: 0.1\n")
    script = (
        "import json, os; os.makedirs('out', exist_ok=True);"
        "open('out/a.txt','w').write('a'); open('out/b.txt','w').write('b');"
        "json.dump({'acc': 0.8, 'nested': {'f1': 0.7}}, open('metrics.json','w'))"
    )
    p = run_cli(
        "record",
        "--metrics-file",
        "metrics.json",
        "-a",
        "out",
        "--",
        sys.executable,
        "-c",
        script,
        cwd=repo,
    )
    assert p.returncode == 0, p.stderr
    rec = only_run(repo)
    assert rec.params == {"model.depth": "4", "model.kind": "rf", "lr": "0.1"}
    assert rec.metrics == {"acc": 0.8, "nested.f1": 0.7}
    assert set(rec.artifacts) == {"out/a.txt", "out/b.txt"}


def test_missing_artifact_after_command_is_reported(repo):
    p = run_cli("record", "-a", "nothing.bin", "--", "true", cwd=repo)
    assert p.returncode == 1
    assert "nothing.bin" in p.stderr and "Traceback" not in p.stderr
    rec = only_run(repo)
    assert "nothing.bin" in rec.tags["gitrun.problems"]


def test_defaults_from_pyproject(repo):
    (repo / "pyproject.toml").write_text('[tool.gitrun]\nexperiment = "from-config"\n')
    p = run_cli("record", "--", "true", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert only_run(repo).experiment == "from-config"


def test_invalid_param_key_writes_nothing(repo):
    p = run_cli("record", "-p", "bad//key=1", "--", "true", cwd=repo)
    assert p.returncode == 1
    assert "Invalid key 'bad//key'" in p.stderr and "Traceback" not in p.stderr
    assert runs(repo) == {}
    live = repo / ".git" / "gitrun" / "live"
    assert not live.exists() or os.listdir(live) == []


def test_changed_param_in_script_fails_the_run(repo):
    script = "import gitrun; gitrun.log_param('seed', 2)"
    p = run_cli("record", "-p", "seed=1", "--", sys.executable, "-c", script, cwd=repo)
    assert p.returncode == 1
    assert "Changing param values is not allowed" in p.stderr
    rec = only_run(repo)
    assert rec.status == "FAILED" and rec.params == {"seed": "1"}


def test_killed_by_signal_is_killed(repo):
    script = (
        "import os, signal, gitrun; gitrun.log_metric('m', 1); os.kill(os.getpid(), signal.SIGKILL)"
    )
    p = run_cli("record", "--", sys.executable, "-c", script, cwd=repo)
    assert p.returncode == 128 + signal.SIGKILL
    rec = only_run(repo)
    assert rec.status == "KILLED" and rec.metrics == {"m": 1.0}


def test_ctrl_c_reaches_child_and_run_is_killed(repo):
    script = (
        "import time, gitrun\n"
        "gitrun.log_metric('before', 1)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    (repo / "slow.py").write_text(script)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitrun", "record", "--", sys.executable, "slow.py"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    proc.wait(timeout=30)
    assert proc.returncode != 0
    rec = only_run(repo)
    assert rec.status == "KILLED" and rec.metrics == {"before": 1.0}


def test_running_runs_show_in_ls(repo):
    (repo / "slow.py").write_text(
        "import time, gitrun\ngitrun.log_metric('m', 1)\n"
        "print('ready', flush=True)\ntime.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gitrun",
            "record",
            "-n",
            "slowpoke",
            "--",
            sys.executable,
            "slow.py",
        ],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        p = run_cli("ls", "--format", "json", cwd=repo)
        assert p.returncode == 0, p.stderr
        rows = json.loads(p.stdout)
        assert [(r["run_name"], r["status"]) for r in rows] == [("slowpoke", "RUNNING")]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert only_run(repo).status == "KILLED"


def test_record_leaves_user_state_alone(repo):
    (repo / "train.py").write_text("print('edited')\n")
    (repo / "untracked.txt").write_text("u")
    before = snapshot_state(repo)
    p = run_cli("record", "--", sys.executable, "-c", "print(1)", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert snapshot_state(repo) == before
    rec = only_run(repo)
    assert git(repo, "show", f"{rec.code['snapshot']}:untracked.txt") == "u"


def test_record_from_subdirectory_records_cwd(repo):
    (repo / "sub").mkdir()
    p = run_cli("record", "--", "true", cwd=repo / "sub")
    assert p.returncode == 0, p.stderr
    assert only_run(repo).cwd == "sub"


def test_quiet_record_prints_nothing(repo):
    p = run_cli("record", "-q", "--", "true", cwd=repo)
    assert p.returncode == 0 and p.stderr == "" and p.stdout == ""
    assert only_run(repo).status == "FINISHED"
