"""LightGBM autolog and models: the exact params, metrics (per iteration, early stopping),
artifacts and model gitrun records for `lightgbm.train` and the scikit-learn API, side by side
with real MLflow's autolog on the same training, and gitrun's model loaded by real MLflow."""

from __future__ import annotations

import json

import pytest

import gitrun
from tests import gbm_helpers

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
"""
TRAIN += gbm_helpers.SUMMARY

IMPORTANCE = [
    "feature_importance_gain.json",
    "feature_importance_gain.png",
    "feature_importance_split.json",
    "feature_importance_split.png",
]


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
    assert gbm_helpers.inputs(runs["train"]) == {"train": "train", "eval": "eval"}
    assert gbm_helpers.inputs(runs["sklearn"]) == {"train": "train", "valid_0": "eval"}

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
    m = gbm_helpers.mlflow_side("lightgbm", TRAIN, runs, tmp_path)
    gbm_helpers.assert_same_runs(g, m, ("train", "sklearn"))
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
    gbm_helpers.assert_missing_framework_message("lightgbm", monkeypatch)
