"""The one exception family users see.

Every message is a full sentence that says what is wrong and what to do.  The
CLI turns a GitrunError into that sentence on stderr and exit code 1 (usage
errors: 2), never a traceback.
"""

from __future__ import annotations

from typing import Any


class GitrunError(Exception):
    """Base of every error gitrun raises on purpose."""

    exit_code = 1
    # MLflow's error code names, for code that checks MlflowException.error_code.
    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def get_error_code(self) -> str:
        return self.error_code


# MLflow code catches MlflowException; `import gitrun as mlflow` keeps that working.
MlflowException = GitrunError


class UsageError(GitrunError):
    exit_code = 2
    error_code = "INVALID_PARAMETER_VALUE"


class NotAGitRepoError(GitrunError):
    pass


class GitError(GitrunError):
    """A git command failed in a way gitrun did not expect."""


class RefLockedError(GitrunError):
    """Another process holds a ref's lock file (or one was left by a process that died)."""

    def __init__(self, ref: str, lock: str, what: str = "") -> None:
        import os
        import time

        try:
            age = f", created {time.time() - os.path.getmtime(lock):.0f} s ago"
        except OSError:
            age = ""
        super().__init__(
            f"{ref} is locked by {lock}{age}{what}, held by another process; if no git "
            f"process is still running in this repository, remove that file (rm '{lock}') "
            "and run the command again."
        )
        self.ref = ref
        self.lock = lock


class RunNotFoundError(GitrunError):
    error_code = "RESOURCE_DOES_NOT_EXIST"


class AmbiguousRunError(GitrunError):
    error_code = "INVALID_PARAMETER_VALUE"


class InvalidInputError(GitrunError):
    """A key, value, metric or path the user passed is not acceptable."""

    error_code = "INVALID_PARAMETER_VALUE"


class ParamChangedError(InvalidInputError):
    pass


class FilterError(GitrunError):
    """A search filter or order_by clause could not be parsed."""

    error_code = "INVALID_PARAMETER_VALUE"


class CorruptRecordError(GitrunError):
    """Something on refs/gitrun/runs is not in the format gitrun writes."""


class RemoteError(GitrunError):
    pass


class UnsafePathError(GitrunError):
    """An artifact path from history would write outside the target tree."""


class DirtyWorkTreeError(GitrunError):
    pass


class NotReproducedError(GitrunError):
    pass


class DiskError(GitrunError):
    """The disk refused a write: full, over quota, or read-only."""


class ArtifactUnavailableError(GitrunError):
    """A large artifact's content is in no store gitrun could reach (format/large.py)."""

    error_code = "RESOURCE_DOES_NOT_EXIST"


class MissingDependencyError(GitrunError, ImportError):
    """An optional dependency (scikit-learn, mlflow) is not installed."""


def require(module: str, extra_or_pip: str) -> Any:
    """Import an optional dependency or say in one sentence how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"This needs {module}, which is not installed; install it with "
            f"`pip install {extra_or_pip}`."
        ) from None
