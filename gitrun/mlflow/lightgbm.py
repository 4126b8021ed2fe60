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
import pickle
import threading
from typing import Any

from ..errors import InvalidInputError
from ..query import artifacts
from . import _gbm, mlmodel
from . import autolog as _autolog

FLAVOR_NAME = "lightgbm"
MIN_VERSION, MAX_VERSION = "3.0", "4"  # the versions autolog is tested with (4 means 4.x)
BOOSTER_CLASS = "lightgbm.basic.Booster"
SERIALIZATION_PICKLE = "pickle"
SERIALIZATION_CLOUDPICKLE = "cloudpickle"
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
def _default_format() -> str:
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        return SERIALIZATION_PICKLE
    return SERIALIZATION_CLOUDPICKLE


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
    fmt = serialization_format or _default_format()
    if fmt not in (SERIALIZATION_PICKLE, SERIALIZATION_CLOUDPICKLE):
        raise InvalidInputError(
            f"Unsupported serialization format '{fmt}'; gitrun writes lightgbm scikit-learn "
            f"models as {SERIALIZATION_CLOUDPICKLE} or {SERIALIZATION_PICKLE}."
        )
    from . import signature as sigs

    example = sigs.InputExample(input_example) if input_example is not None else None
    path = mlmodel.prepare_dir(path)
    data = "model.lgb" if booster else "model.pkl"
    if booster:
        lgb_model.save_model(os.path.join(path, data))
    else:
        with open(os.path.join(path, data), "wb") as f:
            if fmt == SERIALIZATION_CLOUDPICKLE:
                import cloudpickle

                cloudpickle.dump(lgb_model, f)
            else:
                pickle.dump(lgb_model, f, protocol=pickle.DEFAULT_PROTOCOL)
    packages = ["lightgbm"]
    if not booster and fmt == SERIALIZATION_CLOUDPICKLE:
        packages.append("cloudpickle")
    if pip_requirements is not None:
        packages = list(pip_requirements)
    packages += list(extra_pip_requirements or [])
    mlmodel.write_env_files(path, packages)
    flavors = {
        FLAVOR_NAME: {
            "code": None,
            "data": data,
            "lgb_version": lgb.__version__,
            "model_class": _gbm.class_name(lgb_model),
            "serialization_format": fmt,
        },
        "python_function": {
            "data": data,
            "env": {"conda": mlmodel.CONDA_FILE, "virtualenv": mlmodel.PYTHON_ENV_FILE},
            "loader_module": "mlflow.lightgbm",
            "python_version": mlmodel.python_version(),
        },
    }
    if example is not None:
        example.save(path)
    if signature is None and example is not None:
        sig = sigs.signature_from_example(example, lgb_model.predict)
    else:
        sig = sigs.as_signature(signature)
    return mlmodel.write_mlmodel(
        path,
        flavors,
        run_id=_run_id,
        artifact_path=_artifact_path,
        signature=sig.to_dict() if sig else None,
        saved_input_example_info=dict(sorted(example.info.items())) if example else None,
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

    def save(local: str, run_id: str, dest: str) -> dict[str, Any]:
        return save_model(
            lgb_model,
            local,
            code_paths=code_paths,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements,
            metadata=metadata,
            serialization_format=serialization_format,
            extra_files=extra_files,
            _run_id=run_id,
            _artifact_path=dest,
        )

    return _autolog.log_saved_model(  # type: ignore[no-any-return]
        save, name or artifact_path or "model", registered_model_name
    )


def _load(model_dir: str) -> Any:
    conf = mlmodel.read_mlmodel(model_dir)["flavors"].get(FLAVOR_NAME)
    if conf is None:
        raise InvalidInputError(
            f"The model at '{model_dir}' has no lightgbm flavor; load it with its own flavor."
        )
    lgb = _lgb()
    path = _gbm.data_file(model_dir, conf, FLAVOR_NAME)
    if conf.get("model_class", BOOSTER_CLASS) == BOOSTER_CLASS:
        return lgb.Booster(model_file=path)
    fmt = conf.get("serialization_format", SERIALIZATION_CLOUDPICKLE)
    if fmt == "skops":  # what MLflow 3 writes when skops is installed
        from ..errors import require

        skops_io = require("skops.io", "skops")
        trusted = conf.get("skops_trusted_types") or skops_io.get_untrusted_types(file=path)
        return skops_io.load(path, trusted=trusted)
    if fmt not in (SERIALIZATION_PICKLE, SERIALIZATION_CLOUDPICKLE):
        raise InvalidInputError(f"Unsupported serialization format '{fmt}' in {model_dir}.")
    with open(path, "rb") as f:
        if fmt == SERIALIZATION_CLOUDPICKLE:
            from ..errors import require

            return require("cloudpickle", "cloudpickle").load(f)
        return pickle.load(f)


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
_fit = threading.local()  # .live: the run of a sklearn-API fit, for the train call inside it


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
    _autolog.configure(
        FLAVOR_NAME,
        log_input_examples=log_input_examples,
        log_model_signatures=log_model_signatures,
        log_models=log_models,
        log_datasets=log_datasets,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        registered_model_name=registered_model_name,
        extra_tags=extra_tags,
    )
    _autolog.unpatch(FLAVOR_NAME)
    if disable:
        return
    in_range = _autolog.check_version(FLAVOR_NAME, lgb.__version__, MIN_VERSION, MAX_VERSION)
    if not in_range and disable_for_unsupported_versions:
        _autolog.config(FLAVOR_NAME).disable = True
        return
    import lightgbm.sklearn

    _autolog.patch(FLAVOR_NAME, lgb, "train", _patched_train)
    _autolog.patch(FLAVOR_NAME, lightgbm.sklearn, "train", _patched_train)
    _autolog.patch(FLAVOR_NAME, lgb.Dataset, "__init__", _patched_dataset_init)
    for cls in _sklearn_classes(lgb):
        _autolog.patch(FLAVOR_NAME, cls, "fit", _patched_fit)


def _sklearn_classes(lgb: Any) -> list[type]:
    """LGBMModel and its subclasses that define their own fit (LGBMClassifier, ...)."""
    seen: list[type] = []
    todo = [lgb.LGBMModel]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.append(c)
        todo.extend(c.__subclasses__())
    return [c for c in seen if "fit" in c.__dict__]


def _patched_dataset_init(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    original(self, *args, **kwargs)
    cfg = _autolog.config(FLAVOR_NAME)
    if cfg.log_models and (cfg.log_input_examples or cfg.log_model_signatures):
        _gbm.keep_example(self, args[0] if args else kwargs.get("data"))


def _patched_train(original: Any, *args: Any, **kwargs: Any) -> Any:
    live = getattr(_fit, "live", None)
    if live is not None:  # the train call of a sklearn-API fit: logs all but the model
        _fit.live = None
        with _autolog.outermost():
            return _train(live, original, args, kwargs, direct=False)
    with _autolog.outermost() as top:
        if not top:
            return original(*args, **kwargs)
        with _autolog.autolog_run(FLAVOR_NAME) as live:
            if live is None:
                return original(*args, **kwargs)
            return _train(live, original, args, kwargs, direct=True)


def _patched_fit(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    with _autolog.outermost() as top:
        if not top:
            return original(self, *args, **kwargs)
        with _autolog.autolog_run(FLAVOR_NAME) as live:
            if live is None:
                return original(self, *args, **kwargs)
            x = args[0] if args else kwargs.get("X")
            example = _gbm.first_rows(x)
            evals = kwargs.get("eval_set")
            if evals is None and kwargs.get("eval_X") is not None:  # lightgbm >= 4.7
                xs = kwargs["eval_X"]
                evals = [(e,) for e in (xs if isinstance(xs, (list, tuple)) else [xs])]
            _gbm.log_datasets(FLAVOR_NAME, _fit_datasets(x, evals, "valid"))
            _fit.live = live
            try:
                result = original(self, *args, **kwargs)
            finally:
                _fit.live = None
            cfg = _autolog.config(FLAVOR_NAME)
            if cfg.log_models:
                with _autolog.safely(FLAVOR_NAME, "the model"):
                    ex, sig = _gbm.example_and_signature(FLAVOR_NAME, example, self.predict)
                    log_model(
                        self,
                        name="model",
                        signature=sig,
                        input_example=ex,
                        registered_model_name=cfg.registered_model_name,
                    )
            return result


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


def _fit_datasets(x: Any, eval_set: Any, prefix: str) -> list[tuple[Any, str, str]]:
    """The data of a sklearn-API fit: X as "train", each eval set X as "<prefix>_<i>"."""
    sets: list[tuple[Any, str, str]] = [(x, "train", "train")]
    for i, pair in enumerate(eval_set or []):
        if isinstance(pair, (tuple, list)) and pair and pair[0] is not x:
            sets.append((pair[0], f"{prefix}_{i}", "eval"))
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


def _train(
    live: Any, original: Any, args: tuple[Any, ...], kwargs: dict[str, Any], direct: bool
) -> Any:
    cfg = _autolog.config(FLAVOR_NAME)
    booster_params = _gbm.argument(original, args, kwargs, "params") or {}
    with _autolog.safely(FLAVOR_NAME, "the booster params"):
        _gbm.log_params(FLAVOR_NAME, live, dict(booster_params))
    _gbm.log_params(FLAVOR_NAME, live, _gbm.fn_params(original, args, kwargs, _UNLOGGED))
    if direct:
        _gbm.log_datasets(FLAVOR_NAME, _train_datasets(original, args, kwargs))
    results: list[dict[str, float]] = []
    call_args, call_kwargs = _gbm.with_callback(original, args, kwargs, _Callback(live, results))
    model = original(*call_args, **call_kwargs)

    best = int(getattr(model, "best_iteration", 0) or 0)
    if best > 0:  # early stopping was on
        with _autolog.safely(FLAVOR_NAME, "the early-stopping metrics"):
            extra_step = len(results)
            _gbm.log_metrics(live, {"stopped_iteration": extra_step, "best_iteration": best}, 0)
            if 0 < best <= len(results):
                _gbm.log_metrics(live, results[best - 1], extra_step)
    for imp_type in _IMPORTANCE_TYPES:
        imp: dict[str, Any] | None = None
        with _autolog.safely(FLAVOR_NAME, f"feature importance '{imp_type}'"):
            values = model.feature_importance(importance_type=imp_type).tolist()
            imp = dict(zip(model.feature_name(), values))
        if imp is not None:
            _gbm.log_importance(FLAVOR_NAME, live, imp_type, imp, indent=2)
    if direct and cfg.log_models:  # a sklearn-API fit logs its model itself
        with _autolog.safely(FLAVOR_NAME, "the model"):
            train_set = _gbm.argument(original, args, kwargs, "train_set")
            example = getattr(train_set, _gbm.EXAMPLE_ATTR, None)
            ex, sig = _gbm.example_and_signature(FLAVOR_NAME, example, model.predict)
            log_model(
                model,
                name="model",
                signature=sig,
                input_example=ex,
                registered_model_name=cfg.registered_model_name,
            )
    return model
