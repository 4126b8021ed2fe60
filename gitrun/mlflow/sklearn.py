"""scikit-learn support: autolog, and models in MLflow's directory format.

`import gitrun as mlflow` then `mlflow.sklearn.autolog()` / `mlflow.sklearn.log_model(...)`
work as in MLflow; a model gitrun logged loads with `mlflow.sklearn.load_model` too.
"""

from __future__ import annotations

import functools
import math
import os
import pickle
import shutil
import sys
import tempfile
import threading
import warnings
from typing import Any

from ..errors import require

require("sklearn", "'gitrun-ml[sklearn]'")

from .. import tracking  # noqa: E402
from ..errors import InvalidInputError  # noqa: E402
from ..query import artifacts  # noqa: E402
from . import mlmodel  # noqa: E402

FLAVOR_NAME = "sklearn"
MODEL_FILE = "model.pkl"
SERIALIZATION_PICKLE = "pickle"
SERIALIZATION_CLOUDPICKLE = "cloudpickle"
SUPPORTED_SERIALIZATION_FORMATS = [SERIALIZATION_PICKLE, SERIALIZATION_CLOUDPICKLE]
PATCHED_METHODS = ("fit", "fit_predict", "fit_transform")


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def _default_format() -> str:
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        return SERIALIZATION_PICKLE
    return SERIALIZATION_CLOUDPICKLE


def _no_registry(registered_model_name: str | None) -> None:
    if registered_model_name:
        raise NotImplementedError(
            "gitrun has no model registry, so registered_model_name cannot be used; refer to "
            "the model by its run as runs:/<run_id>/<path> (the model_uri log_model returns)."
        )


def save_model(
    sk_model: Any,
    path: str,
    conda_env: Any = None,
    code_paths: Any = None,
    mlflow_model: Any = None,
    serialization_format: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    pyfunc_predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    *,
    _run_id: str | None = None,
    _artifact_path: str | None = None,
) -> dict[str, Any]:
    """Write `sk_model` as an MLflow model directory at `path`; returns the MLmodel contents."""
    import sklearn

    fmt = serialization_format or _default_format()
    if fmt not in SUPPORTED_SERIALIZATION_FORMATS:
        raise InvalidInputError(
            f"Unsupported serialization format '{fmt}'; gitrun writes "
            f"{' or '.join(SUPPORTED_SERIALIZATION_FORMATS)}."
        )
    if code_paths:
        raise NotImplementedError(
            "gitrun.sklearn.save_model does not copy code_paths; the run's code commit "
            "already holds the exact code (gitrun checkout <run>)."
        )
    path = mlmodel.prepare_dir(path)
    with open(os.path.join(path, MODEL_FILE), "wb") as f:
        if fmt == SERIALIZATION_CLOUDPICKLE:
            import cloudpickle

            cloudpickle.dump(sk_model, f)
        else:
            pickle.dump(sk_model, f, protocol=pickle.DEFAULT_PROTOCOL)
    packages = ["scikit-learn"] + (["cloudpickle"] if fmt == SERIALIZATION_CLOUDPICKLE else [])
    if pip_requirements is not None:
        packages = list(pip_requirements)
    packages += list(extra_pip_requirements or [])
    mlmodel.write_env_files(path, packages)
    pyfunc_conf = {
        "env": {"conda": mlmodel.CONDA_FILE, "virtualenv": mlmodel.PYTHON_ENV_FILE},
        "loader_module": "mlflow.sklearn",
        "model_path": MODEL_FILE,
        "predict_fn": pyfunc_predict_fn,
        "python_version": mlmodel.python_version(),
    }
    flavors = {
        "python_function": pyfunc_conf,
        FLAVOR_NAME: {
            "code": None,
            "pickled_model": MODEL_FILE,
            "serialization_format": fmt,
            "sklearn_version": sklearn.__version__,
        },
    }
    doc = mlmodel.write_mlmodel(path, flavors, run_id=_run_id, artifact_path=_artifact_path)
    if metadata:
        from ..format import yamlio

        doc["metadata"] = metadata
        with open(os.path.join(path, mlmodel.MLMODEL_FILE), "w", encoding="utf-8") as fh:
            yamlio.dump(doc, fh)
    return doc


def log_model(
    sk_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: Any = None,
    serialization_format: str | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    pyfunc_predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    **_: Any,
) -> mlmodel.ModelInfo:
    """Log the model as artifacts of the active run (started if none) under `name`."""
    _no_registry(registered_model_name)
    dest = tracking.safe_artifact_path(name or artifact_path or "model")
    live = tracking.live_run()
    tmp = tempfile.mkdtemp(prefix="gitrun-model-")
    try:
        local = os.path.join(tmp, "model")
        doc = save_model(
            sk_model,
            local,
            serialization_format=serialization_format,
            pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements,
            pyfunc_predict_fn=pyfunc_predict_fn,
            metadata=metadata,
            _run_id=live.run_id,
            _artifact_path=dest,
        )
        from ..capture import artwalk

        for full, rel_path, _size in artwalk.walk(local, artwalk.Limits(0, 0)).files:
            live.log_artifact_file(full, f"{dest}/{rel_path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return mlmodel.ModelInfo(
        artifact_path=dest,
        flavors=doc["flavors"],
        model_uri=f"runs:/{live.run_id}/{dest}",
        model_uuid=doc["model_uuid"],
        run_id=live.run_id,
        utc_time_created=doc["utc_time_created"],
        mlflow_version=doc.get("mlflow_version"),
        metadata=metadata or {},
    )


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """Load a model from runs:/<run_id>/<path>, a local directory or file: URI."""
    local = artifacts.resolve_uri(model_uri, dst_path)
    doc = mlmodel.read_mlmodel(local)
    conf = doc["flavors"].get(FLAVOR_NAME)
    if conf is None:
        raise InvalidInputError(
            f"The model at '{model_uri}' has no sklearn flavor (it has "
            f"{', '.join(doc['flavors'])}); load it with the matching flavor."
        )
    return _load_pickled(os.path.join(local, conf.get("pickled_model", MODEL_FILE)), conf)


def _load_pickled(path: str, conf: dict[str, Any]) -> Any:
    fmt = conf.get("serialization_format", SERIALIZATION_PICKLE)
    if fmt == "skops":
        skops_io = require("skops.io", "skops")
        trusted = conf.get("skops_trusted_types") or skops_io.get_untrusted_types(file=path)
        return skops_io.load(path, trusted=trusted)
    if fmt not in SUPPORTED_SERIALIZATION_FORMATS:
        raise InvalidInputError(f"Unsupported serialization format '{fmt}' in {path}.")
    with open(path, "rb") as f:
        if fmt == SERIALIZATION_CLOUDPICKLE:
            cloudpickle = require("cloudpickle", "cloudpickle")
            return cloudpickle.load(f)
        return pickle.load(f)


# pyfunc loader protocol (gitrun.pyfunc calls this; MLflow's own loader is mlflow.sklearn)
def _load_pyfunc(path: str) -> Any:
    if os.path.isdir(path):
        conf = mlmodel.read_mlmodel(path)["flavors"].get(FLAVOR_NAME, {})
        return _load_pickled(os.path.join(path, conf.get("pickled_model", MODEL_FILE)), conf)
    return _load_pickled(path, {"serialization_format": _default_format()})


# ---------------------------------------------------------------------------
# autolog
# ---------------------------------------------------------------------------
class _Config:
    log_models = True
    serialization_format: str | None = None
    pos_label: Any = None
    extra_tags: dict[str, Any] | None = None
    silent = False


_config = _Config()
_state = threading.local()
_patched: dict[tuple[type, str], Any] = {}


class _PatchedMethod:
    """Replaces fit/fit_predict/fit_transform on a class; a descriptor so that sklearn's
    `available_if` methods keep raising AttributeError when unavailable."""

    def __init__(self, original: Any, name: str) -> None:
        self.original = original
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        bound = self.original.__get__(obj, owner)
        if obj is None:
            return bound

        @functools.wraps(bound)
        def call(*args: Any, **kwargs: Any) -> Any:
            return _fit(obj, bound, args, kwargs)

        return call


def _estimator_classes() -> list[type]:
    from sklearn.base import BaseEstimator
    from sklearn.utils import all_estimators

    seen: dict[type, None] = {}
    for _name, cls in all_estimators():
        seen[cls] = None
    todo = [BaseEstimator]
    while todo:  # also subclasses defined by the user or by other libraries
        c = todo.pop()
        for sub in c.__subclasses__():
            if sub not in seen:
                seen[sub] = None
                todo.append(sub)
    return list(seen)


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    max_tuning_runs: int | None = 5,
    log_post_training_metrics: bool = True,
    serialization_format: str | None = None,
    registered_model_name: str | None = None,
    pos_label: Any = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Log every top-level `fit` of a scikit-learn estimator (params, tags, metrics, model)."""
    if disable:
        for (cls, meth), original in _patched.items():
            setattr(cls, meth, original)
        _patched.clear()
        return
    _no_registry(registered_model_name)
    _config.log_models = log_models
    _config.serialization_format = serialization_format
    _config.pos_label = pos_label
    _config.extra_tags = dict(extra_tags or {})
    _config.silent = silent
    for cls in _estimator_classes():
        for meth in PATCHED_METHODS:
            if (cls, meth) in _patched:
                continue
            original = cls.__dict__.get(meth)
            if original is None or isinstance(original, _PatchedMethod):
                continue
            try:
                setattr(cls, meth, _PatchedMethod(original, meth))
            except (TypeError, AttributeError):
                continue  # a class that cannot be patched (e.g. defined in C)
            _patched[(cls, meth)] = original


def _fit(estimator: Any, bound: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if getattr(_state, "depth", 0) > 0:  # a fit inside a fit: Pipeline steps, CV internals
        return bound(*args, **kwargs)
    _state.depth = 1
    try:
        started = tracking.active_run() is None
        if started:
            tracking.start_run()
        try:
            result = bound(*args, **kwargs)
        except BaseException:
            if started:
                tracking.end_run("FAILED")
            raise
        try:
            _log_fit(estimator, args, kwargs)
        except Exception as e:  # logging must never break the user's training
            if not _config.silent:
                warnings.warn(f"gitrun autolog could not log the fit: {e}", stacklevel=3)
        if started:
            tracking.end_run("FINISHED")
        return result
    finally:
        _state.depth = 0


def _xy(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    x = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return x, y


def _warn(msg: str) -> None:
    if not _config.silent:
        print(f"gitrun autolog: {msg}", file=sys.stderr)


def _log_fit(estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    live = tracking.live_run()
    try:
        params = estimator.get_params(deep=True)
    except Exception:
        params = {}
    for k, v in params.items():
        try:
            live.log_param(k, v)
        except Exception as e:
            _warn(f"param '{k}' not logged ({e})")
    best = getattr(estimator, "best_params_", None)
    if isinstance(best, dict):  # GridSearchCV, RandomizedSearchCV
        for k, v in best.items():
            try:
                live.log_param(f"best_{k}", v)
            except Exception as e:
                _warn(f"param 'best_{k}' not logged ({e})")
    cls = type(estimator)
    live.set_tag("estimator_name", cls.__name__)
    live.set_tag("estimator_class", f"{cls.__module__}.{cls.__name__}")
    for k, v in (_config.extra_tags or {}).items():
        live.set_tag(k, v)
    x, y = _xy(args, kwargs)
    metrics = _training_metrics(estimator, x, y, kwargs.get("sample_weight"))
    if isinstance(getattr(estimator, "best_score_", None), (int, float)):
        metrics["best_cv_score"] = float(estimator.best_score_)
    for k, v in metrics.items():
        live.log_metric(k, v, 0, None)
    if _config.log_models:
        log_model(estimator, name="model", serialization_format=_config.serialization_format)


def _training_metrics(est: Any, x: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    from sklearn import metrics as skm
    from sklearn.base import is_classifier, is_regressor

    if x is None or y is None:
        return {}
    out: dict[str, float] = {}

    def add(name: str, fn: Any) -> None:
        try:
            v = float(fn())
        except Exception as e:
            _warn(f"metric '{name}' not computed ({type(e).__name__}: {e})")
            return
        out[name] = v

    sw = {"sample_weight": sample_weight} if sample_weight is not None else {}
    if is_classifier(est) and hasattr(est, "predict"):
        y_pred = est.predict(x)
        labels = set(_flat(y))
        binary = len(labels) <= 2 and (
            _config.pos_label is not None or labels <= {0, 1} or labels <= {-1, 1}
        )
        avg: dict[str, Any] = {"average": "binary"} if binary else {"average": "weighted"}
        if binary and _config.pos_label is not None:
            avg["pos_label"] = _config.pos_label
        add("training_precision_score", lambda: skm.precision_score(y, y_pred, **avg, **sw))
        add("training_recall_score", lambda: skm.recall_score(y, y_pred, **avg, **sw))
        add("training_f1_score", lambda: skm.f1_score(y, y_pred, **avg, **sw))
        add("training_accuracy_score", lambda: skm.accuracy_score(y, y_pred, **sw))
        if hasattr(est, "predict_proba"):
            try:
                proba = est.predict_proba(x)
            except Exception as e:
                _warn(f"predict_proba failed ({e}); no log loss or ROC AUC")
                proba = None
            if proba is not None:
                classes = getattr(est, "classes_", None)
                add("training_log_loss", lambda: skm.log_loss(y, proba, labels=classes, **sw))
                if proba.shape[1] == 2:
                    add("training_roc_auc", lambda: skm.roc_auc_score(y, proba[:, 1], **sw))
                else:
                    add(
                        "training_roc_auc",
                        lambda: skm.roc_auc_score(
                            y, proba, multi_class="ovr", labels=classes, **sw
                        ),
                    )
    elif is_regressor(est) and hasattr(est, "predict"):
        y_pred = est.predict(x)
        add("training_mean_squared_error", lambda: skm.mean_squared_error(y, y_pred, **sw))
        add(
            "training_root_mean_squared_error",
            lambda: math.sqrt(skm.mean_squared_error(y, y_pred, **sw)),
        )
        add("training_mean_absolute_error", lambda: skm.mean_absolute_error(y, y_pred, **sw))
        add("training_r2_score", lambda: skm.r2_score(y, y_pred, **sw))
    if hasattr(est, "score"):
        add("training_score", lambda: est.score(x, y, **sw))
    return out


def _flat(y: Any) -> list[Any]:
    import numpy as np

    a = np.asarray(y)
    return a.ravel().tolist() if a.ndim <= 1 else []
