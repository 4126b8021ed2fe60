"""scikit-learn support: autolog, and models in MLflow's directory format.

`import gitrun as mlflow` then `mlflow.sklearn.autolog()` / `mlflow.sklearn.log_model(...)`
work as in MLflow; a model gitrun logged loads with `mlflow.sklearn.load_model` too.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from typing import Any

from ..errors import require

require("sklearn", "'gitrun-ml[sklearn]'")

from .. import tracking  # noqa: E402
from ..errors import InvalidInputError  # noqa: E402
from ..query import artifacts  # noqa: E402
from . import autolog as _autolog  # noqa: E402
from . import mlmodel  # noqa: E402

FLAVOR_NAME = "sklearn"
MODEL_FILE = "model.pkl"
SERIALIZATION_PICKLE = mlmodel.SERIALIZATION_PICKLE
SERIALIZATION_CLOUDPICKLE = mlmodel.SERIALIZATION_CLOUDPICKLE
SUPPORTED_SERIALIZATION_FORMATS = list(mlmodel.PICKLE_FORMATS)
PATCHED_METHODS = ("fit", "fit_predict", "fit_transform")


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
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

    fmt = serialization_format or mlmodel.default_serialization()
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
    from . import signature as sigs

    example = sigs.input_example(input_example)
    path = mlmodel.prepare_dir(path)
    mlmodel.dump_pickled(sk_model, os.path.join(path, MODEL_FILE), fmt)
    packages = ["scikit-learn"] + (["cloudpickle"] if fmt == SERIALIZATION_CLOUDPICKLE else [])
    mlmodel.write_env_files(path, packages, pip_requirements, extra_pip_requirements)
    flavors = {
        "python_function": mlmodel.pyfunc_flavor(
            "mlflow.sklearn", model_path=MODEL_FILE, predict_fn=pyfunc_predict_fn
        ),
        FLAVOR_NAME: {
            "code": None,
            "pickled_model": MODEL_FILE,
            "serialization_format": fmt,
            "sklearn_version": sklearn.__version__,
        },
    }
    # As MLflow: an input example without a signature gives the signature inferred from
    # the example and the model's prediction on it; signature=False gives none.
    # pyfunc_predict_fn is looked up (and a missing one refused) only to infer a signature
    infer = signature is None and example is not None
    predict = getattr(sk_model, pyfunc_predict_fn) if infer else None
    sig = sigs.model_signature(signature, example, predict)
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
    """Log the model as artifacts of the active run (started if none) under `name`;
    with registered_model_name, also a new version of that registered model."""
    return _autolog.log_model_dir(
        save_model,
        sk_model,
        name or artifact_path or "model",
        registered_model_name,
        serialization_format=serialization_format,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        pyfunc_predict_fn=pyfunc_predict_fn,
        metadata=metadata,
        signature=signature,
        input_example=input_example,
    )


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """Load a model from runs:/<run_id>/<path>, a local directory or file: URI."""
    with artifacts.local_copy(model_uri, dst_path) as local:  # nothing left in /tmp
        doc = mlmodel.read_mlmodel(local)
        conf = mlmodel.flavor_entry(doc, FLAVOR_NAME, model_uri)
        return _load_pickled(os.path.join(local, conf.get("pickled_model", MODEL_FILE)), conf)


def _load_pickled(path: str, conf: dict[str, Any]) -> Any:
    return mlmodel.load_pickled(path, conf, SERIALIZATION_PICKLE, path)


# pyfunc loader protocol (gitrun.pyfunc calls this; MLflow's own loader is mlflow.sklearn)
def _load_pyfunc(path: str) -> Any:
    if os.path.isdir(path):
        conf = mlmodel.read_mlmodel(path)["flavors"].get(FLAVOR_NAME, {})
        return _load_pickled(os.path.join(path, conf.get("pickled_model", MODEL_FILE)), conf)
    return _load_pickled(path, {"serialization_format": mlmodel.default_serialization()})


# ---------------------------------------------------------------------------
# autolog
# ---------------------------------------------------------------------------
class _Config:
    log_models = True
    serialization_format: str | None = None
    pos_label: Any = None
    extra_tags: dict[str, Any] | None = None
    silent = False
    max_tuning_runs: int | None = 5
    registered_model_name: str | None = None


_config = _Config()
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


_SKIPPED_PARTS = {"tests", "externals", "setup", "conftest", "experimental", "estimator_checks"}


def _import_public_modules(path: Any, prefix: str) -> None:
    """Import sklearn's public modules, as sklearn.utils.all_estimators does, but without
    importing its vendored packages (sklearn.externals.array_api_compat.torch imports torch)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(path, prefix):
        parts = info.name.split(".")
        if any(p in _SKIPPED_PARTS or p.startswith("_") for p in parts[1:]):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:
            continue  # an optional dependency of that module is missing
        if info.ispkg:
            _import_public_modules(module.__path__, info.name + ".")


def _estimator_classes() -> list[type]:
    import sklearn
    from sklearn.base import BaseEstimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _import_public_modules(sklearn.__path__, "sklearn.")
    seen: dict[type, None] = {}
    todo = [BaseEstimator]
    while todo:  # also subclasses defined by the user or by other libraries
        c = todo.pop()
        for sub in c.__subclasses__():
            if sub not in seen:
                seen[sub] = None
                todo.append(sub)
    return [c for c in seen if not _excluded(c)]


# As MLflow: data preparation steps are not ML algorithms and get no run of their own
# (inside a Pipeline they are logged as the pipeline's params).
_EXCLUDED_MODULES = (
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.feature_extraction",
    "sklearn.feature_selection",
)
_EXCLUDED_CLASSES = ("sklearn.compose._column_transformer.ColumnTransformer",)
# Estimators of frameworks with a flavor of their own (XGBClassifier, LGBMRegressor) are
# autologged by that flavor, as in MLflow.
_OWN_FLAVOR = tuple(
    f.framework for name, f in _autolog.AUTOLOG_FLAVORS.items() if name != FLAVOR_NAME
)


def _excluded(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    if module.split(".")[0] in _OWN_FLAVOR:
        return True
    return module.startswith(_EXCLUDED_MODULES) or (f"{module}.{cls.__name__}" in _EXCLUDED_CLASSES)


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
        extra_tags=extra_tags,
        registered_model_name=registered_model_name,
    )
    if disable:
        for (cls, meth), original in _patched.items():
            setattr(cls, meth, original)
        _patched.clear()
        return
    if max_tuning_runs is not None and max_tuning_runs < 0:
        raise InvalidInputError(
            f"`max_tuning_runs` must be non-negative, instead got {max_tuning_runs}."
        )
    _config.max_tuning_runs = max_tuning_runs
    _config.log_models = log_models
    _config.serialization_format = serialization_format
    _config.pos_label = pos_label
    _config.extra_tags = dict(extra_tags or {})
    _config.silent = silent
    _config.registered_model_name = registered_model_name
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
    with _autolog.outermost() as top:  # a fit inside a fit: Pipeline steps, CV internals
        if not top or not _autolog.enabled(FLAVOR_NAME):
            return bound(*args, **kwargs)
        with _autolog.autolog_run(FLAVOR_NAME) as live:
            if live is None:  # exclusive=True and the user's run is active
                return bound(*args, **kwargs)
            result = bound(*args, **kwargs)
            try:
                _log_fit(estimator, args, kwargs)
            except Exception as e:  # logging must never break the user's training
                if not _config.silent:
                    warnings.warn(f"gitrun autolog could not log the fit: {e}", stacklevel=3)
            return result


def _xy(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    x = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return x, y


def _warn(msg: str) -> None:
    if not _config.silent:
        print(f"gitrun autolog: {msg}", file=sys.stderr)


def _log_fit(estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    live = tracking.live_run()
    search = _is_search(estimator)
    try:  # a search's seed estimator is untuned: MLflow logs a search's params shallowly
        params = estimator.get_params(deep=not search)
    except Exception:
        params = {}
    for k, v in params.items():
        try:
            live.log_param(k, v)
        except Exception as e:
            _warn(f"param '{k}' not logged ({e})")
    for k, v in _estimator_tags(estimator).items():
        live.set_tag(k, v)
    if _config.log_models:
        log_model(
            estimator,
            name="model",
            serialization_format=_config.serialization_format,
            registered_model_name=_config.registered_model_name,  # as MLflow: a new version
        )
    x, y = _xy(args, kwargs)
    sample_weight = kwargs.get("sample_weight")
    for k, v in _training_metrics(estimator, x, y, sample_weight).items():
        live.log_metric(k, v, 0, None)
    for name, data in _estimator_artifacts(estimator, x, y, sample_weight).items():
        live.log_artifact_bytes(data, name)
    if search:
        _log_search(live, estimator)


def _is_search(estimator: Any) -> bool:
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    return isinstance(estimator, (GridSearchCV, RandomizedSearchCV))


def _estimator_tags(estimator: Any) -> dict[str, str]:
    cls = type(estimator)
    return {"estimator_name": cls.__name__, "estimator_class": f"{cls.__module__}.{cls.__name__}"}


def _log_search(live: Any, search: Any) -> None:
    """MLflow's shape for GridSearchCV/RandomizedSearchCV: `best_estimator/`, `best_cv_score`,
    `best_<param>`, one child run per top-ranked candidate, `cv_results.csv`."""
    best_estimator = getattr(search, "best_estimator_", None)
    if best_estimator is not None and _config.log_models:
        log_model(
            best_estimator, name="best_estimator", serialization_format=_config.serialization_format
        )
    if isinstance(getattr(search, "best_score_", None), (int, float)):
        live.log_metric("best_cv_score", float(search.best_score_), 0, None)
    best = getattr(search, "best_params_", None)
    if isinstance(best, dict):
        for k, v in best.items():
            try:
                live.log_param(f"best_{k}", v)
            except Exception as e:
                _warn(f"param 'best_{k}' not logged ({e})")
    results = getattr(search, "cv_results_", None)
    if not isinstance(results, dict):
        return
    try:
        _log_child_runs(live, search, results)
    except Exception as e:
        _warn(f"child runs of the parameter search may be missing ({e})")
    try:
        live.log_artifact_bytes(_cv_results_csv(results), "cv_results.csv")
    except Exception as e:
        _warn(f"cv_results.csv not logged ({e})")


def _log_child_runs(parent: Any, search: Any, results: dict[str, Any]) -> None:
    import numbers

    n = len(results.get("params", []))
    rows = list(range(n))
    if _config.max_tuning_runs is not None:
        rank = "rank_test_score"
        if rank not in results:
            rank = next((k for k in results if "rank_test_" in k), rank)
            _warn(
                f"top {_config.max_tuning_runs} child runs are chosen by column '{rank}'; "
                "max_tuning_runs=None logs every candidate"
            )
        rows = sorted(rows, key=lambda i: (results[rank][i], i))[: _config.max_tuning_runs]
    from ..tracking.client import MlflowClient

    seed = search.estimator
    base = seed.get_params(deep=not _is_search(seed))
    tags = {
        "mlflow.autologging": FLAVOR_NAME,
        "mlflow.parentRunId": parent.run_id,
        **_estimator_tags(seed),
    }
    active = tracking.active_run()
    start = active.info.start_time if active is not None else None
    client = MlflowClient()  # as MLflow: children never become the active/last run
    for i in rows:
        child = client.create_run(parent.record.experiment, start_time=start, tags=tags)
        run_id = child.info.run_id
        status = "FAILED"
        try:
            for k, v in {**base, **results["params"][i]}.items():
                client.log_param(run_id, k, v)
            for k, col in results.items():
                if k.startswith(("param", "split")):
                    continue
                v = col[i]
                if isinstance(v, numbers.Real) and not isinstance(v, bool):
                    client.log_metric(run_id, k, float(v), step=0)
            status = "FINISHED"
        finally:
            client.set_terminated(run_id, status)


def _cv_results_csv(results: dict[str, Any]) -> bytes:
    try:
        import pandas as pd
    except ImportError:
        import csv
        import io

        import numpy as np

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(list(results))
        for i in range(len(results.get("params", []))):
            row = []
            for col in results.values():
                v = col[i]
                row.append("" if v is np.ma.masked else v)
            w.writerow(row)
        return buf.getvalue().encode("utf-8")
    return pd.DataFrame.from_dict(results).to_csv(index=False).encode("utf-8")


_HTML = """
<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8"/>
  </head>
  <body>
    {}
  </body>
</html>
    """


def _estimator_artifacts(est: Any, x: Any, y: Any, sample_weight: Any) -> dict[str, bytes]:
    """MLflow's `training_*.png` plots for classifiers (when matplotlib is installed) and
    `estimator.html` for every estimator."""
    from sklearn.base import is_classifier

    out: dict[str, bytes] = {}
    if is_classifier(est) and x is not None and y is not None:
        try:
            out.update(_classifier_plots(est, x, y, sample_weight))
        except Exception as e:
            _warn(f"classifier plots not logged ({type(e).__name__}: {e})")
    try:
        from sklearn.utils import estimator_html_repr

        out["estimator.html"] = _HTML.format(estimator_html_repr(est)).encode("utf-8")
    except Exception as e:
        _warn(f"estimator.html not logged ({e})")
    return out


def _classifier_plots(est: Any, x: Any, y: Any, sample_weight: Any) -> dict[str, bytes]:
    from sklearn import metrics as skm

    labels = set(y)  # as MLflow: a 2-D y has no plots
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:  # matplotlib is optional: no plots, as in MLflow
        return {}
    import io

    classes = getattr(est, "classes_", None)
    n_labels = len(classes) if classes is not None else len(labels)
    plots: list[tuple[str, str, Any, dict[str, Any], dict[str, Any]]] = [
        (
            "training_confusion_matrix",
            "Normalized confusion matrix",
            skm.ConfusionMatrixDisplay.from_estimator,
            {"normalize": "true", "cmap": "Blues"},
            {
                "font.size": min(8.0, 50.0 / max(n_labels, 1)),
                "axes.labelsize": 8.0,
                "figure.dpi": 175,
            },
        )
    ]
    if len(labels) == 2:
        plots.append(
            ("training_roc_curve", "ROC curve", skm.RocCurveDisplay.from_estimator, {}, {})
        )
        plots.append(
            (
                "training_precision_recall_curve",
                "Precision recall curve",
                skm.PrecisionRecallDisplay.from_estimator,
                {},
                {},
            )
        )
    out: dict[str, bytes] = {}
    base: dict[str, Any] = {"savefig.dpi": 175, "figure.autolayout": True, "font.size": 8}
    for name, title, fn, extra, rc in plots:
        try:
            settings: Any = {**base, **rc}
            with matplotlib.rc_context(settings):
                fig = Figure(figsize=(6.0, 4.0)) if rc else Figure()
                ax = fig.subplots(1, 1)
                fn(est, x, y, sample_weight=sample_weight, ax=ax, **extra)
                ax.set_title(title)
                buf = io.BytesIO()
                fig.savefig(buf, format="png")
            out[f"{name}.png"] = buf.getvalue()
        except Exception as e:
            _warn(f"'{name}.png' not logged ({type(e).__name__}: {e})")
    return out


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
        # as MLflow: weighted averages unless pos_label is given (then binary)
        avg: dict[str, Any] = {"average": "weighted"}
        if _config.pos_label is not None:
            avg = {"average": "binary", "pos_label": _config.pos_label}
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
                            y, proba, average="weighted", multi_class="ovo", labels=classes, **sw
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
