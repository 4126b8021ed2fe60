"""Import runs from an MLflow tracking store (sqlite URI or mlruns directory) into gitrun.

Runs are read through MLflow's own client, so whatever store MLflow can read works.
Each MLflow run becomes one gitrun run, committed on its own (one commit per run, like
any run): a fresh gitrun run id, MLflow's run id kept as tag `mlflow.import.run_id`,
the experiment by MLflow experiment name.  Re-importing skips runs whose
`mlflow.import.run_id` is already recorded, so it is idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import query
from .._git import Repo
from ..errors import GitrunError, InvalidInputError, UsageError, require
from ..format import store
from ..format.entities import Artifact, Metric, RunRecord
from ..tracking.live import new_run_id

IMPORT_TAG = "mlflow.import.run_id"
IMPORT_EXPERIMENT_TAG = "mlflow.import.experiment_id"
IMPORT_STATUS_TAG = "mlflow.import.status"
PAGE_SIZE = 1000


@dataclass
class ImportResult:
    imported: list[tuple[str, str]] = field(default_factory=list)  # (mlflow id, gitrun id)
    skipped: list[str] = field(default_factory=list)  # mlflow ids already imported


def default_tracking_uri(cwd: str | None = None) -> str:
    """MLFLOW_TRACKING_URI, else ./mlruns, else ./mlflow.db, as MLflow itself looks."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    cwd = cwd or os.getcwd()
    if os.path.isdir(os.path.join(cwd, "mlruns")):
        return os.path.join(cwd, "mlruns")
    if os.path.isfile(os.path.join(cwd, "mlflow.db")):
        return "sqlite:///" + os.path.join(cwd, "mlflow.db")
    raise UsageError(
        "No MLflow tracking store found here (no ./mlruns, no ./mlflow.db, no "
        "MLFLOW_TRACKING_URI); pass --tracking-uri sqlite:///path/mlflow.db or a mlruns path."
    )


def normalize_uri(uri: str) -> str:
    """The store's URI for MLflow, after checking that the store exists: MLflow creates an
    empty database (and its directories) or an mlruns directory when asked for a missing
    one, and gitrun must never create a store it was asked to read."""
    if not uri.strip():
        raise UsageError("--tracking-uri is empty; pass sqlite:///path/mlflow.db or a path.")
    if uri.startswith("sqlite:"):
        _check_sqlite(uri)
        return uri
    if uri.startswith(("http://", "https://")):
        return uri
    if "://" in uri and not uri.startswith("file:"):
        raise InvalidInputError(
            f"Cannot import from '{uri}': gitrun reads sqlite:/// databases, mlruns "
            "directories and http(s):// MLflow servers."
        )
    path = uri[len("file:") :] if uri.startswith("file:") else uri
    if path.startswith("//"):
        path = path[2:]
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise InvalidInputError(
            f"MLflow tracking store '{uri}' does not exist"
            + (" (it is a file)" if os.path.exists(path) else "")
            + "; pass an mlruns directory or a sqlite:/// URI."
        )
    if not any(
        os.path.isfile(os.path.join(path, d, "meta.yaml"))
        for d in os.listdir(path)
        if os.path.isdir(os.path.join(path, d))
    ):
        raise InvalidInputError(
            f"{path} is not an MLflow mlruns directory (no experiment in it has a "
            "meta.yaml); pass the mlruns directory MLflow wrote, or a sqlite:/// URI."
        )
    return "file://" + path


_SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite(uri: str) -> None:
    """The database file of a sqlite: URI exists, is SQLite, and holds MLflow's tables."""
    rest = uri[len("sqlite:") :].split("?", 1)[0]
    path = rest[3:] if rest.startswith("///") else ""
    if not path or path == ":memory:":
        raise InvalidInputError(
            f"'{uri}' names no database file; write sqlite:///relative/path/mlflow.db or "
            "sqlite:////absolute/path/mlflow.db."
        )
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise InvalidInputError(
            f"There is no MLflow database at {full} (from '{uri}'); check the path "
            "(sqlite:/// takes a path relative to the current directory, sqlite://// an "
            "absolute one). gitrun never creates one."
        )
    try:
        with open(full, "rb") as f:
            header = f.read(16)
    except OSError as e:
        raise InvalidInputError(
            f"Cannot read {full} ({e.strerror}); check its permissions."
        ) from None
    if header != _SQLITE_HEADER:
        raise InvalidInputError(
            f"{full} is not an SQLite database, so not an MLflow tracking store; pass the "
            "mlflow.db file MLflow wrote."
        )
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{full}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise InvalidInputError(
            f"{full} cannot be read as an SQLite database ({e}); pass the mlflow.db file "
            "MLflow wrote."
        ) from None
    if not {"experiments", "runs"} <= tables:
        raise InvalidInputError(
            f"{full} is an SQLite database but not an MLflow tracking store (it has no "
            "experiments and runs tables); pass the mlflow.db file MLflow wrote."
        )


# How long an MLflow server may take to answer before the import gives up (MLflow's own
# defaults, 120 s and 7 retries with backoff, mean minutes of silence).
HTTP_TIMEOUT = "10"
HTTP_RETRIES = "0"


def _client(uri: str) -> Any:
    require("mlflow", "mlflow")
    if uri.startswith("file:"):
        # MLflow 3.x refuses mlruns directories unless asked; reading one is the point here.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def _http_limits() -> Iterator[None]:
    """MLflow's HTTP timeout and retries for the duration of the import (the user's own
    settings win)."""
    names = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": HTTP_TIMEOUT,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": HTTP_RETRIES,
    }
    saved = {k: os.environ.get(k) for k in names}
    for k, v in names.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)


def _store_error(uri: str, e: Exception) -> InvalidInputError:
    """One sentence for MLflow failing to read the store (its messages span many lines)."""
    text = " ".join(str(e).split())
    detail = text[:200] + ("..." if len(text) > 200 else "")
    if uri.startswith(("http://", "https://")):
        return InvalidInputError(
            f"The MLflow server {uri} cannot be reached or did not answer within "
            f"{HTTP_TIMEOUT} s ({detail}); check the URL and that the server is running."
        )
    return InvalidInputError(
        f"MLflow cannot read the tracking store {uri} ({type(e).__name__}: {detail}); check "
        "that it is a store MLflow wrote (`mlflow db upgrade` for an old database)."
    )


def _paged(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def list_mlflow_runs(
    uri: str, experiments: Iterable[str] = ()
) -> tuple[Any, list[tuple[Any, Any]]]:
    """(client, [(experiment, run)]) for the runs to import, oldest first."""
    from mlflow.entities import ViewType

    client = _client(uri)
    wanted = set(experiments)
    exps = list(
        _paged(
            lambda t: client.search_experiments(
                view_type=ViewType.ALL, max_results=PAGE_SIZE, page_token=t
            )
        )
    )
    missing = wanted - {e.name for e in exps}
    if missing:
        raise InvalidInputError(
            f"The MLflow store {uri} has no experiment named {', '.join(sorted(missing))}; "
            f"it has {', '.join(sorted(e.name for e in exps)) or 'none'}."
        )
    out: list[tuple[Any, Any]] = []
    for exp in exps:
        if wanted and exp.name not in wanted:
            continue

        def page(token: str | None, eid: str = exp.experiment_id) -> Any:
            return client.search_runs(
                [eid], run_view_type=ViewType.ALL, max_results=PAGE_SIZE, page_token=token
            )

        out.extend((exp, run) for run in _paged(page))
    out.sort(key=lambda er: (er[1].info.start_time or 0, er[1].info.run_id))
    return client, out


def imported_ids(repo: Repo) -> set[str]:
    return {
        r.tags[IMPORT_TAG]
        for r in query.all_records(repo, include_live=False).values()
        if IMPORT_TAG in r.tags
    }


def build_record(repo: Repo, client: Any, exp: Any, run: Any) -> RunRecord:
    info, data = run.info, run.data
    tags = {str(k): str(v) for k, v in data.tags.items()}
    original = info.run_name or tags.get("mlflow.runName") or ""
    # MLflow takes newlines in names, gitrun does not (they garble `ls` and commit subjects).
    name = _one_line(original)
    if name != original:
        tags["mlflow.import.run_name"] = original
    status = info.status if info.status in store.TERMINAL else "KILLED"
    if status != info.status:
        tags[IMPORT_STATUS_TAG] = str(info.status)
    tags[IMPORT_TAG] = info.run_id
    tags[IMPORT_EXPERIMENT_TAG] = str(exp.experiment_id)
    if name:
        tags["mlflow.runName"] = name
    history: dict[str, list[Metric]] = {}
    for key in sorted(data.metrics):
        points = client.get_metric_history(info.run_id, key)
        history[key] = [
            Metric(key, float(m.value), int(m.timestamp), int(m.step or 0)) for m in points
        ]
    last = max((m.timestamp for ms in history.values() for m in ms), default=None)
    end = info.end_time or last or info.start_time
    rec = RunRecord(
        run_id=new_run_id(),
        run_name=name,
        experiment=_one_line(exp.name) or "Default",
        status=status,
        lifecycle_stage=info.lifecycle_stage or "active",
        start_time=info.start_time,
        end_time=end,
        updated_time=end,
        user=info.user_id or tags.get("mlflow.user", ""),
        source_name=tags.get("mlflow.source.name", ""),
        params={str(k): str(v) for k, v in data.params.items()},
        tags=tags,
        history=history,
    )
    rec.metrics = rec.latest_metrics()
    rec.artifacts = _artifacts(repo, client, info.run_id)
    return rec


def _one_line(text: str) -> str:
    return "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in text).strip()


def _artifacts(repo: Repo, client: Any, run_id: str) -> dict[str, Artifact]:
    from ..capture import artwalk
    from ..tracking import safe_artifact_path

    if not client.list_artifacts(run_id):
        return {}
    tmp = tempfile.mkdtemp(prefix="gitrun-mlflow-import-")
    out: dict[str, Artifact] = {}
    try:
        root = client.download_artifacts(run_id, "", tmp)
        # The one artifact walk: a symlink out of the run's artifacts is never followed.
        w = artwalk.walk(root, artwalk.Limits(0, 0), f"MLflow run {run_id}'s artifacts")
        for p in w.problems:
            print(f"gitrun: {p}", file=sys.stderr)
        for full, rel_path, _ in w.files:
            rel = safe_artifact_path(rel_path)
            art = artwalk.store_artifact(repo, full, rel_path)
            art.path = rel
            out[rel] = art
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def import_runs(
    repo: Repo,
    tracking_uri: str | None = None,
    experiments: Iterable[str] = (),
    progress: Callable[[list[Any]], Iterable[Any]] | None = None,
    quiet: bool = False,
) -> ImportResult:
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:  # say so first, without importing it
        require("mlflow", "mlflow")
    uri = normalize_uri(tracking_uri or default_tracking_uri(repo.work_tree))
    require("mlflow", "mlflow")
    # MLflow reports through logging, some of it on the root logger (e.g. for stray
    # directories in mlruns); quiet means none of it.
    loggers = [logging.getLogger(n) for n in ("", "mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    result = ImportResult()
    try:
        with _http_limits():
            try:
                client, todo = list_mlflow_runs(uri, experiments)
            except GitrunError:
                raise
            except Exception as e:  # MLflow's and SQLAlchemy's own errors: one sentence
                raise _store_error(uri, e) from None
            done = imported_ids(repo)
            for exp, run in progress(todo) if progress else todo:
                mid = run.info.run_id
                if mid in done:
                    result.skipped.append(mid)
                    continue
                try:
                    rec = build_record(repo, client, exp, run)
                except GitrunError:
                    raise
                except Exception as e:
                    err = _store_error(uri, e)
                    raise InvalidInputError(
                        f"{err.message[:-1]}; {len(result.imported)} run(s) were imported "
                        "before this, and running the import again skips them."
                    ) from None
                store.commit_run(repo, rec)
                done.add(mid)
                result.imported.append((mid, rec.run_id))
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    return result
