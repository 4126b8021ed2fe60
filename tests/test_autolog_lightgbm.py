"""LightGBM autolog and models: the exact params, metrics (per iteration, early stopping),
artifacts and model gitrun records for `lightgbm.train` and the scikit-learn API, side by side
with real MLflow's autolog on the same training, and gitrun's model loaded by real MLflow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import gitrun
from gitrun._git import Repo
from gitrun.format import store
from tests.test_mlflow_compat import _env

lgb = pytest.importorskip("lightgbm")
np = pytest.importorskip("numpy")

# Run by gitrun (in this process) and by real MLflow (a subprocess); `mlflow` is either.
# MLflow's side logs no model (its pip requirements inference takes long); gitrun's does.
TRAIN = """
import numpy as np
import lightgbm as lgb

rng = np.random.default_rng(0)
X = rng.normal(size=(80, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
mlflow.lightgbm.autolog(log_models=LOG_MODELS)
dtrain = lgb.Dataset(X[:60], label=y[:60])
dval = lgb.Dataset(X[60:], label=y[60:], reference=dtrain)
params = {"objective": "binary", "num_leaves": 4, "metric": ["binary_logloss", "auc"],
          "verbose": -1, "min_data_in_leaf": 5, "num_threads": 1}
with mlflow.start_run() as run:
    bst = lgb.train(params, dtrain, num_boost_round=20, valid_sets=[dtrain, dval],
                    valid_names=["train", "eval"],
                    callbacks=[lgb.early_stopping(3, verbose=False)])
runs = {"train": run.info.run_id}
reg = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1,
                        n_jobs=1)
reg.fit(X[:60], X[:60, 2], eval_set=[(X[60:], X[60:, 2])])
runs["sklearn"] = mlflow.last_active_run().info.run_id
mlflow.lightgbm.autolog(disable=True)

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
MLFLOW_SIDE = """
import json, logging, os, sys, warnings
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
import mlflow
mlflow.set_tracking_uri("sqlite:///" + os.path.join(os.getcwd(), "mlflow.db"))
LOG_MODELS = False
exec(open("train_code.py").read())
import mlflow.lightgbm, mlflow.pyfunc
loaded = {}
for name, path in json.loads(os.environ["GITRUN_MODEL_DIRS"]).items():
    m = mlflow.lightgbm.load_model(path)
    loaded[name] = {
        "class": type(m).__module__ + "." + type(m).__name__,
        "pyfunc": [float(v) for v in mlflow.pyfunc.load_model(path).predict(X)],
    }
out["loaded"] = loaded
json.dump(out, open("out.json", "w"))
"""

IMPORTANCE = [
    "feature_importance_gain.json",
    "feature_importance_gain.png",
    "feature_importance_split.json",
    "feature_importance_split.png",
]


def _inputs(run_id: str) -> dict[str, str]:
    r = Repo.discover()
    rec = store.read_record(r, run_id, store.list_run_trees(r)[run_id])
    assert all(i.kind == "dataset" and i.digest.startswith("sha256:") for i in rec.inputs.values())
    return {name: i.context for name, i in rec.inputs.items()}


@pytest.fixture
def autolog_off():
    yield
    gitrun.autolog(disable=True)


def test_lightgbm_autolog_matches_mlflow_and_models_load_both_ways(repo, tmp_path, autolog_off):
    ns: dict = {"mlflow": gitrun, "LOG_MODELS": True}
    exec(TRAIN, ns)
    g = ns["out"]
    runs, bst, reg, X = ns["runs"], ns["bst"], ns["reg"], ns["X"]
    client = gitrun.MlflowClient()

    # lightgbm.train: booster params + the train call's arguments, as MLflow names them
    t = g["train"]
    assert t["params"] == {
        "objective": "binary",
        "num_leaves": "4",
        "metric": "['binary_logloss', 'auc']",
        "verbose": "-1",
        "min_data_in_leaf": "5",
        "num_threads": "1",
        "num_boost_round": "20",
        "keep_training_booster": "False",
    }
    iters = int(t["metrics"]["stopped_iteration"])  # iterations run: stopped early
    assert 1 <= bst.best_iteration < iters < 20
    assert set(t["metrics"]) == {
        "train-binary_logloss",
        "train-auc",
        "eval-binary_logloss",
        "eval-auc",
        "stopped_iteration",
        "best_iteration",
    }
    # step = iteration, and the best iteration's values once more one step after the last
    for k in ("train-binary_logloss", "train-auc", "eval-binary_logloss", "eval-auc"):
        assert t["steps"][k] == list(range(iters + 1)), k
    hist = [m.value for m in client.get_metric_history(runs["train"], "eval-binary_logloss")]
    assert hist[-1] == hist[bst.best_iteration - 1]
    assert t["metrics"]["best_iteration"] == bst.best_iteration
    assert t["metrics"]["stopped_iteration"] == iters
    assert t["artifacts"] == IMPORTANCE
    assert t["autologging"] is None  # the user's own run: not an autolog-managed one
    split = json.loads(
        open(client.download_artifacts(runs["train"], "feature_importance_split.json")).read()
    )
    assert split == dict(zip(bst.feature_name(), bst.feature_importance("split").tolist()))
    names = {f.path for f in client.list_artifacts(runs["train"], "model")}
    assert {"model/MLmodel", "model/model.lgb", "model/requirements.txt"} <= names

    # the sklearn API: one run started and ended by autolog, the model as LGBMRegressor
    s = g["sklearn"]
    assert s["autologging"] == "lightgbm"
    assert s["params"]["num_leaves"] == "4" and s["params"]["num_boost_round"] == "5"
    assert s["params"]["objective"] == "regression"
    assert set(s["metrics"]) == {"valid_0-l2"}
    assert s["steps"]["valid_0-l2"] == list(range(5))
    assert s["artifacts"] == IMPORTANCE

    # the training and evaluation data as run inputs (name, digest, context), not copied
    assert _inputs(runs["train"]) == {"train": "train", "eval": "eval"}
    assert _inputs(runs["sklearn"]) == {"train": "train", "valid_0": "eval"}

    # models round-trip through gitrun
    loaded = gitrun.lightgbm.load_model(f"runs:/{runs['sklearn']}/model")
    assert type(loaded) is lgb.LGBMRegressor
    np.testing.assert_allclose(loaded.predict(X), reg.predict(X))
    booster = gitrun.lightgbm.load_model(f"runs:/{runs['train']}/model")
    assert isinstance(booster, lgb.Booster)
    expected = bst.predict(X)
    np.testing.assert_allclose(booster.predict(X), expected)
    pyf = gitrun.pyfunc.load_model(f"runs:/{runs['train']}/model")
    np.testing.assert_allclose(pyf.predict(X), expected)
    mlmodel = gitrun.models.Model.load(client.download_artifacts(runs["train"], "model"))
    assert mlmodel.flavors["lightgbm"]["model_class"] == "lightgbm.basic.Booster"
    assert mlmodel.signature is not None  # inferred from the Dataset's first rows

    # ... and through real MLflow, which also ran the same training with its own autolog
    pytest.importorskip("mlflow")
    dirs = {}
    for name in ("train", "sklearn"):
        dst = tmp_path / f"dl-{name}"
        dst.mkdir()
        dirs[name] = client.download_artifacts(runs[name], "model", str(dst))
    side = tmp_path / "mlflow-side"
    side.mkdir()
    (side / "train_code.py").write_text(TRAIN)
    (side / "side.py").write_text(MLFLOW_SIDE)
    proc = subprocess.run(
        [sys.executable, "side.py"],
        cwd=side,
        env=_env(HOME=str(side), GITRUN_MODEL_DIRS=json.dumps(dirs)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((side / "out.json").read_text())
    for name in ("train", "sklearn"):
        assert g[name]["params"] == m[name]["params"], name
        assert sorted(g[name]["metrics"]) == sorted(m[name]["metrics"]), name
        assert g[name]["steps"] == m[name]["steps"], name
        for k, v in m[name]["metrics"].items():
            assert g[name]["metrics"][k] == pytest.approx(v, rel=1e-6), (name, k)
        assert g[name]["artifacts"] == m[name]["artifacts"], name
        assert g[name]["autologging"] == m[name]["autologging"], name
    assert m["loaded"]["sklearn"]["class"] == "lightgbm.sklearn.LGBMRegressor"
    assert m["loaded"]["train"]["class"] == "lightgbm.basic.Booster"
    np.testing.assert_allclose(m["loaded"]["train"]["pyfunc"], expected, rtol=1e-6)
    np.testing.assert_allclose(m["loaded"]["sklearn"]["pyfunc"], reg.predict(X), rtol=1e-6)


def test_log_models_false_disable_and_outermost_only(repo, autolog_off):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    y = X[:, 0] * 2
    gitrun.lightgbm.autolog(log_models=False)
    params = {"verbose": -1, "min_data_in_leaf": 3, "num_threads": 1}
    lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=2)
    first = gitrun.last_active_run().info.run_id
    assert [f.path for f in gitrun.MlflowClient().list_artifacts(first)] == IMPORTANCE

    # the scikit-learn API's fit calls lightgbm.train inside: one run, logged once
    gitrun.lightgbm.autolog()
    gitrun.lightgbm.autolog()  # twice: still patched once
    lgb.LGBMRegressor(n_estimators=3, min_child_samples=3, verbose=-1, n_jobs=1).fit(X, y)
    second = gitrun.last_active_run().info.run_id
    assert second != first
    assert len(gitrun.search_runs(output_format="list")) == 2
    assert "model/MLmodel" in {
        f.path for f in gitrun.MlflowClient().list_artifacts(second, "model")
    }

    gitrun.lightgbm.autolog(disable=True)
    assert not hasattr(lgb.train, "__gitrun_autolog_original__")
    lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=2)
    assert gitrun.last_active_run().info.run_id == second  # no new run


def test_missing_lightgbm_says_how_to_install(repo, monkeypatch):
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if it were not installed
    with pytest.raises(gitrun.GitrunError) as e:
        gitrun.lightgbm.autolog()
    assert str(e.value) == (
        "This needs lightgbm, which is not installed; install it with "
        "`pip install 'gitrun-ml[lightgbm]'`."
    )
    assert gitrun.last_active_run() is None
