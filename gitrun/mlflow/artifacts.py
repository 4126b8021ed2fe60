"""`gitrun.artifacts`, shaped like `mlflow.artifacts`: download and read a run's artifacts.

    from gitrun.artifacts import download_artifacts, load_text, load_dict, load_image

URIs: `runs:/<run_id>/<path>`, `run.info.artifact_uri + "/<path>"`
(`gitrun:runs/<run_id>/artifacts/<path>`), `models:/<name>/<version>`, local paths, `file:`.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from typing import Any

from ..errors import GitrunError, InvalidInputError
from ..query import artifacts as _store
from ..query.artifacts import FileInfo

__all__ = [
    "FileInfo",
    "download_artifacts",
    "list_artifacts",
    "load_dict",
    "load_image",
    "load_text",
]


def _check_store_uri(uri: str | None, what: str) -> None:
    """gitrun reads the enclosing git repository; a server or database URI cannot be it."""
    text = uri or ""
    if ("://" in text and not text.startswith("file://")) or text.startswith(
        ("databricks", "sqlite:", "postgresql:", "mysql:")
    ):
        raise NotImplementedError(
            f"gitrun reads artifacts from the current git repository, not from {what} "
            f"'{text}'; drop the {what} argument (or `gitrun pull` the runs first)."
        )


def _check_args(artifact_uri: str | None, run_id: str | None, artifact_path: str | None) -> None:
    if (run_id, artifact_uri).count(None) != 1:
        raise InvalidInputError("Exactly one of `run_id` or `artifact_uri` must be specified")
    if artifact_uri is not None and artifact_path is not None:
        raise InvalidInputError(
            "`artifact_path` cannot be specified if `artifact_uri` is specified"
        )


def _is_store_uri(uri: str) -> bool:
    return uri.startswith(("runs:", "gitrun:runs/", "models:"))


def download_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    dst_path: str | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> str:
    """Download an artifact file or directory; returns its local path (as MLflow's)."""
    _check_args(artifact_uri, run_id, artifact_path)
    _check_store_uri(tracking_uri, "tracking_uri")
    _check_store_uri(registry_uri, "registry_uri")
    if dst_path is not None:
        os.makedirs(dst_path, exist_ok=True)
    if artifact_uri is None:
        artifact_uri = f"runs:/{run_id}/{(artifact_path or '').strip('/')}"
    local = _store.resolve_uri(artifact_uri, dst_path)
    if _is_store_uri(artifact_uri) or dst_path is None:
        return local
    # A local file or directory: copied into dst_path under its own name, as MLflow does.
    dst = os.path.join(os.path.abspath(dst_path), os.path.basename(os.path.normpath(local)))
    if os.path.abspath(local) == dst:
        return dst
    if os.path.isdir(local):
        shutil.copytree(local, dst, dirs_exist_ok=True)
    else:
        shutil.copyfile(local, dst)
    return dst


def list_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    tracking_uri: str | None = None,
) -> list[FileInfo]:
    """The artifacts directly under a URI (or a run's artifact_path), as FileInfo."""
    _check_args(artifact_uri, run_id, artifact_path)
    _check_store_uri(tracking_uri, "tracking_uri")
    from .._git import Repo
    from ..query import resolve as runs

    if artifact_uri is not None:
        if artifact_uri.startswith("models:"):
            artifact_uri = _store.models_source(artifact_uri)
        if artifact_uri.startswith("gitrun:runs/"):
            rest = artifact_uri[len("gitrun:runs/") :]
            rid, _, path = rest.partition("/")
            path = path[len("artifacts") :] if path.startswith("artifacts") else path
            artifact_uri = f"runs:/{rid}/{path.strip('/')}"
        if not artifact_uri.startswith("runs:"):
            return _list_local(artifact_uri)
        run_id, artifact_path = _store.parse_runs_uri(artifact_uri)
    repo = Repo.discover()
    rec = runs.load(repo, str(run_id), history=False)
    return _store.list_artifacts(rec, artifact_path or None)


def _list_local(uri: str) -> list[FileInfo]:
    local = _store.resolve_uri(uri)
    if not os.path.isdir(local):
        return []
    base = os.path.basename(os.path.normpath(local))
    out = []
    for name in sorted(os.listdir(local)):
        full = os.path.join(local, name)
        is_dir = os.path.isdir(full)
        out.append(
            FileInfo(posixpath.join(base, name), is_dir, None if is_dir else os.path.getsize(full))
        )
    return out


def _read(artifact_uri: str, mode: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(artifact_uri, dst_path=tmp)
        if os.path.isdir(local):
            raise InvalidInputError(
                f"Artifact '{artifact_uri}' is a directory; name a file inside it."
            )
        with open(local, encoding="utf-8") as f:
            try:
                text = f.read()
            except UnicodeDecodeError as e:
                raise GitrunError(
                    f"Artifact {artifact_uri!r} is not valid UTF-8. To read a file in another "
                    "encoding, download it with `download_artifacts` and open it with the "
                    "correct `encoding`."
                ) from e
    if mode == "text":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GitrunError(
            f"Unable to form a JSON object from the content of '{artifact_uri}': {e}"
        ) from e


def load_text(artifact_uri: str) -> str:
    """The artifact file's contents as text (UTF-8)."""
    return str(_read(artifact_uri, "text"))


def load_dict(artifact_uri: str) -> dict[str, Any]:
    """The artifact JSON file's contents."""
    value: dict[str, Any] = _read(artifact_uri, "json")
    return value


def load_image(artifact_uri: str) -> Any:
    """The artifact image file as a PIL.Image (Pillow must be installed)."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "`load_image` requires Pillow. Please install it via: pip install Pillow"
        ) from exc
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(artifact_uri, dst_path=tmp)
        try:
            image = Image.open(local)
            image.load()
            return image
        except Exception as e:
            raise GitrunError(
                f"Unable to form a PIL Image object from the content of '{artifact_uri}': {e}"
            ) from e
