"""MLflow's tracking URI: gitrun records into the enclosing git repository, so only local
URIs are accepted (servers and databases are refused with what to do instead)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import GitrunError

_tracking_uri: str | None = None


def set_tracking_uri(uri: Any) -> None:
    """Accepted for local stores only: gitrun records into the enclosing git repository."""
    global _tracking_uri
    text = "" if uri is None else str(uri)
    if "://" in text and not text.startswith("file://"):
        raise NotImplementedError(
            f"gitrun has no tracking server to log to, so set_tracking_uri('{text}') cannot "
            "work; runs are recorded in the current git repository and shared with "
            "`gitrun push` (`gitrun ui` serves them read-only to MLflow clients)."
        )
    if text.startswith(("databricks", "sqlite:", "postgresql:", "mysql:")):
        raise NotImplementedError(
            f"gitrun records into git, not into '{text}'; drop set_tracking_uri, or import "
            "existing MLflow runs with `gitrun import-mlflow --tracking-uri {text}`."
        )
    _tracking_uri = text or None


def get_tracking_uri() -> str:
    from .._git import Repo

    try:
        root = Repo.discover().work_tree or os.getcwd()
    except GitrunError:
        root = os.getcwd()
    return f"gitrun:{root}"


def is_tracking_uri_set() -> bool:
    return _tracking_uri is not None
