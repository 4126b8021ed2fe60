"""MLflow's REST API, read-only, over gitrun's query layer (the JSON shapes of MLflow's
service.proto, as MLflow's tracking server writes them).

Mounted by server.py under /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/ (`routes`), the
artifact proxy under /api/2.0/mlflow-artifacts/ (`artifact_routes`), and /get-artifact
(`top_routes`).  docs/ui.md lists the endpoints.

How gitrun maps onto MLflow's entities:
  - an experiment is a name, and its id is that name; "0" (MLflow's id of its Default
    experiment, what mlflow.search_runs() asks without experiment_ids) means "Default"
    unless an experiment is really named "0".  An empty experiment_ids list searches every
    experiment (MLflow would find nothing).
  - a run's artifact_uri is `mlflow-artifacts:/<run id>/artifacts`, so MLflow's client
    lists and downloads its artifacts through this server's artifact proxy.
  - runs in progress (journals under .git/gitrun/live/) are RUNNING runs, with the
    metrics logged so far.
  - page tokens are MLflow's: base64 of {"offset": N}.

Nothing here writes to the repository: no journal is recovered, no ref is moved.  The
search index (a cache) is brought up to the runs tip as every gitrun command does.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import mimetypes
import posixpath
import sqlite3
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._git import Repo
from ..errors import GitrunError, RunNotFoundError
from ..format import journal, store
from ..format.entities import Metric, RunRecord
from ..format.layout import RUNS_DIR, RUNS_REF, bucket
from ..query import filter as F
from ..query import index as I
from ..query.api import lifecycles

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
TOP_PATHS = ("/get-artifact", "/model-versions/get-artifact")

# MLflow's error codes -> HTTP status (mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS).
HTTP_STATUS = {
    "INTERNAL_ERROR": 500,
    "INVALID_STATE": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "BAD_REQUEST": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "MALFORMED_REQUEST": 400,
}
SEARCH_RUNS_MAX = 50000  # MLflow's server refuses more per page
SEARCH_RUNS_DEFAULT = 1000
SEARCH_EXPERIMENTS_DEFAULT = 1000
DEFAULT_EXPERIMENT = "Default"
DEFAULT_EXPERIMENT_ID = "0"
READ_ONLY = (
    "gitrun ui is read-only: it shows the runs kept in git and changes nothing, so {what} "
    "is refused; log runs with gitrun itself (`gitrun record`, or `import gitrun as "
    "mlflow` in the training script) in the repository."
)

_T = TypeVar("_T")


# ---------------------------------------------------------------------------
# errors in MLflow's shape
# ---------------------------------------------------------------------------
class RestError(GitrunError):
    """An error answered in MLflow's shape with this error code."""

    def __init__(self, message: str, error_code: str = "INVALID_PARAMETER_VALUE") -> None:
        super().__init__(message)
        self.error_code = error_code


def error_response(code: str, message: str, status: int | None = None) -> JSONResponse:
    return JSONResponse(
        {"error_code": code, "message": message},
        status_code=status or HTTP_STATUS.get(code, 500),
    )


def exception_response(exc: BaseException) -> JSONResponse:
    if isinstance(exc, GitrunError):
        code = getattr(exc, "error_code", "INTERNAL_ERROR") or "INTERNAL_ERROR"
        return error_response(code, str(exc))
    return error_response(
        "INTERNAL_ERROR", f"gitrun ui could not answer: {type(exc).__name__}: {exc}"
    )


def read_only_response(request: Request) -> JSONResponse:
    what = f"{request.method} {request.url.path}"
    return error_response("PERMISSION_DENIED", READ_ONLY.format(what=what))


async def call(request: Request, fn: Callable[..., _T], *args: Any) -> _T:
    """fn(*args) in a worker thread, holding the app's repository lock."""
    lock: threading.Lock = request.app.state.lock

    def locked() -> _T:
        with lock:
            return fn(*args)

    return await run_in_threadpool(locked)


def _endpoint(fn: Callable[[Repo, dict[str, Any]], Any]) -> Callable[[Request], Any]:
    """A JSON endpoint: fn(repo, request params) -> a dict (or a Response)."""

    async def handler(request: Request) -> Response:
        try:
            params = await _params(request)
            out = await call(request, fn, request.app.state.repo, params)
        except Exception as e:  # every failure in MLflow's shape, never a traceback
            return exception_response(e)
        if isinstance(out, Response):
            return out
        return _json(out)

    handler.__name__ = fn.__name__
    return handler


def _json(data: Any) -> Response:
    try:
        body = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: written as protobuf writes them
        body = json.dumps(_finite(data), separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json")


def _finite(v: Any) -> Any:
    """NaN and infinities as protobuf's JSON writes them ("NaN", "Infinity")."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


async def _params(request: Request) -> dict[str, Any]:
    """A GET's query string (repeated keys as lists) or a POST's JSON body."""
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        out[key] = values if len(values) > 1 else values[0]
    if request.method == "POST":
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise RestError(
                    "The request body is not valid JSON.", "MALFORMED_REQUEST"
                ) from None
            if not isinstance(body, dict):
                raise RestError("The request body must be a JSON object.", "MALFORMED_REQUEST")
            out.update(body)
    return out


# ---------------------------------------------------------------------------
# request fields (MLflow's checks: _assert_string, _assert_intlike, _assert_array)
# ---------------------------------------------------------------------------
def _string(params: dict[str, Any], key: str, required: bool = False) -> str | None:
    v = params.get(key)
    if v is None or v == "":
        if required:
            raise RestError(f"Missing value for required parameter '{key}'.")
        return None if v is None else ""
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if not isinstance(v, str):
        raise RestError(
            f"Invalid value {json.dumps(v)} for parameter '{key}' supplied: it must be a string."
        )
    return v


def _int(params: dict[str, Any], key: str) -> int | None:
    v = params.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        v = None
    elif isinstance(v, float) and v.is_integer():
        v = int(v)
    elif isinstance(v, str):
        try:
            v = int(v.strip())
        except ValueError:
            v = None
    if not isinstance(v, int):
        raise RestError(
            f"Invalid value {json.dumps(params.get(key))} for parameter '{key}' supplied: it "
            "must be a whole number."
        )
    return v


def _list(params: dict[str, Any], key: str) -> list[str]:
    v = params.get(key)
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise RestError(
            f"Invalid value {json.dumps(v)} for parameter '{key}' supplied: it must be a list "
            "of strings."
        )
    return v


def _offset(token: str | None) -> int:
    """MLflow's page token: base64 of {"offset": N}."""
    if not token:
        return 0
    try:
        data = json.loads(base64.b64decode(token, validate=True))
        offset = data["offset"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise RestError(
            f"Invalid page token {token!r}; pass back a next_page_token unchanged."
        ) from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise RestError(f"Invalid page token {token!r}; pass back a next_page_token unchanged.")
    return offset


def _token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _view_type(value: Any) -> Any:
    """run_view_type as MLflow sends it: a name (ACTIVE_ONLY) or its number."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in (1, 2, 3):
        raise RestError(f"Invalid run_view_type {value!r}; use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    return value


# ---------------------------------------------------------------------------
# reading runs (never writing: no journal.recover, no ref update)
# ---------------------------------------------------------------------------
@contextmanager
def _session(repo: Repo) -> Iterator[sqlite3.Connection]:
    """The query index (plus runs in progress); from history in memory when the index
    cannot be used (a read-only repository, say)."""
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(I.session(repo))
        except sqlite3.DatabaseError:
            conn = stack.enter_context(I.session(repo, use_index=False))
        yield conn


def _experiment_names(repo: Repo) -> dict[str, tuple[int | None, int | None]]:
    """experiment -> (first start_time, last start/end time) over its runs."""
    with _session(repo) as conn:
        rows = conn.execute(
            "SELECT experiment, min(start_time), max(coalesce(end_time, start_time))"
            " FROM runs GROUP BY experiment ORDER BY experiment"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _experiment_of(experiment_id: str, known: dict[str, Any] | set[str]) -> str:
    """The experiment an experiment id names: MLflow's "0" is "Default" unless an
    experiment is really named "0"."""
    if experiment_id == DEFAULT_EXPERIMENT_ID and experiment_id not in known:
        return DEFAULT_EXPERIMENT
    return experiment_id


def artifact_uri(run_id: str) -> str:
    return f"mlflow-artifacts:/{run_id}/artifacts"


def _metric(m: Metric) -> dict[str, Any]:
    return {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}


def run_json(
    run_id: str,
    run_name: str,
    experiment: str,
    status: str,
    lifecycle_stage: str,
    user_id: str,
    start_time: int | None,
    end_time: int | None,
    metrics: list[dict[str, Any]],
    params: dict[str, str],
    tags: dict[str, str],
) -> dict[str, Any]:
    """One Run as MLflow's server writes it (mlflow.Run in service.proto)."""
    info: dict[str, Any] = {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": run_name,
        "experiment_id": experiment,
        "user_id": user_id or "",
        "status": status,
        "start_time": start_time,
        "end_time": end_time,
        "artifact_uri": artifact_uri(run_id),
        "lifecycle_stage": lifecycle_stage,
    }
    info = {k: v for k, v in info.items() if v is not None}
    all_tags = dict(tags)
    if run_name and "mlflow.runName" not in all_tags:
        all_tags["mlflow.runName"] = run_name  # MLflow's servers keep the name as this tag too
    data: dict[str, Any] = {}
    if metrics:
        data["metrics"] = metrics
    if params:
        data["params"] = [{"key": k, "value": v} for k, v in params.items()]
    if all_tags:
        data["tags"] = [{"key": k, "value": v} for k, v in all_tags.items()]
    return {"info": info, "data": data, "inputs": {}}


def _row_json(r: I.Row) -> dict[str, Any]:
    # The index keeps each metric's latest value; its step and time are read with the run.
    metrics = [{"key": k, "value": v} for k, v in r.metrics.items()]
    return run_json(
        r.run_id,
        r.run_name,
        r.experiment,
        r.status,
        r.lifecycle_stage,
        r.user_id,
        r.start_time,
        r.end_time,
        metrics,
        r.params,
        r.tags,
    )


def record_json(rec: RunRecord) -> dict[str, Any]:
    latest: list[dict[str, Any]] = []
    for _key, points in sorted(rec.history.items()):
        if points:
            latest.append(_metric(max(points, key=Metric.sort_key)))
    if not latest:  # no history read: the latest values alone
        latest = [{"key": k, "value": v} for k, v in sorted(rec.metrics.items())]
    return run_json(
        rec.run_id,
        rec.run_name,
        rec.experiment,
        rec.status,
        rec.lifecycle_stage,
        rec.user,
        rec.start_time,
        rec.end_time,
        latest,
        dict(sorted(rec.params.items())),
        dict(sorted(rec.tags.items())),
    )


class _Records:
    """Recently read committed runs, by run tree id (immutable: never stale)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, bool], RunRecord] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, repo: Repo, run_id: str, tree: str, history: bool) -> RunRecord:
        with self.lock:
            for key in ((tree, True), (tree, history)):
                rec = self.items.get(key)
                if rec is not None:
                    self.items.move_to_end(key)
                    return rec
        rec = store.read_record(repo, run_id, tree, history=history)
        with self.lock:
            self.items[(tree, history)] = rec
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return rec


_records = _Records()


def run_tree(repo: Repo, run_id: str) -> str | None:
    """The tree of a committed run at the runs tip, found by its path (no full listing)."""
    tip = repo.read_ref(RUNS_REF)
    if not tip:
        return None
    runs = store.runs_top(repo, tip).get(RUNS_DIR)
    if not runs:
        return None
    b = bucket(run_id)
    btree = store.run_buckets(repo, runs[1]).get(b)
    if btree is None:
        return None
    return (store.bucket_runs(repo, b, btree) or {}).get(run_id)


def load_run(repo: Repo, run_id: str | None, history: bool = True) -> RunRecord:
    """A run by its full id: in progress (its journal) or committed; MLflow's
    RESOURCE_DOES_NOT_EXIST otherwise."""
    if not run_id:
        raise RestError("Missing value for required parameter 'run_id'.")
    if store.is_run_id(run_id):
        for rec in journal.live_runs(repo):
            if rec.run_id == run_id:
                return rec
        tree = run_tree(repo, run_id)
        if tree is not None:
            return _records.get(repo, run_id, tree, history)
    raise RunNotFoundError(f"Run with id={run_id} not found; `gitrun ls` lists the runs.")


# ---------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------
def experiment_json(name: str, times: tuple[int | None, int | None] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "experiment_id": name,
        "name": name,
        "artifact_location": f"mlflow-artifacts:/experiments/{urllib.parse.quote(name)}",
        "lifecycle_stage": "active",
    }
    if times is not None:
        if times[0] is not None:
            out["creation_time"] = times[0]
        if times[1] is not None:
            out["last_update_time"] = times[1]
    return out


def _known_experiment(repo: Repo, name: str) -> dict[str, Any] | None:
    known = _experiment_names(repo)
    name = _experiment_of(name, known)
    if name in known:
        return experiment_json(name, known[name])
    if name == DEFAULT_EXPERIMENT:  # MLflow always has it, with or without runs
        return experiment_json(name, None)
    return None


def get_experiment(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    eid = _string(params, "experiment_id", required=True)
    assert eid is not None
    exp = _known_experiment(repo, eid)
    if exp is None:
        raise RunNotFoundError(f"No Experiment with id={eid} exists.")
    return {"experiment": exp}


def get_experiment_by_name(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    name = _string(params, "experiment_name", required=True)
    assert name is not None
    known = _experiment_names(repo)
    if name in known:
        return {"experiment": experiment_json(name, known[name])}
    if name == DEFAULT_EXPERIMENT:
        return {"experiment": experiment_json(name, None)}
    raise RunNotFoundError(f"Could not find experiment with name '{name}'")


def _experiment_filter(text: str | None) -> Callable[[str], bool]:
    """MLflow's experiment filter for gitrun's experiments (which have only a name):
    `name = 'x'`, `name != 'x'`, `name LIKE 'x%'`, `name ILIKE '%x%'`, AND-joined."""
    if not text or not text.strip():
        return lambda name: True
    tests: list[Callable[[str], bool]] = []
    for part in _split_and(text):
        toks = F.tokenize(part)
        words = [t for t in toks if t.kind != "end"]
        ok = len(words) == 3 or (len(words) == 4 and words[1].value.upper() == "NOT")
        ident = words[0].value.lower() if words else ""
        if not ok or ident not in ("name", "attribute.name", "attributes.name", "attr.name"):
            raise RestError(
                f"Invalid experiment filter {text!r}: gitrun's experiments have only a name; "
                "filter with name = 'x', name != 'x', name LIKE 'x%' or name ILIKE '%x%'."
            )
        op = " ".join(w.value.upper() for w in words[1:-1])
        value = words[-1]
        if value.kind != "string":
            raise RestError(f"Invalid experiment filter {text!r}: quote the name, e.g. 'sweep'.")
        tests.append(_name_test(op, value.value, text))
    return lambda name: all(t(name) for t in tests)


def _split_and(text: str) -> list[str]:
    parts: list[str] = []
    toks = F.tokenize(text)
    start = 0
    for t in toks:
        if t.kind == "word" and t.value.upper() == "AND":
            parts.append(text[start : t.pos])
            start = t.pos + len(t.text)
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _name_test(op: str, value: str, text: str) -> Callable[[str], bool]:
    import re

    if op in ("=", "!="):
        return (lambda n: n == value) if op == "=" else (lambda n: n != value)
    if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
        flags = re.IGNORECASE | re.DOTALL if "ILIKE" in op else re.DOTALL
        rx = re.compile(pattern, flags)
        if op.startswith("NOT"):
            return lambda n: rx.fullmatch(n) is None
        return lambda n: rx.fullmatch(n) is not None
    raise RestError(
        f"Invalid experiment filter {text!r}: the operator {op!r} does not apply to names; "
        "use =, !=, LIKE or ILIKE."
    )


def _sort_key(key: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    return lambda e: (e.get(key) is None, e.get(key) or 0)


def search_experiments(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    max_results = _int(params, "max_results")
    if max_results is None or max_results == 0:
        max_results = SEARCH_EXPERIMENTS_DEFAULT
    if max_results < 1:
        raise RestError(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be "
            "a positive integer."
        )
    offset = _offset(_string(params, "page_token"))
    keep = _experiment_filter(_string(params, "filter"))
    view = _view_type(params.get("view_type"))
    known = _experiment_names(repo)
    exps = [experiment_json(n, t) for n, t in known.items() if keep(n)]
    if view in (2, "DELETED_ONLY"):
        exps = []  # gitrun's experiments are never deleted
    order = _list(params, "order_by") or ["creation_time DESC"]  # MLflow's default; ties by id
    for item in reversed(order):
        words = item.strip().split()
        key = words[0].lower() if words else ""
        key = key.removeprefix("attribute.").removeprefix("attributes.")
        desc = len(words) > 1 and words[-1].upper() == "DESC"
        if key not in ("name", "experiment_id", "creation_time", "last_update_time") or (
            len(words) > 1 and words[-1].upper() not in ("ASC", "DESC")
        ):
            raise RestError(
                f"Invalid order_by clause {item!r}: order experiments by name, experiment_id, "
                "creation_time or last_update_time, then ASC or DESC."
            )
        exps.sort(key=_sort_key(key), reverse=desc)
    page = exps[offset : offset + max_results]
    out: dict[str, Any] = {"experiments": page}
    if offset + max_results < len(exps):
        out["next_page_token"] = _token(offset + max_results)
    return out


# ---------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------
def search_runs(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    max_results = _int(params, "max_results")
    if max_results is None:
        max_results = SEARCH_RUNS_DEFAULT
    if max_results < 1 or max_results > SEARCH_RUNS_MAX:
        raise RestError(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be "
            f"at most {SEARCH_RUNS_MAX}" + (", and at least 1." if max_results < 1 else ".")
        )
    offset = _offset(_string(params, "page_token"))
    filter_string = _string(params, "filter") or ""
    order_by = _list(params, "order_by")
    ids = _list(params, "experiment_ids")
    stages = lifecycles(_view_type(params.get("run_view_type")))
    # Parsed first: a grammar error is the user's, answered with the parser's sentence.
    node = F.parse_filter(filter_string)
    order = F.parse_order_by(order_by)
    with _session(repo) as conn:
        experiments: list[str] | None = None
        if ids:
            names = {r[0] for r in conn.execute("SELECT DISTINCT experiment FROM runs")}
            experiments = [_experiment_of(e, names) for e in ids]
        sql, args = I.compile_query(
            conn, node, order, experiments, stages, offset + max_results + 1
        )
        rids = [r[0] for r in conn.execute(sql, args)]
        rows = I.fetch(conn, rids[offset : offset + max_results])
    out: dict[str, Any] = {"runs": [_row_json(r) for r in rows]}
    if len(rids) > offset + max_results:
        out["next_page_token"] = _token(offset + max_results)
    return out


def get_run(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    run_id = _string(params, "run_id") or _string(params, "run_uuid")
    return {"run": record_json(load_run(repo, run_id))}


def get_metric_history(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    run_id = _string(params, "run_id") or _string(params, "run_uuid")
    key = _string(params, "metric_key", required=True)
    max_results = _int(params, "max_results")
    if max_results is not None and max_results <= 0:
        raise RestError(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be a "
            "positive integer."
        )
    offset = _offset(_string(params, "page_token"))
    rec = load_run(repo, run_id)
    points = rec.history.get(key or "", [])
    if not points and key in rec.metrics:  # a run without metrics.tsv: its value alone
        points = [Metric(key or "", rec.metrics[key or ""], 0, 0)]
    end = len(points) if max_results is None else offset + max_results
    out: dict[str, Any] = {"metrics": [_metric(m) for m in points[offset:end]]}
    if end < len(points):
        out["next_page_token"] = _token(end)
    return out


# ---------------------------------------------------------------------------
# artifacts
# ---------------------------------------------------------------------------
def _artifact_path(path: str | None) -> str:
    """A requested artifact path, relative and without '..' (MLflow's validate_path_is_safe)."""
    if not path:
        return ""
    p = path.strip("/")
    if p in ("", "."):
        return ""
    parts = p.split("/")
    if any(x in ("..", ".") or x == "" for x in parts) or "\\" in p or "\0" in p:
        raise RestError(f"Invalid path {path!r}: give a relative artifact path without '..'.")
    return p


def _listing(rec: RunRecord, path: str) -> list[dict[str, Any]]:
    """The direct children of `path` (run-relative paths), as MLflow's FileInfo."""
    prefix = path + "/" if path else ""
    out: dict[str, dict[str, Any]] = {}
    for a in rec.artifacts.values():
        if not a.path.startswith(prefix):
            continue
        head, sep, _ = a.path[len(prefix) :].partition("/")
        full = prefix + head
        if sep:
            out.setdefault(full, {"path": full, "is_dir": True})
        else:
            out[full] = {"path": full, "is_dir": False, "file_size": a.size}
    return [out[k] for k in sorted(out)]


def list_artifacts(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    run_id = _string(params, "run_id") or _string(params, "run_uuid")
    path = _artifact_path(_string(params, "path"))
    rec = load_run(repo, run_id, history=False)
    out: dict[str, Any] = {"root_uri": artifact_uri(rec.run_id)}
    files = _listing(rec, path)
    if files:
        out["files"] = files
    return out


def _artifact_response(repo: Repo, rec: RunRecord, path: str) -> Response:
    """One artifact file's bytes, as an attachment (MLflow's way: no page of ours renders
    a run's file as HTML)."""
    a = rec.artifacts.get(path)
    if a is None:
        if any(p.startswith(path + "/") for p in rec.artifacts):
            raise RestError(f"Artifact path refers to a directory, not a file: '{path}'")
        raise RunNotFoundError(f"Run {rec.run_id} has no artifact '{path}'.")
    body: Any
    if a.storage != "git":
        body = _large_body(repo, rec, a)
    elif not a.blob:
        raise GitrunError(f"Artifact '{a.path}' of run {rec.run_id} is missing from git.")
    else:
        kind, body = repo.read_object(a.blob)
        if kind != "blob":
            raise GitrunError(f"Artifact '{a.path}' of run {rec.run_id} is damaged in git.")
    name = posixpath.basename(a.path)
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if mime.startswith("text/") or mime in ("application/json", "application/x-yaml"):
        mime = ("text/plain" if mime == "text/html" else mime) + "; charset=utf-8"
    quoted = urllib.parse.quote(name, safe="!#$&+-.^_`|~")
    return (Response if isinstance(body, bytes) else StreamingResponse)(
        body,
        media_type=mime,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-cache",
        },
    )


def _large_body(repo: Repo, rec: RunRecord, a: Any) -> Iterator[bytes]:
    """A Git LFS / object-store artifact, streamed in constant memory. Its sha256 is checked
    over the whole content before the first byte is sent (a damaged object is refused, not
    half-served); nothing is fetched from a remote: the server does not write."""
    from ..format import large

    try:
        src = large.local_source(repo, rec.run_id, a)
        for _ in src.chunks():  # raises when the size or sha256 does not match
            pass
    except GitrunError as e:
        raise RestError(e.message, "RESOURCE_DOES_NOT_EXIST") from None

    def stream() -> Iterator[bytes]:
        for chunk in large.local_source(repo, rec.run_id, a).chunks():
            yield bytes(chunk)

    return stream()


def get_artifact(repo: Repo, params: dict[str, Any]) -> Response:
    """/get-artifact?run_id=&path= (MLflow's UI download link)."""
    run_id = _string(params, "run_id") or _string(params, "run_uuid")
    path = _artifact_path(_string(params, "path", required=True))
    rec = load_run(repo, run_id, history=False)
    return _artifact_response(repo, rec, path)


def _proxied(path: str) -> tuple[str, str]:
    """mlflow-artifacts path `<run id>/artifacts/<path>` -> (run id, run-relative path)."""
    p = _artifact_path(path)
    run_id, _, rest = p.partition("/")
    head, _, sub = rest.partition("/")
    if not store.is_run_id(run_id) or head != "artifacts":
        raise RunNotFoundError(
            f"No artifacts at '{path}': gitrun serves run artifacts at <run id>/artifacts/<path>."
        )
    return run_id, sub


def proxy_list(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    """GET /mlflow-artifacts/artifacts?path=<run id>/artifacts/<dir>: basenames, as MLflow."""
    path = _string(params, "path") or ""
    run_id, sub = _proxied(path)
    rec = load_run(repo, run_id, history=False)
    files = []
    if sub in rec.artifacts:  # a file: itself, as MLflow's local repository lists it
        a = rec.artifacts[sub]
        files = [{"path": posixpath.basename(a.path), "is_dir": False, "file_size": a.size}]
    else:
        for f in _listing(rec, sub):
            f = dict(f, path=posixpath.basename(f["path"]))
            files.append(f)
    return {"files": files} if files else {}


def proxy_download(repo: Repo, path: str) -> Response:
    run_id, sub = _proxied(path)
    rec = load_run(repo, run_id, history=False)
    return _artifact_response(repo, rec, sub)


# ---------------------------------------------------------------------------
# endpoints with nothing to report (read calls MLflow's client makes on the way)
# ---------------------------------------------------------------------------
def search_logged_models(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    return {"models": []}  # gitrun keeps models as run artifacts and in its registry


def server_info(repo: Repo, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "store_type": "gitrun",
        "workspaces_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "read_only": True,
    }


async def _proxy_download(request: Request) -> Response:
    try:
        path = request.path_params["path"]
        return await call(request, proxy_download, request.app.state.repo, path)
    except Exception as e:
        return exception_response(e)


routes = [
    Route("/experiments/search", _endpoint(search_experiments), methods=["GET", "POST"]),
    Route("/experiments/get", _endpoint(get_experiment), methods=["GET"]),
    Route("/experiments/get-by-name", _endpoint(get_experiment_by_name), methods=["GET"]),
    Route("/runs/search", _endpoint(search_runs), methods=["GET", "POST"]),
    Route("/runs/get", _endpoint(get_run), methods=["GET"]),
    Route("/metrics/get-history", _endpoint(get_metric_history), methods=["GET"]),
    Route("/artifacts/list", _endpoint(list_artifacts), methods=["GET"]),
    Route("/get-artifact", _endpoint(get_artifact), methods=["GET"]),
    Route("/logged-models/search", _endpoint(search_logged_models), methods=["POST"]),
]
artifact_routes = [
    Route("/artifacts", _endpoint(proxy_list), methods=["GET"]),
    Route("/artifacts/{path:path}", _proxy_download, methods=["GET"]),
]
top_routes = [Route(p, _endpoint(get_artifact), methods=["GET"]) for p in TOP_PATHS] + [
    Route("/api/3.0/mlflow/server-info", _endpoint(server_info), methods=["GET"]),
    Route("/ajax-api/3.0/mlflow/server-info", _endpoint(server_info), methods=["GET"]),
]
