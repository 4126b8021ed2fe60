"""search_runs with MLflow's semantics, and list_runs for `gitrun ls`."""

from __future__ import annotations

import warnings
from typing import Any

from .._git import Repo
from ..errors import InvalidInputError
from ..format.entities import Run, RunRecord
from . import ViewType
from .index import Progress, Row, search

INFO_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")
_LIFECYCLES = {
    ViewType.ACTIVE_ONLY: ("active",),
    ViewType.DELETED_ONLY: ("deleted",),
    ViewType.ALL: None,
}


_SQLITE_MAX_INT = 2**63 - 1


def check_max_results(value: Any) -> int:
    """A positive whole number of runs (MLflow's rule: max_results is at least 1)."""
    import numbers

    n: int | None = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        n = int(value)
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    if n is None or n < 1:
        raise InvalidInputError(
            f"Invalid max_results {value!r}: it must be a whole number of runs, 1 or more."
        )
    return min(n, _SQLITE_MAX_INT)


def check_order_by(order_by: Any) -> list[str]:
    """order_by as MLflow takes it: a list of strings such as 'metrics.acc DESC'."""
    if order_by is None:
        return []
    if isinstance(order_by, str) or not isinstance(order_by, (list, tuple)):
        raise InvalidInputError(
            f"Invalid order_by {order_by!r}: it must be a list of strings, e.g. "
            "order_by=['metrics.acc DESC']."
        )
    for item in order_by:
        if not isinstance(item, str):
            raise InvalidInputError(
                f"Invalid order_by item {item!r}: each item must be a string such as "
                "'metrics.acc DESC'."
            )
    return list(order_by)


def lifecycles(run_view_type: Any) -> tuple[str, ...] | None:
    if run_view_type is None:
        return _LIFECYCLES[ViewType.ACTIVE_ONLY]
    if isinstance(run_view_type, str):
        run_view_type = ViewType.from_string(run_view_type)
    if run_view_type not in _LIFECYCLES:
        raise InvalidInputError(
            f"Unknown run_view_type {run_view_type!r}; use ViewType.ACTIVE_ONLY (1), "
            "DELETED_ONLY (2) or ALL (3)."
        )
    return _LIFECYCLES[run_view_type]


def resolve_experiments(
    repo: Repo,
    experiment_ids: list[str] | None,
    experiment_names: list[str] | None,
    search_all_experiments: bool,
    default: str | None = None,
) -> list[str] | None:
    """Experiment names to search (None: all); experiments are named, the id is the name.
    `default` is searched when nothing else is asked (MLflow: the active experiment)."""
    from .index import experiment_names as known_experiments

    if isinstance(experiment_ids, str):
        experiment_ids = [experiment_ids]
    if isinstance(experiment_names, str):
        experiment_names = [experiment_names]
    for what, value in (("experiment_ids", experiment_ids), ("experiment_names", experiment_names)):
        if value is not None and not isinstance(value, (list, tuple)):
            raise InvalidInputError(
                f"Invalid {what} {value!r}: pass a list of experiment names, e.g. ['Default']."
            )
    if experiment_ids and experiment_names:
        raise InvalidInputError(
            "Pass either experiment_ids or experiment_names to search_runs, not both."
        )
    if experiment_ids:
        return [str(e) for e in experiment_ids]
    if experiment_names:
        # As MLflow, an unknown name is left out of the search; a warning says so (the
        # CLI checks names before it gets here and refuses unknown ones).
        known = set(known_experiments(repo))
        out = []
        for name in experiment_names:
            if name in known:
                out.append(name)
            else:
                warnings.warn(
                    f"No experiment named '{name}' has any runs; it is left out of the search.",
                    stacklevel=3,
                )
        return out
    if search_all_experiments or default is None:
        return None
    return [default]


def to_run(row: Row) -> Run:
    return row.to_record().to_run()


def frame_columns(rows: list[Row]) -> tuple[list[str], list[list[Any]]]:
    """MLflow's DataFrame layout as plain lists (times stay epoch milliseconds).

    Columns: the six info columns, then metrics.*, params.*, tags.*, each group in order
    of first appearance (a run's own keys sorted).  Zero runs: only the six columns.
    """
    metric_keys: dict[str, None] = {}
    param_keys: dict[str, None] = {}
    tag_keys: dict[str, None] = {}
    for r in rows:
        metric_keys.update(dict.fromkeys(r.metrics))
        param_keys.update(dict.fromkeys(r.params))
        tag_keys.update(dict.fromkeys(r.tags))
    columns = list(INFO_COLUMNS)
    columns += ["metrics." + k for k in metric_keys]
    columns += ["params." + k for k in param_keys]
    columns += ["tags." + k for k in tag_keys]
    nan = float("nan")
    data = []
    for r in rows:
        data.append(
            [r.run_id, r.experiment, r.status, r.artifact_uri, r.start_time, r.end_time]
            + [r.metrics.get(k, nan) for k in metric_keys]
            + [r.params.get(k) for k in param_keys]
            + [r.tags.get(k) for k in tag_keys]
        )
    return columns, data


def to_dataframe(rows: list[Row]) -> Any:
    import numpy as np
    import pandas as pd

    columns, data = frame_columns(rows)
    n_metrics = sum(1 for c in columns if c.startswith("metrics."))
    cols: dict[str, Any] = {}
    for i, name in enumerate(columns):
        values = [d[i] for d in data]
        if name in ("start_time", "end_time"):
            ms = np.array([np.nan if v is None else v for v in values], dtype="float64")
            s = pd.to_datetime(ms, unit="ms", utc=True)
            cols[name] = pd.Series(s, dtype="datetime64[ns, UTC]")
        elif 6 <= i < 6 + n_metrics:
            cols[name] = pd.Series(values, dtype="float64")
        else:
            cols[name] = pd.Series(values, dtype="object")
    return pd.DataFrame(cols, columns=columns)


def frame_from_columns(data: dict[str, Any]) -> Any:
    """search_runs' DataFrame from index.fetch_columns, built column-wise (the same frame
    to_dataframe builds from Rows)."""
    import numpy as np
    import pandas as pd

    rids = data["rids"]
    if not rids:
        return to_dataframe([])
    n = len(rids)
    lookup = np.full(data["max_rid"] + 1, -1, dtype=np.int64)
    lookup[np.asarray(rids, dtype=np.int64)] = np.arange(n)

    def positions(rows: list[Any]) -> tuple[Any, Any]:
        pos = lookup[np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))]
        keep = pos >= 0
        return pos[keep], keep

    cols: dict[str, Any] = {}
    runs = data["runs"]
    pos, keep = positions(runs)
    for i, name in enumerate(INFO_COLUMNS, start=1):
        if name in ("start_time", "end_time"):
            ms = np.full(n, np.nan, dtype="float64")
            ms[pos] = np.array([r[i] for r in runs], dtype="float64")[keep]
            s = pd.to_datetime(ms, unit="ms", utc=True)
            cols[name] = pd.Series(s, dtype="datetime64[ns, UTC]")
        else:
            col = np.empty(n, dtype=object)
            col[pos] = np.array([r[i] for r in runs], dtype=object)[keep]
            cols[name] = pd.Series(col, dtype="object")
    # Each group in order of first appearance, a run's own keys sorted: by (first run, key).
    for table in ("metrics", "params", "tags"):
        found = []
        for key, rows in data[table].items():
            pos, keep = positions(rows)
            if len(pos):
                found.append((int(pos.min()), key, rows, pos, keep))
        found.sort(key=lambda f: (f[0], f[1]))
        for _first, key, rows, pos, keep in found:
            if table == "metrics":
                col = np.full(n, np.nan, dtype="float64")
                col[pos] = np.array([r[1] for r in rows], dtype="float64")[keep]
                cols["metrics." + key] = pd.Series(col, dtype="float64")
            else:
                col = np.full(n, None, dtype=object)
                values = np.empty(len(rows), dtype=object)
                values[:] = [r[1] for r in rows]
                col[pos] = values[keep]
                cols[f"{table}.{key}"] = pd.Series(col, dtype="object")
    return pd.DataFrame(cols, columns=list(cols))


def list_runs(
    repo: Repo,
    experiments: list[str] | None = None,
    max_results: int | None = 20,
    progress: Progress | None = None,
) -> list[RunRecord]:
    """Runs of every lifecycle stage, latest first (what `gitrun ls` shows)."""
    rows = search(
        repo,
        "",
        experiments=experiments or None,
        lifecycles=None,
        max_results=max_results or None,
        progress=progress,
    )
    return [r.to_record() for r in rows]
