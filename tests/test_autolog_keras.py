"""Keras 3 autolog (torch backend) and the keras model flavor, on tiny random arrays: the exact
params, metrics (with their steps), tags and artifacts MLflow's autolog records, the model
round trip through gitrun and real MLflow, and the same keys as `mlflow.keras.autolog()`
side by side."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from tests.autolog_helpers import artifact_paths, metric_history, run_side  # noqa: E402
from tests.test_mlflow_compat import _env  # noqa: E402

np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")

import gitrun  # noqa: E402
import gitrun.keras  # noqa: E402
from gitrun.cli import cli  # noqa: E402
from gitrun.mlflow import autolog as autolog_mod  # noqa: E402

FIT_PARAMS = {
    "batch_size",
    "epochs",
    "validation_split",
    "shuffle",
    "class_weight",
    "sample_weight",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
}


def _data(n: int = 32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    return x, y


def _model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [keras.Input([4]), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)]
    )
    m.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return m


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    gitrun.keras.autolog(disable=True)


def test_keras_fit_logs_what_mlflow_logs(repo):
    x, y = _data()
    gitrun.keras.autolog()
    model = _model()
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0)
    run = gitrun.last_active_run()
    rid = run.info.run_id
    client = gitrun.MlflowClient()
    params = run.data.params
    optimizer = {k for k in params if k.startswith("optimizer_")}
    assert set(params) == FIT_PARAMS | optimizer
    assert {"optimizer_name", "optimizer_learning_rate", "optimizer_beta_1"} <= optimizer
    assert params["optimizer_name"] == "adam" and params["batch_size"] == "8"
    assert params["epochs"] == "2" and params["shuffle"] == "True"
    assert float(params["optimizer_learning_rate"]) == pytest.approx(0.01)
    assert set(run.data.metrics) == {
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "validation_loss",
        "validation_accuracy",
    }
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        steps = metric_history(client, rid, key)
        assert [s for s, _ in steps] == [0, 1], key  # step = epoch
        assert [v for _, v in steps] == pytest.approx(history.history[key]), key
    # as MLflow: each validation pass's logs at step 0
    assert metric_history(client, rid, "validation_loss") == [
        (0, pytest.approx(v)) for v in history.history["val_loss"]
    ]
    assert run.data.tags["mlflow.autologging"] == "keras"
    arts = artifact_paths(client, rid)
    assert {
        "model_summary.txt",
        "model/MLmodel",
        "model/data/model.keras",
        "model/data/keras_module.txt",
        "model/requirements.txt",
    } <= set(arts)
    summary = gitrun.artifacts.load_text(f"runs:/{rid}/model_summary.txt")
    assert "dense" in summary and "Total params" in summary
    info = gitrun.models.get_model_info(f"runs:/{rid}/model")
    assert info.flavors["keras"]["keras_backend"] == "torch"
    assert info.flavors["keras"]["save_exported_model"] is False
    assert info.flavors["python_function"]["loader_module"] == "mlflow.keras"
    assert info.signature.inputs.to_dict() == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}
    ]
    expected = model.predict(x, verbose=0)
    loaded = gitrun.keras.load_model(f"runs:/{rid}/model")
    assert np.allclose(loaded.predict(x, verbose=0), expected)
    assert np.allclose(gitrun.pyfunc.load_model(f"runs:/{rid}/model").predict(x), expected)
    shown = CliRunner().invoke(cli, ["show", rid, "--format", "json"])
    assert {(i["kind"], i["context"]) for i in json.loads(shown.stdout)["inputs"]} == {
        ("dataset", "train"),
        ("dataset", "eval"),
    }


def test_step_logging_disable_log_models_and_outermost(repo, monkeypatch):
    x, y = _data()
    gitrun.keras.autolog(log_every_epoch=False, log_every_n_steps=2, log_models=False)
    _model().fit(x, y, batch_size=8, epochs=2, verbose=0)
    run = gitrun.last_active_run()
    client = gitrun.MlflowClient()
    # 4 batches per epoch: logged at optimizer iterations 2, 4, 6, 8
    assert [s for s, _ in metric_history(client, run.info.run_id, "loss")] == [2, 4, 6, 8]
    assert artifact_paths(client, run.info.run_id) == ["model_summary.txt"]  # no model

    gitrun.keras.autolog(extra_tags={"team": "ml"})
    inner_runs = []

    class InnerFit(keras.callbacks.Callback):
        """A second fit inside the first one: only the outer fit is logged."""

        def on_train_end(self, logs=None):
            _model().fit(x, y, batch_size=16, epochs=3, verbose=0)
            inner_runs.append(gitrun.active_run().info.run_id)

    _model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[InnerFit()])
    run = gitrun.last_active_run()
    assert inner_runs == [run.info.run_id]
    assert run.data.params["epochs"] == "1" and run.data.params["batch_size"] == "8"
    assert [s for s, _ in metric_history(client, run.info.run_id, "loss")] == [0]
    assert run.data.tags["team"] == "ml"

    gitrun.keras.autolog(disable=True)
    _model().fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert gitrun.last_active_run().info.run_id == run.info.run_id  # nothing new

    monkeypatch.setattr(gitrun.keras, "MAX_KERAS_VERSION", "3.0")
    monkeypatch.setattr(autolog_mod, "_version_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gitrun.keras.autolog(log_models=False)
        gitrun.keras.autolog(log_models=False)
    assert len([w for w in caught if "outside the versions" in str(w.message)]) == 1
    _model().fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert gitrun.last_active_run().info.run_id != run.info.run_id  # it goes on


def test_save_model_checks_and_missing_keras(tmp_path):
    x, _y = _data(4)
    model = _model()
    d = tmp_path / "m"
    gitrun.keras.save_model(model, str(d), signature=gitrun.keras.get_model_signature(model))
    assert (d / "data" / "keras_module.txt").read_text() == "keras"
    expected = model.predict(x, verbose=0)
    assert np.allclose(gitrun.keras.load_model(str(d)).predict(x, verbose=0), expected)
    with pytest.raises(gitrun.exceptions.MlflowException, match="keras.Model"):
        gitrun.keras.save_model("not a model", str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
    code = (
        "import sys\n"
        "sys.modules['keras'] = None\n"
        "import gitrun\n"
        "try:\n"
        "    gitrun.keras.autolog()\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=tmp_path
    )
    assert p.stdout.strip() == (
        "MissingDependencyError This needs keras, which is not installed; install it with "
        "`pip install 'gitrun-ml[keras]'`."
    ), p.stderr


# --- side by side with real MLflow --------------------------------------------------------
SCRIPT = """
import json, logging, os, warnings
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
import numpy as np
import keras

rng = np.random.default_rng(0)
x = rng.normal(size=(24, 4)).astype("float32")
y = (x[:, 0] > 0).astype("int64")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input([4]), keras.layers.Dense(2)])
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
mlflow.keras.autolog()
model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=0)
run = mlflow.last_active_run()
client = mlflow.MlflowClient()
rid = run.info.run_id

def walk(path=None):
    out = []
    for f in client.list_artifacts(rid, path):
        out += walk(f.path) if f.is_dir else [f.path]
    return out

out = {
    "params": run.data.params,
    "metrics": sorted(run.data.metrics),
    "steps": {k: [m.step for m in client.get_metric_history(rid, k)] for k in run.data.metrics},
    "tags": {k: v for k, v in run.data.tags.items() if k == "mlflow.autologging"},
    "artifacts": sorted(walk()),
}
if IS_GITRUN:
    dst = os.path.join(os.getcwd(), "downloaded")
    os.makedirs(dst)
    out["model_dir"] = client.download_artifacts(rid, "model", dst)
    out["prediction"] = model.predict(x, verbose=0).tolist()
else:
    d = os.environ["GITRUN_MODEL_DIR"]
    out["prediction"] = mlflow.keras.load_model(d).predict(x, verbose=0).tolist()
    out["pyfunc"] = mlflow.pyfunc.load_model(d).predict(x).tolist()
json.dump(out, open("out.json", "w"))
"""


def test_same_keys_as_mlflow_and_mlflow_loads_the_model(tmp_path):
    pytest.importorskip("mlflow")
    g = run_side(tmp_path, SCRIPT, True, KERAS_BACKEND="torch")
    m = run_side(tmp_path, SCRIPT, False, KERAS_BACKEND="torch", GITRUN_MODEL_DIR=g["model_dir"])
    assert g["params"] == m["params"]  # keys and values
    assert "optimizer_momentum" in g["params"] and "validation_split" in g["params"]
    assert g["metrics"] == m["metrics"]
    assert "val_loss" in g["metrics"] and "validation_loss" in g["metrics"]
    assert g["steps"] == m["steps"]
    assert g["tags"] == m["tags"] == {"mlflow.autologging": "keras"}
    # MLflow 3 keeps the model outside the run (a logged model); gitrun under model/
    assert [a for a in g["artifacts"] if not a.startswith("model/")] == m["artifacts"]
    assert "model/data/model.keras" in g["artifacts"]
    # real mlflow.keras / mlflow.pyfunc load the model gitrun logged
    assert np.allclose(m["prediction"], g["prediction"])
    assert np.allclose(m["pyfunc"], g["prediction"])
