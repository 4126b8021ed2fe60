"""The query layer: runs rebuilt from refs/gitrun/runs, searched by metric.

`filter.py` parses MLflow's filter grammar (and gitrun's extensions), `index.py` keeps
the SQLite cache of history and compiles filters to SQL, `api.py` shapes results as
MLflow's search_runs returns them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._git import Repo
from ..format import journal, store
from ..format.entities import RunRecord

if TYPE_CHECKING:
    from .index import Progress


def all_records(repo: Repo, include_live: bool = True) -> dict[str, RunRecord]:
    recs = store.read_records(repo, store.list_run_trees(repo))
    if include_live:
        for r in journal.live_runs(repo):
            recs[r.run_id] = r
    return recs


def records(repo: Repo, ids: list[str]) -> dict[str, RunRecord]:
    trees = store.list_run_trees(repo)
    out = store.read_records(repo, {i: trees[i] for i in ids if i in trees})
    for r in journal.live_runs(repo):
        if r.run_id in ids:
            out[r.run_id] = r
    return out


def names(repo: Repo) -> dict[str, str]:
    """run id -> run name for every run (from the index: fast at 10,000 runs)."""
    from .index import run_names

    return run_names(repo)


def experiment_names(repo: Repo, progress: Progress | None = None) -> list[str]:
    from .index import experiment_names as names_of_experiments

    return names_of_experiments(repo, progress)


class ViewType:
    """Which runs a search sees, by lifecycle stage (MLflow's ViewType)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    @classmethod
    def from_string(cls, view_str: str) -> int:
        names = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}
        key = str(view_str).strip().upper()
        if key not in names:
            from ..errors import InvalidInputError

            raise InvalidInputError(
                f"Unknown run view type {view_str!r}; use ACTIVE_ONLY, DELETED_ONLY or ALL."
            )
        return names[key]

    @classmethod
    def to_string(cls, view_type: int) -> str:
        return {1: "active_only", 2: "deleted_only", 3: "all"}[view_type]  # as MLflow
