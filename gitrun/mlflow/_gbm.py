"""What the xgboost and lightgbm flavors share: the parameters of a train call, per-iteration
metric names, feature importance artifacts, input examples taken from the training data, and
the model directory checks.  Nothing here imports a framework."""

from __future__ import annotations

import copy
import inspect
import io
import json
import os
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


def with_callback(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], cb: Any) -> tuple:
    """(args, kwargs) for calling `fn` with `cb` appended to its `callbacks` argument; the
    caller's own list is left as it was."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return args, kwargs  # the call is wrong anyway: let the framework say so
    bound.arguments["callbacks"] = list(bound.arguments.get("callbacks") or []) + [cb]
    return bound.args, bound.kwargs


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


def class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
