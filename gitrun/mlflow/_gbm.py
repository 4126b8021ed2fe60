"""What the xgboost and lightgbm flavors share: the patched train / fit calls, the parameters of
a train call, per-iteration metric names, feature importance artifacts, input examples taken
from the training data, and the model directory checks.  Nothing here imports a framework."""

from __future__ import annotations

import copy
import inspect
import io
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInputError
from . import autolog

EXAMPLE_ROWS = 5  # rows of the training data kept as input example (MLflow's count)
EXAMPLE_ATTR = "_gitrun_input_example"  # set on a DMatrix / Dataset when it is built


def fn_params(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], unlogged: Any) -> dict:
    """The arguments of a call to `fn` by name, with the defaults of the ones not passed, as
    MLflow logs a train function's arguments; `unlogged` names are left out."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for p, v in zip(positional, args):
        out[p.name] = v
    out.update(kwargs)
    for p in params[len(args) :]:
        if p.name not in out and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            out[p.name] = p.default
    return {k: v for k, v in out.items() if k not in unlogged}


def argument(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    """The value passed for parameter `name` (None when not passed)."""
    try:
        return inspect.signature(fn).bind_partial(*args, **kwargs).arguments.get(name)
    except TypeError:
        return kwargs.get(name)


def metric_names(metrics: dict[str, Any]) -> dict[str, Any]:
    """MLflow's rule: "@" (ndcg@3) is not allowed in a metric name and becomes "_at_"."""
    return {k.replace("@", "_at_"): v for k, v in metrics.items()}


def log_params(flavor: str, live: Any, params: dict[str, Any]) -> None:
    for k, v in params.items():
        with autolog.safely(flavor, f"param '{k}'"):
            live.log_param(str(k), v)


def log_metrics(live: Any, metrics: dict[str, Any], step: int) -> None:
    for k, v in metrics.items():
        live.log_metric(k, float(v), step, None)


# ---------------------------------------------------------------------------
# autolog: turning it on, the patched calls
# ---------------------------------------------------------------------------
# .<flavor>: the run of a sklearn-API fit, for the train call inside it
_fit = threading.local()

# train(live, original, args, kwargs, direct): log a train call (direct: not inside a fit)
Train = Callable[[Any, Any, tuple, dict, bool], Any]
# log(model, example, predict): log the model of an autologged call
LogModel = Callable[[Any, Any, Any], None]


def enable(flavor: str, fw: Any, minimum: str, maximum: str, settings: dict[str, Any]) -> bool:
    """Configure the flavor's autologging with `settings` and put back what it patched; True
    when the framework `fw` is to be patched (autolog not disabled, and its version in range
    unless disable_for_unsupported_versions)."""
    autolog.configure(flavor, **settings)
    autolog.unpatch(flavor)
    if settings["disable"]:
        return False
    return autolog.supported(flavor, [fw.__version__], minimum, maximum)


def sklearn_classes(base: type) -> list[type]:
    """`base` (XGBModel, LGBMModel) and its subclasses that define their own fit."""
    seen: list[type] = []
    todo = [base]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.append(c)
        todo.extend(c.__subclasses__())
    return [c for c in seen if "fit" in c.__dict__]


def patch(
    flavor: str,
    fw: Any,
    sklearn_module: Any,
    data_class: type,
    model_base: type,
    train: Train,
    fit: Callable[..., Any],
) -> None:
    """Patch the framework's `train` (also as its sklearn module calls it), the constructor of
    its data class (DMatrix / Dataset: keeps an input example) and every sklearn-API fit."""
    wrapped = patched_train(flavor, train)
    autolog.patch(flavor, fw, "train", wrapped)
    autolog.patch(flavor, sklearn_module, "train", wrapped)
    autolog.patch(flavor, data_class, "__init__", patched_data_init(flavor))
    for cls in sklearn_classes(model_base):
        autolog.patch(flavor, cls, "fit", fit)


def patched_data_init(flavor: str) -> Callable[..., Any]:
    """The wrapper of a DMatrix / Dataset constructor: keeps the data's first rows on it, the
    input example (and signature source) of the model trained on it."""

    def init(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        cfg = autolog.config(flavor)
        if cfg.log_models and (cfg.log_input_examples or cfg.log_model_signatures):
            keep_example(self, args[0] if args else kwargs.get("data"))

    return init


def patched_train(flavor: str, train: Train) -> Callable[..., Any]:
    """The wrapper of `<framework>.train`: the train call of a sklearn-API fit logs to the
    fit's run (all but the model), an outermost one to the autolog run."""

    def wrapper(original: Any, *args: Any, **kwargs: Any) -> Any:
        live = getattr(_fit, flavor, None)
        if live is not None:
            setattr(_fit, flavor, None)
            with autolog.outermost():
                return train(live, original, args, kwargs, False)
        return autolog.logged_call(
            flavor,
            lambda: original(*args, **kwargs),
            lambda live: train(live, original, args, kwargs, True),
        )

    return wrapper


def patched_fit(
    flavor: str,
    prefix: str,
    log: LogModel,
    eval_set: Callable[[dict[str, Any]], Any] = lambda kwargs: kwargs.get("eval_set"),
) -> Callable[..., Any]:
    """The wrapper of a sklearn-API fit: the training and eval data as inputs, the train call
    inside logged to this run, then the model (with an example of X's first rows)."""

    def wrapper(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
        def fit(live: Any) -> Any:
            x = args[0] if args else kwargs.get("X")
            example = first_rows(x)
            log_datasets(flavor, fit_datasets(x, eval_set(kwargs), prefix))
            setattr(_fit, flavor, live)
            try:
                result = original(self, *args, **kwargs)
            finally:
                setattr(_fit, flavor, None)
            log(self, example, self.predict)
            return result

        return autolog.logged_call(flavor, lambda: original(self, *args, **kwargs), fit)

    return wrapper


def train(
    flavor: str,
    live: Any,
    original: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    unlogged: Any,
    datasets: list[tuple[Any, str, str]] | None,
    callback: Callable[[list[dict[str, float]]], Any],
) -> tuple[Any, list[dict[str, float]]]:
    """Log a train call's booster params and arguments (and `datasets` when given), then
    train with `callback(results)` appended to its callbacks; returns (model, the metrics of
    each iteration)."""
    booster_params = argument(original, args, kwargs, "params") or {}
    with autolog.safely(flavor, "the booster params"):
        log_params(flavor, live, dict(booster_params))
    log_params(flavor, live, fn_params(original, args, kwargs, unlogged))
    if datasets is not None:
        log_datasets(flavor, datasets)
    results: list[dict[str, float]] = []
    call_args, call_kwargs = args, kwargs
    with autolog.safely(flavor, "per-iteration metrics"):
        call_args, call_kwargs = autolog.with_callback(original, args, kwargs, callback(results))
    return original(*call_args, **call_kwargs), results


def log_model(
    flavor: str, log_model: Any, model: Any, example: Any, predict: Any, **kwargs: Any
) -> None:
    """Log the model of an autologged call under "model" when log_models is on, with the
    input example and signature autolog's settings ask for."""
    cfg = autolog.config(flavor)
    if not cfg.log_models:
        return
    with autolog.safely(flavor, "the model"):
        ex, sig = example_and_signature(flavor, example, predict)
        log_model(
            model,
            name="model",
            signature=sig,
            input_example=ex,
            registered_model_name=cfg.registered_model_name,
            **kwargs,
        )


# ---------------------------------------------------------------------------
# datasets: the training and evaluation data as run inputs (name, digest, context)
# ---------------------------------------------------------------------------
def _dataset(data: Any, name: str) -> Any:
    from ..tracking import datasets

    if hasattr(data, "to_csv") and hasattr(data, "columns"):  # a pandas DataFrame
        return datasets.from_pandas(data, name=name)
    if hasattr(data, "tocsr") and hasattr(data, "nnz"):  # scipy sparse: hashed as it is
        import numpy as np

        csr = data.tocsr()
        parts = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr}
        return datasets.from_numpy({**parts, "shape": np.asarray(csr.shape)}, name=name)
    if hasattr(data, "dtype") and hasattr(data, "shape"):  # numpy
        return datasets.from_numpy(data, name=name)
    return None  # lists, file paths, ...: not recorded


def log_datasets(flavor: str, sets: list[tuple[Any, str, str]]) -> None:
    """Record each (data, name, context) as an input of the active run, as MLflow's autolog
    logs the training ("train") and evaluation ("eval") data when log_datasets is on."""
    from .. import tracking

    if not autolog.config(flavor).log_datasets:
        return
    for data, name, context in sets:
        with autolog.safely(flavor, f"the dataset '{name}'"):
            ds = _dataset(data, name)
            if ds is not None:
                tracking.log_input(ds, context=context)


def fit_datasets(x: Any, eval_set: Any, prefix: str) -> list[tuple[Any, str, str]]:
    """The data of a sklearn-API fit: X as "train", each eval set X as "<prefix>_<i>"."""
    sets: list[tuple[Any, str, str]] = [(x, "train", "train")]
    for i, pair in enumerate(eval_set or []):
        if isinstance(pair, (tuple, list)) and pair and pair[0] is not x:
            sets.append((pair[0], f"{prefix}_{i}", "eval"))
    return sets


# ---------------------------------------------------------------------------
# input examples
# ---------------------------------------------------------------------------
def keep_example(obj: Any, data: Any) -> None:
    """Remember the first rows of the data a DMatrix / Dataset is built from."""
    if data is None or isinstance(data, (str, bytes, os.PathLike)):
        return
    try:
        setattr(obj, EXAMPLE_ATTR, copy.deepcopy(data[:EXAMPLE_ROWS]))
    except Exception:
        pass  # no example for this kind of data; the model is logged without one


def first_rows(data: Any) -> Any:
    if data is None or isinstance(data, (str, bytes, os.PathLike)):
        return None
    try:
        return copy.deepcopy(data[:EXAMPLE_ROWS])
    except Exception:
        return None


def example_and_signature(flavor: str, example: Any, predict: Any) -> tuple[Any, Any]:
    """(input_example, signature) for log_model, as autolog's settings ask: the example only
    with log_input_examples, the signature (inferred from the example and `predict`) only with
    log_model_signatures."""
    cfg = autolog.config(flavor)
    if example is None or not (cfg.log_input_examples or cfg.log_model_signatures):
        return None, None
    signature = None
    if cfg.log_model_signatures:
        with autolog.safely(flavor, "the model signature"):
            from .signature import infer_signature

            signature = infer_signature(example, predict(copy.deepcopy(example)))
    # signature=False: an input example alone must not bring a signature back
    sig = signature if signature is not None else False
    return (example if cfg.log_input_examples else None), sig


# ---------------------------------------------------------------------------
# feature importance
# ---------------------------------------------------------------------------
def importance_png(features: list[Any], values: Any, importance_type: str) -> bytes | None:
    """A horizontal bar chart of the importances (None when matplotlib is not installed).
    `values` is one number per feature, or one row of per-class numbers per feature."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    import numpy as np

    vals = np.asarray(values, dtype=float)
    if vals.ndim <= 1:
        vals = vals.reshape(-1, 1)
    order = np.argsort(np.abs(vals).sum(axis=1), kind="stable")
    names = [str(features[i]) for i in order]
    vals = vals[order]
    n_features, n_classes = vals.shape
    height = 4.8 + (0.1 * n_features if n_features > 10 else 0) + (0.1 * n_classes)
    fig = Figure(figsize=(6.4, height))
    ax = fig.subplots()
    ys = np.arange(n_features)
    bar = 0.5 / n_classes if n_classes > 1 else 0.5
    for c in range(n_classes):
        offset = (c - (n_classes - 1) / 2) * bar
        label = f"Class {c}" if n_classes > 1 else None
        ax.barh(ys + offset, vals[:, c], height=bar, align="center", label=label)
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.set_xlabel("Importance")
    ax.set_title(f"Feature Importance ({importance_type})")
    if n_classes > 1:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def log_importance(
    flavor: str,
    live: Any,
    importance_type: str,
    mapping: dict[str, Any],
    indent: int | None = None,
) -> None:
    """`feature_importance_<type>.json` and, with matplotlib, `feature_importance_<type>.png`."""
    with autolog.safely(flavor, f"feature_importance_{importance_type}.json"):
        data = json.dumps(mapping, indent=indent).encode("utf-8")
        live.log_artifact_bytes(data, f"feature_importance_{importance_type}.json")
    if not mapping:
        return  # nothing to draw (no split used any feature)
    with autolog.safely(flavor, f"feature_importance_{importance_type}.png"):
        png = importance_png(list(mapping), list(mapping.values()), importance_type)
        if png is not None:
            live.log_artifact_bytes(png, f"feature_importance_{importance_type}.png")


def log_importances(
    flavor: str,
    live: Any,
    importance_types: Any,
    importance: Callable[[str], dict[str, Any]],
    indent: int | None = None,
) -> None:
    """log_importance for each type; `importance(type)` gives the feature -> value mapping."""
    for imp_type in importance_types:
        imp: dict[str, Any] | None = None
        with autolog.safely(flavor, f"feature importance '{imp_type}'"):
            imp = importance(imp_type)
        if imp is not None:
            log_importance(flavor, live, imp_type, imp, indent=indent)


# ---------------------------------------------------------------------------
# model directories
# ---------------------------------------------------------------------------
def data_file(model_dir: str, conf: dict[str, Any], what: str) -> str:
    """The model file a flavor entry names, refused when it points outside the directory."""
    rel = conf.get("data")
    if not isinstance(rel, str) or not rel:
        raise InvalidInputError(f"The {what} flavor in {model_dir}/MLmodel names no data file.")
    root = os.path.realpath(model_dir)
    full = os.path.realpath(os.path.join(root, rel))
    if not full.startswith(root + os.sep) or not os.path.isfile(full):
        raise InvalidInputError(
            f"The {what} model file '{rel}' named in {model_dir}/MLmodel is not a file inside "
            "the model directory."
        )
    return full


def flavor_conf(model_dir: str, flavor: str) -> Any:
    """The flavor's entry in the MLmodel file of `model_dir`."""
    from . import mlmodel

    conf = mlmodel.read_mlmodel(model_dir)["flavors"].get(flavor)
    if conf is None:
        raise InvalidInputError(
            f"The model at '{model_dir}' has no {flavor} flavor; load it with its own flavor."
        )
    return conf


def class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
