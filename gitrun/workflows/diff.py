"""`gitrun diff A B`: what differs between two runs.

Params, tags (without mlflow.runName, which the header shows) and artifacts (by
sha256) that differ, as {"a": ..., "b": ...}; final metrics that differ, with the
B - A delta; the code as `git diff` (--stat, or the whole patch) between the two runs'
code commits.  The result is a plain dict, the one `gitrun diff --format json` prints:
NaN is null, an infinity the string "inf" / "-inf".
"""

from __future__ import annotations

import math
from typing import Any

from .._git import Repo
from ..errors import GitrunError
from ..format.entities import RunRecord
from ..query import resolve as runs


def same_value(v: Any) -> Any:
    """`v` as compared: NaN equals NaN."""
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def json_value(v: Any) -> Any:
    """`v` as JSON can hold it: NaN as None, an infinity as the string "inf" / "-inf"."""
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None if math.isnan(v) else str(v)
    return v


def diff(repo: Repo, run_a: str, run_b: str, patch: bool = False) -> dict[str, Any]:
    """Compare runs `run_a` and `run_b` (ids, prefixes or names); see the module docstring."""
    a = runs.load(repo, run_a, history=False)
    b = runs.load(repo, run_b, history=False)
    result = compare(a, b)
    result["code"] = code_diff(repo, a, b, patch)
    return result


def _changed(da: dict[str, Any], db: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k in sorted(set(da) | set(db)):
        va, vb = da.get(k), db.get(k)
        if same_value(va) != same_value(vb):
            out[k] = {"a": json_value(va), "b": json_value(vb)}
    return out


def compare(a: RunRecord, b: RunRecord) -> dict[str, Any]:
    """Everything but the code: who a and b are, and their params, metrics, tags and
    artifacts that differ."""
    metrics = {}
    for k in sorted(set(a.metrics) | set(b.metrics)):
        va, vb = a.metrics.get(k), b.metrics.get(k)
        if same_value(va) == same_value(vb):
            continue
        delta = vb - va if va is not None and vb is not None else None
        metrics[k] = {"a": json_value(va), "b": json_value(vb), "delta": json_value(delta)}
    arts_a = {p: x.sha256 for p, x in a.artifacts.items()}
    arts_b = {p: x.sha256 for p, x in b.artifacts.items()}
    return {
        "a": {"run_id": a.run_id, "run_name": a.run_name, "status": a.status},
        "b": {"run_id": b.run_id, "run_name": b.run_name, "status": b.status},
        "params": _changed(a.params, b.params),
        "metrics": metrics,
        "tags": _changed(
            {k: v for k, v in a.tags.items() if k != "mlflow.runName"},
            {k: v for k, v in b.tags.items() if k != "mlflow.runName"},
        ),
        "artifacts": _changed(arts_a, arts_b),
    }


def code_diff(repo: Repo, a: RunRecord, b: RunRecord, patch: bool = False) -> dict[str, Any]:
    """{"a": commit, "b": commit, "diff": text}: `git diff --stat` (the whole diff with
    `patch`) between the runs' code commits; "" when either has none or they are equal."""
    ca, cb = a.code.get("commit"), b.code.get("commit")
    text = ""
    same_tree = False
    if ca and cb and ca != cb:
        # Two snapshots of the same work tree differ only in their commit message.
        try:
            same_tree = repo.read_commit(ca)[0] == repo.read_commit(cb)[0]
        except GitrunError:
            same_tree = False
    if ca and cb and ca != cb and not same_tree:
        args = ["diff", "--no-color", "--no-ext-diff"] + ([] if patch else ["--stat"])
        proc = repo.git(*args, "--end-of-options", ca, cb, check=False)
        text = (
            proc.stdout.decode(errors="replace")
            if proc.returncode == 0
            else f"(cannot diff code commits {ca[:12]} and {cb[:12]}: not in this repository)"
        )
    return {"a": ca, "b": cb, "diff": text, "same_tree": same_tree}
