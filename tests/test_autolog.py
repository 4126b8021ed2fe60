"""`gitrun.autolog()` (every installed flavor, MLflow's signature), `gitrun record --autolog` and
GITRUN_AUTOLOG=1 (autologging in a child whose code does not import gitrun), and the shared
autolog machinery (version warning once, the flavor table)."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings

import pytest

import gitrun
from gitrun.mlflow import autolog as al
from tests.conftest import git, run_cli
from tests.test_record import only_run

np = pytest.importorskip("numpy")

FRAMEWORKS = ("xgboost", "lightgbm", "sklearn", "torch", "lightning", "keras", "pyspark")


@pytest.fixture
def autolog_off():
    yield
    gitrun.autolog(disable=True)


def test_flavor_table_names_every_flavor_and_its_module():
    assert set(al.AUTOLOG_FLAVORS) == {
        "sklearn",
        "xgboost",
        "lightgbm",
        "pytorch",
        "keras",
        "pyspark.ml",
    }
    for name, f in al.AUTOLOG_FLAVORS.items():
        assert f.module.startswith("gitrun.mlflow."), name
        assert f.extra.startswith("'gitrun-ml[") and f.triggers, name


def test_autolog_enables_installed_flavors_and_disable_turns_all_off(repo, autolog_off):
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)

    gitrun.xgboost.autolog(log_models=False)  # a flavor's own call wins over the umbrella's
    gitrun.autolog(exclusive=False, extra_tags={"team": "fraud"})
    for flavor in ("sklearn", "xgboost", "lightgbm"):
        assert al.enabled(flavor), flavor
    assert al.config("xgboost").log_models is False
    assert al.config("lightgbm").extra_tags == {"team": "fraud"}

    xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y), num_boost_round=2)
    xrun = gitrun.last_active_run()
    assert xrun.data.tags["mlflow.autologging"] == "xgboost"
    assert xrun.data.params["max_depth"] == "2"
    arts = {f.path for f in gitrun.MlflowClient().list_artifacts(xrun.info.run_id)}
    assert "model" not in arts  # log_models=False kept
    lgb.train({"verbose": -1, "min_data_in_leaf": 3}, lgb.Dataset(X, label=y), num_boost_round=2)
    lrun = gitrun.last_active_run()
    assert lrun.info.run_id != xrun.info.run_id
    assert lrun.data.tags["mlflow.autologging"] == "lightgbm"
    assert lrun.data.tags["team"] == "fraud"
    assert "model" in {f.path for f in gitrun.MlflowClient().list_artifacts(lrun.info.run_id)}

    # exclusive=True: nothing is logged into a run the user started
    gitrun.lightgbm.autolog(exclusive=True)
    with gitrun.start_run() as mine:
        lgb.train({"verbose": -1, "min_data_in_leaf": 3}, lgb.Dataset(X, label=y), 2)
    assert gitrun.get_run(mine.info.run_id).data.params == {}

    gitrun.autolog(disable=True)
    for flavor in al.AUTOLOG_FLAVORS:
        assert not al.enabled(flavor), flavor
    assert not hasattr(xgb.train, "__gitrun_autolog_original__")
    assert not hasattr(lgb.train, "__gitrun_autolog_original__")
    xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y), num_boost_round=2)
    lgb.train({"verbose": -1, "min_data_in_leaf": 3}, lgb.Dataset(X, label=y), num_boost_round=2)
    assert gitrun.last_active_run().info.run_id == mine.info.run_id  # no new runs


def test_autolog_refuses_unknown_flavors_in_one_sentence():
    with pytest.raises(gitrun.GitrunError, match="Unknown flavor tensorflow in exclude_flavors"):
        gitrun.autolog(exclude_flavors=["tensorflow"])


def test_untested_version_warns_once_and_goes_on(repo, monkeypatch, autolog_off):
    xgb = pytest.importorskip("xgboost")
    monkeypatch.setattr(xgb, "__version__", "9.1.0")
    monkeypatch.setattr(al, "_version_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gitrun.xgboost.autolog(log_models=False)
        gitrun.xgboost.autolog(log_models=False)
    msgs = [str(w.message) for w in caught if "outside the versions" in str(w.message)]
    assert msgs == [
        "gitrun xgboost autologging: xgboost 9.1.0 is outside the versions gitrun's xgboost "
        "autologging is tested with (1.4 to 3.x); it may not log everything."
    ]
    X = np.arange(12.0).reshape(6, 2)
    xgb.train({"max_depth": 1}, xgb.DMatrix(X, label=X[:, 0]), num_boost_round=1)
    assert gitrun.last_active_run().data.params["max_depth"] == "1"  # still autologged
    monkeypatch.setattr(al, "_version_warned", set())
    gitrun.xgboost.autolog(disable_for_unsupported_versions=True, silent=True)
    assert not al.enabled("xgboost")


# ---------------------------------------------------------------------------
# gitrun record --autolog / GITRUN_AUTOLOG=1: the child's code does not import gitrun
# ---------------------------------------------------------------------------
XGB_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    d = xgb.DMatrix(X, label=y)
    xgb.train({"objective": "binary:logistic", "max_depth": 2}, d, num_boost_round=4,
              evals=[(d, "train")], verbose_eval=False)
    print("trained")
    """
)
LGB_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import lightgbm as lgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    lgb.LGBMRegressor(n_estimators=3, min_child_samples=3, verbose=-1).fit(
        X, X[:, 0], eval_set=[(X, X[:, 0])])
    print("trained")
    """
)
PLAIN_SCRIPT = textwrap.dedent(
    f"""
    import json, sys
    names = {list(FRAMEWORKS) + ["gitrun.tracking"]!r}
    print(json.dumps(sorted(n for n in names if n in sys.modules)))
    """
)


def _record(repo, script: str, *args: str, env: dict | None = None):
    (repo / "train.py").write_text(script)
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "script")
    p = run_cli("record", "-q", *args, "--", sys.executable, "train.py", cwd=repo, env=env)
    assert p.returncode == 0, p.stderr
    return p


def test_record_autolog_logs_an_xgboost_script_without_gitrun_in_it(repo):
    pytest.importorskip("xgboost")
    p = _record(repo, XGB_SCRIPT, "--autolog")
    assert "trained" in p.stdout
    rec = only_run(repo)
    assert rec.status == "FINISHED"
    assert rec.params == {
        "objective": "binary:logistic",
        "max_depth": "2",
        "num_boost_round": "4",
        "early_stopping_rounds": "None",
        "verbose_eval": "False",
        "maximize": "None",
        "custom_metric": "None",
    }
    assert set(rec.metrics) == {"train-logloss"}
    assert rec.tags["mlflow.autologging"] == "xgboost"
    assert json.loads(rec.tags["gitrun.record.options"])["autolog"] is True
    assert {"feature_importance_weight.json", "model/MLmodel"} <= set(rec.artifacts)
    steps = [m.step for m in gitrun.MlflowClient().get_metric_history(rec.run_id, "train-logloss")]
    assert steps == [0, 1, 2, 3]


def test_gitrun_autolog_env_logs_a_lightgbm_script(repo):
    pytest.importorskip("lightgbm")
    _record(repo, LGB_SCRIPT, env={"GITRUN_AUTOLOG": "1"})
    rec = only_run(repo)
    assert rec.params["num_boost_round"] == "3" and rec.params["objective"] == "regression"
    assert set(rec.metrics) == {"valid_0-l2"}
    assert rec.tags["mlflow.autologging"] == "lightgbm"
    assert "model/MLmodel" in rec.artifacts


def test_autolog_child_that_imports_no_framework_pays_for_none(repo, tmp_path):
    # the child's own sitecustomize (on its PYTHONPATH) still runs
    site = tmp_path / "own-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITE'] = 'ran'\n")
    script = PLAIN_SCRIPT + textwrap.dedent(
        """
        import os
        print(os.environ.get("OWN_SITE"), "gitrun.mlflow.autolog" in sys.modules)
        """
    )
    p = _record(repo, script, env={"GITRUN_AUTOLOG": "1", "PYTHONPATH": str(site)})
    loaded, own = p.stdout.splitlines()[-2:]
    assert json.loads(loaded) == []  # no framework, not even gitrun's tracking
    assert own == "ran True"  # its own sitecustomize ran, and autolog waits for imports
