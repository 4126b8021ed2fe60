"""PyTorch Lightning autolog and the pytorch model flavor, on tiny random tensors: the exact
params, metrics (with their steps), tags and artifacts MLflow's autolog records, the model
round trip through gitrun and real MLflow, and the same keys as `mlflow.pytorch.autolog()`
side by side."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from tests.autolog_helpers import artifact_paths, metric_history, run_side
from tests.test_mlflow_compat import _env

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")

import gitrun  # noqa: E402
import gitrun.pytorch  # noqa: E402
from gitrun.mlflow import autolog as autolog_mod  # noqa: E402

OPTIMIZER_PARAMS = {
    "lr",
    "momentum",
    "dampening",
    "weight_decay",
    "nesterov",
    "maximize",
    "foreach",
    "differentiable",
    "fused",
}
EARLY_STOP_PARAMS = {"monitor", "mode", "patience", "min_delta", "stopped_epoch"}


class Net(L.LightningModule):
    def __init__(self, inner: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.inner = inner

    def forward(self, x):
        return self.layer(x)

    def training_step(self, batch, idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("inner_loss" if self.inner else "train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def test_step(self, batch, idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def _data(n: int = 24):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x[:, :1] * 2.0 + 0.1 * torch.randn(n, 1, generator=g)
    ds = torch.utils.data.TensorDataset(x, y)
    return x, torch.utils.data.DataLoader(ds, batch_size=8)


def _trainer(tmp_path, epochs: int = 3, callbacks=(), **kw):
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path / "lightning"),
        callbacks=list(callbacks),
        num_sanity_val_steps=0,
        **kw,
    )


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    gitrun.pytorch.autolog(disable=True)


def test_lightning_fit_logs_what_mlflow_logs(repo, tmp_path):
    torch.manual_seed(0)
    x, loader = _data()
    gitrun.pytorch.autolog(log_every_n_step=1)
    # mode="max" on a falling loss: early stopping fires after `patience` epochs
    stop = L.pytorch.callbacks.EarlyStopping(monitor="val_loss", mode="max", patience=1)
    trainer = _trainer(tmp_path, epochs=5, callbacks=[stop])
    model = Net()
    trainer.fit(model, loader, loader)
    run = gitrun.last_active_run()
    client = gitrun.MlflowClient()
    rid = run.info.run_id
    params = run.data.params
    assert set(params) == {"epochs", "optimizer_name"} | OPTIMIZER_PARAMS | EARLY_STOP_PARAMS
    assert params["epochs"] == "5" and params["optimizer_name"] == "SGD"
    assert params["lr"] == "0.05" and params["momentum"] == "0.9"
    assert params["monitor"] == "val_loss" and params["mode"] == "max"
    assert params["patience"] == "1" and params["stopped_epoch"] == "0"  # as at fit start
    epochs_run = stop.stopped_epoch + 1
    assert stop.stopped_epoch == 1  # epoch 1 did not improve on epoch 0
    assert set(run.data.metrics) == {
        "train_loss",
        "train_loss_epoch",
        "train_loss_step",
        "val_loss",
        "stopped_epoch",
        "restored_epoch",
        "best_score",
        "wait_count",
    }
    # epoch metrics at step = epoch; the forked step metric at step = global step (1..n)
    for key in ("train_loss", "train_loss_epoch", "val_loss"):
        assert [s for s, _ in metric_history(client, rid, key)] == list(range(epochs_run)), key
    steps = [s for s, _ in metric_history(client, rid, "train_loss_step")]
    assert steps == list(range(1, 3 * epochs_run + 1))  # 3 batches per epoch
    assert metric_history(client, rid, "train_loss") == metric_history(
        client, rid, "train_loss_epoch"
    )
    assert metric_history(client, rid, "stopped_epoch") == [(0, 1.0)]
    assert metric_history(client, rid, "restored_epoch") == [(0, 0.0)]
    tags = run.data.tags
    assert tags["mlflow.autologging"] == "pytorch" and tags["Mode"] == "training"
    assert tags["mlflow.latest_checkpoint_artifact"] == "checkpoints/latest_checkpoint.pth"
    arts = artifact_paths(client, rid)
    assert {
        "model_summary.txt",
        "checkpoints/latest_checkpoint.pth",
        "checkpoints/latest_checkpoint_metrics.json",
        "model/MLmodel",
        "model/data/model.pth",
        "model/data/pickle_module_info.txt",
        "model/requirements.txt",
    } <= set(arts)
    assert [a for a in arts if a.startswith("restored_model_checkpoint/")]  # best .ckpt
    summary = gitrun.artifacts.load_text(f"runs:/{rid}/model_summary.txt")
    assert "layer" in summary and "Linear" in summary and "Total params" in summary
    ckpt = gitrun.artifacts.load_dict(f"runs:/{rid}/checkpoints/latest_checkpoint_metrics.json")
    # checkpoint_mode="min" on val_loss: the last (lowest) epoch's
    assert ckpt["epoch"] == 1 and ckpt["val_loss"] == metric_history(client, rid, "val_loss")[1][1]
    # the model: MLflow's layout, a signature from the first batch, loads both ways
    info = gitrun.models.get_model_info(f"runs:/{rid}/model")
    assert set(info.flavors) == {"pytorch", "python_function"}
    assert info.flavors["python_function"]["loader_module"] == "mlflow.pytorch"
    assert info.signature.inputs.to_dict() == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}
    ]
    loaded = gitrun.pytorch.load_model(f"runs:/{rid}/model")
    with torch.no_grad():
        expected = model(x).numpy()
        assert (loaded(x).numpy() == expected).all()
    pyfunc = gitrun.pyfunc.load_model(f"runs:/{rid}/model")
    assert (pyfunc.predict(x.numpy()) == expected).all()
    restored = gitrun.pytorch.load_checkpoint(Net, rid)
    assert isinstance(restored, Net)
    # the callback stays on the trainer: a later test() logs to the same run (Mode: testing)
    trainer.test(model, loader, verbose=False)
    after = gitrun.get_run(rid)
    assert after.data.tags["Mode"] == "testing" and "test_loss" in after.data.metrics
    assert "forward" not in model.__dict__  # the signature capture is undone


def test_save_and_load_both_formats(repo, tmp_path):
    import numpy as np

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    pickled = tmp_path / "pickled"
    gitrun.pytorch.save_model(net, str(pickled))
    assert (pickled / "data" / "pickle_module_info.txt").read_text() == (
        "mlflow.pytorch.pickle_module"
    )
    exported = tmp_path / "exported"
    doc = gitrun.pytorch.save_model(net, str(exported), input_example=x)  # pt2 with an example
    assert (exported / "data" / "model.pt2").is_file()
    assert doc["signature"]["inputs"] == (
        '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'
    )
    for d in (pickled, exported):
        with torch.no_grad():
            out = gitrun.pytorch.load_model(str(d))(torch.from_numpy(x)).numpy()
        assert np.allclose(out, expected, atol=1e-6)
        assert np.allclose(gitrun.pyfunc.load_model(str(d)).predict(x), expected, atol=1e-6)
    with gitrun.start_run() as r:
        info = gitrun.pytorch.log_model(net, name="net", serialization_format="pickle")
    assert info.model_uri == f"runs:/{r.info.run_id}/net"
    assert np.allclose(gitrun.pyfunc.load_model(info.model_uri).predict(x), expected, atol=1e-6)
    with pytest.raises(gitrun.exceptions.MlflowException, match="torch.nn.Module"):
        gitrun.pytorch.save_model("not a model", str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_disable_log_models_and_outermost(repo, tmp_path):
    _x, loader = _data(16)
    gitrun.pytorch.autolog(disable=True)
    before = gitrun.last_active_run()
    _trainer(tmp_path, epochs=1, logger=False).fit(Net(), loader)
    assert gitrun.last_active_run() is before  # nothing logged
    assert not hasattr(L.Trainer.fit, "__gitrun_autolog_original__")

    gitrun.pytorch.autolog(log_models=False, checkpoint=False, extra_tags={"team": "ml"})
    runs = []

    class InnerFit(L.Callback):
        """A second fit inside the first one: only the outer fit is logged."""

        def on_train_end(self, trainer, pl_module):
            _trainer(tmp_path, epochs=2, logger=False).fit(Net(inner=True), loader)
            runs.append(gitrun.active_run().info.run_id)

    _trainer(tmp_path, epochs=1, callbacks=[InnerFit()], logger=False).fit(Net(), loader)
    run = gitrun.last_active_run()
    assert runs == [run.info.run_id]
    assert run.data.params["epochs"] == "1"  # the outer fit's
    assert "inner_loss" not in run.data.metrics and "train_loss" in run.data.metrics
    assert run.data.tags["team"] == "ml"
    arts = artifact_paths(gitrun.MlflowClient(), run.info.run_id)
    assert arts == ["model_summary.txt"]  # no model, no checkpoints


def test_version_outside_range_warns_once(repo, tmp_path, monkeypatch):
    monkeypatch.setattr(gitrun.pytorch, "MAX_LIGHTNING_VERSION", "2.0")
    monkeypatch.setattr(autolog_mod, "_version_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gitrun.pytorch.autolog(checkpoint=False, log_models=False)
        gitrun.pytorch.autolog(checkpoint=False, log_models=False)
    notes = [w for w in caught if "outside the versions" in str(w.message)]
    assert len(notes) == 1
    _x, loader = _data(8)
    _trainer(tmp_path, epochs=1, logger=False).fit(Net(), loader)
    assert "train_loss" in gitrun.last_active_run().data.metrics  # it goes on


def test_missing_framework_says_how_to_install(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['lightning'] = None\n"
        "sys.modules['pytorch_lightning'] = None\n"
        "import gitrun\n"
        "try:\n"
        "    gitrun.pytorch.autolog()\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
        "for k in [m for m in sys.modules if m.startswith('gitrun.')]:\n"
        "    del sys.modules[k]\n"
        "sys.modules['torch'] = None\n"
        "try:\n"
        "    import gitrun.pytorch\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=tmp_path
    )
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 2, p.stderr
    assert lines[0].startswith("MissingDependencyError This needs lightning")
    assert "pip install 'gitrun-ml[pytorch]'" in lines[0]
    assert lines[1].startswith("MissingDependencyError This needs torch")


# --- side by side with real MLflow --------------------------------------------------------
# `pytorch_lightning`, not `lightning`: MLflow 3.17 recognises only that package's
# EarlyStopping (docs/mlflow.md), and this way both record the early-stopping keys.
SCRIPT = """
import json, logging, os, warnings
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
import torch
import pytorch_lightning as pl

class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def forward(self, x):
        return self.layer(x)
    def training_step(self, batch, idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss
    def validation_step(self, batch, idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

torch.manual_seed(0)
x = torch.randn(16, 4)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1]), batch_size=8)
mlflow.pytorch.autolog(log_every_n_step=1)
stop = pl.callbacks.EarlyStopping(monitor="val_loss", mode="max", patience=1)
trainer = pl.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False,
                     enable_model_summary=False, logger=False, default_root_dir=os.getcwd(),
                     callbacks=[stop], num_sanity_val_steps=0)
trainer.fit(Net(), loader, loader)
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
    "tags": {k: v for k, v in run.data.tags.items() if k in ("mlflow.autologging", "Mode",
             "mlflow.latest_checkpoint_artifact")},
    "artifacts": sorted(walk()),
}
if IS_GITRUN:
    dst = os.path.join(os.getcwd(), "downloaded")
    os.makedirs(dst)
    out["model_dir"] = client.download_artifacts(rid, "model", dst)
    with torch.no_grad():
        out["prediction"] = mlflow.pytorch.load_model(out["model_dir"])(x).tolist()
else:
    d = os.environ["GITRUN_MODEL_DIR"]
    with torch.no_grad():
        out["prediction"] = mlflow.pytorch.load_model(d)(x).tolist()
    out["pyfunc"] = mlflow.pyfunc.load_model(d).predict(x.numpy()).tolist()
json.dump(out, open("out.json", "w"))
"""


def test_same_keys_as_mlflow_and_mlflow_loads_the_model(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("pytorch_lightning")
    g = run_side(tmp_path, SCRIPT, True)
    m = run_side(
        tmp_path,
        SCRIPT,
        False,
        GITRUN_MODEL_DIR=g["model_dir"],
        MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true",
    )
    assert g["params"] == m["params"]  # keys and values
    assert "stopped_epoch" in g["params"] and "optimizer_name" in g["params"]
    assert g["metrics"] == m["metrics"]
    assert g["steps"] == m["steps"]
    assert g["tags"] == m["tags"]
    assert g["tags"] == {
        "mlflow.autologging": "pytorch",
        "Mode": "training",
        "mlflow.latest_checkpoint_artifact": "checkpoints/latest_checkpoint.pth",
    }
    # MLflow 3 keeps the model outside the run (a logged model); gitrun under model/
    assert [a for a in g["artifacts"] if not a.startswith("model/")] == m["artifacts"]
    assert "model/MLmodel" in g["artifacts"]
    # real mlflow.pytorch / mlflow.pyfunc load the model gitrun logged
    assert m["prediction"] == g["prediction"]
    assert m["pyfunc"] == g["prediction"]
