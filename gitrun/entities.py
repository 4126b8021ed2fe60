"""`gitrun.entities` as MLflow programs import it (`from mlflow.entities import ...`).

The classes live in `gitrun.format.entities`; ViewType (search) and FileInfo (artifacts)
come from the query layer and load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .format.entities import (
    Experiment,
    ExperimentTag,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    SourceType,
)

if TYPE_CHECKING:
    from .query import ViewType
    from .query.artifacts import FileInfo

__all__ = [
    "Experiment",
    "ExperimentTag",
    "FileInfo",
    "LifecycleStage",
    "Metric",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "SourceType",
    "ViewType",
]

_LAZY = {"ViewType": "gitrun.query", "FileInfo": "gitrun.query.artifacts"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gitrun.entities' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
