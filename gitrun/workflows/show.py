"""`gitrun show RUN`: one run as plain data.

`as_dict` is what `--format json` prints (NaN as null); `as_rows` the key/value rows of
`--format csv/markdown`, named as search's columns are (params.<key>, metrics.<key>,
tags.<key>, plus code.<field> and artifacts.<path>).  The CLI renders both, and the
table for people from the record itself with `user_tags` and `metric_ranges`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..format.entities import RunRecord

SYSTEM_TAG_PREFIXES = ("mlflow.", "gitrun.")


def _num(v: float) -> float | None:
    return None if math.isnan(v) else v


def inputs_now(repo: Any, rec: RunRecord) -> dict[str, tuple[str, str | None]]:
    """Each file/directory input: "same", "changed" or "missing" now, and its digest now
    (through the stat cache: an unchanged file costs a stat)."""
    if not rec.inputs:
        return {}
    from ..capture import inputs

    return inputs.current(repo, list(rec.inputs.values()))


def inputs_list(
    rec: RunRecord, now: dict[str, tuple[str, str | None]] | None = None
) -> list[dict[str, Any]]:
    from ..format.store import stored_copies

    out = []
    stored = stored_copies(rec)
    for i in rec.inputs.values():
        d: dict[str, Any] = {
            "path": i.path,
            "kind": i.kind,
            "size": i.size,
            "digest": i.digest,
            "context": i.context,
        }
        if i.members:
            d["files_listed"] = len(i.members)
        if i.files is not None:
            d["files"] = i.files
        if i.path in stored:
            d["stored"] = True  # a copy is kept with the run (--store)
        if now is not None and i.path in now and i.kind != "dataset":
            d["now"], d["digest_now"] = now[i.path]
        out.append(d)
    return out


def as_dict(rec: RunRecord, now: dict[str, tuple[str, str | None]] | None = None) -> dict[str, Any]:
    """The run as JSON-ready data: attributes, code, params, final metrics, every metric's
    history, tags, artifacts, inputs (with their state `now`) and environment."""
    return {
        "run_id": rec.run_id,
        "run_name": rec.run_name,
        "experiment": rec.experiment,
        "status": rec.status,
        "start_time": rec.start_time,
        "end_time": rec.end_time,
        "user": rec.user,
        "host": rec.host,
        "command": rec.command,
        "cwd": rec.cwd,
        "exit_code": rec.exit_code,
        "code": rec.code,
        "params": rec.params,
        "metrics": {k: _num(v) for k, v in rec.metrics.items()},
        "metric_history": {
            k: [{"step": m.step, "timestamp": m.timestamp, "value": _num(m.value)} for m in pts]
            for k, pts in rec.history.items()
        },
        "tags": rec.tags,
        "artifacts": [
            {"path": a.path, "size": a.size, "sha256": a.sha256, "storage": a.storage}
            for a in rec.artifacts.values()
        ],
        "inputs": inputs_list(rec, now),
        "env": rec.env,
    }


def as_rows(rec: RunRecord) -> list[list[Any]]:
    """One [key, value] row per attribute, param, metric, tag, artifact, and code field
    (the same names search's columns use)."""
    rows: list[list[Any]] = [
        ["run_id", rec.run_id],
        ["run_name", rec.run_name],
        ["experiment", rec.experiment],
        ["status", rec.status],
        ["lifecycle_stage", rec.lifecycle_stage],
        ["start_time", rec.start_time],
        ["end_time", rec.end_time],
        ["user", rec.user],
        ["host", rec.host],
        ["exit_code", rec.exit_code],
        ["command", json.dumps(rec.command, ensure_ascii=False) if rec.command else None],
        ["cwd", rec.cwd],
    ]
    for k, v in sorted((rec.code or {}).items()):
        if isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False, sort_keys=True)
        rows.append([f"code.{k}", v])
    rows += [[f"params.{k}", v] for k, v in rec.params.items()]
    rows += [[f"metrics.{k}", _metric_text(v)] for k, v in rec.metrics.items()]
    rows += [[f"tags.{k}", v] for k, v in rec.tags.items()]
    rows += [[f"artifacts.{a.path}", a.sha256] for a in rec.artifacts.values()]
    rows += [[f"inputs.{i.path}", i.digest] for i in rec.inputs.values()]
    return rows


def _metric_text(v: float) -> str:
    # repr keeps every digit (a rendered cell would round to 6 significant ones).
    return repr(v) if isinstance(v, float) and not math.isnan(v) else str(v)


def user_tags(rec: RunRecord) -> dict[str, str]:
    """The run's tags without the system ones (mlflow.*, gitrun.*)."""
    return {k: v for k, v in rec.tags.items() if not k.startswith(SYSTEM_TAG_PREFIXES)}


def metric_ranges(rec: RunRecord) -> dict[str, tuple[int, float, float]]:
    """(points, min, max) of each metric logged more than once (NaN left out of min/max;
    a metric whose every value is NaN is left out)."""
    out = {}
    for k, pts in rec.history.items():
        if len(pts) > 1:
            vals = [p.value for p in pts if not math.isnan(p.value)]
            if vals:
                out[k] = (len(pts), min(vals), max(vals))
    return out
