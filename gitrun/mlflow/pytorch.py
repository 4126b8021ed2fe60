"""PyTorch support: PyTorch Lightning autolog, and torch models in MLflow's directory format.

`import gitrun as mlflow` then `mlflow.pytorch.autolog()` / `mlflow.pytorch.log_model(...)`
work as in MLflow; a model gitrun logged loads with `mlflow.pytorch.load_model` and
`mlflow.pyfunc.load_model` too (MLflow 3.x loads pickled models only with
MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true; `serialization_format="pt2"` needs no such switch).

Autolog patches `Trainer.fit` of `lightning` and of `pytorch_lightning` (whichever are
installed) and logs what MLflow's autolog logs, under the same names and steps:

- params `epochs`, `optimizer_name` and the first optimizer's defaults (`lr`, ...), and the
  EarlyStopping callback's `monitor`, `mode`, `patience`, `min_delta`, `stopped_epoch`;
- every `self.log` value in `trainer.callback_metrics` at the end of each training epoch
  (step = epoch), and with `log_every_n_step=n` the per-step values (step = global step);
- early-stopping results (`stopped_epoch`, `restored_epoch`, `best_score`, `wait_count`);
- tag `Mode` (training / testing), `model_summary.txt`, checkpoints under `checkpoints/`
  (tag `mlflow.latest_checkpoint_artifact`), and the model under `model/`.

Every metric goes to the run's journal (one write per point); no git work happens per step.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import types
from typing import Any

from .. import tracking
from ..errors import InvalidInputError, require
from ..query import artifacts
from . import autolog as _autolog
from . import mlmodel

if not _autolog.importable("torch"):  # torch itself is imported on first use
    require("torch", "'gitrun-ml[pytorch]'")  # raises: how to install it

FLAVOR_NAME = "pytorch"
SERIALIZATION_FORMAT_PICKLE = "pickle"
SERIALIZATION_FORMAT_PT2 = "pt2"
MODEL_DATA_SUBPATH = "data"
SERIALIZED_MODEL_FILE = "model.pth"
EXPORTED_MODEL_FILE = "model.pt2"
PICKLE_MODULE_INFO_FILE = "pickle_module_info.txt"
EXTRA_FILES_DIR = "extra_files"
# What MLflow names its cloudpickle-for-torch module; gitrun writes this name so that MLflow
# loads gitrun's models, and reads it (and the plain pickle modules) without MLflow.
MLFLOW_PICKLE_MODULE = "mlflow.pytorch.pickle_module"
_LOADABLE_PICKLE_MODULES = (MLFLOW_PICKLE_MODULE, "pickle", "cloudpickle")

# The Lightning versions this autolog is tested with (MLflow 3.17 tests 2.4.0 to 2.6.6).
MIN_LIGHTNING_VERSION = "2.4.0"
MAX_LIGHTNING_VERSION = "2.6"

# MLflow's names for checkpoint artifacts (mlflow.utils.checkpoint_utils)
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT_TAG = "mlflow.latest_checkpoint_artifact"


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def _default_pickle_module() -> Any:
    """A module object for torch.save: cloudpickle's pickler (class definitions from
    `__main__` survive), named as MLflow's pickle module; plain pickle without cloudpickle."""
    try:
        import cloudpickle
    except ImportError:
        import pickle

        return pickle
    import pickle

    mod = types.ModuleType(MLFLOW_PICKLE_MODULE)
    mod.Pickler = cloudpickle.CloudPickler  # type: ignore[attr-defined]
    mod.Unpickler = pickle.Unpickler  # type: ignore[attr-defined]
    mod.dump = cloudpickle.dump  # type: ignore[attr-defined]
    mod.dumps = cloudpickle.dumps  # type: ignore[attr-defined]
    mod.load = pickle.load  # type: ignore[attr-defined]
    mod.loads = pickle.loads  # type: ignore[attr-defined]
    return mod


def _as_numpy(data: Any) -> Any:
    import torch

    if isinstance(data, torch.Tensor):
        return data.detach().cpu().numpy()
    return data


class _PyTorchWrapper:
    """`predict(data)` for a torch module: a DataFrame or numpy array in, the output tensor
    as numpy out (a DataFrame with the input's index for DataFrame input), as MLflow's."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.pytorch_model = model
        self.device = device

    def get_raw_model(self) -> Any:
        return self.pytorch_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import torch

        pd = _pandas()
        if pd is not None and isinstance(data, pd.DataFrame):
            arr = data.to_numpy(dtype=np.float32)
        elif isinstance(data, np.ndarray):
            arr = data
        else:
            raise InvalidInputError(
                f"A PyTorch model predicts on a pandas DataFrame or a numpy array, not "
                f"{type(data).__name__}."
            )
        with torch.no_grad():
            out = self.pytorch_model(torch.from_numpy(arr).to(self.device), **(params or {}))
        if not isinstance(out, torch.Tensor):
            raise InvalidInputError(
                f"The PyTorch model returned {type(out).__name__}; pyfunc prediction needs "
                "a model that returns one tensor."
            )
        result = out.cpu().numpy()
        if pd is not None and isinstance(data, pd.DataFrame):
            frame = pd.DataFrame(result)
            frame.index = data.index
            return frame
        return result


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        return None
    return pd


def _serialization_format(
    serialization_format: str | None, export_model: bool, input_example: Any
) -> str:
    fmt = serialization_format
    if export_model:
        if fmt == SERIALIZATION_FORMAT_PICKLE:
            raise InvalidInputError(
                "Cannot set both `export_model=True` and `serialization_format='pickle'`; "
                "pass only serialization_format."
            )
        fmt = SERIALIZATION_FORMAT_PT2
    if fmt is None:
        # MLflow 3 defaults to pt2, which needs an input example to trace the model; gitrun
        # picks pt2 when there is one and pickle otherwise (docs/mlflow.md).
        fmt = SERIALIZATION_FORMAT_PICKLE if input_example is None else SERIALIZATION_FORMAT_PT2
    if fmt not in (SERIALIZATION_FORMAT_PICKLE, SERIALIZATION_FORMAT_PT2):
        raise InvalidInputError(f"Unsupported serialization format '{fmt}'; use 'pickle' or 'pt2'.")
    return fmt


def _example_tensors(input_example: Any) -> tuple[Any, ...]:
    import numpy as np
    import torch

    items = input_example if isinstance(input_example, (tuple, list)) else (input_example,)
    if not items or not all(isinstance(v, (np.ndarray, torch.Tensor)) for v in items):
        raise InvalidInputError(
            "serialization_format='pt2' traces the model on its input example: pass "
            "input_example as a numpy array or tensor (or a tuple of them), or use "
            "serialization_format='pickle'."
        )
    return tuple(torch.from_numpy(v) if isinstance(v, np.ndarray) else v for v in items)


def _save_pt2(model: Any, path: str, tensors: tuple[Any, ...], sig: Any) -> None:
    import torch
    from torch.export import Dim

    specs = sig.inputs.inputs if sig is not None and sig.inputs is not None else None
    if not specs or not sig.inputs.is_tensor_spec() or len(specs) != len(tensors):
        raise InvalidInputError(
            "serialization_format='pt2' needs a signature whose inputs are tensors, one per "
            "input of the example; pass a numpy array input_example, or use 'pickle'."
        )
    dynamic = []
    for spec, t in zip(specs, tensors):
        dims = {}
        for i, size in enumerate(spec.to_dict()["tensor-spec"]["shape"]):
            if size != -1:
                continue
            if hasattr(Dim, "AUTO"):
                dims[i] = Dim.AUTO
            elif t.shape[i] > 1:
                dims[i] = Dim(f"dim_{i}")
        dynamic.append(dims or None)
    program = torch.export.export(model, tensors, dynamic_shapes=dynamic)
    torch.export.save(program, path)


def save_model(
    pytorch_model: Any,
    path: str,
    conda_env: Any = None,
    mlflow_model: Any = None,
    code_paths: Any = None,
    pickle_module: Any = None,
    signature: Any = None,
    input_example: Any = None,
    extra_files: list[str] | None = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    export_model: bool = False,
    serialization_format: str | None = None,
    *,
    _run_id: str | None = None,
    _artifact_path: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Write `pytorch_model` as an MLflow model directory at `path` (MLflow's pytorch flavor:
    `data/model.pth` pickled, or `data/model.pt2` exported); returns the MLmodel contents."""
    import torch

    if not isinstance(pytorch_model, torch.nn.Module):
        raise InvalidInputError(
            f"gitrun.pytorch.save_model saves a torch.nn.Module, not "
            f"{type(pytorch_model).__name__}."
        )
    if code_paths:
        raise NotImplementedError(
            "gitrun.pytorch.save_model does not copy code_paths; the run's code commit "
            "already holds the exact code (gitrun checkout <run>)."
        )
    fmt = _serialization_format(serialization_format, export_model, input_example)
    if extra_files is not None and not isinstance(extra_files, list):
        raise InvalidInputError("extra_files must be a list of local file paths.")
    for extra in extra_files or []:
        if not os.path.isfile(extra):
            raise InvalidInputError(f"Extra file '{extra}' does not exist or is not a file.")
    from . import signature as sigs

    example = None
    if input_example is not None and not isinstance(input_example, torch.Tensor):
        try:
            example = sigs.InputExample(input_example)
        except Exception:  # as MLflow: tensors and lists of arrays are not saved as examples
            example = None
    path = mlmodel.prepare_dir(path)
    data_dir = os.path.join(path, MODEL_DATA_SUBPATH)
    os.makedirs(data_dir)
    sig = sigs.model_signature(signature, example, _PyTorchWrapper(pytorch_model).predict)
    pickle_module = pickle_module or _default_pickle_module()
    with_pyfunc = True
    if fmt == SERIALIZATION_FORMAT_PT2:
        if isinstance(pytorch_model, torch.jit.ScriptModule):
            raise InvalidInputError(
                "serialization_format='pt2' does not take a torch.jit.ScriptModule; use 'pickle'."
            )
        tensors = _example_tensors(input_example)
        if sig is None:
            sig = sigs.infer_signature(*(t.detach().cpu().numpy() for t in tensors[:1]))
        _save_pt2(pytorch_model, os.path.join(data_dir, EXPORTED_MODEL_FILE), tensors, sig)
        # As MLflow: no pyfunc for several inputs or tensor examples
        with_pyfunc = len(tensors) == 1 and not isinstance(
            input_example[0] if isinstance(input_example, (tuple, list)) else input_example,
            torch.Tensor,
        )
    else:
        with open(os.path.join(data_dir, PICKLE_MODULE_INFO_FILE), "w", encoding="utf-8") as f:
            f.write(pickle_module.__name__)
        target = os.path.join(data_dir, SERIALIZED_MODEL_FILE)
        if isinstance(pytorch_model, torch.jit.ScriptModule):
            torch.jit.save(pytorch_model, target)
        else:
            torch.save(pytorch_model, target, pickle_module=pickle_module, **kwargs)
    conf: dict[str, Any] = {
        "code": None,
        "model_data": MODEL_DATA_SUBPATH,
        "pytorch_version": str(torch.__version__),
    }
    if extra_files:
        os.makedirs(os.path.join(path, EXTRA_FILES_DIR))
        listed = []
        for extra in extra_files:
            name = os.path.basename(extra)
            shutil.copyfile(extra, os.path.join(path, EXTRA_FILES_DIR, name))
            listed.append({"path": f"{EXTRA_FILES_DIR}/{name}"})
        conf["extra_files"] = listed
    flavors: dict[str, Any] = {}
    if with_pyfunc:
        flavors["python_function"] = mlmodel.pyfunc_flavor(
            "mlflow.pytorch",
            config={"device": None},
            data=MODEL_DATA_SUBPATH,
            pickle_module_name=pickle_module.__name__,
        )
    flavors[FLAVOR_NAME] = conf
    packages = ["torch", "cloudpickle"]
    mlmodel.write_env_files(path, packages, pip_requirements, extra_pip_requirements)
    return mlmodel.write_mlmodel(
        path,
        flavors,
        run_id=_run_id,
        artifact_path=_artifact_path,
        signature=sig,
        example=example,
        metadata=metadata,
    )


def log_model(
    pytorch_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: Any = None,
    pickle_module: Any = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: Any = None,
    extra_files: list[str] | None = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    export_model: bool = False,
    serialization_format: str | None = None,
    params: Any = None,
    tags: Any = None,
    model_type: Any = None,
    step: int = 0,
    model_id: Any = None,
    **kwargs: Any,
) -> mlmodel.ModelInfo:
    """Log the model as artifacts of the active run (started if none) under `name`;
    with registered_model_name, also a new version of that registered model."""
    return _autolog.log_model_dir(
        save_model,
        pytorch_model,
        name or artifact_path or "model",
        registered_model_name,
        code_paths=code_paths,
        pickle_module=pickle_module,
        signature=signature,
        input_example=input_example,
        extra_files=extra_files,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        metadata=metadata,
        export_model=export_model,
        serialization_format=serialization_format,
        **kwargs,
    )


def _pickle_module_for(name: str) -> Any:
    if name not in _LOADABLE_PICKLE_MODULES:
        raise InvalidInputError(
            f"This PyTorch model was pickled with the module '{name}'; gitrun loads models "
            f"pickled with {', '.join(_LOADABLE_PICKLE_MODULES)} (load it with "
            "mlflow.pytorch.load_model)."
        )
    import pickle

    return pickle  # cloudpickle's output is read by the standard unpickler


def _load_from_data(data_dir: str, device: str | None = None, **kwargs: Any) -> Any:
    import torch

    if os.path.isfile(data_dir):  # a bare model file
        model = torch.load(data_dir, weights_only=False, **kwargs)
        model.eval()
        return model.to(device) if device else model
    pickled = os.path.join(data_dir, SERIALIZED_MODEL_FILE)
    exported = os.path.join(data_dir, EXPORTED_MODEL_FILE)
    if os.path.isfile(pickled):
        info = os.path.join(data_dir, PICKLE_MODULE_INFO_FILE)
        name = MLFLOW_PICKLE_MODULE
        if os.path.isfile(info):
            with open(info, encoding="utf-8") as f:
                name = f.read().strip()
        if "pickle_module" not in kwargs:
            kwargs["pickle_module"] = _pickle_module_for(name)
        kwargs.setdefault("weights_only", False)
        try:
            model = torch.load(pickled, **kwargs)
        except RuntimeError:  # a TorchScript module saved with torch.jit.save
            model = torch.jit.load(pickled)
        model.eval()
        return model.to(device) if device else model
    if os.path.isfile(exported):
        model = torch.export.load(exported).module()
        if device:
            for t in list(model.parameters()) + list(model.buffers()):
                if t.device.type != torch.device(device).type:
                    raise InvalidInputError(
                        f"This exported (pt2) model holds weights on '{t.device.type}'; it "
                        f"cannot be loaded on '{device}'."
                    )
        return model
    raise InvalidInputError(
        f"{data_dir} holds no PyTorch model ({SERIALIZED_MODEL_FILE} or {EXPORTED_MODEL_FILE})."
    )


def load_model(model_uri: str, dst_path: str | None = None, **kwargs: Any) -> Any:
    """Load a torch model from runs:/<run_id>/<path>, a local model directory or file: URI
    (kwargs go to torch.load)."""
    with artifacts.local_copy(model_uri, dst_path) as local:  # nothing left in /tmp
        doc = mlmodel.read_mlmodel(local)
        conf = mlmodel.flavor_entry(doc, FLAVOR_NAME, model_uri)
        data = mlmodel.inside_model(local, str(conf.get("model_data", MODEL_DATA_SUBPATH)))
        return _load_from_data(data, **kwargs)


# pyfunc loader protocol (gitrun.pyfunc calls this with the model directory; MLflow's own
# loader, mlflow.pytorch, is called with its data directory)
def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> Any:
    device = (model_config or {}).get("device") or "cpu"
    if os.path.isfile(os.path.join(path, mlmodel.MLMODEL_FILE)):
        conf = mlmodel.read_mlmodel(path)["flavors"].get(FLAVOR_NAME, {})
        path = mlmodel.inside_model(path, str(conf.get("model_data", MODEL_DATA_SUBPATH)))
    return _PyTorchWrapper(_load_from_data(path, device=device), device=device)


# ---------------------------------------------------------------------------
# Lightning autolog
# ---------------------------------------------------------------------------
def _lightning_packages() -> list[Any]:
    """The Lightning packages installed (lightning, pytorch_lightning), imported."""
    import importlib

    def load(name: str, module: Any) -> None:
        if _autolog.importable(name):
            try:
                found.append(module())
            except ImportError:
                pass

    found: list[Any] = []
    load("lightning", lambda: importlib.import_module("lightning"))
    load("pytorch_lightning", lambda: importlib.import_module("pytorch_lightning"))
    return found


def autolog(
    log_every_n_epoch: int = 1,
    log_every_n_step: int | None = None,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    extra_tags: dict[str, Any] | None = None,
    checkpoint: bool = True,
    checkpoint_monitor: str | None = "val_loss",
    checkpoint_mode: str = "min",
    checkpoint_save_best_only: bool = True,
    checkpoint_save_weights_only: bool = False,
    checkpoint_save_freq: str | int = "epoch",
    log_model_signatures: bool = True,
) -> None:
    """Log every outermost `Trainer.fit` of PyTorch Lightning (params, per-epoch and per-step
    metrics, early stopping, model summary, checkpoints, the model), as MLflow's autolog."""
    if log_every_n_epoch is not None and (
        type(log_every_n_epoch) is not int or log_every_n_epoch < 1
    ):
        raise InvalidInputError("log_every_n_epoch must be a positive integer.")
    if log_every_n_step is not None and (type(log_every_n_step) is not int or log_every_n_step < 1):
        raise InvalidInputError("log_every_n_step must be a positive integer or None.")
    if checkpoint and checkpoint_save_best_only:
        if checkpoint_monitor is None:
            raise InvalidInputError(
                "checkpoint_save_best_only=True compares the monitored metric: set "
                "checkpoint_monitor too."
            )
        if checkpoint_mode not in ("min", "max"):
            raise InvalidInputError(
                f"checkpoint_mode must be 'min' or 'max', not '{checkpoint_mode}'."
            )
    if checkpoint and not (
        checkpoint_save_freq == "epoch"
        or (type(checkpoint_save_freq) is int and checkpoint_save_freq > 0)
    ):
        raise InvalidInputError("checkpoint_save_freq must be 'epoch' or a positive integer.")
    _autolog.configure(
        FLAVOR_NAME,
        log_models=log_models,
        log_datasets=log_datasets,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        registered_model_name=registered_model_name,
        extra_tags=extra_tags,
        log_model_signatures=log_model_signatures,
        log_every_n_epoch=log_every_n_epoch,
        log_every_n_step=log_every_n_step,
        checkpoint=checkpoint,
        checkpoint_monitor=checkpoint_monitor,
        checkpoint_mode=checkpoint_mode,
        checkpoint_save_best_only=checkpoint_save_best_only,
        checkpoint_save_weights_only=checkpoint_save_weights_only,
        checkpoint_save_freq=checkpoint_save_freq,
    )
    if disable:
        _autolog.unpatch(FLAVOR_NAME)
        return
    packages = _lightning_packages()
    if not packages:
        _autolog.require_framework(FLAVOR_NAME)  # raises: how to install it
        return
    versions = [pkg.__version__ for pkg in packages]
    if not _autolog.supported(FLAVOR_NAME, versions, MIN_LIGHTNING_VERSION, MAX_LIGHTNING_VERSION):
        return
    for pkg in packages:
        _autolog.patch(FLAVOR_NAME, pkg.Trainer, "fit", _patched_fit)


def _package_of(trainer: Any) -> Any:
    import sys

    for cls in type(trainer).__mro__:  # a user's Trainer subclass: its Lightning base
        top = cls.__module__.split(".")[0]
        if top == "lightning":
            return sys.modules["lightning.pytorch"]
        if top == "pytorch_lightning":
            return sys.modules[top]
    raise InvalidInputError(f"{type(trainer).__name__} is not a Lightning Trainer.")


def _patched_fit(original: Any, trainer: Any, *args: Any, **kwargs: Any) -> Any:
    return _autolog.logged_call(
        FLAVOR_NAME,
        lambda: original(trainer, *args, **kwargs),
        lambda live: _fit(original, trainer, live, args, kwargs),
    )


def _fit(original: Any, trainer: Any, live: Any, args: Any, kwargs: Any) -> Any:
    cfg = _autolog.config(FLAVOR_NAME)
    pl = _package_of(trainer)
    callbacks = _callback_classes(pl)
    early_stop = None
    with _autolog.safely(FLAVOR_NAME, "the early stopping params"):
        for cb in trainer.callbacks:
            if isinstance(cb, pl.callbacks.EarlyStopping):
                early_stop = cb
                for p in ("monitor", "mode", "patience", "min_delta", "stopped_epoch"):
                    if hasattr(cb, p):
                        live.log_param(p, getattr(cb, p))
    # As MLflow, the callbacks stay on the trainer (a later trainer.test() logs the test
    # metrics to this run); a later fit binds them to its own run.
    logger = _attach(trainer, callbacks["metrics"], live, cfg)
    if cfg.extra.get("checkpoint", True):
        _attach(trainer, callbacks["checkpoint"], live, cfg)
    try:
        result = original(trainer, *args, **kwargs)
    finally:
        logger.restore_forward()
    _after_fit(trainer, live, cfg, pl, logger, early_stop)
    return result


def _attach(trainer: Any, cls: type, live: Any, cfg: Any) -> Any:
    for cb in trainer.callbacks:
        if isinstance(cb, cls):
            cb.__init__(live, cfg)  # type: ignore[misc]
            return cb
    cb = cls(live, cfg)
    trainer.callbacks.append(cb)
    return cb


def _after_fit(trainer: Any, live: Any, cfg: Any, pl: Any, logger: Any, early_stop: Any) -> None:
    if early_stop is not None and getattr(early_stop, "stopped_epoch", 0) != 0:
        with _autolog.safely(FLAVOR_NAME, "the early stopping metrics"):
            es_metrics: dict[str, Any] = {
                "stopped_epoch": early_stop.stopped_epoch,
                "restored_epoch": early_stop.stopped_epoch - max(1, early_stop.patience),
            }
            if hasattr(early_stop, "best_score"):
                es_metrics["best_score"] = float(early_stop.best_score)
            if hasattr(early_stop, "wait_count"):
                es_metrics["wait_count"] = early_stop.wait_count
            _log_metrics(live, es_metrics, 0)
    with _autolog.safely(FLAVOR_NAME, "model_summary.txt"):
        summary = pl.utilities.model_summary.ModelSummary(trainer.lightning_module, max_depth=-1)
        live.log_artifact_bytes(str(summary).encode("utf-8"), "model_summary.txt")
    if not cfg.log_models:
        return
    with _autolog.safely(FLAVOR_NAME, "the model"):
        sig = None
        if cfg.log_model_signatures and logger.example is not None:
            from .signature import infer_signature

            sig = infer_signature(*logger.example)
        log_model(
            trainer.lightning_module,
            name="model",
            signature=sig,
            serialization_format=SERIALIZATION_FORMAT_PICKLE,
            registered_model_name=cfg.registered_model_name,
        )
    best = getattr(getattr(trainer, "checkpoint_callback", None), "best_model_path", None)
    if early_stop is not None and best:
        with _autolog.safely(FLAVOR_NAME, "the restored model checkpoint"):
            live.log_artifact_file(best, f"restored_model_checkpoint/{os.path.basename(best)}")


def _log_metrics(live: Any, metrics: dict[str, Any], step: int) -> None:
    import time

    ts = int(time.time() * 1000)
    log = live.log_metric
    for k, v in metrics.items():
        log(k, float(v), step, ts)


_callback_cache: dict[str, dict[str, type]] = {}


def _callback_classes(pl: Any) -> dict[str, type]:
    """gitrun's Lightning callbacks, subclassing the Callback of the package the trainer
    comes from (lightning.pytorch or pytorch_lightning)."""
    key = pl.__name__
    if key not in _callback_cache:
        _callback_cache[key] = {
            "metrics": type("GitrunLightningCallback", (_MetricsCallback, pl.Callback), {}),
            "checkpoint": type(
                "GitrunModelCheckpointCallback", (_CheckpointCallback, pl.Callback), {}
            ),
        }
    return _callback_cache[key]


class _MetricsCallback:
    """Logs params at train start, metrics per epoch (and per step with log_every_n_step),
    and captures the first batch's forward input/output for the model signature."""

    def __init__(self, live: Any, cfg: Any) -> None:
        self.live = live
        self.cfg = cfg
        self.step_metrics: set[str] = set()
        self.epoch_metrics: set[str] = set()
        self.steps_per_training_step = 1
        self.example: tuple[Any, Any] | None = None
        self._patched: Any = None  # the module whose forward is wrapped
        self._had_own_forward = False
        self._own_forward: Any = None

    # -- training ----------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0 or self.live.ended:
            return
        with _autolog.safely(FLAVOR_NAME, "the optimizer params"):
            self.live.set_tag("Mode", "training")
            params: dict[str, Any] = {"epochs": trainer.max_epochs}
            optimizers = list(getattr(trainer, "optimizers", None) or [])
            if optimizers:
                self.steps_per_training_step = len(optimizers)
                opt = optimizers[0]
                inner = getattr(opt, "_optimizer", opt)  # a LightningOptimizer wraps it
                params["optimizer_name"] = type(inner).__name__
                params.update(getattr(inner, "defaults", {}) or {})
            for k, v in params.items():
                self.live.log_param(k, v)
        if self.cfg.log_models and self.cfg.log_model_signatures:
            self._capture_first_forward(trainer.lightning_module)

    def _capture_first_forward(self, module: Any) -> None:
        import torch

        self._had_own_forward = "forward" in module.__dict__
        self._own_forward = module.__dict__.get("forward")
        original = module.forward
        callback = self

        def forward(*inputs: Any, **kw: Any) -> Any:
            out = original(*inputs, **kw)
            if callback.example is None and callback._patched is not None:
                if (
                    len(inputs) == 1
                    and not kw
                    and isinstance(inputs[0], torch.Tensor)
                    and isinstance(out, torch.Tensor)
                ):
                    callback.example = (
                        inputs[0].detach().cpu().numpy(),
                        out.detach().cpu().numpy(),
                    )
                callback.restore_forward()
            return out

        object.__setattr__(module, "forward", forward)
        self._patched = module

    def restore_forward(self) -> None:
        module, self._patched = self._patched, None
        if module is None:
            return
        if self._had_own_forward:
            object.__setattr__(module, "forward", self._own_forward)
        else:
            module.__dict__.pop("forward", None)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        n = self.cfg.extra.get("log_every_n_step")
        if not n or trainer.global_rank != 0:
            return
        metrics = trainer.callback_metrics
        items = {
            k: v
            for k, v in metrics.items()
            if k not in self.epoch_metrics and f"{k}_step" not in metrics
        }
        self.step_metrics.update(items)
        step = trainer.global_step
        if ((step // self.steps_per_training_step) + 1) % n == 0:
            self._log(trainer, items, step)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if trainer.global_rank != 0:
            return
        items = {k: v for k, v in trainer.callback_metrics.items() if k not in self.step_metrics}
        self.epoch_metrics.update(items)
        every = self.cfg.extra.get("log_every_n_epoch") or 1
        if (pl_module.current_epoch + 1) % every == 0:
            self._log(trainer, items, pl_module.current_epoch)

    def _log(self, trainer: Any, items: dict[str, Any], step: int) -> None:
        # the run ended (a fit after autolog(disable=True) on a trainer that kept the callback)
        if trainer.sanity_checking or not items or self.live.ended:
            return
        try:  # the per-step path: no context manager, one timestamp for the batch
            _log_metrics(self.live, items, step)
        except Exception as e:
            _autolog.warn(FLAVOR_NAME, f"metrics not logged ({type(e).__name__}: {e})")

    # -- testing (trainer.test after fit, while the callback is still attached) ---------
    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0:
            return
        with _autolog.safely(FLAVOR_NAME, "the test metrics"):
            import time

            from ..format.entities import Metric, RunTag
            from ..tracking.client import MlflowClient

            ts = int(time.time() * 1000)
            points = [Metric(k, float(v), ts, 0) for k, v in trainer.callback_metrics.items()]
            # the fit's run may have ended: the client logs to a finished run too
            MlflowClient().log_batch(
                self.live.run_id, metrics=points, tags=[RunTag("Mode", "testing")]
            )


class _CheckpointCallback:
    """MLflow's automatic checkpointing: `checkpoints/latest_checkpoint.pth` (+ its
    metrics JSON) when the monitored metric improves, or one per epoch / N steps."""

    def __init__(self, live: Any, cfg: Any) -> None:
        self.live = live
        self.monitor = cfg.extra.get("checkpoint_monitor", "val_loss")
        self.mode = cfg.extra.get("checkpoint_mode", "min")
        self.best_only = cfg.extra.get("checkpoint_save_best_only", True)
        self.weights_only = cfg.extra.get("checkpoint_save_weights_only", False)
        self.freq = cfg.extra.get("checkpoint_save_freq", "epoch")
        self.last: float | None = None
        self.warned = False

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if isinstance(self.freq, int) and trainer.global_step > 0:
            if trainer.global_step % self.freq == 0:
                self._maybe_save(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if self.freq == "epoch":
            self._maybe_save(trainer)

    def _maybe_save(self, trainer: Any) -> None:
        if trainer.global_rank != 0 or self.live.ended:
            return
        with _autolog.safely(FLAVOR_NAME, "the checkpoint"):
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            if self.best_only:
                if self.monitor not in metrics:
                    if not self.warned:
                        self.warned = True
                        _autolog.warn(
                            FLAVOR_NAME,
                            f"no checkpoint logged: the monitored metric '{self.monitor}' "
                            "is not logged (set checkpoint_monitor, or checkpoint=False)",
                        )
                    return
                value = metrics[self.monitor]
                if self.last is not None and (
                    value >= self.last if self.mode == "min" else value <= self.last
                ):
                    return
                self.last = value
            self._save(trainer, metrics)

    def _save(self, trainer: Any, metrics: dict[str, float]) -> None:
        import json

        weights = ".weights" if self.weights_only else ""
        if self.best_only:
            directory = CHECKPOINT_DIR
            model_file = f"latest_checkpoint{weights}.pth"
            metrics_file = "latest_checkpoint_metrics.json"
        else:
            sub = (
                f"epoch_{trainer.current_epoch}"
                if self.freq == "epoch"
                else f"global_step_{trainer.global_step}"
            )
            directory = f"{CHECKPOINT_DIR}/{sub}"
            model_file = f"checkpoint{weights}.pth"
            metrics_file = "checkpoint_metrics.json"
        self.live.set_tag(LATEST_CHECKPOINT_TAG, f"{directory}/{model_file}")
        doc = {**metrics, "epoch": trainer.current_epoch, "global_step": trainer.global_step}
        self.live.log_artifact_bytes(
            json.dumps(doc, indent=2).encode("utf-8"), f"{directory}/{metrics_file}"
        )
        tmp = tempfile.mkdtemp(prefix="gitrun-ckpt-")
        try:
            target = os.path.join(tmp, model_file)
            # Not trainer.save_checkpoint: its barrier would hang a rank-0-only callback (DDP).
            connector = getattr(trainer, "_checkpoint_connector", None)
            if connector is not None:
                ckpt = connector.dump_checkpoint(self.weights_only)
                trainer.strategy.save_checkpoint(ckpt, target)
            else:
                trainer.save_checkpoint(target, weights_only=self.weights_only)
            self.live.log_artifact_file(target, f"{directory}/{model_file}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(
    model_class: Any,
    run_id: str | None = None,
    epoch: int | None = None,
    global_step: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Any:
    """The Lightning module `model_class` restored from a checkpoint autolog logged: the
    latest one, or the one of `epoch` / `global_step` (checkpoint_save_best_only=False)."""
    import posixpath

    from ..tracking.client import MlflowClient

    client = MlflowClient()
    if run_id is None:
        active = tracking.active_run()
        if active is None:
            raise InvalidInputError("There is no active run: pass run_id to load_checkpoint.")
        run_id = active.info.run_id
    latest = client.get_run(run_id).data.tags.get(LATEST_CHECKPOINT_TAG)
    if latest is None:
        raise InvalidInputError(f"Run {run_id} has no logged checkpoint.")
    if epoch is not None and global_step is not None:
        raise InvalidInputError("Pass only one of epoch and global_step to load_checkpoint.")
    filename = posixpath.basename(latest)
    if global_step is not None:
        path = f"{CHECKPOINT_DIR}/global_step_{global_step}/{filename}"
    elif epoch is not None:
        path = f"{CHECKPOINT_DIR}/epoch_{epoch}/{filename}"
    else:
        path = latest
    tmp = tempfile.mkdtemp(prefix="gitrun-ckpt-")
    try:
        local = client.download_artifacts(run_id, path, tmp)
        return model_class.load_from_checkpoint(local, **(kwargs or {}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
