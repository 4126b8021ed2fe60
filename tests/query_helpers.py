"""Runs written straight into history (fast), for the query tests."""

from __future__ import annotations

from gitrun.format import store
from gitrun.format.entities import Metric, RunRecord


def make_record(
    run_id,
    name,
    start,
    params=None,
    metrics=None,
    tags=None,
    status="FINISHED",
    experiment="Default",
    lifecycle="active",
):
    """metrics: key -> list of values logged at steps 0, 1, 2..."""
    history = {
        k: [Metric(k, float(v), start + i, i) for i, v in enumerate(vals)]
        for k, vals in (metrics or {}).items()
    }
    rec = RunRecord(
        run_id=run_id,
        run_name=name,
        experiment=experiment,
        status=status,
        lifecycle_stage=lifecycle,
        start_time=start,
        end_time=start + 10,
        updated_time=start + 10,
        params={k: str(v) for k, v in (params or {}).items()},
        tags={"mlflow.runName": name, **(tags or {})},
        history=history,
    )
    rec.metrics = rec.latest_metrics()
    return rec


def put_records(repo, recs, parent=None):
    """All records in one commit on the runs ref (like thousands of runs, but fast)."""
    old = repo.read_ref(store.RUNS_REF) if parent is None else parent
    trees = {r.run_id: store.write_run_tree(repo, r) for r in recs}
    root = store.put_run_dirs(repo, store.tip_tree(repo, old), trees)
    parents = [old] if old else []
    commit = repo.write_commit(root, parents, f"test: {len(recs)} runs\n")
    assert repo.update_ref(store.RUNS_REF, commit, repo.read_ref(store.RUNS_REF))
    return commit
