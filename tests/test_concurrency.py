"""Many processes recording at once: no run lost, the ref never corrupted."""

from __future__ import annotations

import subprocess
import sys

from gitrun._git import Repo
from gitrun.format import store
from tests.conftest import git

WORKER = """
import sys, gitrun
for i in range(int(sys.argv[2])):
    with gitrun.start_run(run_name=f"w{sys.argv[1]}-{i}"):
        gitrun.log_param("worker", sys.argv[1])
        gitrun.log_metric("i", i)
"""


def test_16_processes_recording_at_once(repo):
    (repo / ".gitignore").write_text("*.log\nworker.py\n")
    git(repo, "commit", "-qam", "ignore worker")
    (repo / "worker.py").write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, "worker.py", str(n), "3"], cwd=repo, stderr=subprocess.PIPE, text=True
        )
        for n in range(16)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    r = Repo.discover(str(repo))
    trees = store.list_run_trees(r)
    recs = store.read_records(r, trees)
    names = sorted(x.run_name for x in recs.values())
    assert names == sorted(f"w{n}-{i}" for n in range(16) for i in range(3))
    # one commit per run on the first-parent chain, plus the root commit
    chain = git(repo, "rev-list", "--first-parent", store.RUNS_REF).split()
    assert len(chain) == 48 + 1
    git(repo, "fsck", "--no-dangling")
