"""Keras 3 support: autolog of `Model.fit` (any backend), and Keras models in MLflow's
directory format (`data/model.keras`, as MLflow's keras flavor writes it).

`import gitrun as mlflow` then `mlflow.keras.autolog()` / `mlflow.keras.log_model(...)` work
as in MLflow; a model gitrun logged loads with `mlflow.keras.load_model` and
`mlflow.pyfunc.load_model` too.  Keras itself is imported on first use (importing it needs a
backend: set KERAS_BACKEND before).

Autolog logs what MLflow's does, under the same names and steps: `fit`'s arguments as params
(`batch_size`, `epochs`, ...), the optimizer's config as `optimizer_<key>`, the epoch logs
(`loss`, `accuracy`, `val_loss`, ...) at step = epoch (with `log_every_epoch=False,
log_every_n_steps=n`, the batch logs at step = optimizer iteration), the validation logs as
`validation_<name>`, `model_summary.txt`, the training data as a dataset input, and the
model under `model/`.  Metrics go to the run's journal; no git work happens per epoch.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from typing import Any

from .. import tracking
from ..errors import InvalidInputError, require
from ..query import artifacts
from . import autolog as _autolog
from . import mlmodel

if not _autolog.importable("keras"):
    require("keras", "'gitrun-ml[keras]'")  # raises: how to install it

FLAVOR_NAME = "keras"
MODEL_DATA_PATH = "data"
MODEL_SAVE_PATH = "model"
KERAS_MODULE_SPEC_PATH = "keras_module.txt"

# The Keras versions this autolog is tested with (MLflow 3.17 tests 3.7.0 to 3.15.1).
MIN_KERAS_VERSION = "3.7.0"
MAX_KERAS_VERSION = "3"

# fit() arguments MLflow does not log as params
_UNLOGGED = ("self", "x", "y", "callbacks", "validation_data", "verbose")


def _keras() -> Any:
    return require("keras", "'gitrun-ml[keras]'")


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def get_model_signature(model: Any) -> Any:
    """MLflow's signature of a Keras model: tensor specs from its input and output shapes,
    the batch dimension as -1."""
    import numpy as np

    from .signature import ModelSignature, Schema, TensorSpec

    def spec(shape: Any, dtype: Any) -> Any:
        return TensorSpec(np.dtype(dtype), [-1 if d is None else d for d in shape])

    def schema(shapes: Any, dtype: Any) -> Any:
        if isinstance(shapes, list):
            return Schema([spec(s, dtype) for s in shapes])
        return Schema([spec(shapes, dtype)])

    return ModelSignature(
        inputs=schema(model.input_shape, model.input_dtype),
        outputs=schema(model.output_shape, model.compute_dtype),
    )


def _check_signature(sig: Any) -> None:
    from .signature import TensorSpec

    fields = list(sig.inputs.inputs) if sig.inputs is not None else []
    if not fields:
        raise InvalidInputError("The model signature's input schema must have at least one field.")
    for f in fields:
        if not isinstance(f, TensorSpec):
            raise InvalidInputError(
                "A Keras model's signature takes tensor inputs (TensorSpec) only."
            )
        if f.to_dict()["tensor-spec"]["shape"][0] != -1:
            raise InvalidInputError(
                "The first dimension of every input in a Keras model's signature must be -1 "
                "(the batch dimension)."
            )


def save_model(
    model: Any,
    path: str,
    save_exported_model: bool = False,
    conda_env: Any = None,
    mlflow_model: Any = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    save_model_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    _run_id: str | None = None,
    _artifact_path: str | None = None,
) -> dict[str, Any]:
    """Write `model` (a keras.Model) as an MLflow model directory at `path`:
    `data/model.keras` plus `data/keras_module.txt`; returns the MLmodel contents."""
    keras = _keras()
    from . import signature as sigs

    if save_exported_model:
        raise NotImplementedError(
            "gitrun.keras.save_model writes the .keras format; save_exported_model=True "
            "(a TensorFlow SavedModel) needs mlflow.keras.save_model with TensorFlow."
        )
    if not isinstance(model, keras.Model):
        raise InvalidInputError(
            f"gitrun.keras.save_model saves a keras.Model, not {type(model).__name__}."
        )
    sig = sigs.as_signature(signature) if signature is not False else None
    if sig is not None:
        _check_signature(sig)
    example = sigs.input_example(input_example)
    path = mlmodel.prepare_dir(path)
    data = os.path.join(path, MODEL_DATA_PATH)
    os.makedirs(data)
    with open(os.path.join(data, KERAS_MODULE_SPEC_PATH), "w", encoding="utf-8") as f:
        f.write(keras.__name__)
    model.save(os.path.join(data, MODEL_SAVE_PATH) + ".keras", **(save_model_kwargs or {}))
    flavors = {
        FLAVOR_NAME: {
            "data": MODEL_DATA_PATH,
            "keras_backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "save_exported_model": False,
        },
        "python_function": mlmodel.pyfunc_flavor("mlflow.keras"),
    }
    packages = ["keras"]
    backend = keras.backend.backend()
    packages += {"torch": ["torch"], "jax": ["jax"], "tensorflow": ["tensorflow"]}.get(backend, [])
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
    model: Any,
    artifact_path: str | None = None,
    save_exported_model: bool = False,
    conda_env: Any = None,
    signature: Any = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    await_registration_for: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    save_model_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    params: Any = None,
    tags: Any = None,
    model_type: Any = None,
    step: int = 0,
    model_id: Any = None,
) -> mlmodel.ModelInfo:
    """Log the model as artifacts of the active run (started if none) under `name`;
    with registered_model_name, also a new version of that registered model."""
    return _autolog.log_model_dir(
        save_model,
        model,
        name or artifact_path or "model",
        registered_model_name,
        save_exported_model=save_exported_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        save_model_kwargs=save_model_kwargs,
        metadata=metadata,
    )


def _model_file(local: str, doc: dict[str, Any]) -> str:
    conf = mlmodel.flavor_entry(doc, FLAVOR_NAME, local)
    if conf.get("save_exported_model"):
        raise NotImplementedError(
            "This Keras model was saved in the exported (TensorFlow SavedModel) format; load "
            "it with mlflow.keras.load_model and TensorFlow."
        )
    full = mlmodel.inside_model(local, str(conf.get("data", MODEL_SAVE_PATH)))
    if os.path.isdir(full):
        full = os.path.join(full, MODEL_SAVE_PATH)
    return full + ".keras"


def load_model(
    model_uri: str,
    dst_path: str | None = None,
    custom_objects: dict[str, Any] | None = None,
    load_model_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Load a keras.Model from runs:/<run_id>/<path>, a local model directory or file: URI."""
    keras = _keras()
    with artifacts.local_copy(model_uri, dst_path) as local:  # nothing left in /tmp
        path = _model_file(local, mlmodel.read_mlmodel(local))
        return keras.saving.load_model(
            path, custom_objects=custom_objects, **(load_model_kwargs or {})
        )


class KerasModelWrapper:
    """`predict(data)` for a Keras model: a DataFrame (gives a DataFrame with its index) or
    numpy array / list / tuple / dict in, numpy out, as MLflow's."""

    def __init__(self, model: Any, signature: Any = None) -> None:
        self.model = model
        self.signature = signature

    def get_raw_model(self) -> Any:
        return self.model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np

        keras = _keras()
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(data, pd.DataFrame):
            return pd.DataFrame(self.model.predict(data.values, verbose=0), index=data.index)
        if not isinstance(data, (np.ndarray, list, tuple, dict)):
            raise InvalidInputError(
                "A Keras model predicts on a DataFrame, numpy array, list, tuple or dict, not "
                f"{type(data).__name__}."
            )
        return keras.ops.convert_to_numpy(self.model.predict(data, verbose=0))


# pyfunc loader protocol (gitrun.pyfunc and MLflow call this with the model directory)
def _load_pyfunc(path: str) -> Any:
    from .signature import ModelSignature

    for d in (path, os.path.dirname(path)):
        if os.path.isfile(os.path.join(d, mlmodel.MLMODEL_FILE)):
            doc = mlmodel.read_mlmodel(d)
            break
    else:
        raise InvalidInputError(f"{path} has no {mlmodel.MLMODEL_FILE} file beside the model.")
    model = _keras().saving.load_model(_model_file(d, doc))
    sig = ModelSignature.from_dict(doc["signature"]) if doc.get("signature") else None
    return KerasModelWrapper(model, sig)


# ---------------------------------------------------------------------------
# autolog
# ---------------------------------------------------------------------------
def autolog(
    log_every_epoch: bool = True,
    log_every_n_steps: int | None = None,
    log_models: bool = True,
    log_model_signatures: bool = True,
    save_exported_model: bool = False,
    log_datasets: bool = True,
    log_input_examples: bool = False,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    save_model_kwargs: dict[str, Any] | None = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Log every outermost `keras.Model.fit` (params, optimizer config, epoch metrics,
    validation metrics, model summary, dataset, the model), as MLflow's keras autolog."""
    _check_frequency(log_every_epoch, log_every_n_steps)
    if save_exported_model:
        raise NotImplementedError(
            "gitrun's keras autolog logs the .keras format; save_exported_model=True needs "
            "mlflow.keras with TensorFlow."
        )
    _autolog.configure(
        FLAVOR_NAME,
        log_models=log_models,
        log_model_signatures=log_model_signatures,
        log_datasets=log_datasets,
        log_input_examples=log_input_examples,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        registered_model_name=registered_model_name,
        extra_tags=extra_tags,
        log_every_epoch=log_every_epoch,
        log_every_n_steps=log_every_n_steps,
        save_model_kwargs=save_model_kwargs,
    )
    if disable:
        _autolog.unpatch(FLAVOR_NAME)
        return
    keras = _autolog.require_framework(FLAVOR_NAME)
    if not _autolog.supported(
        FLAVOR_NAME, [keras.__version__], MIN_KERAS_VERSION, MAX_KERAS_VERSION
    ):
        return
    _autolog.patch(FLAVOR_NAME, keras.Model, "fit", _patched_fit)


def _check_frequency(log_every_epoch: bool, log_every_n_steps: int | None) -> None:
    if log_every_epoch and log_every_n_steps is not None:
        raise InvalidInputError(
            "`log_every_n_steps` must be None if `log_every_epoch=True`, received "
            f"`log_every_epoch={log_every_epoch}` and `log_every_n_steps={log_every_n_steps}`."
        )
    if not log_every_epoch and log_every_n_steps is None:
        raise InvalidInputError("`log_every_n_steps` must be specified if `log_every_epoch=False`.")
    if log_every_n_steps is not None and (
        type(log_every_n_steps) is not int or log_every_n_steps < 1
    ):
        raise InvalidInputError("`log_every_n_steps` must be a positive integer.")


def _patched_fit(original: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
    return _autolog.logged_call(
        FLAVOR_NAME,
        lambda: original(model, *args, **kwargs),
        lambda live: _fit(original, model, live, args, kwargs),
    )


def _fit_arguments(original: Any, model: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    """fit()'s arguments by name, defaults included."""
    try:
        bound = inspect.signature(original).bind(model, *args, **kwargs)
    except TypeError:
        return dict(kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.update(out.pop("kwargs", {}) or {})
    return out


def _batch_size(values: dict[str, Any]) -> Any:
    if values.get("batch_size") is not None:
        return values["batch_size"]
    x = values.get("x")
    for attr in ("batch_size", "_batch_size"):
        b = getattr(x, attr, None)
        if b is not None:
            return b if isinstance(b, int) or not hasattr(b, "numpy") else b.numpy()
    return None


def _fit(original: Any, model: Any, live: Any, args: Any, kwargs: Any) -> Any:
    cfg = _autolog.config(FLAVOR_NAME)
    values = _fit_arguments(original, model, args, kwargs)
    with _autolog.safely(FLAVOR_NAME, "the fit params"):
        params: dict[str, Any] = {}
        batch = _batch_size(values)
        if batch is not None:
            params["batch_size"] = batch
        for k, v in values.items():
            if k not in _UNLOGGED and k not in params and not (k == "batch_size" and batch):
                params[k] = v
        for k, v in params.items():
            live.log_param(k, v)
    if cfg.log_datasets:
        with _autolog.safely(FLAVOR_NAME, "the dataset"):
            _log_datasets(values)
    cls = _callback_class()
    if any(isinstance(cb, cls) for cb in values.get("callbacks") or []):
        raise InvalidInputError(
            "Keras autologging must be turned off when an MlflowCallback is in the callback "
            "list: call gitrun.keras.autolog(disable=True) or remove the callback."
        )
    callback = cls(
        log_every_epoch=cfg.extra.get("log_every_epoch", True),
        log_every_n_steps=cfg.extra.get("log_every_n_steps"),
        _live=live,
    )
    call_args, call_kwargs = _autolog.with_callback(original, (model, *args), kwargs, callback)
    history = original(*call_args, **call_kwargs)
    if cfg.log_models:
        with _autolog.safely(FLAVOR_NAME, "the model"):
            sig = None
            if cfg.log_model_signatures:
                try:
                    sig = get_model_signature(model)
                except Exception as e:
                    _autolog.warn(FLAVOR_NAME, f"no model signature ({type(e).__name__}: {e})")
            log_model(
                model,
                name="model",
                signature=sig,
                registered_model_name=cfg.registered_model_name,
                save_model_kwargs=cfg.extra.get("save_model_kwargs"),
            )
    return history


def _log_datasets(values: dict[str, Any]) -> None:
    import numpy as np

    from ..tracking import datasets

    x, y = values.get("x"), values.get("y")
    if isinstance(x, np.ndarray):
        tracking.log_input(datasets.from_numpy(x, targets=y), context="train")
    val = values.get("validation_data")
    if isinstance(val, tuple) and val and isinstance(val[0], np.ndarray):
        targets = val[1] if len(val) > 1 else None
        # gitrun keeps one input per name: MLflow's default name "dataset" is the train data's
        ds = datasets.from_numpy(val[0], targets=targets, name="eval_dataset")
        tracking.log_input(ds, context="eval")


_callback: type | None = None


def _callback_class() -> type:
    """MlflowCallback, built on first use (it subclasses keras.callbacks.Callback)."""
    global _callback
    if _callback is not None:
        return _callback
    keras = _keras()

    class MlflowCallback(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        """Logs the optimizer config and model summary when training begins, the epoch (or
        every n batch) logs, and the validation logs, to the active run (MLflow's names)."""

        def __init__(
            self,
            log_every_epoch: bool = True,
            log_every_n_steps: int | None = None,
            model_id: Any = None,
            _live: Any = None,
        ) -> None:
            super().__init__()
            _check_frequency(log_every_epoch, log_every_n_steps)
            self.log_every_epoch = log_every_epoch
            self.log_every_n_steps = log_every_n_steps
            self._live = _live

        def _run(self) -> Any:
            return self._live if self._live is not None else tracking.live_run()

        def on_train_begin(self, logs: Any = None) -> None:
            with _autolog.safely(FLAVOR_NAME, "the optimizer params"):
                live = self._run()
                for k, v in self.model.optimizer.get_config().items():
                    live.log_param(f"optimizer_{k}", v)
            with _autolog.safely(FLAVOR_NAME, "model_summary.txt"):
                lines: list[str] = []
                self.model.summary(print_fn=lambda line, *a, **k: lines.append(line))
                self._run().log_artifact_bytes(
                    "\n".join(lines).encode("utf-8"), "model_summary.txt"
                )

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if self.log_every_epoch and logs:
                self._log(logs, epoch)

        def on_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.log_every_n_steps is None or not logs:
                return
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            if step % self.log_every_n_steps == 0:
                self._log(logs, step)

        def on_test_end(self, logs: Any = None) -> None:
            if logs:
                self._log({f"validation_{k}": v for k, v in logs.items()}, 0)

        def _log(self, logs: dict[str, Any], step: int) -> None:
            try:  # the per-step path: no context manager, one timestamp for the batch
                log = self._run().log_metric
                ts = int(time.time() * 1000)
                for k, v in logs.items():
                    log(k, float(v), step, ts)
            except Exception as e:
                _autolog.warn(FLAVOR_NAME, f"metrics not logged ({type(e).__name__}: {e})")

    _callback = MlflowCallback
    return _callback


def __getattr__(name: str) -> Any:
    if name in ("MlflowCallback", "MLflowCallback"):
        return _callback_class()
    raise AttributeError(f"module 'gitrun.keras' has no attribute '{name}'")
