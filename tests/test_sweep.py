"""gitrun sweep: grid / random / Optuna sweeps of a tiny deterministic trainer, each trial
a real `gitrun record`-style run in a real git worktree, driven through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git, run_cli, snapshot_state

PKG = str(Path(__file__).resolve().parent.parent)
# The trainer: params from argv ({lr}) and the environment; a file it writes must be alone
# in its worktree (parallel trials never see each other's files).
TRAINER = """
import glob, os, sys, time, json
import gitrun
lr = float(sys.argv[1]); depth = int(os.environ["GITRUN_PARAM_DEPTH"])
mine = "mark-%s" % os.environ["GITRUN_SWEEP_TRIAL"]
others = [m for m in glob.glob("mark-*") if m != mine]
open(mine, "w").write("x")
time.sleep(float(os.environ.get("NAP", "0")))
others += [m for m in glob.glob("mark-*") if m != mine]
if others:
    sys.exit("saw " + ",".join(others))
if os.path.exists("params.yaml"):
    gitrun.set_tag("from_file", open("params.yaml").read().replace("\\n", ";"))
gitrun.set_tag("local", open("local.txt").read() if os.path.exists("local.txt") else "-")
gitrun.log_metric("score", -(lr - 0.03) ** 2 - (depth - 5) ** 2)
"""


@pytest.fixture
def env():
    e = {"PYTHONPATH": PKG + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return e


def sweep(repo, options, *command, env=None, timeout=120):
    """`gitrun sweep OPTIONS -- COMMAND` (OPTIONS: one string, split on spaces)."""
    args = options.split() + (["--", *command] if command else [])
    return run_cli("sweep", *args, cwd=repo, env=env, timeout=timeout)


def runs(repo, flt=""):
    """Whole records (command, params, tags, metrics) of the runs matching `flt`."""
    from gitrun._git import Repo
    from gitrun.query.index import search
    from gitrun.query.resolve import load

    r = Repo.discover(str(repo))
    return [load(r, x.run_id, history=False) for x in search(r, flt, lifecycles=None)]


def trials(repo, parent):
    return sorted(
        runs(repo, f"tags.`gitrun.sweep` = '{parent}'"),
        key=lambda r: int(r.tags["gitrun.sweep.trial"]),
    )


def parent_id(p):
    return json.loads(p.stdout)[0]["sweep"]


def test_grid_parent_children_substitution_isolation(repo, env):
    (repo / "local.txt").write_text("uncommitted")  # a dirty tree: trials run its snapshot
    git(repo, "add", "-N", "local.txt")
    before = snapshot_state(repo)
    opts = "-e grid -n g -p lr=0.010,0.03 -p depth=4..6 -j 2 --maximize metrics.score"
    p = sweep(
        repo,
        opts + " --params-file params.yaml --format json",
        *[sys.executable, "-c", TRAINER, "{lr}"],
        env={**env, "NAP": "0.3"},
    )
    assert p.returncode == 0, p.stderr
    pid = parent_id(p)
    assert snapshot_state(repo) == before  # tree, index, HEAD, branches byte for byte
    ts = trials(repo, pid)
    assert len(ts) == 6 and {r.status for r in ts} == {"FINISHED"}
    grid = [(lr, d) for lr in ("0.010", "0.03") for d in ("4", "5", "6")]
    for i, r in enumerate(ts):
        assert r.tags["mlflow.parentRunId"] == pid and r.tags["gitrun.sweep.trial"] == str(i)
        assert (r.params["lr"], r.params["depth"]) == grid[i]
        assert r.command[-1] == grid[i][0]  # {lr} substituted inside the argv item
        assert r.run_name == f"g-{i}" and r.experiment == "grid"
        assert r.tags["local"] == "uncommitted"  # the snapshot of the dirty tree
        assert f"lr: {float(grid[i][0])}" in r.tags["from_file"]
    parent = runs(repo, f"attributes.run_id = '{pid}'")[0]
    assert parent.status == "FINISHED" and parent.tags["gitrun.sweep.trials_finished"] == "6"
    assert parent.params == {} and parent.tags["gitrun.sweep.space.depth"] == "4..6"
    assert set(parent.metrics) == {"best_score"}  # the trials' charts stay the trials'

    assert parent.tags["gitrun.sweep.best_run"] == ts[4].run_id  # lr=0.03, depth=5
    assert parent.metrics["best_score"] == 0
    assert json.loads(parent.tags["gitrun.sweep.spec"])["trials"] == 6
    # every worktree is gone; git knows of none
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not [n for n in os.listdir(repo / ".git/gitrun/worktrees") if not n.startswith(".")]
    # ls --parent lists exactly the trials
    p = run_cli("ls", "--parent", pid[:8], "--format", "json", "-n", "0", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert sorted(r["run_id"] for r in json.loads(p.stdout)) == sorted(r.run_id for r in ts)
    p = run_cli("search", "--parent", "g", "params.depth = '5'", "--format", "json", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert sorted(r["run_id"] for r in json.loads(p.stdout)) == sorted([ts[1].run_id, ts[4].run_id])


def test_artifacts_of_each_trial_are_kept(repo, env):
    """-a PATH works in the trial worktrees (they live under .git/gitrun/worktrees/)."""
    code = "import sys; open('out.txt', 'w').write(sys.argv[1])"
    p = sweep(repo, "-e art -n art -p x=1,2 -j 1 -a out.txt", sys.executable, "-c", code, "{x}")
    assert p.returncode == 0, p.stderr
    ts = trials(repo, runs(repo, "attributes.run_name = 'art'")[0].run_id)
    assert [sorted(r.artifacts) for r in ts] == [["out.txt"], ["out.txt"]]
    assert [r.artifacts["out.txt"].size for r in ts] == [1, 1]


def test_report_outside_a_sweep_only_logs(repo):
    import gitrun

    with gitrun.start_run() as run:
        assert gitrun.report(3, 0.5, key="acc") is False
        assert gitrun.report(4, 0.25) is False  # no sweep objective: "objective"
    r = runs(repo, f"attributes.run_id = '{run.info.run_id}'")[0]
    assert r.metrics == {"acc": 0.5, "objective": 0.25}


def test_random_is_reproducible_and_in_bounds(repo, env):
    cmd = [sys.executable, "-c", "import sys; sys.exit(0)"]
    spec = "-p lr=loguniform:1e-4:1e-1 -p depth=int:3:12 -p opt=choice:a,b"
    ids = []
    for seed in ("7", "7", "8"):
        p = sweep(repo, f"--random 4 --seed {seed} {spec} -j 2 -q --format json", *cmd, env=env)
        assert p.returncode == 0, p.stderr
        ids.append(parent_id(p))
    got = [
        [(r.params["lr"], r.params["depth"], r.params["opt"]) for r in trials(repo, i)] for i in ids
    ]
    assert got[0] == got[1] != got[2] and len(got[0]) == 4
    for lr, depth, opt in got[0] + got[2]:
        assert 1e-4 <= float(lr) <= 1e-1 and 3 <= int(depth) <= 12 and opt in ("a", "b")


def test_failures_recorded_max_failures_and_resume_reruns_them(repo, env):
    # odd x fails while $FAIL is set: a resume without it reruns exactly the failed ones
    code = (
        "import os, sys; sys.exit(int(os.environ['GITRUN_PARAM_X']) % 2 * ('FAIL' in os.environ))"
    )
    cmd = [sys.executable, "-c", code]
    p = sweep(repo, "-p x=1..4 -j 2 -q --format json", *cmd, env={**env, "FAIL": "1"})
    assert p.returncode == 1
    sweep_failed_stderr = p.stderr
    pid = parent_id(p)
    ts = trials(repo, pid)
    assert [r.status for r in ts] == ["FAILED", "FINISHED", "FAILED", "FINISHED"]
    assert ts[0].exit_code == 1
    p = sweep(repo, f"--resume {pid[:8]} -q --format json", env=env)
    assert p.returncode == 0, p.stderr
    again = trials(repo, pid)
    assert len(again) == 6  # the failed runs stay in the (append-only) history
    new = [r for r in again if r.run_id not in {t.run_id for t in ts}]
    assert sorted((r.tags["gitrun.sweep.trial"], r.status) for r in new) == [
        ("0", "FINISHED"),
        ("2", "FINISHED"),
    ]
    assert len({r.run_name for r in again}) == 6  # a retry is named <sweep>-<n>-retry1
    assert "exit code 1" in sweep_failed_stderr  # each failure said, with its exit code
    p = sweep(
        repo, "-p x=1..6 -j 1 --max-failures 2 -q --format json", *cmd, env={**env, "FAIL": "1"}
    )
    assert p.returncode == 1
    pid = parent_id(p)
    assert [r.status for r in trials(repo, pid)] == ["FAILED", "FINISHED", "FAILED"]
    assert runs(repo, f"attributes.run_id = '{pid}'")[0].status == "FAILED"
    assert "max-failures" in p.stderr


def _wait(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _live(repo):
    d = repo / ".git/gitrun/live"
    return [n for n in os.listdir(d) if not n.startswith(".")] if d.is_dir() else []


def test_kill9_driver_then_resume_runs_exactly_the_missing(repo, env):
    code = "import time; time.sleep(1.0)"
    args = "sweep -p x=0..5 -j 2 -q".split()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitrun", *args, "--", sys.executable, "-c", code],
        cwd=repo,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # the parent and two trials are live: kill the driver in the middle of them
    assert _wait(lambda: len(_live(repo)) >= 3), proc.stderr
    proc.kill()
    proc.wait()
    # the orphaned workers finish their trials, commit them and remove their worktrees
    wt = repo / ".git/gitrun/worktrees"
    assert _wait(lambda: not [n for n in os.listdir(wt) if n.endswith(".lock") and n[0] != "."])
    pid = [r for r in runs(repo) if "gitrun.sweep.spec" in r.tags][0].run_id
    first = trials(repo, pid)
    assert 2 <= len(first) < 6 and {r.status for r in first} == {"FINISHED"}
    p = sweep(repo, f"--resume {pid[:8]} -j 2 -q --format json", env=env)
    assert p.returncode == 0, p.stderr
    ts = trials(repo, pid)
    assert sorted(int(r.tags["gitrun.sweep.trial"]) for r in ts) == list(range(6))
    assert {r.run_id for r in first} <= {r.run_id for r in ts}  # the done ones were kept
    parent = runs(repo, f"attributes.run_id = '{pid}'")[0]
    assert parent.status == "FINISHED" and parent.tags["gitrun.sweep.resumed"] == "1"
    assert git(repo, "worktree", "list").count("\n") == 1


def test_ctrl_c_kills_every_trial_and_the_parent(repo, env):
    code = "import time; time.sleep(30)"
    args = "sweep -p x=0..3 -j 2 -q --format json".split()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitrun", *args, "--", sys.executable, "-c", code],
        cwd=repo,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait(lambda: len(_live(repo)) >= 3)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    pid = json.loads(out)[0]["sweep"]
    ts = trials(repo, pid)
    assert len(ts) == 2 and {r.status for r in ts} == {"KILLED"}
    assert runs(repo, f"attributes.run_id = '{pid}'")[0].status == "KILLED"
    assert git(repo, "worktree", "list").count("\n") == 1


OPTUNA_TRAINER = """
import os, gitrun
x = float(os.environ["GITRUN_PARAM_X"])
for step in range(3):
    if gitrun.report(step, -(x - 2) ** 2 - (2 - step)):
        break
else:
    gitrun.log_metric("score", -(x - 2) ** 2)
"""


def test_optuna_best_trial_and_pruning_channel(repo, env):
    pytest.importorskip("optuna")
    opts = "--optuna 8 --maximize metrics.score -p x=uniform:0:4 --seed 3 -j 2 -q --format json"
    p = sweep(repo, opts, sys.executable, "-c", OPTUNA_TRAINER, env=env)
    assert p.returncode == 0, p.stderr
    pid = parent_id(p)
    ts = trials(repo, pid)
    assert len(ts) == 8 and {r.status for r in ts} == {"FINISHED"}
    pruned = [r for r in ts if r.tags.get("gitrun.sweep.pruned") == "true"]
    scored = [r for r in ts if r not in pruned]
    best = max(scored, key=lambda r: r.metrics["score"])
    parent = runs(repo, f"attributes.run_id = '{pid}'")[0]
    assert parent.tags["gitrun.sweep.best_run"] == best.run_id
    assert parent.metrics["best_score"] == best.metrics["score"]
    assert json.loads(parent.tags["gitrun.sweep.best_params"]) == {"x": best.params["x"]}
    assert all("score" in r.metrics for r in ts)  # report() logs the objective per step


@pytest.mark.parametrize(
    "options, says",
    [
        ("-p lr", "NAME=VALUES"),
        ("-p lr=loguniform:0:1", "above 0"),
        ("-p lr=uniform:0:1", "--random"),
        ("-p lr=1,2 --optuna 3", "objective"),
        ("-p lr=1,2 -p lr=3", "twice"),
        ("-p lr=1,2", "needs a command"),
        ("-p lr=1,2 -a /etc/passwd", "relative path inside"),
        ("--resume nosuchsweep", "nosuchsweep"),
    ],
)
def test_bad_input_is_one_sentence_and_records_nothing(repo, options, says):
    cmd = [] if says in ("needs a command", "nosuchsweep") else ["true"]
    p = sweep(repo, options, *cmd)
    assert p.returncode in (1, 2) and says in p.stderr and "Traceback" not in p.stderr
    assert git(repo, "for-each-ref", "refs/gitrun/") == ""


def test_resume_refuses_a_spec_that_writes_outside_the_worktree(repo, tmp_path):
    """A sweep's spec is read back from its parent run, which may come from someone's push:
    a params file outside the worktree is refused before anything runs."""
    import gitrun

    evil = tmp_path / "evil.yaml"
    spec = {
        "version": 1,
        "command": ["true"],
        "params": [{"name": "x", "kind": "list", "values": ["1"], "text": "1"}],
        "sampler": "grid",
        "trials": 1,
        "params_file": str(evil),
        "cwd": ".",
    }
    with gitrun.start_run(run_name="crafted") as run:
        gitrun.set_tag("gitrun.sweep.spec", json.dumps(spec))
    p = run_cli("sweep", "--resume", run.info.run_id[:8], cwd=repo)
    assert p.returncode == 1, p.stderr
    assert "not a relative path inside the repository" in p.stderr
    assert not evil.exists()
    assert len(runs(repo)) == 1
