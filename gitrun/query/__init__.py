"""The query layer: runs rebuilt from refs/gitrun/runs, searched by metric.

`filter.py` parses MLflow's filter grammar (and gitrun's extensions), `index.py` keeps
the SQLite cache of history and compiles filters to SQL, `api.py` is `search_runs`.
"""

from __future__ import annotations

from .. import journal, store
from ..entities import RunRecord
from ..git import Repo


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


def experiment_names(repo: Repo) -> list[str]:
    from .index import experiment_names as names_of_experiments

    return names_of_experiments(repo)
