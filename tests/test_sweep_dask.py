"""gitrun sweep --executor dask: a real dask.distributed LocalCluster of worker processes
on this machine and a bare remote on disk (the same code path as a real cluster)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git, run_cli

PKG = str(Path(__file__).resolve().parent.parent)
TRAINER = "import os, gitrun; gitrun.log_metric('y', float(os.environ['GITRUN_PARAM_X']) ** 2)"
NAP = "import time; time.sleep(60)  # gitrun-dask-test"


def _running_naps() -> int:
    p = subprocess.run(["pgrep", "-f", "gitrun-dask-test"], capture_output=True, text=True)
    return len(p.stdout.split())


def test_dask_sweep_every_run_here_once_and_ctrl_c(repo, bare_remote, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from gitrun._git import Repo
    from gitrun.query.index import search

    # the workers are processes started from here: they import this gitrun
    monkeypatch.setenv("PYTHONPATH", PKG + os.pathsep + os.environ.get("PYTHONPATH", ""))
    git(repo, "remote", "add", "origin", str(bare_remote))
    git(repo, "push", "-q", "origin", "main")
    cluster = distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    )
    dask = ["--executor", "dask", "--scheduler", cluster.scheduler_address, "-q"]
    try:
        p = run_cli(
            *["sweep", "-p", "x=1..5", *dask, "--minimize", "metrics.y", "--format", "json"],
            *["--", sys.executable, "-c", TRAINER],
            cwd=repo,
            timeout=180,
        )
        # Ctrl-C: the running tasks stop their command, recorded KILLED and pushed
        cmd = [sys.executable, "-m", "gitrun", "sweep", "-p", "x=1..4", *dask]
        slow = subprocess.Popen(
            [*cmd, "--format", "json", "--", sys.executable, "-c", NAP],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        end = time.monotonic() + 60
        while time.monotonic() < end and _running_naps() < 3:  # the driver, two trials
            time.sleep(0.1)
        slow.send_signal(signal.SIGINT)
        out, err = slow.communicate(timeout=90)
    finally:
        cluster.close()
    assert p.returncode == 0, p.stderr
    pid = json.loads(p.stdout)[0]["sweep"]
    here = Repo.discover(str(repo))
    rows = search(here, f"tags.`gitrun.sweep` = '{pid}'", lifecycles=None)
    got = sorted(int(r.to_record().tags["gitrun.sweep.trial"]) for r in rows)
    assert got == [0, 1, 2, 3, 4]  # every trial here, none twice
    assert {r.to_record().status for r in rows} == {"FINISHED"}
    assert json.loads(p.stdout)[0]["best"] == 1.0
    # pushed by the workers: the remote has them too
    remote_runs = git(bare_remote, "ls-tree", "-r", "--name-only", "refs/gitrun/runs")
    assert sum(r.to_record().run_id in remote_runs for r in rows) == 5

    assert slow.returncode == 130, err
    killed = json.loads(out)[0]
    assert killed["status"] == "KILLED" and killed["finished"] == 0
    rows = search(here, f"tags.`gitrun.sweep` = '{killed['sweep']}'", lifecycles=None)
    assert len(rows) == 2 and {r.to_record().status for r in rows} == {"KILLED"}
    remote_runs = git(bare_remote, "ls-tree", "-r", "--name-only", "refs/gitrun/runs")
    assert all(r.to_record().run_id in remote_runs for r in rows)
    assert "refs/gitrun/sweeps/" not in git(bare_remote, "for-each-ref")  # the code ref: gone
    assert _running_naps() == 0
    from gitrun.workflows.sweep_dask import clone_root

    clones = Path(clone_root(str(bare_remote)))
    assert sorted(p.name for p in clones.glob("slot-*[0-9]")) == ["slot-0", "slot-1"]  # reused
    shutil.rmtree(clones)
