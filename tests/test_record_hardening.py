"""`gitrun record` and artifact collection under hostile-but-realistic input (issue 9).

Secrets never leave the directory the user named; a command that ran is always committed
with its own status and exit code; bad options are refused before anything runs.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import gitrun
from gitrun._git import Repo
from gitrun.capture.artwalk import ArtifactLimitError
from gitrun.errors import GitrunError, InvalidInputError
from gitrun.format import store
from tests.conftest import git, run_cli, snapshot_state

SECRET = "TOPSECRET-6b1f0c"


def runs(repo_dir):
    repo = Repo.discover(str(repo_dir))
    trees = store.list_run_trees(repo)
    return store.read_records(repo, trees, list(store.DEFAULT_FILES) + [store.HISTORY_FILE])


def only_run(repo_dir):
    recs = runs(repo_dir)
    assert len(recs) == 1, recs
    return next(iter(recs.values()))


def nothing_live(repo_dir) -> bool:
    live = repo_dir / ".git" / "gitrun" / "live"
    return not live.exists() or not [n for n in os.listdir(live) if not n.startswith(".")]


def secret_stored(repo_dir) -> bool:
    """Whether any object in the repository (reachable or not) holds the secret."""
    p = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repo_dir,
        capture_output=True,
        check=True,
    )
    return SECRET.encode() in p.stdout


def one_line_errors(stderr: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr


@pytest.fixture
def outside(tmp_path):
    """A directory outside the repository holding a secret."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "shadow").write_text(SECRET)
    return d


# -- symlinks and scope --------------------------------------------------------------


def test_symlinked_dir_outside_repo_is_refused_before_running(repo, outside):
    os.symlink(outside, repo / "etc")
    before = snapshot_state(repo)
    p = run_cli("record", "-a", "etc", "--", "touch", "ran", cwd=repo)
    assert p.returncode == 2, p.stderr
    one_line_errors(p.stderr)
    assert "'etc'" in p.stderr and "outside the repository" in p.stderr
    assert not (repo / "ran").exists()  # the command never ran
    assert runs(repo) == {} and nothing_live(repo)
    assert snapshot_state(repo) == before
    assert not secret_stored(repo)


def test_symlink_created_by_the_command_is_not_followed(repo, outside):
    p = run_cli("record", "-a", "etc", "--", "ln", "-s", str(outside), "etc", cwd=repo)
    assert p.returncode == 1, p.stderr
    one_line_errors(p.stderr)
    rec = only_run(repo)
    assert rec.status == "FINISHED" and rec.exit_code == 0
    assert "'etc'" in rec.tags["gitrun.problems"]
    assert rec.artifacts == {}
    assert SECRET not in git(
        repo, "grep", "-r", "-I", "-e", SECRET, "refs/gitrun/runs", check=False
    )
    assert not secret_stored(repo)


@pytest.mark.parametrize(
    "path",
    ["../../../etc/hostname", "/etc/hostname", "../outside"],
)
def test_artifact_path_outside_work_tree_refused_before_running(repo, outside, path):
    p = run_cli("record", "-a", path, "--", "touch", "ran", cwd=repo)
    assert p.returncode == 2
    one_line_errors(p.stderr)
    assert f"'{path}'" in p.stderr and "outside the repository work tree" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (repo / "ran").exists() and runs(repo) == {} and nothing_live(repo)


def test_artifact_path_above_the_current_directory_refused_before_running(repo):
    (repo / "sub").mkdir()
    p = run_cli("record", "-a", "../train.py", "--", "touch", "ran", cwd=repo / "sub")
    assert p.returncode == 2
    assert "'../train.py'" in p.stderr and "directory the command runs in" in p.stderr
    assert not (repo / "sub" / "ran").exists() and runs(repo) == {}


def test_artifact_in_dot_git_refused_before_running(repo):
    p = run_cli("record", "-a", ".git/config", "--", "true", cwd=repo)
    assert p.returncode == 2 and "'.git/config'" in p.stderr
    assert runs(repo) == {}


def test_artifact_created_by_the_command_is_fine(repo):
    p = run_cli(
        "record",
        "-a",
        "out/model.bin",
        "--",
        "sh",
        "-c",
        "mkdir out; echo m >out/model.bin",
        cwd=repo,
    )
    assert p.returncode == 0, p.stderr
    assert set(only_run(repo).artifacts) == {"out/model.bin"}


def _hostile_dir(repo, outside):
    out = repo / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.txt").write_text("a")
    (out / "sub" / "b.txt").write_text("b")
    os.symlink(outside / "shadow", out / "leak")  # a file outside
    os.symlink(outside, out / "leakdir")  # a directory outside
    os.symlink("../train.py", out / "up")  # outside `out`, though inside the repo
    os.symlink("a.txt", out / "inside")  # stays inside: kept as a copy
    os.symlink("sub", out / "subdir")  # a directory inside: walked
    os.symlink("nowhere", out / "dangling")
    os.symlink("loop", out / "loop")
    os.symlink(".", out / "sub" / "self")  # a directory containing itself
    os.mkfifo(out / "fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(out / "sock"))
    s.close()
    return out


def test_directory_with_symlinks_and_special_files(repo, outside):
    _hostile_dir(repo, outside)
    p = run_cli("record", "-a", "out", "--", "true", cwd=repo, timeout=60)
    assert p.returncode == 1, p.stderr  # problems turn exit 0 into 1 ...
    one_line_errors(p.stderr)
    rec = only_run(repo)
    assert rec.status == "FINISHED" and rec.exit_code == 0  # ... the run keeps the command's
    assert set(rec.artifacts) == {
        "out/a.txt",
        "out/sub/b.txt",
        "out/inside",
        "out/subdir/b.txt",
    }
    assert rec.artifacts["out/inside"].sha256 == rec.artifacts["out/a.txt"].sha256
    problems = rec.tags["gitrun.problems"]
    for name in ("leak", "leakdir", "up", "dangling", "loop", "sub/self", "fifo", "sock"):
        assert f"'out/{name}'" in problems
        assert any(f"'out/{name}'" in line for line in p.stderr.splitlines())
    assert not secret_stored(repo)


def test_work_tree_itself_as_artifact(repo):
    (repo / "data").mkdir()
    (repo / "data" / "x.csv").write_text("1,2\n")
    p = run_cli("record", "-a", ".", "--", "true", cwd=repo)
    assert p.returncode == 0, p.stderr
    rec = only_run(repo)
    assert rec.status == "FINISHED"
    assert {"train.py", ".gitignore", "data/x.csv"} <= set(rec.artifacts)
    assert not any(a.split("/")[0] == ".git" for a in rec.artifacts)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_a_problem(repo):
    (repo / "out").mkdir()
    (repo / "out" / "ok.txt").write_text("ok")
    (repo / "out" / "locked.txt").write_text("no")
    os.chmod(repo / "out" / "locked.txt", 0)
    p = run_cli("record", "-a", "out", "--", "true", cwd=repo)
    assert p.returncode == 1
    rec = only_run(repo)
    assert set(rec.artifacts) == {"out/ok.txt"}
    assert "'out/locked.txt'" in rec.tags["gitrun.problems"]


# -- limits --------------------------------------------------------------------------


def _many(d, n, size=1):
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"f{i:05d}").write_bytes(b"x" * size)


def test_directory_over_file_limit_is_not_stored(repo):
    _many(repo / "big", 12)
    (repo / "small.txt").write_text("s")
    p = run_cli(
        "record",
        "--max-artifact-files",
        "10",
        "-a",
        "big",
        "-a",
        "small.txt",
        "--",
        "true",
        cwd=repo,
    )
    assert p.returncode == 1
    rec = only_run(repo)
    assert rec.status == "FINISHED" and rec.exit_code == 0
    assert set(rec.artifacts) == {"small.txt"}  # nothing of big: counted before storing
    problem = rec.tags["gitrun.problems"]
    assert "'big'" in problem and "more than 10 files" in problem
    assert "--max-artifact-files" in problem and "GITRUN_MAX_ARTIFACT_FILES" in problem
    assert "big" in p.stderr and "--max-artifact-files" in p.stderr


def test_size_limit_from_config_and_file_limit_from_env(repo):
    _many(repo / "big", 3, size=1000)
    (repo / ".gitrun.yaml").write_text("max-artifact-size: 2k\n")
    p = run_cli("record", "-a", "big", "--", "true", cwd=repo)
    assert p.returncode == 1
    assert "more than 2 KiB" in p.stderr and "max-artifact-size" in p.stderr
    (repo / ".gitrun.yaml").write_text("max_artifact_size: 0\nmax_artifact_files: 2\n")
    p = run_cli("record", "-a", "big", "--", "true", cwd=repo)
    assert p.returncode == 1 and "more than 2 files" in p.stderr
    p = run_cli(
        "record", "-a", "big", "--", "true", cwd=repo, env={"GITRUN_MAX_ARTIFACT_FILES": "0"}
    )
    assert p.returncode == 0, p.stderr
    assert sum(len(r.artifacts) for r in runs(repo).values()) == 3


def test_invalid_limit_is_refused_before_running(repo):
    p = run_cli("record", "--max-artifact-size", "lots", "--", "touch", "ran", cwd=repo)
    assert p.returncode == 1 and "'lots' is not a size" in p.stderr
    assert not (repo / "ran").exists() and runs(repo) == {}


def test_api_log_artifact_of_a_huge_directory_fails_fast(repo, tmp_path):
    # Like gitrun.log_artifact("/tmp"): many files, the first ones enough to fail.
    huge = tmp_path / "tmp-like"
    _many(huge / "a", 10_001)
    _many(huge / "b", 2_000)
    (huge / "a" / "leak").symlink_to("/etc/passwd")
    with gitrun.start_run() as run:
        t = time.monotonic()
        with pytest.raises(ArtifactLimitError) as e:
            gitrun.log_artifact(str(huge))
        assert time.monotonic() - t < 10
        assert isinstance(e.value, GitrunError)
        msg = str(e.value)
        assert str(huge) in msg and "more than 10,000 files" in msg
        assert "max_artifact_files=N" in msg and "max-artifact-files" in msg
        with pytest.raises(ArtifactLimitError, match="more than 1 KiB"):
            gitrun.log_artifacts(str(huge / "b"), max_artifact_size="1k")
        gitrun.log_artifacts(str(huge / "b"), "kept", max_artifact_files=2_000)
    rec = runs(repo)[run.info.run_id]
    assert len(rec.artifacts) == 2_000 and all(a.startswith("kept/") for a in rec.artifacts)


def test_api_log_artifacts_skips_links_out_and_special_files(repo, outside, capfd):
    out = _hostile_dir(repo, outside)
    with gitrun.start_run() as run:
        gitrun.log_artifacts(str(out), "o")
        with pytest.raises(InvalidInputError, match="FIFO"):
            gitrun.log_artifact(str(out / "fifo"))
    err = capfd.readouterr().err
    assert "leak" in err and "fifo" in err and "Traceback" not in err
    rec = runs(repo)[run.info.run_id]
    assert set(rec.artifacts) == {"o/a.txt", "o/sub/b.txt", "o/inside", "o/subdir/b.txt"}
    assert not secret_stored(repo)


def test_client_log_artifacts_on_a_finished_run_uses_the_same_walk(repo, outside):
    out = _hostile_dir(repo, outside)
    with gitrun.start_run() as run:
        pass
    client = gitrun.MlflowClient()
    client.log_artifacts(run.info.run_id, str(out))
    rec = runs(repo)[run.info.run_id]
    assert "a.txt" in rec.artifacts and "leak" not in rec.artifacts
    assert not secret_stored(repo)


# -- a command that ran is always committed with its own status ----------------------


@pytest.mark.parametrize(
    "kind", ["binary", "latin-1", "directory", "missing", "fifo", "not-a-mapping", "bad-yaml"]
)
def test_bad_metrics_file_keeps_status_and_exit_code(repo, kind):
    f = repo / "metrics.yaml"
    if kind == "binary":
        f.write_bytes(b"\x00\xff\xfe\x89PNG\r\n")
    elif kind == "latin-1":
        f.write_bytes("acc: 0.9\nnote: café\n".encode("latin-1"))
    elif kind == "directory":
        f.mkdir()
    elif kind == "fifo":
        os.mkfifo(f)
    elif kind == "not-a-mapping":
        f.write_text("- 1\n- 2\n")
    elif kind == "bad-yaml":
        f.write_text("a: [1,\n  b: {\n")
    p = run_cli("record", "--metrics-file", "metrics.yaml", "--", "true", cwd=repo, timeout=60)
    assert p.returncode == 1, p.stderr
    one_line_errors(p.stderr)
    rec = only_run(repo)
    assert rec.status == "FINISHED" and rec.exit_code == 0
    assert "'metrics.yaml'" in rec.tags["gitrun.problems"]
    assert "\n" not in rec.tags["gitrun.problems"]
    assert nothing_live(repo)
    later = run_cli("ls", "--format", "json", cwd=repo)
    assert [r["status"] for r in json.loads(later.stdout)] == ["FINISHED"]


def test_failed_command_keeps_its_exit_code_despite_problems(repo):
    p = run_cli(
        "record", "--metrics-file", "none.json", "-a", "gone", "--", "sh", "-c", "exit 7", cwd=repo
    )
    assert p.returncode == 7
    rec = only_run(repo)
    assert rec.status == "FAILED" and rec.exit_code == 7
    assert "'gone'" in rec.tags["gitrun.problems"]


def test_metrics_file_with_bad_values_keeps_the_good_ones(repo):
    data = {"acc": 0.9, "name": "rf", "hist": [1, 2], "none": None, "nested": {"f1": 0.5, "x": "y"}}
    (repo / "m.json").write_text(json.dumps(data))
    p = run_cli("record", "--metrics-file", "m.json", "--", "true", cwd=repo)
    assert p.returncode == 1
    rec = only_run(repo)
    assert rec.status == "FINISHED" and rec.exit_code == 0
    assert rec.metrics == {"acc": 0.9, "nested.f1": 0.5}
    problem = rec.tags["gitrun.problems"]
    for key in ("'name'", "'hist'", "'none'", "'nested.x'"):
        assert key in problem
    assert "'acc'" not in problem


@pytest.mark.parametrize("kind", ["binary", "latin-1", "directory", "fifo", "dangling"])
def test_bad_params_file_is_refused_before_running(repo, kind):
    f = repo / "p.yaml"
    if kind == "binary":
        f.write_bytes(b"\x00\xff\xfe")
    elif kind == "latin-1":
        f.write_bytes("name: café\n".encode("latin-1"))
    elif kind == "directory":
        f.mkdir()
    elif kind == "fifo":
        os.mkfifo(f)
    else:
        f.symlink_to("nowhere.yaml")
    p = run_cli("record", "--params-file", "p.yaml", "--", "touch", "ran", cwd=repo, timeout=60)
    assert p.returncode == 1
    one_line_errors(p.stderr)
    assert "'p.yaml'" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (repo / "ran").exists() and runs(repo) == {} and nothing_live(repo)


def test_command_that_cannot_be_executed_is_committed_failed(repo):
    (repo / "adir").mkdir()
    p = run_cli("record", "--", "./adir", cwd=repo)
    assert p.returncode == 126
    one_line_errors(p.stderr)
    rec = only_run(repo)
    assert rec.status == "FAILED" and rec.exit_code == 126


@pytest.mark.parametrize(
    "exc,said",
    [
        (RuntimeError("boom"), "Artifact 'out' was not collected (boom)."),
        (KeyboardInterrupt(), "gitrun stopped collecting after the command ended"),
    ],
)
def test_unexpected_failure_while_collecting_still_commits(repo, monkeypatch, exc, said):
    from gitrun.capture import artwalk
    from gitrun.workflows import record

    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(artwalk, "walk", broken)
    (repo / "out").mkdir()
    code, rec = record.record(
        record.RecordOptions(["true"], artifacts=["out"], metrics_file=None, quiet=True)
    )
    assert code == 1 and rec is not None
    again = only_run(repo)
    assert again.status == "FINISHED" and again.exit_code == 0
    assert said in again.tags["gitrun.problems"]
    assert nothing_live(repo)


# -- usage ---------------------------------------------------------------------------


@pytest.mark.parametrize("opt,what", [("-p", "Param"), ("-t", "Tag")])
def test_repeated_key_with_other_value_is_a_usage_error(repo, opt, what):
    p = run_cli("record", opt, "lr=1", opt, "lr=2", "--", "touch", "ran", cwd=repo)
    assert p.returncode == 2
    assert f"{what} 'lr'" in p.stderr
    assert not (repo / "ran").exists() and runs(repo) == {}


def test_repeated_key_with_same_value_is_fine(repo):
    p = run_cli("record", "-p", "lr=1", "-p", "lr=1", "--", "true", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert only_run(repo).params == {"lr": "1"}


def test_record_help_names_the_new_options():
    p = run_cli("record", "--help")
    assert "--max-artifact-files" in p.stdout and "--max-artifact-size" in p.stdout
    assert "Example" in p.stdout


# -- SIGINT --------------------------------------------------------------------------

TRAPS_SIGINT = textwrap.dedent(
    """
    import os, signal, sys, time
    got = []
    signal.signal(signal.SIGINT, lambda s, f: got.append(s))
    if sys.argv[1] == "own-group":
        os.setpgrp()  # like an IDE-run child: a signal to the group would not reach it
    print("ready", flush=True)
    t = time.time()
    while not got and time.time() - t < 20:
        time.sleep(0.02)
    time.sleep(1.0)  # cleanup that outlasts the wrapper's grace period
    open("marker", "w").write(str(len(got)))
    sys.exit(3)
    """
)


def test_sigint_to_the_wrapper_alone_reaches_the_child(repo):
    (repo / "trap.py").write_text(TRAPS_SIGINT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitrun", "record", "--", sys.executable, "trap.py", "own-group"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGINT)  # an IDE's stop button
    proc.communicate(timeout=30)
    assert (repo / "marker").read_text() == "1"
    assert proc.returncode == 3
    rec = only_run(repo)
    assert rec.status == "KILLED" and rec.exit_code == 3


def test_sigint_to_the_wrapper_kills_a_child_without_handler(repo):
    (repo / "slow.py").write_text(
        "import os, time\nos.setpgrp()\nprint('ready', flush=True)\ntime.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitrun", "record", "--", sys.executable, "slow.py"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    rec = only_run(repo)
    assert rec.status == "KILLED" and proc.returncode == rec.exit_code != 0


def test_ctrl_c_in_a_terminal_is_not_sent_twice(repo):
    (repo / "trap.py").write_text(TRAPS_SIGINT)
    argv = [sys.executable, "-m", "gitrun", "record", "--", sys.executable, "trap.py", "same"]
    pid, fd = pty.fork()
    if pid == 0:  # the wrapper, as a terminal's foreground process group
        try:
            os.execvpe(argv[0], argv, os.environ)
        finally:
            os._exit(127)
    seen = b""
    deadline = time.monotonic() + 30
    while b"ready" not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert b"ready" in seen, seen
    os.write(fd, b"\x03")  # Ctrl-C: the tty sends SIGINT to the whole foreground group
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert (repo / "marker").read_text() == "1"  # the child got it once, from the terminal
    rec = only_run(repo)
    assert rec.status == "KILLED" and rec.exit_code == 3
