"""What the keras and pytorch autolog tests share: a run's metric history and artifact paths,
and one side of the side-by-side comparison, the same training script run under gitrun or
under real MLflow in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import IDENTITY, git
from tests.test_mlflow_compat import _env


def metric_history(client, run_id, key):
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def artifact_paths(client, run_id, path=None):
    """Every artifact file of the run (under `path`), sorted."""
    out = []
    for f in client.list_artifacts(run_id, path):
        out += artifact_paths(client, run_id, f.path) if f.is_dir else [f.path]
    return sorted(out)


def run_side(tmp_path, script: str, gitrun_side: bool, **env: str) -> dict:
    """Run `script` in its own directory under `tmp_path`, with `mlflow` bound to gitrun (in a
    new git repository, IS_GITRUN true) or to real MLflow (a sqlite store there), and `env`
    added to the environment; returns the out.json the script writes."""
    d = tmp_path / ("gitrun" if gitrun_side else "mlflow")
    d.mkdir()
    if gitrun_side:
        git(d, "init", "-q", "-b", "main", env=IDENTITY)
        git(d, "commit", "-q", "--allow-empty", "-m", "init", env=IDENTITY)
        head = "import gitrun as mlflow\nIS_GITRUN = True\n"
    else:
        head = (
            "import mlflow\nIS_GITRUN = False\n"
            f"mlflow.set_tracking_uri('sqlite:///{d / 'mlflow.db'}')\n"
        )
    (d / "train.py").write_text(head + script)
    proc = subprocess.run(
        [sys.executable, "train.py"],
        cwd=d,
        env=_env(HOME=str(d), **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((d / "out.json").read_text())
