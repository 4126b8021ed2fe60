"""Running git: `run_git` (one command, errors as GitError) and `git_env` (the
environment every git process gitrun starts gets)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from ..errors import GitError

# git refuses to start when these leak from a parent git process (hooks, `git rebase -x`).
_GIT_ENV_DROP = ("GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_PREFIX")


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    # Never take optional locks: `git status` would otherwise refresh the user's index.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env.setdefault("LC_ALL", "C")
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str],
    cwd: str | None = None,
    *,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run one git command; raise GitError naming the command and git's message."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env if env is not None else git_env(),
            input=input,
            capture_output=True,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH; install git and try again.") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = msg[-1] if msg else f"exit code {proc.returncode}"
        raise GitError(f"`git {' '.join(args[:3])}` failed: {detail}")
    return proc
