"""The query layer: runs rebuilt from refs/gitrun/runs, searched by metric."""

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
    return {rid: r.run_name for rid, r in all_records(repo).items()}


def experiment_names(repo: Repo) -> list[str]:
    return sorted({r.experiment for r in all_records(repo).values()})
