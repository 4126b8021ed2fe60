"""Runs whose process died are committed by the next gitrun command, never left RUNNING."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from gitrun._git import Repo
from gitrun.format import store
from tests.conftest import run_cli


def records(repo_dir):
    repo = Repo.discover(str(repo_dir))
    return store.read_records(
        repo, store.list_run_trees(repo), list(store.DEFAULT_FILES) + [store.HISTORY_FILE]
    )


TRAINER = """
import os, sys, gitrun
run = gitrun.start_run(run_name="doomed")
gitrun.log_param("lr", 0.1)
for i in range(1000):
    gitrun.log_metric("loss", 1.0 / (i + 1), step=i)
print(run.info.run_id, flush=True)
sys.stdin.readline()   # wait to be killed
"""


def start_trainer(repo):
    (repo / "trainer.py").write_text(TRAINER)
    proc = subprocess.Popen(
        [sys.executable, "trainer.py"],
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    run_id = proc.stdout.readline().strip()
    assert len(run_id) == 32
    return proc, run_id


def test_kill_9_of_api_trainer_is_recorded_as_killed_with_every_metric(repo):
    proc, run_id = start_trainer(repo)
    # while alive: RUNNING, and not committed
    p = run_cli("ls", "--format", "json", cwd=repo)
    assert [r["status"] for r in json.loads(p.stdout)] == ["RUNNING"]
    assert records(repo) == {}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    p = run_cli("ls", "--format", "json", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert "recorded it as KILLED" in p.stderr
    assert [r["status"] for r in json.loads(p.stdout)] == ["KILLED"]
    rec = records(repo)[run_id]
    assert rec.status == "KILLED"
    assert rec.params == {"lr": "0.1"}
    assert len(rec.history["loss"]) == 1000
    assert rec.metrics["loss"] == 1.0 / 1000
    assert rec.end_time and rec.tags["gitrun.recovered"] == "true"
    # recovered once only
    assert run_cli("ls", cwd=repo).returncode == 0
    assert len(records(repo)) == 1
    assert not [d for d in os.listdir(repo / ".git" / "gitrun" / "live") if not d.startswith(".")]


def test_kill_9_of_the_record_wrapper_and_its_child(repo):
    (repo / "t.py").write_text(
        "import sys, gitrun\ngitrun.log_metric('m', 5)\n"
        "print('up', flush=True)\nsys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitrun", "record", "--", sys.executable, "t.py"],
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout.readline().strip() == "up"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    p = run_cli("ls", "--format", "json", cwd=repo)
    rows = json.loads(p.stdout)
    assert [r["status"] for r in rows] == ["KILLED"]
    [rec] = records(repo).values()
    assert rec.metrics == {"m": 5.0}
    assert rec.command[-1] == "t.py"


def test_ended_but_uncommitted_run_keeps_its_status(repo):
    """gitrun itself dies after the command ended but before the commit."""
    from gitrun import tracking
    from gitrun.format import journal

    r = Repo.discover(str(repo))
    live = tracking.new_run(r, run_name="half", experiment="e", quiet=True)
    live.log_metric("acc", 0.5, None, None)
    live.journal.write(
        journal.json_line("e", {"status": "FAILED", "exit_code": 2, "end_time": 123456})
    )
    live.journal.close()  # the process "dies": its lock is gone, nothing committed
    assert records(repo) == {}
    [rec] = journal.recover(r, quiet=True)
    assert rec.status == "FAILED" and rec.exit_code == 2
    assert records(repo)[live.run_id].metrics == {"acc": 0.5}


def test_torn_last_line_is_ignored(repo):
    from gitrun import tracking
    from gitrun.format import journal

    r = Repo.discover(str(repo))
    live = tracking.new_run(r, run_name="torn", experiment="e", quiet=True)
    live.log_metric("m", 1.0, 0, None)
    live.journal.write(journal.metric_line("m", 2.0, 17000, 0)[:9])  # died mid-write
    live.journal.close()
    [rec] = journal.recover(r, quiet=True)
    assert rec.metrics == {"m": 1.0} and rec.status == "KILLED"
