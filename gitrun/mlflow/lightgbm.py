"""LightGBM support: autolog, and models in MLflow's lightgbm flavor format.

`import gitrun as mlflow` then `mlflow.lightgbm.autolog()` logs `lightgbm.train` and the
scikit-learn API (LGBMClassifier, LGBMRegressor, ...) as MLflow does: every booster param and
the train call's arguments, `<valid_name>-<metric>` at each iteration (step = iteration), with
early stopping `stopped_iteration`, `best_iteration` and the best iteration's metrics one step
after the last, `feature_importance_split|gain.json` (+ `.png` with matplotlib) and the model.
A model gitrun logged loads with `mlflow.lightgbm.load_model` and `mlflow.pyfunc.load_model`.

lightgbm itself is imported only inside the functions here.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidInputError
from ..query import artifacts
from . import _gbm, mlmodel
from . import autolog as _autolog

FLAVOR_NAME = "lightgbm"
MIN_VERSION, MAX_VERSION = "3.0", "4"  # the versions autolog is tested with (4 means 4.x)
BOOSTER_CLASS = "lightgbm.basic.Booster"
SERIALIZATION_PICKLE = mlmodel.SERIALIZATION_PICKLE
SERIALIZATION_CLOUDPICKLE = mlmodel.SERIALIZATION_CLOUDPICKLE
# lightgbm.train arguments MLflow does not log as params (data, callables, the booster params)
_UNLOGGED = (
    "params",
    "train_set",
    "valid_sets",
    "valid_names",
    "fobj",
    "feval",
    "init_model",
    "learning_rates",
    "callbacks",
    "evals_result",
)
_IMPORTANCE_TYPES = ("split", "gain")


def _lgb() -> Any:
    return _autolog.require_framework(FLAVOR_NAME)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def save_model(
    lgb_model: Any,
    path: str,
    conda_env: Any = None,
    code_paths: Any = None,
    mlflow_model: Any = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    serialization_format: str | None = None,
    extra_files: Any = None,
    *,
    _run_id: str | None = None,
    _artifact_path: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Write a lightgbm Booster (model.lgb) or scikit-learn API model (model.pkl) as an MLflow
    model directory at `path`; returns the MLmodel contents."""
    lgb = _lgb()
    if code_paths or extra_files:
        raise NotImplementedError(
            "gitrun.lightgbm.save_model does not copy code_paths or extra_files; the run's "
            "code commit already holds the exact code (gitrun checkout <run>)."
        )
    booster = isinstance(lgb_model, lgb.Booster)
    if not booster and not isinstance(lgb_model, lgb.LGBMModel):
        raise InvalidInputError(
            f"gitrun.lightgbm saves a lightgbm.Booster or a lightgbm scikit-learn model, not "
            f"{type(lgb_model).__name__}."
        )
    fmt = serialization_format or mlmodel.default_serialization()
    if fmt not in mlmodel.PICKLE_FORMATS:
        raise InvalidInputError(
            f"Unsupported serialization format '{fmt}'; gitrun writes lightgbm scikit-learn "
            f"models as {SERIALIZATION_CLOUDPICKLE} or {SERIALIZATION_PICKLE}."
        )
    from . import signature as sigs

    example = sigs.input_example(input_example)
    path = mlmodel.prepare_dir(path)
    data = "model.lgb" if booster else "model.pkl"
    if booster:
        lgb_model.save_model(os.path.join(path, data))
    else:
        mlmodel.dump_pickled(lgb_model, os.path.join(path, data), fmt)
    packages = ["lightgbm"]
    if not booster and fmt == SERIALIZATION_CLOUDPICKLE:
        packages.append("cloudpickle")
    mlmodel.write_env_files(path, packages, pip_requirements, extra_pip_requirements)
    flavors = {
        FLAVOR_NAME: {
            "code": None,
            "data": data,
            "lgb_version": lgb.__version__,
            "model_class": _gbm.class_name(lgb_model),
            "serialization_format": fmt,
        },
        "python_function": mlmodel.pyfunc_flavor("mlflow.lightgbm", data=data),
    }
    sig = sigs.model_signature(signature, example, lgb_model.predict)
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
    lgb_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: Any = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    serialization_format: str | None = None,
    extra_files: Any = None,
    name: str | None = None,
    **_: Any,
) -> mlmodel.ModelInfo:
    """Log the model as artifacts of the active run (started if none) under `name`;
    with registered_model_name, also a new version of that registered model."""
    return _autolog.log_model_dir(
        save_model,
        lgb_model,
        name or artifact_path or "model",
        registered_model_name,
        code_paths=code_paths,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        metadata=metadata,
        serialization_format=serialization_format,
        extra_files=extra_files,
    )


def _load(model_dir: str) -> Any:
    conf = _gbm.flavor_conf(model_dir, FLAVOR_NAME)
    lgb = _lgb()
    path = _gbm.data_file(model_dir, conf, FLAVOR_NAME)
    if conf.get("model_class", BOOSTER_CLASS) == BOOSTER_CLASS:
        return lgb.Booster(model_file=path)
    return mlmodel.load_pickled(path, conf, SERIALIZATION_CLOUDPICKLE, model_dir)


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """Load a model from runs:/<run_id>/<path>, a local directory or file: URI: a
    lightgbm.Booster or the scikit-learn model it was saved as."""
    _lgb()
    with artifacts.local_copy(model_uri, dst_path) as local:
        return _load(local)


class _Wrapper:
    """pyfunc's predict for a lightgbm model."""

    def __init__(self, model: Any) -> None:
        self.lgb_model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.lgb_model.predict(data)

    def get_raw_model(self) -> Any:
        return self.lgb_model


# pyfunc loader protocol (gitrun.pyfunc calls this; MLflow's own loader is mlflow.lightgbm)
def _load_pyfunc(path: str) -> Any:
    return _Wrapper(_load(path if os.path.isdir(path) else os.path.dirname(path)))


# ---------------------------------------------------------------------------
# autolog
# ---------------------------------------------------------------------------
def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Log every top-level `lightgbm.train` and scikit-learn API `fit` (params, per-iteration
    eval metrics, early stopping, feature importance, the model)."""
    lgb = _lgb()
    settings = {
        "log_input_examples": log_input_examples,
        "log_model_signatures": log_model_signatures,
        "log_models": log_models,
        "log_datasets": log_datasets,
        "disable": disable,
        "exclusive": exclusive,
        "disable_for_unsupported_versions": disable_for_unsupported_versions,
        "silent": silent,
        "registered_model_name": registered_model_name,
        "extra_tags": extra_tags,
    }
    if not _gbm.enable(FLAVOR_NAME, lgb, MIN_VERSION, MAX_VERSION, settings):
        return
    import lightgbm.sklearn

    fit = _gbm.patched_fit(FLAVOR_NAME, "valid", _log_autologged_model, _eval_set)
    _gbm.patch(FLAVOR_NAME, lgb, lightgbm.sklearn, lgb.Dataset, lgb.LGBMModel, _train, fit)


def _log_autologged_model(model: Any, example: Any, predict: Any) -> None:
    _gbm.log_model(FLAVOR_NAME, log_model, model, example, predict)


def _eval_set(kwargs: dict[str, Any]) -> Any:
    """The eval sets of a sklearn-API fit: eval_set, or eval_X (lightgbm >= 4.7)."""
    evals = kwargs.get("eval_set")
    if evals is None and kwargs.get("eval_X") is not None:
        xs = kwargs["eval_X"]
        evals = [(e,) for e in (xs if isinstance(xs, (list, tuple)) else [xs])]
    return evals


def _train_datasets(original: Any, args: tuple, kwargs: dict) -> list[tuple[Any, str, str]]:
    """The data of a lightgbm.train call: train_set as "train", each other valid set by name
    (valid_names, else valid_<i> as lightgbm names them)."""
    train_set = _gbm.argument(original, args, kwargs, "train_set")
    sets: list[tuple[Any, str, str]] = [(getattr(train_set, "data", None), "train", "train")]
    names = _gbm.argument(original, args, kwargs, "valid_names") or []
    for i, valid in enumerate(_gbm.argument(original, args, kwargs, "valid_sets") or []):
        if valid is not train_set:
            name = str(names[i]) if i < len(names) else f"valid_{i}"
            sets.append((getattr(valid, "data", None), name, "eval"))
    return sets


class _Callback:
    """Logs `<valid_name>-<metric>` at step = iteration, as MLflow names them."""

    def __init__(self, live: Any, results: list[dict[str, float]]) -> None:
        self.live = live
        self.results = results
        self.failed = False

    def __call__(self, env: Any) -> None:
        if self.failed:
            return
        try:
            point: dict[str, float] = {}
            for item in env.evaluation_result_list:
                point[f"{item[0]}-{item[1]}"] = float(item[2])
            point = _gbm.metric_names(point)
            _gbm.log_metrics(self.live, point, int(env.iteration))
            self.results.append(point)
        except Exception as e:  # never stop the training
            self.failed = True
            _autolog.warn(FLAVOR_NAME, f"per-iteration metrics not logged ({e})")


def _importance(model: Any, importance_type: str) -> dict[str, Any]:
    values = model.feature_importance(importance_type=importance_type).tolist()
    return dict(zip(model.feature_name(), values))


def _train(
    live: Any, original: Any, args: tuple[Any, ...], kwargs: dict[str, Any], direct: bool
) -> Any:
    datasets = _train_datasets(original, args, kwargs) if direct else None
    model, results = _gbm.train(
        FLAVOR_NAME,
        live,
        original,
        args,
        kwargs,
        _UNLOGGED,
        datasets,
        lambda results: _Callback(live, results),
    )
    best = int(getattr(model, "best_iteration", 0) or 0)
    if best > 0:  # early stopping was on
        with _autolog.safely(FLAVOR_NAME, "the early-stopping metrics"):
            extra_step = len(results)
            _gbm.log_metrics(live, {"stopped_iteration": extra_step, "best_iteration": best}, 0)
            if 0 < best <= len(results):
                _gbm.log_metrics(live, results[best - 1], extra_step)
    _gbm.log_importances(
        FLAVOR_NAME, live, _IMPORTANCE_TYPES, lambda t: _importance(model, t), indent=2
    )
    if direct:  # a sklearn-API fit logs its model itself
        train_set = _gbm.argument(original, args, kwargs, "train_set")
        example = getattr(train_set, _gbm.EXAMPLE_ATTR, None)
        _log_autologged_model(model, example, model.predict)
    return model
