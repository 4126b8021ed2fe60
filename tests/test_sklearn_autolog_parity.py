"""sklearn autolog side by side with real MLflow: the same script (same data, same seeds)
under `import gitrun as mlflow` and under `import mlflow` (sqlite store in a temp dir); the
runs' param keys, metric keys, autolog tags and artifact names must agree, for plain
estimators and for parameter searches with their child runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import IDENTITY, git
from tests.test_mlflow_compat import _env

pytest.importorskip("sklearn")
pytest.importorskip("mlflow")

# Runs under both systems; `mlflow` is gitrun or real MLflow. Writes out.json.
SCRIPT = """
import json, logging, os, warnings
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

Xi, yi = load_iris(return_X_y=True)
Xb, yb = load_breast_cancer(return_X_y=True)
Xb, yb = Xb[:80, :4], yb[:80]
Xd, yd = load_diabetes(return_X_y=True)
Xd, yd = Xd[:60], yd[:60]
client = mlflow.MlflowClient()
runs = {}

def last():
    return mlflow.last_active_run().info.run_id

mlflow.sklearn.autolog()
# plain estimators
LogisticRegression(max_iter=500).fit(Xb, yb)
runs["binary"] = last()
RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(Xi, yi)
runs["multiclass"] = last()
Ridge(alpha=0.5).fit(Xd, yd)
runs["regressor"] = last()
StandardScaler().fit(Xd)  # data preparation gets no run of its own
transformer_run = last() != runs["regressor"]
with mlflow.start_run() as r:
    LogisticRegression(max_iter=500).fit(Xi, yi)
runs["in_user_run"] = r.info.run_id
# parameter searches
gs = GridSearchCV(
    DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4, 5, 6]}, cv=2
)
gs.fit(Xi, yi)
runs["grid"] = last()
mlflow.sklearn.autolog(max_tuning_runs=2)
pipe = make_pipeline(StandardScaler(), LogisticRegression())
RandomizedSearchCV(
    pipe, {"logisticregression__C": [0.1, 1.0, 10.0]}, n_iter=3, cv=2, random_state=0,
    return_train_score=True,
).fit(Xb, yb)
runs["randomized"] = last()
mlflow.sklearn.autolog(disable=True)

KEEP = ("estimator_name", "estimator_class", "mlflow.autologging", "mlflow.parentRunId")

def walk(rid, path=None):
    out = []
    for f in client.list_artifacts(rid, path):
        out += walk(rid, f.path) if f.is_dir else [f.path]
    return out

def describe(rid, parent=None):
    r = client.get_run(rid)
    tags = {k: v for k, v in r.data.tags.items() if k in KEEP}
    if parent:
        tags["mlflow.parentRunId"] = tags["mlflow.parentRunId"] == parent
    return {"params": r.data.params, "metrics": r.data.metrics, "tags": tags,
            "artifacts": sorted(walk(rid)), "experiment_id": r.info.experiment_id}

def model_names(rid):
    if IS_GITRUN:  # gitrun keeps models as run artifacts: the directories with an MLmodel
        return sorted(p.split("/")[0] for p in walk(rid) if p.endswith("/MLmodel"))
    exp = client.get_run(rid).info.experiment_id
    found = mlflow.search_logged_models(experiment_ids=[exp], output_format="list")
    return sorted(m.name for m in found if m.source_run_id == rid)

out = {}
for name, rid in runs.items():
    d = describe(rid)
    d["models"] = model_names(rid)
    children = client.search_runs(
        [d["experiment_id"]], f"tags.mlflow.parentRunId = '{rid}'"
    )
    d["children"] = [describe(c.info.run_id, rid) for c in children]
    fluent = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{rid}'")
    d["fluent_children"] = sorted(fluent["run_id"])
    d["child_ids"] = sorted(c.info.run_id for c in children)
    out[name] = d
out["transformer_run"] = transformer_run
out["best_prediction"] = gs.best_estimator_.predict(Xi).tolist()
if IS_GITRUN:
    dst = os.path.join(os.getcwd(), "downloaded")
    os.makedirs(dst)
    out["best_dir"] = client.download_artifacts(runs["grid"], "best_estimator", dst)
else:
    import mlflow.sklearn
    loaded = mlflow.sklearn.load_model(os.environ["GITRUN_BEST_DIR"])
    out["loaded_prediction"] = loaded.predict(Xi).tolist()
json.dump(out, open("out.json", "w"))
"""


def _run(tmp_path, gitrun_side: bool, extra_env: dict[str, str] | None = None):
    d = tmp_path / ("gitrun" if gitrun_side else "mlflow")
    d.mkdir()
    if gitrun_side:
        git(d, "init", "-q", "-b", "main", env=IDENTITY)
        (d / "README").write_text("x\n")
        git(d, "add", ".", env=IDENTITY)
        git(d, "commit", "-qm", "init", env=IDENTITY)
        head = "import gitrun as mlflow\nIS_GITRUN = True\n"
    else:
        head = (
            "import mlflow\nIS_GITRUN = False\n"
            f"mlflow.set_tracking_uri('sqlite:///{d / 'mlflow.db'}')\n"
        )
    (d / "train.py").write_text(head + SCRIPT)
    proc = subprocess.run(
        [sys.executable, "train.py"],
        cwd=d,
        env=_env(HOME=str(d), **(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((d / "out.json").read_text())


def _without_models(paths: list[str], models: list[str]) -> list[str]:
    return [p for p in paths if p.split("/")[0] not in models]


def _same_run(g: dict, m: dict, what: str, values: bool = True) -> None:
    assert sorted(g["params"]) == sorted(m["params"]), what
    if values:
        assert g["params"] == m["params"], what
    assert sorted(g["metrics"]) == sorted(m["metrics"]), what
    for k, v in m["metrics"].items():
        if "time" not in k:  # fit/score times differ; everything else is deterministic
            assert g["metrics"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), (what, k)
    assert g["tags"] == m["tags"], what


def _compare(g: dict, m: dict) -> None:
    for name in m:
        if not isinstance(m[name], dict) or "params" not in m[name]:
            assert g[name] == m[name], name
            continue
        gr, mr = g[name], m[name]
        _same_run(gr, mr, name)
        # MLflow 3 keeps models outside the run (logged models); gitrun keeps them as the
        # run's artifact directories of the same names.
        assert gr["models"] == mr["models"], name
        assert _without_models(gr["artifacts"], gr["models"]) == mr["artifacts"], name
        for model in gr["models"]:
            assert f"{model}/MLmodel" in gr["artifacts"] and f"{model}/model.pkl" in gr["artifacts"]
        assert len(gr["children"]) == len(mr["children"]), name
        assert gr["fluent_children"] == gr["child_ids"], name
        assert len(mr["fluent_children"]) == len(mr["children"]), name
        gc = sorted(gr["children"], key=lambda c: json.dumps(c["params"], sort_keys=True))
        mc = sorted(mr["children"], key=lambda c: json.dumps(c["params"], sort_keys=True))
        for a, b in zip(gc, mc):
            _same_run(a, b, f"{name} child")
            assert a["artifacts"] == b["artifacts"] == []


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    """One script, run by gitrun then by real MLflow (which loads gitrun's best_estimator)."""
    tmp = tmp_path_factory.mktemp("autolog-parity")
    g = _run(tmp, True)
    m = _run(tmp, False, {"GITRUN_BEST_DIR": g["best_dir"]})
    return g, m


def test_estimators_match_mlflow(sides):
    g, m = sides
    names = ("binary", "multiclass", "regressor", "in_user_run", "transformer_run")
    _compare({k: g[k] for k in names}, {k: m[k] for k in names})
    arts = g["binary"]["artifacts"]
    assert {"estimator.html", "training_confusion_matrix.png", "training_roc_curve.png"} <= set(
        arts
    ) and "training_precision_recall_curve.png" in arts
    assert "training_roc_curve.png" not in g["multiclass"]["artifacts"]
    assert g["regressor"]["artifacts"] == ["estimator.html"] + [
        p for p in g["regressor"]["artifacts"] if p.startswith("model/")
    ]
    assert g["transformer_run"] is False
    assert "mlflow.autologging" not in g["in_user_run"]["tags"]
    assert g["binary"]["tags"]["mlflow.autologging"] == "sklearn"


def test_parameter_search_matches_mlflow(sides):
    g, m = sides
    _compare({k: g[k] for k in ("grid", "randomized")}, {k: m[k] for k in ("grid", "randomized")})
    grid = g["grid"]
    assert grid["models"] == ["best_estimator", "model"]
    assert "cv_results.csv" in grid["artifacts"]
    assert {"best_max_depth", "param_grid", "estimator"} <= set(grid["params"])
    assert "criterion" not in grid["params"]  # a search's params are shallow, as in MLflow
    assert "best_cv_score" in grid["metrics"]
    assert len(grid["children"]) == 5  # max_tuning_runs=5 of the 6 candidates
    assert len(grid["fluent_children"]) == 5
    assert all(c["tags"]["mlflow.parentRunId"] is True for c in grid["children"])
    ranks = sorted(c["metrics"]["rank_test_score"] for c in grid["children"])
    assert ranks == sorted(ranks)[:5] and max(ranks) < 6  # the best-ranked candidates
    assert len(g["randomized"]["children"]) == 2  # max_tuning_runs=2
    assert "mean_train_score" in g["randomized"]["children"][0]["metrics"]
    # the gitrun-logged best_estimator loads with real mlflow.sklearn.load_model
    assert m["loaded_prediction"] == g["best_prediction"]
