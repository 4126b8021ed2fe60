"""Search entry points (to be replaced by the indexed query engine)."""

from __future__ import annotations

from ..entities import RunRecord
from ..git import Repo
from . import all_records


def list_runs(
    repo: Repo, experiments: list[str] | None = None, max_results: int | None = 20
) -> list[RunRecord]:
    recs = [r for r in all_records(repo).values() if not experiments or r.experiment in experiments]
    recs.sort(key=lambda r: (-(r.start_time or 0), r.run_id))
    return recs[:max_results] if max_results else recs
