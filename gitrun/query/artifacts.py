"""Reading a run's artifacts back out of git: listing, downloading, `runs:/` URIs."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from .._git import Repo
from ..errors import GitrunError, InvalidInputError, RunNotFoundError
from ..format import large
from ..format.entities import Artifact, RunRecord
from ..format.paths import check_artifact_path, check_history_path, write_file


@dataclass(frozen=True)
class FileInfo:
    """MLflow's FileInfo: one entry of list_artifacts (file_size is None for directories)."""

    path: str
    is_dir: bool
    file_size: int | None


def _prefix(path: str | None) -> str:
    if not path or path.strip("/") in ("", "."):
        return ""
    return check_artifact_path(path.strip("/")) + "/"


def list_artifacts(rec: RunRecord, path: str | None = None) -> list[FileInfo]:
    """The direct children of `path` in the run's artifacts, like MLflow (sorted by path)."""
    prefix = _prefix(path)
    out: dict[str, FileInfo] = {}
    for a in rec.artifacts.values():
        if not a.path.startswith(prefix):
            continue
        rest = a.path[len(prefix) :]
        head, sep, _ = rest.partition("/")
        full = prefix + head
        if sep:
            out.setdefault(full, FileInfo(full, True, None))
        else:
            out[full] = FileInfo(full, False, a.size)
    return [out[k] for k in sorted(out)]


def _selected(rec: RunRecord, path: str | None) -> tuple[list[Artifact], str]:
    """The artifacts at or under `path`, and the parent directory to strip from them."""
    if path and path.strip("/") in rec.artifacts:
        p = path.strip("/")
        return [rec.artifacts[p]], posixpath.dirname(p)
    prefix = _prefix(path)
    arts = [a for a in rec.artifacts.values() if a.path.startswith(prefix)]
    if not arts:
        raise RunNotFoundError(
            f"Run {rec.run_id} has no artifact '{path or ''}'; "
            f"`gitrun show {rec.run_id[:8]}` lists its artifacts."
        )
    return arts, posixpath.dirname(prefix.rstrip("/"))


def download(repo: Repo, rec: RunRecord, path: str | None, dst_path: str | None = None) -> str:
    """Write the artifact file or directory `path` under dst_path; return the local path.

    Like MLflow, the result keeps the artifact's own name: downloading `model` into
    /tmp/x gives /tmp/x/model.
    """
    arts, parent = _selected(rec, path)
    dst = os.path.abspath(dst_path) if dst_path else tempfile.mkdtemp(prefix="gitrun-artifacts-")
    todo: list[tuple[Artifact, str]] = []
    for a in arts:  # all checked before anything is written
        # A path from history (maybe someone else's): the rule checkout applies, and a
        # write that follows no symlink below dst.
        check_history_path(a.path)
        if a.storage in large.KINDS:
            continue
        if a.storage != "git" or not a.blob:
            raise GitrunError(
                f"Artifact '{a.path}' of run {rec.run_id} is kept in storage '{a.storage}', "
                "which this gitrun cannot read; upgrade gitrun, or download the other "
                "artifacts by their own paths."
            )
        todo.append((a, a.blob))
    # Large ones are found (fetched when missing) first, and streamed verified.
    sources = large.locate(repo, rec.run_id, [a for a in arts if a.storage in large.KINDS])
    os.makedirs(dst, exist_ok=True)
    staged = large.stage(
        dst,
        ((p[len(parent) + 1 :] if parent else p, 0o666, src) for p, src in sorted(sources.items())),
    )
    for a, blob in todo:
        rel = a.path[len(parent) + 1 :] if parent else a.path
        kind, data = repo.read_object(blob)
        if kind != "blob":
            raise GitrunError(f"Artifact '{a.path}' of run {rec.run_id} is damaged in git.")
        write_file(dst, rel, data, 0o666)  # the mode open() gives, less the umask
    for f in staged:
        f.commit()
    if not path or not _prefix(path):
        return dst
    return os.path.join(dst, posixpath.basename(path.strip("/")))


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """`runs:/<run_id>/<path>` -> (run_id, path)."""
    rest = uri[len("runs:") :].lstrip("/")
    run_id, _, path = rest.partition("/")
    if not run_id:
        raise InvalidInputError(
            f"Invalid model URI '{uri}': write it as runs:/<run_id>/<artifact path>."
        )
    return run_id, path.strip("/")


def models_source(uri: str, repo: Repo | None = None) -> str:
    """The `runs:/` source of a registered version: `models:/<name>/<version>`,
    `models:/<name>/latest` or `models:/<name>@<alias>` (format/registry.py)."""
    from ..format import registry

    return registry.resolve_models_uri(repo or Repo.discover(), uri).source


@contextlib.contextmanager
def local_copy(uri: str, dst_path: str | None = None) -> Iterator[str]:
    """resolve_uri for loading a model: without dst_path, the copy goes to a temporary
    directory that is removed when the block ends (a load leaves nothing behind)."""
    if dst_path is not None:
        yield resolve_uri(uri, dst_path)
        return
    tmp = tempfile.mkdtemp(prefix="gitrun-model-")
    try:
        yield resolve_uri(uri, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_uri(uri: str, dst_path: str | None = None) -> str:
    """A local directory or file for a model/artifact URI: runs:/, models:/, file:, or a
    local path."""
    from . import resolve as runs

    if uri.startswith("runs:"):
        run_id, path = parse_runs_uri(uri)
        repo = Repo.discover()
        rec = runs.load(repo, run_id, history=False)
        return download(repo, rec, path or None, dst_path)
    if uri.startswith("gitrun:runs/"):
        rest = uri[len("gitrun:runs/") :]
        run_id, _, path = rest.partition("/")
        path = path[len("artifacts") :].strip("/") if path.startswith("artifacts") else path
        return resolve_uri(f"runs:/{run_id}/{path}", dst_path)
    if uri.startswith("models:"):
        return resolve_uri(models_source(uri), dst_path)
    if uri.startswith(("mlflow-artifacts:", "dbfs:", "s3:", "gs:", "http:", "https:")):
        raise NotImplementedError(
            f"gitrun cannot load '{uri}': it has no remote artifact store; "
            "use runs:/<run_id>/<path>, models:/<name>/<version> or a local directory."
        )
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    if local.startswith("file:"):
        local = local[len("file:") :]
    if not os.path.exists(local):
        raise InvalidInputError(f"Model path '{uri}' does not exist; check the path or run id.")
    return local
