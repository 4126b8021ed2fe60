"""MLflow compatibility: the same tracking script against gitrun and real MLflow, sklearn
autolog, MLflow-format models both ways, MlflowClient, and `gitrun import-mlflow`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import gitrun
from gitrun._git import Repo
from gitrun.cli import cli
from gitrun.format import store
from tests.conftest import IDENTITY, git, run_cli

# MLflow's quickstart, extended: identical for both, except the first line.
QUICKSTART = """
import json
import os

import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=42)

mlflow.set_experiment("quickstart")
uris = {}
for i, C in enumerate([0.01, 0.1, 1.0]):
    with mlflow.start_run(run_name=f"lr-C{C}") as run:
        mlflow.log_params({"C": C, "max_iter": 200})
        mlflow.log_param("solver", "lbfgs")
        model = LogisticRegression(C=C, max_iter=200).fit(X_train, y_train)
        pred = model.predict(X_test)
        mlflow.log_metric("accuracy", accuracy_score(y_test, pred))
        mlflow.log_metrics({"f1_score": f1_score(y_test, pred, average="macro")})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step)
        mlflow.set_tag("family", "linear")
        with open("notes.txt", "w") as f:
            f.write(f"C={C}\\n")
        mlflow.log_artifact("notes.txt")
        mlflow.log_dict({"C": C}, "config.json")
        info = mlflow.sklearn.log_model(model, name="model")
        uris[run.info.run_name] = info.model_uri

mlflow.sklearn.autolog()
with mlflow.start_run(run_name="autolog-rf"):
    RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X_train, y_train)
mlflow.sklearn.autolog(disable=True)

loaded = mlflow.sklearn.load_model(uris["lr-C1.0"])
same = bool((loaded.predict(X_test) == LogisticRegression(C=1.0, max_iter=200)
             .fit(X_train, y_train).predict(X_test)).all())
pyfunc_pred = mlflow.pyfunc.load_model(uris["lr-C0.1"]).predict(X_test[:5])

def frame(df):
    first = {c: int(df[c].notna().to_numpy().argmax()) for c in df.columns}
    return {"columns": list(df.columns), "names": list(df["tags.mlflow.runName"]),
            "first_row": first}

out = {
    "all": frame(mlflow.search_runs(experiment_names=["quickstart"])),
    "filtered": frame(mlflow.search_runs(
        experiment_names=["quickstart"],
        filter_string="metrics.accuracy > 0.5 and params.solver = 'lbfgs'",
        order_by=["metrics.accuracy DESC", "params.C ASC"],
    )),
    "best": frame(mlflow.search_runs(
        experiment_names=["quickstart"], order_by=["metrics.f1_score DESC"], max_results=1
    )),
    "by_name": frame(mlflow.search_runs(
        experiment_names=["quickstart"], order_by=["attributes.run_name ASC"]
    )),
    "same_predictions": same,
    "pyfunc_rows": len(pyfunc_pred),
}
print("RESULT " + json.dumps(out))
"""

# Run after the quickstart in the MLflow process: load what gitrun logged, describe runs.
MLFLOW_EXTRA = """
import json, os, sys
import mlflow, mlflow.pyfunc, mlflow.sklearn
import numpy as np
model_dir = os.environ["GITRUN_MODEL_DIR"]
X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
sk = mlflow.sklearn.load_model(model_dir)
py = mlflow.pyfunc.load_model(model_dir)
runs = {}
client = mlflow.MlflowClient()
for r in mlflow.search_runs(search_all_experiments=True, output_format="list"):
    runs[r.info.run_id] = {
        "name": r.info.run_name,
        "status": r.info.status,
        "params": r.data.params,
        "tags": {k: v for k, v in r.data.tags.items()},
        "loss": [[m.step, m.value] for m in client.get_metric_history(r.info.run_id, "loss")],
        "metrics": r.data.metrics,
    }
print("EXTRA " + json.dumps({
    "sk": sk.predict(X).tolist(), "py": list(map(int, py.predict(X))), "runs": runs,
}))
# an old-style mlruns directory, for import-mlflow
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
mlflow.set_tracking_uri("file://" + os.path.abspath("mlruns"))
mlflow.set_experiment("old")
with mlflow.start_run(run_name="from-mlruns"):
    mlflow.log_param("p", "1")
    for s in range(4):
        mlflow.log_metric("m", s * 0.5, step=s)
"""


def _result(proc: subprocess.CompletedProcess, tag: str) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in proc.stdout.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"no {tag} line in output: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    env.update(IDENTITY)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(gitrun.__file__)))]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def gitrun_side(tmp_path_factory):
    pytest.importorskip("sklearn")
    d = tmp_path_factory.mktemp("gitrun-side")
    git(d, "init", "-q", "-b", "main", env=IDENTITY)
    (d / ".gitignore").write_text("notes.txt\n")
    git(d, "add", ".", env=IDENTITY)
    git(d, "commit", "-qm", "init", env=IDENTITY)
    script = d / "quickstart.py"
    script.write_text("import gitrun as mlflow\n" + QUICKSTART)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=d,
        env=_env(HOME=str(d)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return d, _result(proc, "RESULT")


@pytest.fixture(scope="module")
def mlflow_side(tmp_path_factory, gitrun_side):
    pytest.importorskip("mlflow")
    d = tmp_path_factory.mktemp("mlflow-side")
    gdir, _ = gitrun_side
    # A model gitrun logged, as files, for MLflow to load.
    model_dir = d / "gitrun-model"
    dl = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gitrun, sys; c = gitrun.MlflowClient(); "
            "r = c.search_runs(['quickstart'], \"tags.mlflow.runName = 'lr-C1.0'\")[0]; "
            "print(c.download_artifacts(r.info.run_id, 'model', sys.argv[1]))",
            str(model_dir),
        ],
        cwd=gdir,
        env=_env(HOME=str(d)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dl.returncode == 0, dl.stderr
    script = d / "quickstart.py"
    script.write_text("import mlflow\n" + QUICKSTART)
    (d / "extra.py").write_text(MLFLOW_EXTRA)
    db = d / "mlflow.db"
    driver = "import runpy; runpy.run_path('quickstart.py'); runpy.run_path('extra.py')"
    proc = subprocess.run(
        [sys.executable, "-c", driver],
        cwd=d,
        env=_env(
            HOME=str(d),
            MLFLOW_TRACKING_URI=f"sqlite:///{db}",
            GITRUN_MODEL_DIR=dl.stdout.strip(),
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return d, _result(proc, "RESULT"), _result(proc, "EXTRA"), f"sqlite:///{db}"


# ---------------------------------------------------------------------------
# the quickstart
# ---------------------------------------------------------------------------
def test_quickstart_runs_against_gitrun(gitrun_side):
    d, out = gitrun_side
    assert out["same_predictions"] is True
    assert out["pyfunc_rows"] == 5
    assert sorted(out["all"]["names"]) == ["autolog-rf", "lr-C0.01", "lr-C0.1", "lr-C1.0"]
    assert out["by_name"]["names"] == ["autolog-rf", "lr-C0.01", "lr-C0.1", "lr-C1.0"]
    assert len(out["best"]["names"]) == 1
    assert "autolog-rf" not in out["filtered"]["names"]
    cols = out["all"]["columns"]
    assert cols[:6] == [
        "run_id",
        "experiment_id",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
    ]
    for c in (
        "metrics.accuracy",
        "metrics.training_accuracy_score",
        "params.C",
        "params.n_estimators",
        "tags.estimator_name",
        "tags.family",
    ):
        assert c in cols
    # Every run is a commit on the runs ref.
    assert len(git(d, "rev-list", "--first-parent", store.RUNS_REF).split()) == 5  # + root


def _groups(frame: dict) -> dict[str, list[tuple[int, str]]]:
    """Columns per group as (first row having it, name), in frame order; system tags out
    (gitrun adds gitrun.*, MLflow its own bookkeeping tags)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for c in frame["columns"][6:]:
        group = c.split(".", 1)[0]
        if group == "tags" and c.startswith(("tags.mlflow.", "tags.gitrun.")):
            if c != "tags.mlflow.runName":
                continue
        out.setdefault(group, []).append((frame["first_row"][c], c))
    return out


def test_search_runs_frame_matches_real_mlflow(gitrun_side, mlflow_side):
    _, g = gitrun_side
    _, m, _, _ = mlflow_side
    if os.environ.get("MLCOMPAT_DEBUG_DUMP"):
        with open(os.environ["MLCOMPAT_DEBUG_DUMP"], "w") as f:
            json.dump({"gitrun": g, "mlflow": m}, f, indent=1)
    assert m["same_predictions"] is True
    for key in ("all", "filtered", "best", "by_name"):
        gf, mf = g[key], m[key]
        assert gf["names"] == mf["names"], key  # same rows, same order
        assert gf["columns"][:6] == mf["columns"][:6], key
        # Groups in the same order (metrics, params, tags) with the same columns, each
        # column placed by the first row that has it.  Keys that first appear in the same
        # run are in no defined order in MLflow (its store decides); gitrun sorts them.
        gg, mg = _groups(gf), _groups(mf)
        assert list(gg) == list(mg), key
        for group in gg:
            assert sorted(gg[group]) == sorted(mg[group]), (key, group)
            assert [r for r, _ in gg[group]] == sorted(r for r, _ in gg[group]), (key, group)
            assert [r for r, _ in mg[group]] == sorted(r for r, _ in mg[group]), (key, group)


def test_mlflow_loads_a_model_gitrun_logged(mlflow_side):
    _, _, extra, _ = mlflow_side
    assert extra["sk"] == extra["py"]
    assert len(extra["sk"]) == 2


# ---------------------------------------------------------------------------
# import-mlflow
# ---------------------------------------------------------------------------
def test_import_mlflow_runs_and_reimport_adds_nothing(mlflow_side, repo):
    _, _, extra, uri = mlflow_side
    first = run_cli("import-mlflow", "--tracking-uri", uri, cwd=repo, env=_env())
    assert first.returncode == 0, first.stderr
    assert "Imported 4 MLflow run(s)" in first.stderr
    r = Repo.discover()
    recs = store.read_records(
        r, store.list_run_trees(r), store.DEFAULT_FILES + (store.HISTORY_FILE,)
    )
    by_mlflow = {rec.tags["mlflow.import.run_id"]: rec for rec in recs.values()}
    assert set(by_mlflow) == set(extra["runs"])
    for mid, want in extra["runs"].items():
        rec = by_mlflow[mid]
        assert rec.run_name == want["name"]
        assert rec.experiment == "quickstart"
        assert rec.status == want["status"]
        assert rec.params == want["params"]
        for k, v in want["tags"].items():
            assert rec.tags[k] == v
        assert [[m.step, m.value] for m in rec.history.get("loss", [])] == want["loss"]
        assert rec.metrics == pytest.approx(want["metrics"])
    lr = next(rec for rec in by_mlflow.values() if rec.run_name == "lr-C1.0")
    full = store.read_record(r, lr.run_id, lr.tree)
    assert {"notes.txt", "config.json"} <= set(full.artifacts)
    assert git(repo, "cat-file", "-p", full.artifacts["notes.txt"].blob) == "C=1.0\n"
    n = len(recs)
    again = run_cli("import-mlflow", "-u", uri, cwd=repo, env=_env())
    assert again.returncode == 0, again.stderr
    assert "Imported 0 MLflow run(s); skipped 4" in again.stderr
    quiet = run_cli("import-mlflow", "-u", uri, "-q", "-e", "quickstart", cwd=repo, env=_env())
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert len(store.list_run_trees(r)) == n


def test_import_mlflow_from_mlruns_directory(mlflow_side, repo):
    d, _, _, _ = mlflow_side
    p = run_cli("import-mlflow", "-u", str(d / "mlruns"), "-e", "old", "-q", cwd=repo, env=_env())
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    (rec,) = [_committed(i) for i in store.list_run_trees(Repo.discover())]
    assert rec.run_name == "from-mlruns" and rec.experiment == "old"
    assert rec.status == "FINISHED" and rec.params == {"p": "1"}
    assert [(m.step, m.value) for m in rec.history["m"]] == [(s, s * 0.5) for s in range(4)]
    assert rec.start_time and rec.end_time and rec.end_time >= rec.start_time


def test_import_mlflow_without_mlflow_says_how_to_install(repo, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    (repo / "mlruns").mkdir()
    result = CliRunner().invoke(cli, ["import-mlflow", "-u", "mlruns"])
    assert result.exit_code == 1
    assert "pip install mlflow" in result.output


def test_import_mlflow_missing_store(repo):
    pytest.importorskip("mlflow")  # without it, the command first says how to install it
    result = CliRunner().invoke(cli, ["import-mlflow", "-u", "no/such/mlruns"])
    assert result.exit_code == 1
    assert "does not exist" in result.output


# ---------------------------------------------------------------------------
# sklearn autolog (in-process, gitrun only)
# ---------------------------------------------------------------------------
@pytest.fixture
def sk():
    pytest.importorskip("sklearn")
    import gitrun.mlflow.sklearn as gsk

    yield gsk
    gsk.autolog(disable=True)


def _committed(run_id: str):
    r = Repo.discover()
    return store.read_record(r, run_id, store.list_run_trees(r)[run_id])


CLASSIFIER_METRICS = {
    "training_accuracy_score",
    "training_precision_score",
    "training_recall_score",
    "training_f1_score",
    "training_log_loss",
    "training_roc_auc",
    "training_score",
}
REGRESSOR_METRICS = {
    "training_mean_squared_error",
    "training_root_mean_squared_error",
    "training_mean_absolute_error",
    "training_r2_score",
    "training_score",
}


def test_autolog_classifier_starts_and_ends_a_run(repo, sk):
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True)
    sk.autolog()
    est = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    est.fit(X, y)
    assert gitrun.active_run() is None
    rec = _committed(gitrun.last_active_run().info.run_id)
    assert rec.status == "FINISHED"
    assert rec.params == {k: str(v) for k, v in est.get_params(deep=True).items()}
    assert rec.tags["estimator_name"] == "RandomForestClassifier"
    assert rec.tags["estimator_class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert set(rec.metrics) == CLASSIFIER_METRICS
    assert rec.metrics["training_accuracy_score"] == pytest.approx(est.score(X, y))
    assert {
        "model/MLmodel",
        "model/model.pkl",
        "model/requirements.txt",
        "model/python_env.yaml",
        "model/conda.yaml",
    } <= set(rec.artifacts)
    loaded = sk.load_model(f"runs:/{rec.run_id}/model")
    assert (loaded.predict(X) == est.predict(X)).all()
    assert (
        gitrun.pyfunc.load_model(f"runs:/{rec.run_id}/model").predict(X[:3]) == est.predict(X[:3])
    ).all()


def test_autolog_regressor_attaches_to_active_run(repo, sk):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    sk.autolog(log_models=False)
    with gitrun.start_run(run_name="mine") as run:
        gitrun.log_param("data", "diabetes")
        Ridge(alpha=0.5).fit(X, y)
        assert gitrun.active_run() is run
    rec = _committed(run.info.run_id)
    assert rec.run_name == "mine"
    assert rec.params["data"] == "diabetes" and rec.params["alpha"] == "0.5"
    assert set(rec.metrics) == REGRESSOR_METRICS
    assert rec.metrics["training_root_mean_squared_error"] == pytest.approx(
        rec.metrics["training_mean_squared_error"] ** 0.5
    )
    assert not any(p.startswith("model/") for p in rec.artifacts)
    assert len(store.list_run_trees(Repo.discover())) == 1


def test_autolog_pipeline_and_search_log_once(repo, sk):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    sk.autolog()
    pipe = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=200))])
    pipe.fit(X, y)
    GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
    every = [_committed(i) for i in store.list_run_trees(Repo.discover())]
    recs = [r for r in every if "mlflow.parentRunId" not in r.tags]
    children = [r for r in every if "mlflow.parentRunId" in r.tags]
    assert len(recs) == 2  # one per top-level fit, none for steps or CV folds
    assert len(children) == 2  # MLflow's child run per search candidate (not per fold)
    by = {r.tags["estimator_name"]: r for r in recs}
    assert set(by) == {"Pipeline", "GridSearchCV"}
    assert by["Pipeline"].params["lr__max_iter"] == "200"
    assert by["GridSearchCV"].params["best_C"] in ("0.1", "1.0")
    assert "best_cv_score" in by["GridSearchCV"].metrics
    assert sum(p == "model/MLmodel" for p in by["Pipeline"].artifacts) == 1


def test_autolog_disable_unpatches(repo, sk):
    from sklearn.linear_model import LinearRegression

    sk.autolog()
    sk.autolog(disable=True)
    LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    assert store.list_run_trees(Repo.discover()) == {}
    assert not isinstance(LinearRegression.__dict__["fit"], sk._PatchedMethod)


def test_autolog_failed_fit_marks_run_failed(repo, sk):
    from sklearn.linear_model import LinearRegression

    sk.autolog()
    with pytest.raises(ValueError):
        LinearRegression().fit([[0.0], [1.0]], [0.0])
    rec = _committed(gitrun.last_active_run().info.run_id)
    assert rec.status == "FAILED"


def test_log_model_save_model_load_model(repo, sk, tmp_path):
    import yaml
    from sklearn.linear_model import LinearRegression

    est = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
    with gitrun.start_run() as run:
        info = sk.log_model(est, "reg")  # MLflow 2.x style: artifact_path positional
    assert info.model_uri == f"runs:/{run.info.run_id}/reg"
    meta = yaml.safe_load(
        git(
            repo,
            "show",
            f"{store.RUNS_REF}:runs/{run.info.run_id[:2]}/{run.info.run_id}/artifacts/reg/MLmodel",
        )
    )
    assert meta["artifact_path"] == "reg" and meta["run_id"] == run.info.run_id
    pf = meta["flavors"]["python_function"]
    assert pf["loader_module"] == "mlflow.sklearn" and pf["model_path"] == "model.pkl"
    assert pf["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert meta["flavors"]["sklearn"]["pickled_model"] == "model.pkl"
    assert sk.load_model(info.model_uri).predict([[3.0]])[0] == pytest.approx(7.0)
    sk.save_model(est, str(tmp_path / "saved"))
    assert sk.load_model(str(tmp_path / "saved")).predict([[4.0]])[0] == pytest.approx(9.0)
    with pytest.raises(gitrun.GitrunError, match="not empty"):
        sk.save_model(est, str(tmp_path / "saved"))
    with gitrun.start_run():  # the registry is refs/gitrun/models (tests/test_registry.py)
        reg_info = sk.log_model(est, name="m", registered_model_name="prod")
    assert reg_info.registered_model_version == 1
    with pytest.raises(gitrun.GitrunError, match="cannot contain"):
        sk.log_model(est, name="m", registered_model_name="a/b")


def test_gitrun_sklearn_without_sklearn_says_how_to_install(tmp_path):
    code = "import sys; sys.modules['sklearn'] = None\nimport gitrun as mlflow\nmlflow.sklearn"
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=tmp_path
    )
    assert p.returncode != 0
    assert "pip install 'gitrun-ml[sklearn]'" in p.stderr
    assert "ImportError" in p.stderr or "MissingDependencyError" in p.stderr


# ---------------------------------------------------------------------------
# MlflowClient and the module-level gaps
# ---------------------------------------------------------------------------
def test_client_create_log_batch_terminate(repo):
    from gitrun.tracking.client import MlflowClient

    c = MlflowClient()
    run = c.create_run("exp1", run_name="by-client", tags={"k": "v"})
    rid = run.info.run_id
    assert run.info.status == "RUNNING" and run.info.experiment_id == "exp1"
    c.log_batch(
        rid,
        metrics=[gitrun.Metric("loss", 0.5, 1000, 0), gitrun.Metric("loss", 0.25, 2000, 1)],
        params=[gitrun.Param("lr", "0.1")],
        tags=[gitrun.RunTag("stage", "dev")],
    )
    c.log_metric(rid, "acc", 0.9, step=3)
    c.log_param(rid, "depth", 4)
    c.set_tag(rid, "owner", "me")
    c.log_text(rid, "hi", "notes/a.txt")
    assert c.get_run(rid).info.status == "RUNNING"
    c.set_terminated(rid)
    rec = _committed(rid)
    assert rec.status == "FINISHED" and rec.run_name == "by-client"
    assert rec.params == {"lr": "0.1", "depth": "4"}
    assert rec.tags["k"] == "v" and rec.tags["stage"] == "dev" and rec.tags["owner"] == "me"
    assert [(m.step, m.value) for m in c.get_metric_history(rid, "loss")] == [(0, 0.5), (1, 0.25)]
    assert [f.path for f in c.list_artifacts(rid)] == ["notes"]
    assert [f.path for f in c.list_artifacts(rid, "notes")] == ["notes/a.txt"]
    with pytest.raises(gitrun.GitrunError, match="Duplicate param"):
        c.log_batch(rid, params=[gitrun.Param("x", "1"), gitrun.Param("x", "2")])


def test_client_logs_to_finished_run_and_deletes(repo, tmp_path):
    from gitrun.tracking.client import MlflowClient

    with gitrun.start_run(run_name="done") as run:
        gitrun.log_param("a", 1)
        gitrun.log_metric("m", 1.0, step=0)
    rid = run.info.run_id
    before = _committed(rid)
    c = MlflowClient()
    c.log_metric(rid, "m", 2.0, step=1)
    c.set_tag(rid, "late", "yes")
    (tmp_path / "f.txt").write_text("x")
    c.log_artifact(rid, str(tmp_path / "f.txt"), "extra")
    with pytest.raises(gitrun.GitrunError, match="Changing param values"):
        c.log_param(rid, "a", 2)
    after = _committed(rid)
    assert after.status == "FINISHED" and after.end_time == before.end_time
    assert [m.value for m in after.history["m"]] == [1.0, 2.0] and after.metrics["m"] == 2.0
    assert after.tags["late"] == "yes" and "extra/f.txt" in after.artifacts
    assert after.code == before.code and after.env_blob == before.env_blob
    assert after.updated_time > before.updated_time
    path = c.download_artifacts(rid, "extra/f.txt", str(tmp_path / "dl"))
    assert open(path).read() == "x"
    c.delete_run(rid)
    assert _committed(rid).lifecycle_stage == "deleted"
    c.restore_run(rid)
    assert _committed(rid).lifecycle_stage == "active"
    # the active run this process owns is reached through its journal
    with gitrun.start_run() as live:
        c.log_metric(live.info.run_id, "x", 1.0)
        c.set_terminated(live.info.run_id, "KILLED")
    assert _committed(live.info.run_id).status == "KILLED"
    assert gitrun.active_run() is None


def test_client_search_runs_and_experiments(repo):
    pytest.importorskip("pandas")
    c = gitrun.MlflowClient()
    for i in range(3):
        with gitrun.start_run(run_name=f"r{i}", experiment_id="e"):
            gitrun.log_metric("score", float(i))
    runs = c.search_runs(["e"], "metrics.score >= 1", order_by=["metrics.score DESC"])
    assert [r.info.run_name for r in runs] == ["r2", "r1"]
    assert c.get_experiment_by_name("e").experiment_id == "e"
    assert [e.name for e in c.search_experiments()] == ["e"]


def test_unimplemented_mlflow_names_raise_with_alternative(repo):
    import gitrun as mlflow

    for name, alt in [
        ("log_table", "log_dict"),
        ("log_inputs", "log_input"),
        ("evaluate", "log_metrics"),
    ]:
        assert hasattr(mlflow, name)
        with pytest.raises(NotImplementedError, match=alt):
            getattr(mlflow, name)()
    with pytest.raises(NotImplementedError, match="no tracking server"):
        mlflow.set_tracking_uri("http://localhost:5000")
    mlflow.set_tracking_uri(None)
    mlflow.set_tracking_uri("./mlruns")
    assert mlflow.get_tracking_uri().startswith("gitrun:")
    assert not hasattr(mlflow, "definitely_not_mlflow")
    assert mlflow.exceptions.MlflowException is gitrun.GitrunError


def test_import_gitrun_stays_light():
    code = textwrap.dedent(
        """
        import sys, gitrun as mlflow
        mlflow.autolog, mlflow.set_tracking_uri, mlflow.register_model
        heavy = [m for m in ("pandas", "sklearn", "mlflow", "git", "numpy") if m in sys.modules]
        print(heavy)
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
