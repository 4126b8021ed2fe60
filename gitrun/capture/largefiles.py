"""Where a large artifact goes when it is logged: the threshold and the store.

An artifact file of at least `large-file-threshold` bytes (default 50 MB, at least 1 MB;
0 turns large files off) is not written as a git blob: its content is streamed into the
Git LFS store (format/lfs.py) and the run keeps a pointer, or, with `artifact-store` set,
uploaded to that object store (format/objstore.py).  Settings, first found wins: the
environment (GITRUN_LARGE_FILE_THRESHOLD, GITRUN_ARTIFACT_STORE), git config (`gitrun
config large-file-threshold 1GB` writes gitrun.largeFileThreshold; gitrun.artifactStore),
then .gitrun.yaml / [tool.gitrun] (`large-file-threshold`, `artifact-store`).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .._git import Repo
from ..format.entities import Artifact

# format/large.py, lfs.py and objstore.py are imported only once a file is large: logging
# small artifacts loads nothing more than it did.

DEFAULT_THRESHOLD = 50 * 1024 * 1024
MIN_THRESHOLD = 1024 * 1024  # smaller settings count as 1MB: small files never look it up
ENV_THRESHOLD = "GITRUN_LARGE_FILE_THRESHOLD"
THRESHOLD_KEY = "gitrun.largeFileThreshold"
STORE_KEY = "gitrun.artifactStore"

_project: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def _project_settings(repo: Repo) -> dict[str, Any]:
    """The project file settings, read once per process and work tree."""
    from . import settings

    key = repo.work_tree or ""
    with _lock:
        if key not in _project:
            _project[key] = settings.load(repo.work_tree)
        return _project[key]


def _threshold_setting(repo: Repo) -> Any:
    """The large-file-threshold as set (first found wins), or None."""
    value: Any = os.environ.get(ENV_THRESHOLD) or repo.config(THRESHOLD_KEY)
    if value is None:
        value = _project_settings(repo).get("large-file-threshold")
    return value


def threshold(repo: Repo) -> int:
    """The size from which an artifact is large (0: never)."""
    from .settings import parse_size

    value = _threshold_setting(repo)
    if value is None or value == "":
        return DEFAULT_THRESHOLD
    limit = parse_size(value)
    return 0 if limit <= 0 else max(limit, MIN_THRESHOLD)


def artifact_store(repo: Repo) -> str | None:
    """The object store URL large artifacts go to, or None for Git LFS."""
    from ..format import large, objstore

    value = large.configured_store(repo) or _project_settings(repo).get("artifact-store")
    return objstore.check_url(value) if value else None


def is_large(repo: Repo, size: int) -> bool:
    if size < MIN_THRESHOLD:  # the common case costs one comparison, no settings
        return False
    limit = threshold(repo)
    return bool(limit) and size >= limit


def store(repo: Repo, fd: int, shown: str) -> Artifact:
    """Store the open file `fd` as a large artifact; the Artifact has no path yet."""
    from ..format import lfs, objstore

    url = artifact_store(repo)
    if url:
        oid, size = objstore.put_fd(url, fd, shown)
        return Artifact("", size, oid, objstore.STORAGE, None, url)
    oid, size = lfs.store_fd(repo, fd, shown)
    blob = repo.write_blob(lfs.pointer(oid, size))
    return Artifact("", size, oid, lfs.STORAGE, blob)


def set_threshold(repo: Repo, value: str) -> None:
    """`gitrun config large-file-threshold VALUE` (a size; 0 keeps every artifact in git)."""
    from ..errors import InvalidInputError
    from .settings import parse_size

    limit = parse_size(value)  # one sentence when it is not a size
    if 0 < limit < MIN_THRESHOLD:
        raise InvalidInputError(
            f"large-file-threshold must be at least 1MB (or 0 to keep every artifact in git), "
            f"not {value.strip()}."
        )
    repo.git("config", "--local", THRESHOLD_KEY, value.strip())
    repo.forget_config()


def set_store(repo: Repo, value: str) -> None:
    """`gitrun config artifact-store URL`; `none` (or "") goes back to Git LFS."""
    from ..format import objstore

    if value.strip().lower() in ("", "none", "lfs"):
        repo.git("config", "--local", "--unset-all", STORE_KEY, check=False)
    else:
        repo.git("config", "--local", STORE_KEY, objstore.check_url(value))
    repo.forget_config()


def describe(repo: Repo) -> tuple[str, str]:
    """(threshold as set or its default, the store URL or "") for `gitrun config`."""
    value = _threshold_setting(repo)
    shown = str(value) if value not in (None, "") else "50MB"
    return shown, artifact_store(repo) or ""
