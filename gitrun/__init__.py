"""gitrun: every ML run is a commit on refs/gitrun/runs.

The module-level API follows MLflow's fluent API, so `import gitrun as mlflow`
keeps MLflow tracking code working.  Importing gitrun is cheap: no pandas, no
yaml, no git process until a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import GitrunError, MlflowException

if TYPE_CHECKING:  # the names below load on first use (see __getattr__)
    from .format.entities import Experiment, Metric, Param, Run, RunData, RunInfo, RunTag
    from .tracking import (
        ActiveRun,
        active_run,
        create_experiment,
        delete_tag,
        end_run,
        get_artifact_uri,
        get_experiment,
        get_experiment_by_name,
        get_metric_history,
        get_run,
        last_active_run,
        log_artifact,
        log_artifacts,
        log_dict,
        log_figure,
        log_image,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        report,
        set_experiment,
        set_tag,
        set_tags,
        start_run,
    )

_ENTITIES = frozenset({"Experiment", "Metric", "Param", "Run", "RunData", "RunInfo", "RunTag"})

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "Experiment",
    "GitrunError",
    "Metric",
    "MlflowException",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunTag",
    "active_run",
    "create_experiment",
    "delete_tag",
    "end_run",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_run",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "report",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]

# The fluent API lives in gitrun.tracking; it is imported on first use, so tools that
# only search (the CLI's `gitrun search`) never pay for it.
_TRACKING = frozenset(__all__) - _ENTITIES - {"GitrunError", "MlflowException", "search_runs"}

# Heavier parts load on first use so `import gitrun` stays light.
_LAZY = {
    "search_runs": ("gitrun.tracking.search", "search_runs"),
    "MlflowClient": ("gitrun.tracking.client", "MlflowClient"),
    "autolog": ("gitrun.mlflow.autolog", "autolog"),
}
# MLflow's submodules, each a real module (gitrun/<name>.py): `from gitrun.models import ...`.
_LAZY_MODULES = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "pytorch",
    "keras",
    "spark",
    "pyspark",
    "pyfunc",
    "query",
    "entities",
    "models",
    "artifacts",
    "types",
    "exceptions",
    "client",
    "data",
)
# MLflow module names that are gitrun modules under another name.
_ALIASES: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _TRACKING or name in _ENTITIES:
        module = "gitrun.tracking" if name in _TRACKING else "gitrun.format.entities"
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"gitrun.{name}")
    if name in _ALIASES:
        return importlib.import_module(_ALIASES[name])
    compat = importlib.import_module("gitrun.mlflow.compat")
    if name in compat.EXTRA:
        return compat.EXTRA[name]
    stub = compat.missing(name)
    if stub is not None:
        return stub
    raise AttributeError(
        f"module 'gitrun' has no attribute '{name}'; see docs/mlflow.md for the MLflow "
        "API gitrun implements"
    )
