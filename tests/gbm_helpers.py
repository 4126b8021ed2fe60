"""What the xgboost and lightgbm autolog tests share: the summary both sides print of their
runs, MLflow's side (the same training, then gitrun's models loaded by real MLflow) and the
side-by-side comparison."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gitrun._git import Repo
from gitrun.format import store
from tests.test_mlflow_compat import _env

# Appended to a flavor's training code (run by gitrun in the test's process, by real MLflow
# in a subprocess; `mlflow` is either): what each side logged, per run.
SUMMARY = """
client = mlflow.MlflowClient()
out = {}
for name, rid in runs.items():
    r = client.get_run(rid)
    out[name] = {
        "params": r.data.params,
        "metrics": r.data.metrics,
        "steps": {k: [m.step for m in client.get_metric_history(rid, k)] for k in r.data.metrics},
        "artifacts": sorted(f.path for f in client.list_artifacts(rid) if f.path != "model"),
        "autologging": r.data.tags.get("mlflow.autologging"),
    }
"""

# MLflow's side: the same training, then gitrun's model directories loaded by real MLflow.
# MLflow's side logs no model (its pip requirements inference takes long); gitrun's does.
MLFLOW_SIDE = """
import json, logging, os, sys, warnings
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
import mlflow
mlflow.set_tracking_uri("sqlite:///" + os.path.join(os.getcwd(), "mlflow.db"))
LOG_MODELS = False
exec(open("train_code.py").read())
import mlflow.pyfunc, mlflow.FLAVOR
loaded = {}
for name, path in json.loads(os.environ["GITRUN_MODEL_DIRS"]).items():
    m = mlflow.FLAVOR.load_model(path)
    loaded[name] = {
        "class": type(m).__module__ + "." + type(m).__name__,
        "pyfunc": [float(v) for v in mlflow.pyfunc.load_model(path).predict(X)],
    }
out["loaded"] = loaded
json.dump(out, open("out.json", "w"))
"""


def inputs(run_id: str) -> dict[str, str]:
    """The run's inputs (all datasets with a digest) as name -> context."""
    r = Repo.discover()
    rec = store.read_record(r, run_id, store.list_run_trees(r)[run_id])
    assert all(i.kind == "dataset" and i.digest.startswith("sha256:") for i in rec.inputs.values())
    return {name: i.context for name, i in rec.inputs.items()}


def mlflow_side(flavor: str, train: str, runs: dict[str, str], tmp_path) -> dict:
    """Run `train` under real MLflow's autolog in a subprocess and load the model of each of
    gitrun's `runs` with mlflow.<flavor> and mlflow.pyfunc; returns MLflow's summary."""
    import gitrun

    pytest.importorskip("mlflow")
    client = gitrun.MlflowClient()
    dirs = {}
    for name in runs:
        dst = tmp_path / f"dl-{name}"
        dst.mkdir()
        dirs[name] = client.download_artifacts(runs[name], "model", str(dst))
    side = tmp_path / "mlflow-side"
    side.mkdir()
    (side / "train_code.py").write_text(train)
    (side / "side.py").write_text(MLFLOW_SIDE.replace("FLAVOR", flavor))
    proc = subprocess.run(
        [sys.executable, "side.py"],
        cwd=side,
        env=_env(HOME=str(side), GITRUN_MODEL_DIRS=json.dumps(dirs)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((side / "out.json").read_text())


def assert_same_runs(g: dict, m: dict, names) -> None:
    """gitrun's summary `g` and MLflow's `m` agree on params, metrics, steps, artifacts and
    the autologging tag of each run."""
    for name in names:
        assert g[name]["params"] == m[name]["params"], name
        assert sorted(g[name]["metrics"]) == sorted(m[name]["metrics"]), name
        assert g[name]["steps"] == m[name]["steps"], name
        for k, v in m[name]["metrics"].items():
            assert g[name]["metrics"][k] == pytest.approx(v, rel=1e-6), (name, k)
        assert g[name]["artifacts"] == m[name]["artifacts"], name
        assert g[name]["autologging"] == m[name]["autologging"], name


def assert_missing_framework_message(flavor: str, monkeypatch) -> None:
    """With the framework not installed, the flavor's autolog says how to install it and
    starts no run."""
    import gitrun

    monkeypatch.setitem(sys.modules, flavor, None)  # as if it were not installed
    with pytest.raises(gitrun.GitrunError) as e:
        getattr(gitrun, flavor).autolog()
    assert str(e.value) == (
        f"This needs {flavor}, which is not installed; install it with "
        f"`pip install 'gitrun-ml[{flavor}]'`."
    )
    assert gitrun.last_active_run() is None
