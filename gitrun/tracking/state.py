"""This process's tracking session: the stack of active runs (started with start_run),
the active experiment (set_experiment), the last active run, and whether the run of a
`gitrun record` wrapper has been joined. The fluent API and the client both read it here.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..format.entities import Run, RunData, RunInfo
from .live import ENV_EXPERIMENT, LiveRun

DEFAULT_EXPERIMENT = "Default"


class ActiveRun(Run):
    """What start_run returns: a Run (info, data) usable as a context manager."""

    def __init__(self, live: LiveRun) -> None:
        rec = live.record
        info = RunInfo(
            run_id=live.run_id,
            experiment_id=rec.experiment,
            run_name=rec.run_name,
            status="RUNNING",
            start_time=rec.start_time or int(time.time() * 1000),
            end_time=None,
            artifact_uri=rec.artifact_uri,
            user_id=rec.user,
        )
        super().__init__(info, RunData(params=dict(rec.params), tags=dict(rec.tags)))
        self.live = live  # the run's journal: what the fluent API logs to

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        if exc_type is KeyboardInterrupt:
            status = "KILLED"
        if self in stack:
            end(stack[-1], status)  # as MLflow: the innermost run ends


# The active runs, innermost last. Mutated in place, never rebound, so the fluent API's
# hot path may hold the list itself.
stack: list[ActiveRun] = []
_experiment: str | None = None
_last: ActiveRun | None = None
_attached_once = False


def push(active: ActiveRun) -> None:
    """`active` becomes the innermost active run (and the last active one)."""
    global _last
    stack.append(active)
    _last = active


def end(active: ActiveRun, status: str) -> None:
    """Take `active` off the stack (wherever it is) and end its run with `status`."""
    for i, a in enumerate(stack):
        if a is active:
            del stack[i]
            break
    active.live.end(status)


def find(run_id: str) -> ActiveRun | None:
    """The active run with this exact id, if this process is logging to it."""
    for active in stack:
        if active.info.run_id == run_id:
            return active
    return None


def last() -> ActiveRun | None:
    return _last


def experiment() -> str | None:
    """The experiment set_experiment chose, if any."""
    return _experiment


def set_experiment(name: str | None) -> None:
    global _experiment
    _experiment = name


def experiment_name(experiment_id: str | None = None) -> str:
    """The experiment a new run goes to: the one given, else set_experiment's, else
    GITRUN_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID, else Default."""
    if experiment_id is not None:
        return str(experiment_id)
    if _experiment:
        return _experiment
    return (
        os.environ.get(ENV_EXPERIMENT)
        or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        or os.environ.get("MLFLOW_EXPERIMENT_ID")
        or DEFAULT_EXPERIMENT
    )


def attached_once() -> bool:
    """Whether this process has joined its `gitrun record` wrapper's run already."""
    return _attached_once


def mark_attached() -> None:
    global _attached_once
    _attached_once = True


def reset() -> None:
    """Forget the session (tests): no active run, experiment or last run."""
    global _experiment, _last, _attached_once
    stack.clear()
    _experiment = None
    _last = None
    _attached_once = False
