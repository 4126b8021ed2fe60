"""The page's own JSON endpoints under /api/gitrun/ (what MLflow's REST API has no call for).

`routes` is the list of starlette Routes that server.py mounts as they are.  Every one
reads; none writes to the repository.  The runs table itself reads MLflow's
runs/search (rest.py); these endpoints add:

  GET /api/gitrun/tip                         the runs ref's tip and the runs in progress
                                              (latest metrics), polled by the page
  GET /api/gitrun/columns?experiment=E        experiments, and the param/metric keys of
                                              E's runs with how many runs have each
  GET /api/gitrun/resolve?refs=a,b            ids, unique prefixes or names -> run ids
  GET /api/gitrun/run/<ref>                   everything `gitrun show` has, the output log
  GET /api/gitrun/compare?runs=a,b            runs side by side (or experiment=&filter=)
  GET /api/gitrun/history?runs=..&keys=..     metric histories, journal points included
  GET /api/gitrun/diff?a=&b=                  `gitrun diff` of two runs, with the patch
  GET /api/gitrun/preview?run_id=&path=       the start of a text artifact

A ref or path from the URL is only ever a value: refs resolve against the run ids the
index knows, artifact paths pass the format's path rule and must be in the manifest,
code commits are checked to be object ids before git sees them.  Answers use MLflow's
error shape: {"error_code": ..., "message": ...}.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import query
from .._git import Repo
from ..errors import GitrunError, InvalidInputError, RunNotFoundError
from ..query.resolve import candidates
from . import rest

MAX_COMPARE = 500  # runs a compare page takes (a filter matching more is cut, and says so)
MAX_POINTS = 2000  # points per series sent for a chart (evenly thinned, the last kept)
MAX_LOG = 256 * 1024  # bytes of output.log sent (its end: where the error is)
MAX_PREVIEW = 128 * 1024  # bytes of a text artifact previewed
MAX_PATCH = 1024 * 1024  # bytes of a code diff sent
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg"}
TEXT_EXT = {
    ".txt", ".log", ".json", ".yaml", ".yml", ".csv", ".tsv", ".md", ".py", ".toml",
    ".cfg", ".ini", ".html", ".xml", ".sh", ".jsonl", ".rst", ".mlmodel",
}  # fmt: skip
TEXT_NAMES = {"MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "LICENSE"}
_OID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


# ---------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------
def clean(v: Any) -> Any:
    """`v` as strict JSON holds it: NaN as null, an infinity as "inf" / "-inf"."""
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(clean(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _error(e: GitrunError) -> Response:
    status = 404 if isinstance(e, RunNotFoundError) else 400
    code = getattr(e, "error_code", "INTERNAL_ERROR")
    if status == 400 and code == "INTERNAL_ERROR":
        status = 500
    return _json({"error_code": code, "message": str(e)}, status)


def _endpoint(work: Callable[[Repo, Request], Any]) -> Callable[[Request], Any]:
    """An async endpoint running `work(repo, request)` on a worker thread, holding the
    app's repository lock (rest.call)."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await rest.call(request, work, request.app.state.repo, request)
        except GitrunError as e:
            return _error(e)
        return result if isinstance(result, Response) else _json(result)

    endpoint.__name__ = work.__name__
    endpoint.__doc__ = work.__doc__
    return endpoint


def _arg(request: Request, name: str, default: str | None = None) -> str | None:
    v = request.query_params.get(name)
    return default if v is None else v


def _list_arg(request: Request, name: str) -> list[str]:
    out: list[str] = []
    for v in request.query_params.getlist(name):
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        n = int(text)
    except ValueError:
        raise InvalidInputError(f"Invalid {name} '{text[:40]}': give a whole number.") from None
    return max(low, min(high, n))


# ---------------------------------------------------------------------------
# runs from the index (finished runs and runs in progress alike)
# ---------------------------------------------------------------------------
def resolve_ref(ref: str, names: dict[str, str]) -> str:
    """The id of the run `ref` names (full id, unique 4+ character prefix, unique name),
    with query/resolve.py's rule; `names` maps every run id to its name."""
    ref = ref.strip()
    if ref in names:
        return ref
    by_prefix, by_name = candidates(ref, names, names)
    hits = sorted(set(by_prefix) | set(by_name))
    shown = ref[:80]
    if len(hits) == 1:
        return hits[0]
    if hits:
        listed = ", ".join(f"{h[:8]} ({names[h] or 'unnamed'})" for h in hits[:5])
        raise InvalidInputError(
            f"'{shown}' names {len(hits)} runs ({listed}); give a longer id prefix."
        )
    if not names:
        raise RunNotFoundError(f"No run matches '{shown}': this repository has no runs yet.")
    raise RunNotFoundError(
        f"No run matches '{shown}'; give a run id, a unique prefix of at least 4 "
        "characters or a unique run name."
    )


def _resolve_all(repo: Repo, refs: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Resolved ids (each once, in the order asked) and one error per unresolved ref."""
    names = query.names(repo)
    ids: list[str] = []
    errors: list[dict[str, str]] = []
    for ref in refs:
        try:
            rid = resolve_ref(ref, names)
        except GitrunError as e:
            errors.append({"ref": ref, "message": str(e)})
            continue
        if rid not in ids:
            ids.append(rid)
    return ids, errors


def _column_of(conn: Any, column: str, ids: list[str]) -> dict[str, Any]:
    """run id -> `column` ("tree" or "rid") of the index's runs for those of `ids` it has
    (and whose `column` is not NULL), asked 500 ids at a time."""
    out: dict[str, Any] = {}
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        sql = f"SELECT run_id, {column} FROM runs WHERE {column} NOT NULL AND run_id IN ({marks})"
        out.update(conn.execute(sql, part).fetchall())
    return out


def load_records(repo: Repo, ids: list[str], history: bool = False) -> dict[str, Any]:
    """Whole records of `ids` (full ids): runs in progress from their journals, finished
    ones from their run directories (found through the index, not a walk of runs/)."""
    from ..format import journal, store
    from ..format.layout import ENV_FILE, HISTORY_FILE
    from ..query import index

    out: dict[str, Any] = {}
    live = {r.run_id: r for r in journal.live_runs(repo) if r.run_id in ids}
    committed = [i for i in ids if i not in live]
    trees: dict[str, str] = {}
    if committed:
        with index.session(repo) as conn:
            trees = _column_of(conn, "tree", committed)
    files = list(store.DEFAULT_FILES) + [ENV_FILE] + ([HISTORY_FILE] if history else [])
    recs = store.read_records(repo, trees, files) if trees else {}
    for rid in ids:
        if rid in live:
            out[rid] = live[rid]
        elif rid in recs:
            out[rid] = recs[rid]
    return out


def _load_one(repo: Repo, ref: str, history: bool = False) -> Any:
    rid = resolve_ref(ref, query.names(repo))
    rec = load_records(repo, [rid], history).get(rid)
    if rec is None:
        raise RunNotFoundError(f"Run {rid} cannot be read from this repository's history.")
    if rec.status != "RUNNING" and rec.tree:
        from ..format import store

        for path, (_kind, blob) in store.artifact_blobs(repo, rec.tree).items():
            if path in rec.artifacts:
                rec.artifacts[path].blob = blob
    return rec


def _metric_summary(rec: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rec.metrics.items():
        pts = rec.history.get(k) or []
        vals = [p.value for p in pts if not math.isnan(p.value)]
        out[k] = {
            "value": v,
            "points": len(pts),
            "min": min(vals) if vals else None,
            "max": max(vals) if vals else None,
            "step": max((p.step for p in pts), default=None),
        }
    return out


def artifact_kind(path: str) -> str:
    name = posixpath.basename(path)
    ext = posixpath.splitext(name)[1].lower()
    if ext in IMAGE_EXT:
        return "image"
    if ext in TEXT_EXT or name in TEXT_NAMES:
        return "text"
    return "other"


# ---------------------------------------------------------------------------
# the endpoints
# ---------------------------------------------------------------------------
def tip(repo: Repo, request: Request) -> Any:
    """The runs tip and the journals of the runs in progress; `version` changes whenever
    a run lands or a journal grows.  A file read and a few stats: polled every 2 s."""
    from ..format.layout import JOURNAL, RUNS_REF, live_root
    from ..format.store import is_run_id

    head = repo.read_ref(RUNS_REF)
    live = []
    root = live_root(repo)
    try:
        names = sorted(os.listdir(root))
    except OSError:
        names = []
    for name in names:
        if not is_run_id(name):
            continue
        try:
            st = os.stat(os.path.join(root, name, JOURNAL))
        except OSError:
            continue
        live.append({"run_id": name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    stamp = ",".join(f"{r['run_id']}:{r['size']}:{r['mtime_ns']}" for r in live)
    name = os.path.basename((repo.work_tree or repo.git_dir).rstrip(os.sep))
    return {"tip": head, "live": live, "version": f"{head or ''};{stamp}", "repo": name}


def columns(repo: Repo, request: Request) -> Any:
    """Experiments, and the param / metric keys of an experiment's runs (most common
    first) with the number of active runs: what the table's pickers offer."""
    from ..query import index

    exp = _arg(request, "experiment") or None
    where = "r.lifecycle = 'active'" + (" AND r.experiment = ?" if exp else "")
    args = (exp,) if exp else ()
    out: dict[str, Any] = {}
    with index.session(repo) as conn:
        out["experiments"] = [
            {"name": e, "runs": n}
            for e, n in conn.execute(
                "SELECT experiment, count(*) FROM runs WHERE lifecycle = 'active' "
                "GROUP BY experiment ORDER BY experiment"
            )
        ]
        out["runs"] = conn.execute(f"SELECT count(*) FROM runs r WHERE {where}", args).fetchone()[0]
        for table in ("params", "metrics", "tags"):  # the only names put in SQL text
            sql = (
                f"SELECT t.key, count(*) FROM {table} t JOIN runs r ON r.rid = t.rid "
                f"WHERE {where} GROUP BY t.key ORDER BY count(*) DESC, t.key LIMIT 500"
            )
            out[table] = [[k, n] for k, n in conn.execute(sql, args)]
    out["tags"] = [t for t in out["tags"] if not t[0].startswith(("mlflow.", "gitrun."))]
    return out


def resolve(repo: Repo, request: Request) -> Any:
    """refs=a,b,c -> [{"ref", "run_id"} or {"ref", "message"}] in the order asked."""
    refs = _list_arg(request, "refs")
    names = query.names(repo)
    out = []
    for ref in refs:
        try:
            out.append({"ref": ref, "run_id": resolve_ref(ref, names)})
        except GitrunError as e:
            out.append({"ref": ref, "message": str(e)})
    return {"runs": out}


def run(repo: Repo, request: Request) -> Any:
    """One run: everything `gitrun show --format json` has (histories summarised: the
    charts ask /history), the output log's end, artifacts with their preview kind."""
    from ..workflows import show

    rec = _load_one(repo, request.path_params["ref"], history=True)
    try:
        now = show.inputs_now(repo, rec)
    except (GitrunError, OSError):
        now = None
    data = show.as_dict(rec, now)
    del data["metric_history"]
    data["metrics"] = _metric_summary(rec)
    data["lifecycle_stage"] = rec.lifecycle_stage
    data["source_name"] = rec.source_name
    data["user_tags"] = show.user_tags(rec)
    data["live"] = rec.status == "RUNNING"
    for a in data["artifacts"]:
        a["kind"] = artifact_kind(a["path"])
    code = rec.code or {}
    commit = code.get("commit")
    good = isinstance(commit, str) and _OID.match(commit)
    data["git_show"] = f"git show {commit}" if good else None
    data["output_log"] = None
    if rec.output_blob and _OID.match(rec.output_blob):
        try:
            kind, raw = repo.read_object(rec.output_blob)
        except GitrunError:
            kind, raw = "missing", b""
        if kind == "blob":
            cut = len(raw) > MAX_LOG
            data["output_log"] = {
                "text": raw[-MAX_LOG:].decode(errors="replace"),
                "truncated": cut,
                "size": len(raw),
                "git_show": f"git show {rec.output_blob}",
            }
    return data


def _row_dict(row: Any) -> dict[str, Any]:
    from ..workflows import show

    return {
        "run_id": row.run_id,
        "run_name": row.run_name,
        "experiment": row.experiment,
        "status": row.status,
        "start_time": row.start_time,
        "end_time": row.end_time,
        "params": row.params,
        "metrics": row.metrics,
        "tags": {k: v for k, v in row.tags.items() if not k.startswith(show.SYSTEM_TAG_PREFIXES)},
        "code_commit": row.tags.get("gitrun.code_commit"),
        "dirty": row.tags.get("gitrun.git.dirty") == "true",
    }


def compare(repo: Repo, request: Request) -> Any:
    """runs=a,b,c (ids, prefixes or names), or experiment=E&filter=F&order_by=O: the
    runs' params, latest metrics and user tags (at most MAX_COMPARE runs)."""
    from ..query import index

    refs = _list_arg(request, "runs")
    errors: list[dict[str, str]] = []
    truncated = False
    if refs:
        ids, errors = _resolve_all(repo, refs[: MAX_COMPARE + 1])
        truncated = len(refs) > MAX_COMPARE
        ids = ids[:MAX_COMPARE]
        with index.session(repo) as conn:
            rids = _column_of(conn, "rid", ids)
            rows = index.fetch(conn, [rids[i] for i in ids if i in rids])
    else:
        exp = _arg(request, "experiment") or None
        order = _arg(request, "order_by") or ""
        rows = index.search(
            repo,
            _arg(request, "filter", "") or "",
            order_by=[order] if order.strip() else None,
            experiments=[exp] if exp else None,
            max_results=MAX_COMPARE + 1,
        )
        truncated = len(rows) > MAX_COMPARE
        rows = rows[:MAX_COMPARE]
    return {
        "runs": [_row_dict(r) for r in rows],
        "errors": errors,
        "truncated": truncated,
        "limit": MAX_COMPARE,
    }


def thin(points: list[Any], limit: int) -> list[Any]:
    """At most `limit` points, evenly spaced, the first and the last kept."""
    n = len(points)
    if n <= limit or limit < 2:
        return points
    step = (n - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def history(repo: Repo, request: Request) -> Any:
    """runs=<ids or refs>&keys=<metric keys> (all when none): {"runs": {id: {key:
    [[step, timestamp, value], ...]}}, "names": {id: name}}, each series thinned to
    max_points (default MAX_POINTS)."""
    refs = _list_arg(request, "runs")[:MAX_COMPARE]
    keys = set(_list_arg(request, "keys"))
    limit = _int_arg(request, "max_points", MAX_POINTS, 2, 100_000)
    ids, errors = _resolve_all(repo, refs)
    recs = load_records(repo, ids, history=True)
    out: dict[str, Any] = {}
    for rid in ids:
        rec = recs.get(rid)
        if rec is None:
            continue
        series = {}
        for k, pts in rec.history.items():
            if keys and k not in keys:
                continue
            rows = [[p.step, p.timestamp, p.value] for p in pts]
            series[k] = thin(rows, limit)
        out[rid] = series
    return {
        "runs": out,
        "names": {rid: recs[rid].run_name for rid in ids if rid in recs},
        "status": {rid: recs[rid].status for rid in ids if rid in recs},
        "errors": errors,
    }


_DIFF_FILE = re.compile(r"^diff --git a/(.*) b/(.*)$")


def patch_files(patch: str) -> list[dict[str, Any]]:
    """The files a `git diff` patch touches, with lines added and removed."""
    files: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for line in patch.splitlines():
        m = _DIFF_FILE.match(line)
        if m:
            cur = {"path": m.group(2), "added": 0, "removed": 0}
            files.append(cur)
        elif cur is not None:
            if line.startswith("+") and not line.startswith("+++ "):
                cur["added"] += 1
            elif line.startswith("-") and not line.startswith("--- "):
                cur["removed"] += 1
            elif line.startswith("Binary files "):
                cur["binary"] = True
    return files


def diff(repo: Repo, request: Request) -> Any:
    """a=&b=: `gitrun diff A B` (params, metrics, tags, artifacts that differ) with the
    code as a file list and a patch."""
    from ..workflows import diff as diffs

    ref_a, ref_b = _arg(request, "a"), _arg(request, "b")
    if not ref_a or not ref_b:
        raise InvalidInputError("Give two runs to diff: /api/gitrun/diff?a=<run>&b=<run>.")
    a = _load_one(repo, ref_a)
    b = _load_one(repo, ref_b)
    result = diffs.compare(a, b)
    ca, cb = (a.code or {}).get("commit"), (b.code or {}).get("commit")
    if all(isinstance(c, str) and _OID.match(c) for c in (ca, cb)):
        code = diffs.code_diff(repo, a, b, patch=True)
    else:  # no code commit, or history holding something that is not an object id
        code = {"a": ca if isinstance(ca, str) else None, "b": cb, "diff": "", "same_tree": False}
        code["a"] = code["a"] if code["a"] and _OID.match(code["a"]) else None
        code["b"] = cb if isinstance(cb, str) and _OID.match(cb) else None
    text = code.pop("diff")
    code["files"] = patch_files(text)
    code["truncated"] = len(text) > MAX_PATCH
    code["patch"] = text[:MAX_PATCH]
    code["same"] = bool(code["a"] and (code["a"] == code["b"] or code.get("same_tree")))
    result["code"] = code
    return result


def preview(repo: Repo, request: Request) -> Any:
    """run_id=&path=: the start of a text artifact as text (path checked by the format's
    rule and looked up in the run's manifest; the bytes come from git)."""
    from ..format.paths import check_artifact_path

    ref = _arg(request, "run_id") or ""
    raw = _arg(request, "path") or ""
    try:
        path = check_artifact_path(raw)
    except InvalidInputError:  # its advice is for logging; this is a reader's request
        raise InvalidInputError(
            f"No artifact {raw[:200]!r}: artifact paths are relative to the run, without "
            "'..', like 'plots/loss.png'."
        ) from None
    rec = _load_one(repo, ref)
    art = rec.artifacts.get(path)
    if art is None:
        raise RunNotFoundError(f"Run {rec.run_id} has no artifact '{path[:200]}'.")
    if art.storage != "git":
        return _preview_large(repo, rec.run_id, art)
    if not art.blob or not _OID.match(art.blob):
        raise InvalidInputError(f"Artifact '{path[:200]}' has no content in git to show.")
    kind, data = repo.read_object(art.blob)
    if kind != "blob":
        raise GitrunError(f"Artifact '{path[:200]}' of run {rec.run_id} is damaged in git.")
    return {
        "path": path,
        "size": len(data),
        "truncated": len(data) > MAX_PREVIEW,
        "text": data[:MAX_PREVIEW].decode(errors="replace"),
    }


def _preview_large(repo: Repo, run_id: str, art: Any) -> Any:
    """A large artifact (Git LFS or the object store): its start, read through the format's
    verified stream (the whole content is read to check its sha256, in constant memory).
    Nothing is fetched from a remote for a preview: an LFS object not in this clone is
    said to be unavailable here."""
    from ..format import large

    src = large.local_source(repo, run_id, art)
    head = bytearray()
    for chunk in src.chunks():  # raises when size or sha256 does not match
        if len(head) <= MAX_PREVIEW:
            head += chunk[: MAX_PREVIEW + 1 - len(head)]
    return {
        "path": art.path,
        "size": art.size,
        "storage": art.storage,
        "truncated": art.size > MAX_PREVIEW,
        "text": bytes(head[:MAX_PREVIEW]).decode(errors="replace"),
    }


routes: list[Any] = [
    Route("/api/gitrun/tip", _endpoint(tip), methods=["GET"]),
    Route("/api/gitrun/columns", _endpoint(columns), methods=["GET"]),
    Route("/api/gitrun/resolve", _endpoint(resolve), methods=["GET"]),
    Route("/api/gitrun/run/{ref:path}", _endpoint(run), methods=["GET"]),
    Route("/api/gitrun/compare", _endpoint(compare), methods=["GET"]),
    Route("/api/gitrun/history", _endpoint(history), methods=["GET"]),
    Route("/api/gitrun/diff", _endpoint(diff), methods=["GET"]),
    Route("/api/gitrun/preview", _endpoint(preview), methods=["GET"]),
]
