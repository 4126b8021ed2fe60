"""The one exception family users see.

Every message is a full sentence that says what is wrong and what to do.  The
CLI turns a GitrunError into that sentence on stderr and exit code 1 (usage
errors: 2), never a traceback.
"""

from __future__ import annotations


class GitrunError(Exception):
    """Base of every error gitrun raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# MLflow code catches MlflowException; `import gitrun as mlflow` keeps that working.
MlflowException = GitrunError


class UsageError(GitrunError):
    exit_code = 2


class NotAGitRepoError(GitrunError):
    pass


class GitError(GitrunError):
    """A git command failed in a way gitrun did not expect."""


class RunNotFoundError(GitrunError):
    pass


class AmbiguousRunError(GitrunError):
    pass


class InvalidInputError(GitrunError):
    """A key, value, metric or path the user passed is not acceptable."""


class ParamChangedError(InvalidInputError):
    pass


class FilterError(GitrunError):
    """A search filter or order_by clause could not be parsed."""


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
