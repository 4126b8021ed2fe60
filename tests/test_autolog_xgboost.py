"""XGBoost autolog and models: the exact params, metrics (per iteration, early stopping),
artifacts and model gitrun records for `xgboost.train` and the scikit-learn API, side by side
with real MLflow's autolog on the same training, and gitrun's model loaded by real MLflow."""

from __future__ import annotations

import json

import pytest

import gitrun
from tests import gbm_helpers

xgb = pytest.importorskip("xgboost")
np = pytest.importorskip("numpy")

# Run by gitrun (in this process) and by real MLflow (a subprocess); `mlflow` is either.
# MLflow's side logs no model (its pip requirements inference takes long); gitrun's does.
TRAIN = """
import numpy as np
import xgboost as xgb

rng = np.random.default_rng(0)
X = rng.normal(size=(60, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
mlflow.xgboost.autolog(log_models=LOG_MODELS)
dtrain = xgb.DMatrix(X[:40], label=y[:40])
dval = xgb.DMatrix(X[40:], label=y[40:])
params = {"objective": "binary:logistic", "max_depth": 2, "eval_metric": ["logloss", "auc"]}
with mlflow.start_run() as run:
    bst = xgb.train(params, dtrain, num_boost_round=20, evals=[(dtrain, "train"), (dval, "eval")],
                    early_stopping_rounds=3, verbose_eval=False)
runs = {"train": run.info.run_id}
clf = xgb.XGBClassifier(n_estimators=6, max_depth=2)
clf.fit(X[:40], y[:40], eval_set=[(X[40:], y[40:])], verbose=False)
runs["sklearn"] = mlflow.last_active_run().info.run_id
mlflow.xgboost.autolog(disable=True)
"""
TRAIN += gbm_helpers.SUMMARY


@pytest.fixture
def autolog_off():
    yield
    gitrun.autolog(disable=True)


def _history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in gitrun.MlflowClient().get_metric_history(run_id, key)]


def test_xgboost_autolog_matches_mlflow_and_models_load_both_ways(repo, tmp_path, autolog_off):
    ns: dict = {"mlflow": gitrun, "LOG_MODELS": True}
    exec(TRAIN, ns)
    g = ns["out"]
    runs, bst, clf, X = ns["runs"], ns["bst"], ns["clf"], ns["X"]

    # xgboost.train: booster params + the train call's arguments, as MLflow names them
    t = g["train"]
    assert t["params"] == {
        "objective": "binary:logistic",
        "max_depth": "2",
        "eval_metric": "['logloss', 'auc']",
        "num_boost_round": "20",
        "early_stopping_rounds": "3",
        "verbose_eval": "False",
        "maximize": "None",
        "custom_metric": "None",
    }
    iters = bst.num_boosted_rounds()  # stopped early: fewer than 20
    assert 4 <= iters < 20
    assert set(t["metrics"]) == {
        "train-logloss",
        "train-auc",
        "eval-logloss",
        "eval-auc",
        "stopped_iteration",
        "best_iteration",
    }
    # step = iteration, and the best iteration's values once more one step after the last
    for k in ("train-logloss", "train-auc", "eval-logloss", "eval-auc"):
        assert t["steps"][k] == list(range(iters + 1)), k
    hist = _history(runs["train"], "eval-logloss")
    assert hist[-1] == (iters, hist[bst.best_iteration][1])
    assert t["metrics"]["best_iteration"] == bst.best_iteration
    assert t["metrics"]["stopped_iteration"] == iters - 1
    assert t["steps"]["best_iteration"] == [0]
    assert t["artifacts"] == ["feature_importance_weight.json", "feature_importance_weight.png"]
    assert t["autologging"] is None  # the user's own run: not an autolog-managed one

    rec = gitrun.get_run(runs["train"])
    files = set(gitrun.MlflowClient().list_artifacts(runs["train"], "model"))
    names = {f.path for f in files}
    assert {"model/MLmodel", "model/model.ubj", "model/requirements.txt"} <= names
    client = gitrun.MlflowClient()
    imp = json.loads(
        open(client.download_artifacts(rec.info.run_id, "feature_importance_weight.json")).read()
    )
    assert imp == bst.get_score(importance_type="weight")

    # the sklearn API: one run started and ended by autolog, the model as XGBClassifier
    s = g["sklearn"]
    assert s["autologging"] == "xgboost"
    assert s["params"]["max_depth"] == "2" and s["params"]["num_boost_round"] == "6"
    assert s["params"]["objective"] == "binary:logistic"
    assert set(s["metrics"]) == {"validation_0-logloss"}
    assert s["steps"]["validation_0-logloss"] == list(range(6))

    # the training and evaluation data as run inputs (name, digest, context), not copied
    assert gbm_helpers.inputs(runs["train"]) == {"train": "train", "eval": "eval"}
    assert gbm_helpers.inputs(runs["sklearn"]) == {"train": "train", "validation_0": "eval"}

    # models round-trip through gitrun
    loaded = gitrun.xgboost.load_model(f"runs:/{runs['sklearn']}/model")
    assert type(loaded) is xgb.XGBClassifier
    assert (loaded.predict(X) == clf.predict(X)).all()
    booster = gitrun.xgboost.load_model(f"runs:/{runs['train']}/model")
    assert isinstance(booster, xgb.Booster)
    expected = bst.predict(xgb.DMatrix(X))
    pyf = gitrun.pyfunc.load_model(f"runs:/{runs['train']}/model")
    np.testing.assert_allclose(pyf.predict(X), expected, rtol=1e-6)
    mlmodel = gitrun.models.Model.load(client.download_artifacts(runs["train"], "model"))
    assert mlmodel.flavors["xgboost"]["model_class"] == "xgboost.core.Booster"
    assert mlmodel.signature is not None  # inferred from the DMatrix's first rows

    # ... and through real MLflow, which also ran the same training with its own autolog
    m = gbm_helpers.mlflow_side("xgboost", TRAIN, runs, tmp_path)
    gbm_helpers.assert_same_runs(g, m, ("train", "sklearn"))
    assert m["loaded"]["sklearn"]["class"] == "xgboost.sklearn.XGBClassifier"
    assert m["loaded"]["train"]["class"] == "xgboost.core.Booster"
    np.testing.assert_allclose(m["loaded"]["train"]["pyfunc"], expected, rtol=1e-6)
    assert m["loaded"]["sklearn"]["pyfunc"] == [float(v) for v in clf.predict(X)]


def _data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    return X, (X[:, 0] > 0).astype(int)


def test_log_models_false_disable_and_outermost_only(repo, autolog_off):
    X, y = _data()
    d = xgb.DMatrix(X, label=y)
    gitrun.xgboost.autolog(log_models=False, log_datasets=False)
    xgb.train({"max_depth": 2}, d, num_boost_round=2, evals=[(d, "train")], verbose_eval=False)
    first = gitrun.last_active_run().info.run_id
    assert gbm_helpers.inputs(first) == {}
    arts = [f.path for f in gitrun.MlflowClient().list_artifacts(first)]
    assert arts == ["feature_importance_weight.json", "feature_importance_weight.png"]

    # a train inside a train (here: from a callback) logs nothing of its own
    class Nested(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            xgb.train({"max_depth": 5}, d, num_boost_round=1)
            return False

    xgb.train({"max_depth": 3}, d, num_boost_round=2, callbacks=[Nested()])
    outer = gitrun.get_run(gitrun.last_active_run().info.run_id)
    assert outer.info.run_id != first
    assert outer.data.params["max_depth"] == "3"
    assert len(gitrun.search_runs(output_format="list")) == 2

    gitrun.xgboost.autolog(disable=True)
    assert not hasattr(xgb.train, "__gitrun_autolog_original__")
    xgb.train({"max_depth": 2}, d, num_boost_round=2)
    assert gitrun.last_active_run().info.run_id == outer.info.run_id  # no new run


def test_missing_xgboost_says_how_to_install(repo, monkeypatch):
    gbm_helpers.assert_missing_framework_message("xgboost", monkeypatch)
