"""Finding the repository: deleted directories, bare repositories, git's ownership check,
GIT_DIR in the environment (one Repo, one `git cat-file` per repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import gitrun
from gitrun._git import Repo
from gitrun.errors import NotAGitRepoError
from tests.conftest import git, run_cli


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


def test_deleted_current_directory_in_process(repo, monkeypatch):
    gone = repo / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(NotAGitRepoError, match="current directory no longer exists"):
        Repo.discover()


def test_deleted_current_directory_cli(repo):
    gone = repo / "gone"
    gone.mkdir()
    script = f"cd '{gone}' && rmdir '{gone}' && exec '{sys.executable}' -m gitrun ls"
    p = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    line = _one_line(p.stderr)
    assert "no longer exists" in line and "git init" not in line


@pytest.fixture
def bare_with_runs(repo, tmp_path):
    with gitrun.start_run(run_name="in-bare"):
        gitrun.log_metric("acc", 0.5)
    bare = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(repo), str(bare))
    return bare


def test_bare_repository_reading_commands_work(bare_with_runs):
    p = run_cli("ls", cwd=bare_with_runs)
    assert p.returncode == 0, p.stderr
    assert "in-bare" in p.stdout
    p = run_cli("search", "metrics.acc > 0.1", "--format", "csv", cwd=bare_with_runs)
    assert p.returncode == 0 and "in-bare" not in p.stderr
    assert len(p.stdout.strip().splitlines()) == 2
    p = run_cli("show", "in-bare", cwd=bare_with_runs / "refs")  # a subdirectory too
    assert p.returncode == 0 and "in-bare" in p.stdout


def test_bare_repository_recording_is_refused_with_the_reason(bare_with_runs):
    before = git(bare_with_runs, "rev-parse", "refs/gitrun/runs")
    p = run_cli("record", "--", "true", cwd=bare_with_runs)
    assert p.returncode == 1
    line = _one_line(p.stderr)
    assert "bare git repository" in line and "git init" not in line
    assert git(bare_with_runs, "rev-parse", "refs/gitrun/runs") == before


def test_bare_repository_api(bare_with_runs, monkeypatch):
    monkeypatch.chdir(bare_with_runs)
    assert gitrun.get_run("in-bare").data.metrics == {"acc": 0.5}
    with pytest.raises(NotAGitRepoError, match="bare git repository"):
        gitrun.start_run()


def test_bare_repository_through_git_dir(bare_with_runs, tmp_path):
    p = run_cli("ls", cwd=tmp_path, env={"GIT_DIR": str(bare_with_runs)})
    assert p.returncode == 0 and "in-bare" in p.stdout, p.stderr


def test_not_a_repository_still_says_git_init(tmp_path):
    p = run_cli("ls", cwd=tmp_path)
    assert p.returncode == 1
    assert "not inside a git repository" in _one_line(p.stderr)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_dubious_ownership_is_named_with_gits_hint(repo, tmp_path):
    with gitrun.start_run(run_name="theirs"):
        pass
    other = tmp_path / "other"
    shutil.copytree(repo, other, symlinks=True)
    for root, dirs, files in os.walk(other):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), 12345, 12345)
    os.chown(other, 12345, 12345)
    p = run_cli("ls", cwd=other)
    assert p.returncode == 1
    line = _one_line(p.stderr)
    assert "dubious-ownership" in line or "dubious ownership" in line
    assert f"git config --global --add safe.directory {other}" in line
    # Once the user trusts it, as git suggests, gitrun works there too.
    git(tmp_path, "config", "--global", "--add", "safe.directory", str(other))
    p = run_cli("ls", cwd=other)
    assert p.returncode == 0 and "theirs" in p.stdout, p.stderr


def test_dubious_ownership_as_git_tests_it(repo):
    p = run_cli("show", "x", cwd=repo, env={"GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"})
    assert p.returncode == 1
    line = _one_line(p.stderr)
    assert "owned by another user" in line and "safe.directory" in line


def test_dubious_ownership_in_process(repo, monkeypatch):
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")
    with pytest.raises(NotAGitRepoError, match="safe.directory"):
        Repo.discover(str(repo / "sub-that-needs-no-existence"))


def test_git_dir_discovery_is_cached(repo, monkeypatch, tmp_path):
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    a = Repo.discover()
    b = Repo.discover()
    assert a is b
    assert a.git_dir == str(repo / ".git") and a.work_tree == str(repo)


def test_git_dir_runs_share_one_cat_file_process(repo, tmp_path):
    """30 get_run calls with GIT_DIR set: one `git cat-file` child, not 31."""
    with gitrun.start_run(run_name="counted"):
        gitrun.log_metric("m", 1.0)
    script = (
        "import os, subprocess, gitrun\n"
        "for _ in range(30):\n"
        "    assert gitrun.get_run('counted').data.metrics == {'m': 1.0}\n"
        "out = subprocess.run(['pgrep', '-P', str(os.getpid()), '-a'], capture_output=True,"
        " text=True).stdout\n"
        "print(sum('cat-file' in line for line in out.splitlines()))\n"
    )
    if shutil.which("pgrep") is None:
        pytest.skip("pgrep is not installed")
    p = subprocess.run(
        [sys.executable, "-c", script],
        cwd=repo,
        env={**os.environ, "GIT_DIR": str(repo / ".git")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert int(p.stdout.strip()) <= 1
