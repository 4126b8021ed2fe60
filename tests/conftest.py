"""Shared fixtures: real git repositories in temp dirs with a fixed identity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Keras 3 runs on the torch backend in tests (TensorFlow is not installed); it reads this
# once, when first imported, so it is set before any test module imports keras or mlflow.keras.
os.environ.setdefault("KERAS_BACKEND", "torch")

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test sees the developer's git config, gitrun env or active runs."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for k, v in IDENTITY.items():
        monkeypatch.setenv(k, v)
    for k in list(os.environ):
        if k.startswith(("GITRUN_", "MLFLOW_")) or k in (
            "GIT_DIR",
            "GIT_INDEX_FILE",
            "GIT_WORK_TREE",
        ):
            monkeypatch.delenv(k, raising=False)
    # A test that ran real MLflow may have called mlflow.set_tracking_uri(), which outlives
    # it in this process and outranks MLFLOW_TRACKING_URI: start each test without it.
    mlflow_utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if mlflow_utils is not None and hasattr(mlflow_utils, "_tracking_uri"):
        monkeypatch.setattr(mlflow_utils, "_tracking_uri", None)
    import gitrun.tracking as tracking
    from gitrun.tracking import state

    state.reset()
    yield
    while state.stack:
        try:
            tracking.end_run()
        except Exception:
            state.stack.pop()
    state.reset()


def git(cwd, *args, check=True, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {p.stderr}")
    return p.stdout


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A fresh repository with one commit, as the current directory."""
    d = tmp_path / "repo"
    d.mkdir()
    git(d, "init", "-q", "-b", "main")
    (d / "train.py").write_text("print('training')\n")
    (d / ".gitignore").write_text("*.log\n")
    git(d, "add", ".")
    git(d, "commit", "-qm", "initial")
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def empty_repo(tmp_path, monkeypatch) -> Path:
    """A repository with no commits yet, as the current directory."""
    d = tmp_path / "empty"
    d.mkdir()
    git(d, "init", "-q", "-b", "main")
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def bare_remote(tmp_path) -> Path:
    d = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(d))
    return d


def run_cli(*args, cwd=None, env=None, input=None, timeout=120):
    """Run the real `gitrun` command in a subprocess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gitrun", *args],
        cwd=cwd,
        env=e,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snapshot_state(d: Path) -> dict:
    """Everything gitrun must never touch: HEAD, refs (but its own), index, work tree."""
    refs = git(d, "for-each-ref", "--format=%(refname) %(objectname)")
    refs = "\n".join(r for r in refs.splitlines() if not r.startswith("refs/gitrun/"))
    index = (d / ".git" / "index").read_bytes() if (d / ".git" / "index").exists() else b""
    files = {}
    for p in sorted(d.rglob("*")):
        if ".git" in p.relative_to(d).parts:
            continue
        if p.is_file():
            files[str(p.relative_to(d))] = p.read_bytes()
    stash = git(d, "stash", "list")
    head = (d / ".git" / "HEAD").read_text()
    return {"refs": refs, "index": index, "files": files, "stash": stash, "head": head}
