"""XGBoost support: autolog, and models in MLflow's xgboost flavor format.

`import gitrun as mlflow` then `mlflow.xgboost.autolog()` logs `xgboost.train` and the
scikit-learn API (XGBClassifier, XGBRegressor, ...) as MLflow does: every booster param and the
train call's arguments, `<eval_name>-<metric>` at each iteration (step = iteration), with early
stopping `stopped_iteration`, `best_iteration` and the best iteration's metrics one step after
the last, `feature_importance_<type>.json` (+ `.png` with matplotlib) and the model.  A model
gitrun logged loads with `mlflow.xgboost.load_model` and `mlflow.pyfunc.load_model`.

xgboost itself is imported only inside the functions here.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidInputError
from ..query import artifacts
from . import _gbm, mlmodel
from . import autolog as _autolog

FLAVOR_NAME = "xgboost"
MIN_VERSION, MAX_VERSION = "1.4", "3"  # the versions autolog is tested with (3 means 3.x)
SUPPORTED_FORMATS = ("ubj", "json", "xgb", "deprecated")
# xgboost.train arguments MLflow does not log as params (data, callables, the booster params)
_UNLOGGED = (
    "params",
    "dtrain",
    "evals",
    "obj",
    "feval",
    "evals_result",
    "xgb_model",
    "callbacks",
    "learning_rates",
)


def _xgb() -> Any:
    return _autolog.require_framework(FLAVOR_NAME)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def save_model(
    xgb_model: Any,
    path: str,
    conda_env: Any = None,
    code_paths: Any = None,
    mlflow_model: Any = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    model_format: str = "ubj",
    metadata: dict[str, Any] | None = None,
    extra_files: Any = None,
    *,
    _run_id: str | None = None,
    _artifact_path: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Write an xgboost Booster or sklearn-API model as an MLflow model directory at `path`
    (model.<model_format>, MLmodel, environment files); returns the MLmodel contents."""
    xgb = _xgb()
    if model_format not in SUPPORTED_FORMATS:
        raise InvalidInputError(
            f"Unsupported xgboost model format '{model_format}'; use one of "
            f"{', '.join(SUPPORTED_FORMATS[:3])}."
        )
    if code_paths or extra_files:
        raise NotImplementedError(
            "gitrun.xgboost.save_model does not copy code_paths or extra_files; the run's code "
            "commit already holds the exact code (gitrun checkout <run>)."
        )
    if not isinstance(xgb_model, (xgb.Booster, xgb.XGBModel)):
        raise InvalidInputError(
            f"gitrun.xgboost saves an xgboost.Booster or an xgboost scikit-learn model, not "
            f"{type(xgb_model).__name__}."
        )
    from . import signature as sigs

    example = sigs.input_example(input_example)
    path = mlmodel.prepare_dir(path)
    data = f"model.{model_format}"
    xgb_model.save_model(os.path.join(path, data), **kwargs)
    packages = ["xgboost"]
    mlmodel.write_env_files(path, packages, pip_requirements, extra_pip_requirements)
    flavors = {
        "python_function": mlmodel.pyfunc_flavor("mlflow.xgboost", data=data),
        FLAVOR_NAME: {
            "code": None,
            "data": data,
            "model_class": _gbm.class_name(xgb_model),
            "model_format": model_format,
            "xgb_version": xgb.__version__,
        },
    }
    sig = sigs.model_signature(signature, example, _Wrapper(xgb_model).predict)
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
    xgb_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: Any = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    model_format: str = "ubj",
    metadata: dict[str, Any] | None = None,
    extra_files: Any = None,
    name: str | None = None,
    **kwargs: Any,
) -> mlmodel.ModelInfo:
    """Log the model as artifacts of the active run (started if none) under `name`;
    with registered_model_name, also a new version of that registered model."""
    save_kwargs = {k: v for k, v in kwargs.items() if k not in _LOG_ONLY}
    return _autolog.log_model_dir(
        save_model,
        xgb_model,
        name or artifact_path or "model",
        registered_model_name,
        code_paths=code_paths,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        model_format=model_format,
        metadata=metadata,
        extra_files=extra_files,
        **save_kwargs,
    )


# MLflow 3's log_model arguments about its logged-model entities: gitrun keeps the model as
# run artifacts, so these have nothing to set.
_LOG_ONLY = ("params", "tags", "model_type", "step", "model_id", "prompts")


def _model_class(name: Any) -> Any:
    """The xgboost class an MLmodel names; only xgboost's own model classes are accepted."""
    import importlib

    xgb = _xgb()
    module, _, cls_name = str(name).rpartition(".")
    if module == "xgboost" or module.startswith("xgboost."):
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError):
            cls = None
        if isinstance(cls, type) and issubclass(cls, (xgb.Booster, xgb.XGBModel)):
            return cls
    raise InvalidInputError(
        f"The xgboost model class '{name}' in MLmodel is not an xgboost model class; "
        "gitrun loads xgboost.Booster and xgboost's scikit-learn models."
    )


def _load(model_dir: str) -> Any:
    conf = _gbm.flavor_conf(model_dir, FLAVOR_NAME)
    cls = _model_class(conf.get("model_class", "xgboost.core.Booster"))
    model = cls()
    model.load_model(_gbm.data_file(model_dir, conf, FLAVOR_NAME))
    return model


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """Load a model from runs:/<run_id>/<path>, a local directory or file: URI: an
    xgboost.Booster or the scikit-learn model class it was saved as."""
    _xgb()
    with artifacts.local_copy(model_uri, dst_path) as local:
        return _load(local)


class _Wrapper:
    """pyfunc's predict for an xgboost model: a Booster predicts on a DMatrix."""

    def __init__(self, model: Any) -> None:
        self.xgb_model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        xgb = _xgb()
        if isinstance(self.xgb_model, xgb.Booster):
            return self.xgb_model.predict(xgb.DMatrix(data))
        return self.xgb_model.predict(data)

    def get_raw_model(self) -> Any:
        return self.xgb_model


# pyfunc loader protocol (gitrun.pyfunc calls this; MLflow's own loader is mlflow.xgboost)
def _load_pyfunc(path: str) -> Any:
    return _Wrapper(_load(path if os.path.isdir(path) else os.path.dirname(path)))


# ---------------------------------------------------------------------------
# autolog
# ---------------------------------------------------------------------------
def autolog(
    importance_types: list[str] | None = None,
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    model_format: str = "ubj",
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Log every top-level `xgboost.train` and scikit-learn API `fit` (params, per-iteration
    eval metrics, early stopping, feature importance, the model)."""
    xgb = _xgb()
    if model_format not in SUPPORTED_FORMATS:
        raise InvalidInputError(
            f"Unsupported xgboost model format '{model_format}'; use one of "
            f"{', '.join(SUPPORTED_FORMATS[:3])}."
        )
    if isinstance(importance_types, str):
        importance_types = [importance_types]
    settings = {
        "importance_types": list(importance_types or ["weight"]),
        "log_input_examples": log_input_examples,
        "log_model_signatures": log_model_signatures,
        "log_models": log_models,
        "log_datasets": log_datasets,
        "disable": disable,
        "exclusive": exclusive,
        "disable_for_unsupported_versions": disable_for_unsupported_versions,
        "silent": silent,
        "registered_model_name": registered_model_name,
        "model_format": model_format,
        "extra_tags": extra_tags,
    }
    if not _gbm.enable(FLAVOR_NAME, xgb, MIN_VERSION, MAX_VERSION, settings):
        return
    import xgboost.sklearn

    fit = _gbm.patched_fit(FLAVOR_NAME, "validation", _log_autologged_model)
    _gbm.patch(FLAVOR_NAME, xgb, xgboost.sklearn, xgb.DMatrix, xgb.XGBModel, _train, fit)


def _log_autologged_model(model: Any, example: Any, predict: Any) -> None:
    model_format = _autolog.config(FLAVOR_NAME).extra.get("model_format", "ubj")
    _gbm.log_model(FLAVOR_NAME, log_model, model, example, predict, model_format=model_format)


def _matrix_data(dmatrix: Any) -> Any:
    try:
        return dmatrix.get_data()  # xgboost >= 1.7; not for a QuantileDMatrix
    except Exception:
        return None


def _train_datasets(original: Any, args: tuple, kwargs: dict) -> list[tuple[Any, str, str]]:
    """The data of an xgboost.train call: dtrain as "train", each other eval set by name."""
    dtrain = _gbm.argument(original, args, kwargs, "dtrain")
    sets: list[tuple[Any, str, str]] = [(_matrix_data(dtrain), "train", "train")]
    for pair in _gbm.argument(original, args, kwargs, "evals") or []:
        if isinstance(pair, (tuple, list)) and len(pair) == 2 and pair[0] is not dtrain:
            sets.append((_matrix_data(pair[0]), str(pair[1]), "eval"))
    return sets


def _callback_class() -> Any:
    import xgboost

    class _Callback(xgboost.callback.TrainingCallback):  # type: ignore[misc]
        """Logs `<eval_name>-<metric>` at step = iteration, as MLflow names them."""

        def __init__(self, live: Any, results: list[dict[str, float]]) -> None:
            super().__init__()
            self.live = live
            self.results = results
            self.failed = False

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if self.failed:
                return False
            try:
                point: dict[str, float] = {}
                for data_name, metrics in evals_log.items():
                    for metric, values in _gbm.metric_names(metrics).items():
                        last = values[-1]
                        # with a custom metric + std, xgboost logs (mean, std) pairs
                        point[f"{data_name}-{metric}"] = float(
                            last[0] if isinstance(last, tuple) else last
                        )
                _gbm.log_metrics(self.live, point, epoch)
                self.results.append(point)
            except Exception as e:  # never stop the training
                self.failed = True
                _autolog.warn(FLAVOR_NAME, f"per-iteration metrics not logged ({e})")
            return False

    return _Callback


def _train(
    live: Any, original: Any, args: tuple[Any, ...], kwargs: dict[str, Any], direct: bool
) -> Any:
    cfg = _autolog.config(FLAVOR_NAME)
    datasets = _train_datasets(original, args, kwargs) if direct else None
    model, results = _gbm.train(
        FLAVOR_NAME,
        live,
        original,
        args,
        kwargs,
        _UNLOGGED,
        datasets,
        lambda results: _callback_class()(live, results),
    )
    if _gbm.argument(original, args, kwargs, "early_stopping_rounds"):
        with _autolog.safely(FLAVOR_NAME, "the early-stopping metrics"):
            best = int(model.best_iteration)
            extra_step = len(results)
            _gbm.log_metrics(live, {"stopped_iteration": extra_step - 1, "best_iteration": best}, 0)
            if 0 <= best < len(results):
                _gbm.log_metrics(live, results[best], extra_step)
    importance_types = cfg.extra.get("importance_types") or ["weight"]
    _gbm.log_importances(
        FLAVOR_NAME, live, importance_types, lambda t: model.get_score(importance_type=t)
    )
    if direct:  # a sklearn-API fit logs its model itself
        dtrain = _gbm.argument(original, args, kwargs, "dtrain")
        xgb = _xgb()

        def predict(data: Any) -> Any:
            return model.predict(xgb.DMatrix(data))

        _log_autologged_model(model, getattr(dtrain, _gbm.EXAMPLE_ATTR, None), predict)
    return model
