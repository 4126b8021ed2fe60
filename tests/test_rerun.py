"""gitrun rerun: re-execute on the recorded code, compare metrics, artifacts and exit code."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import uuid

import pytest
from conftest import git, run_cli, snapshot_state

from gitrun._git import Repo
from gitrun.errors import InvalidInputError
from gitrun.format import store
from gitrun.format.entities import Artifact, RunRecord
from gitrun.query import resolve as runs
from gitrun.workflows.record import RecordOptions
from gitrun.workflows.record import record as do_record
from gitrun.workflows.rerun import close, compare, rerun

SCRIPT = """\
import json, os, random, sys
mode = sys.argv[1]
acc = {"det": 0.875, "random": random.random(), "tiny": 1.0 + random.random() * 1e-9}
json.dump({"acc": acc.get(mode, 0.5), "loss": float("nan")}, open("metrics.json", "w"))
model = os.urandom(8) if mode == "bytes" else b"weights"
open("model.bin", "wb").write(model)
"""

API_SCRIPT = """\
import random, sys
import gitrun
gitrun.log_metric("acc", 0.75 if sys.argv[1] == "det" else random.random())
gitrun.log_text("report", "report.txt")
"""


def record(repo, mode, name, script=SCRIPT, extra=()):
    (repo / "train.py").write_text(script)
    (repo / ".gitignore").write_text("*.log\nmetrics.json\nmodel.bin\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", f"train {name}")
    opts = ["--metrics-file", "metrics.json", "-a", "model.bin"] if script == SCRIPT else []
    p = run_cli("record", "-q", "-n", name, *opts, *extra, "--", sys.executable, "train.py", mode)
    assert p.returncode == 0, p.stderr
    return name


def test_deterministic_run_reproduces(repo):
    record(repo, "det", "base", extra=("-p", "lr=0.1"))
    before = snapshot_state(repo)
    p = run_cli("rerun", "base")
    assert p.returncode == 0, p.stderr
    assert "Reproduced" in p.stdout
    assert "acc" in p.stdout and "artifact model.bin" in p.stdout
    assert "older gitrun" not in p.stdout
    # Recorded on the original repository's runs ref, tagged, named, same params.
    r = Repo.discover(str(repo))
    new = runs.load(r, "base-rerun")
    orig = runs.load(r, "base")
    assert new.tags["gitrun.rerun_of"] == orig.run_id
    assert new.experiment == orig.experiment
    assert new.params == {"lr": "0.1"}
    assert new.code["commit"] == orig.code["commit"]
    # The temporary worktree is gone and the user's state is untouched.
    assert git(repo, "worktree", "list").count("\n") == 1
    assert snapshot_state(repo) == before


def test_unseeded_randomness_is_not_reproduced(repo):
    record(repo, "random", "noisy")
    p = run_cli("rerun", "noisy")
    assert p.returncode == 1
    assert "Not reproduced" in p.stderr and "acc" in p.stderr
    assert "DIFFERS" in p.stdout
    assert "Traceback" not in p.stderr


def test_tolerance(repo):
    record(repo, "tiny", "tiny")
    assert run_cli("rerun", "tiny", "--rtol", "1e-6").returncode == 0
    p = run_cli("rerun", "tiny")
    assert p.returncode == 1 and "acc" in p.stderr


def test_artifact_hash_mismatch_is_detected(repo):
    record(repo, "bytes", "bytes")
    p = run_cli("rerun", "bytes")
    assert p.returncode == 1
    assert "artifact model.bin" in p.stderr and "sha256 differs" in p.stderr


def test_api_logging_script_reproduces(repo):
    record(repo, "det", "api", script=API_SCRIPT)
    p = run_cli("rerun", "api")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "artifact report.txt" in p.stdout


def test_api_only_run_has_no_command(repo):
    r = Repo.discover(str(repo))
    now = int(time.time() * 1000)
    head = git(repo, "rev-parse", "HEAD").strip()
    rec = RunRecord(
        run_id=uuid.uuid4().hex,
        run_name="api-only",
        status="FINISHED",
        start_time=now,
        end_time=now,
        code={"commit": head},
    )
    store.commit_run(r, rec)
    p = run_cli("rerun", "api-only")
    assert p.returncode == 1
    assert "no command to rerun" in p.stderr and "gitrun checkout" in p.stderr
    assert "Traceback" not in p.stderr
    assert run_cli("checkout", "api-only").returncode == 0


def test_in_place_requires_the_runs_code_then_works(repo):
    record(repo, "det", "base")
    (repo / "train.py").write_text("print('changed')\n")
    git(repo, "commit", "-qam", "later")
    p = run_cli("rerun", "base", "--in-place")
    assert p.returncode == 1 and "gitrun checkout" in p.stderr
    assert run_cli("checkout", "base").returncode == 0
    p = run_cli("rerun", "base", "--in-place")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Reproduced" in p.stdout


def test_keep_keeps_the_worktree(repo):
    record(repo, "det", "base")
    p = run_cli("rerun", "base", "--keep", "-q")
    assert p.returncode == 0, p.stderr
    assert git(repo, "worktree", "list").count("\n") == 2
    wt = git(repo, "worktree", "list", "--porcelain").split("worktree ")[2].splitlines()[0]
    git(repo, "worktree", "remove", "--force", wt)


def test_env_diff_only(repo):
    record(repo, "det", "base")
    p = run_cli("rerun", "base", "--env-diff-only")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "matches" in p.stdout
    r = Repo.discover(str(repo))
    rec = runs.load(r, "base")
    rec.run_id = uuid.uuid4().hex
    rec.run_name = "old-env"
    rec.env = {"python": {"version": "2.7.18"}, "packages": {"numpy": "0.0.1"}}
    rec.env_blob = None
    rec.tree = None
    store.commit_run(r, rec)
    p = run_cli("rerun", "old-env", "--env-diff-only")
    assert p.returncode == 1
    assert "python version: recorded 2.7.18" in p.stdout
    assert "package numpy" in p.stdout


def test_compare_rules():
    a = RunRecord(
        "a",
        metrics={"x": 1.0, "n": math.nan, "i": math.inf, "gone": 1.0},
        artifacts={"m": Artifact("m", 1, "aa"), "only": Artifact("only", 1, "bb")},
        exit_code=0,
    )
    b = RunRecord(
        "b",
        metrics={"x": 1.0 + 1e-12, "n": math.nan, "i": math.inf, "new": 2.0},
        artifacts={"m": Artifact("m", 1, "aa")},
        exit_code=0,
    )
    rows = {r.label: r.ok for r in compare(a, b)}
    assert rows == {
        "x": False,
        "n": True,
        "i": True,
        "gone": False,
        "new": False,
        "artifact m": True,
        "artifact only": False,
        "exit code": True,
    }
    assert {r.label: r.ok for r in compare(a, b, rtol=1e-9)}["x"]
    assert close(1.0, 1.1, 0, 0.2) and not close(1.0, 1.1, 0, 0.05)
    assert not close(math.nan, 1.0, 1, 1) and not close(math.inf, -math.inf, 1, 1)


class _CwdWatch:
    """Samples the process's working directory from a thread while a rerun runs."""

    def __init__(self):
        self.seen = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self.stop.is_set():
            self.seen.add(os.getcwd())
            time.sleep(0.001)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_rerun_never_changes_the_callers_cwd_even_when_it_fails(repo):
    # data.txt and params.json are ignored, so not in the run's code: in the temporary
    # worktree the command fails (no data.txt), and a rerun given --params-file cannot
    # even start (no params.json).
    (repo / "train.py").write_text("import os\nopen('data.txt').read()\nprint(os.getcwd())\n")
    (repo / ".gitignore").write_text("*.log\ndata.txt\nparams.json\n")
    (repo / "data.txt").write_text("x\n")
    (repo / "params.json").write_text('{"lr": 0.1}\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "train")
    assert run_cli("record", "-q", "-n", "data", "--", sys.executable, "train.py").returncode == 0
    p = run_cli("record", "-q", "-n", "params", "--params-file", "params.json", "--", "true")
    assert p.returncode == 0, p.stderr
    r = Repo.discover(str(repo))
    here = os.getcwd()

    with _CwdWatch() as watch:
        result = rerun(r, "data", quiet=True)
    assert not result.reproduced and "exit code" in result.verdict()
    assert result.rerun is not None and result.rerun.status == "FAILED"
    assert result.rerun.cwd == "."
    with _CwdWatch() as watch2:
        with pytest.raises(InvalidInputError, match="params.json' does not exist"):
            rerun(r, "params", quiet=True)
    assert os.getcwd() == here
    assert watch.seen == watch2.seen == {here}
    assert git(repo, "worktree", "list").count("\n") == 1  # both worktrees removed


def test_record_with_cwd_resolves_paths_there(repo, capfd):
    # record(cwd=...) from elsewhere behaves as if started in that directory.
    sub = repo / "sub"
    sub.mkdir()
    (sub / "params.yaml").write_text("depth: 3\n")
    (sub / "train.py").write_text(
        "import json, os\n"
        "json.dump({'acc': 0.5}, open('m.json', 'w'))\n"
        "open('out.txt', 'w').write(os.getcwd())\n"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "sub")
    opts = RecordOptions(
        [sys.executable, "train.py"],
        name="sub",
        metrics_file="m.json",
        artifacts=["out.txt"],
        quiet=True,
        cwd=str(sub),
    )
    code, rec = do_record(opts)
    assert code == 0 and rec is not None
    assert os.getcwd() == str(repo)
    assert (sub / "out.txt").read_text() == str(sub)
    assert rec.cwd == "sub" and rec.params == {"depth": "3"} and rec.metrics == {"acc": 0.5}
    assert list(rec.artifacts) == ["out.txt"]
    assert not (repo / "out.txt").exists() and not (repo / "m.json").exists()


def test_each_rerun_gets_a_name_of_its_own(repo):
    (repo / "det.py").write_text("print('ok')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "det")
    assert run_cli("record", "-q", "-n", "base", "--", "python", "det.py", cwd=repo).returncode == 0
    for _ in range(2):
        p = run_cli("rerun", "-q", "base", cwd=repo)
        assert p.returncode == 0, p.stderr
    p = run_cli("ls", "--format", "json", cwd=repo)
    names = sorted(r["run_name"] for r in json.loads(p.stdout))
    assert names == ["base", "base-rerun", "base-rerun-2"]
    assert run_cli("show", "base-rerun-2", cwd=repo).returncode == 0


def test_ls_in_a_fresh_clone_points_at_pull(tmp_path, bare_remote):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(clone))
    p = run_cli("ls", cwd=clone)
    assert p.returncode == 0 and "gitrun pull origin" in p.stderr


def test_a_logged_model_reproduces_though_its_mlmodel_names_a_new_run(repo):
    """MLmodel holds the run id, a uuid and a time: a rerun that logs the same model still
    reproduces."""
    pytest.importorskip("sklearn")
    (repo / "fit.py").write_text(
        "import sys, gitrun.sklearn\n"
        "from sklearn.linear_model import LinearRegression\n"
        "y = [0.0, float(open('slope.txt').read())]\n"
        "gitrun.sklearn.log_model(LinearRegression().fit([[0.0], [1.0]], y), 'model')\n"
    )
    (repo / "slope.txt").write_text("1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "fit")
    p = run_cli("record", "-q", "-n", "m", "--", sys.executable, "fit.py", cwd=repo)
    assert p.returncode == 0, p.stderr
    p = run_cli("rerun", "m", cwd=repo)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Reproduced" in p.stdout
