"""gitrun push / pull through real remotes: a bare repository on disk and `git daemon`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gitrun._git import Repo
from gitrun.format import store
from tests.conftest import git, run_cli

TRAIN = """\
import os, sys
tag = open("train.py").read().splitlines()[0]
open("model.txt", "w").write("weights for " + tag + "\\n")
print("trained", tag)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def git_daemon(tmp_path):
    """`git daemon` serving tmp_path/served on 127.0.0.1; yields (base dir, port)."""
    base = tmp_path / "served"
    base.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # `git daemon` runs git-daemon as a child: its own process group lets the
        # teardown end both, so no daemon outlives the test (and holds CI's output).
        start_new_session=True,
    )

    def stop() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    deadline = time.time() + 10
    while True:
        if proc.poll() is not None:
            pytest.fail(f"git daemon could not start: {proc.stderr.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.time() > deadline:
                stop()
                pytest.fail("git daemon did not accept connections within 10 s")
            time.sleep(0.05)
    try:
        yield base, port
    finally:
        stop()


def make_team(tmp_path: Path, remote: Path, url: str) -> tuple[Path, Path]:
    """A seed commit on the remote, then two clones (a, b) of it that use `url`."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "train.py").write_text("# seed\n" + TRAIN)
    (seed / ".gitignore").write_text("model.txt\n")
    git(seed, "add", ".")
    git(seed, "commit", "-qm", "initial")
    git(seed, "push", "-q", str(remote), "main")
    git(remote, "symbolic-ref", "HEAD", "refs/heads/main")
    clones = []
    for name in ("a", "b"):
        d = tmp_path / name
        git(tmp_path, "clone", "-q", str(remote), str(d))
        git(d, "remote", "set-url", "origin", url)
        clones.append(d)
    return clones[0], clones[1]


@pytest.fixture
def team(tmp_path, bare_remote):
    a, b = make_team(tmp_path, bare_remote, str(bare_remote))
    return a, b, bare_remote


def runs_of(d: Path) -> dict[str, str]:
    return store.list_run_trees(Repo.discover(str(d)))


def remote_runs(remote: Path) -> dict[str, str]:
    return store.list_run_trees(Repo(git_dir=str(remote), common_dir=str(remote), work_tree=None))


def tip(d: Path) -> str | None:
    out = git(d, "rev-parse", "-q", "--verify", "refs/gitrun/runs", check=False).strip()
    return out or None


def record(d: Path, label: str) -> str:
    """Record one run in clone d from a dirty train.py whose first line is `label`."""
    (d / "train.py").write_text(f"# {label}\n" + TRAIN)
    before = set(runs_of(d))
    p = run_cli("record", "-q", "-a", "model.txt", "--", sys.executable, "train.py", cwd=d)
    assert p.returncode == 0, p.stderr
    (new,) = set(runs_of(d)) - before
    return new


def assert_no_traceback(p: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr


# ---------------------------------------------------------------------------
# concurrent teams
# ---------------------------------------------------------------------------
# Three rounds on disk; two over the network keep the file's runtime down.
@pytest.mark.parametrize(("transport", "rounds"), [("file", 3), ("daemon", 2)])
def test_two_clones_record_and_push_concurrently(tmp_path, bare_remote, transport, rounds, request):
    if transport == "daemon":
        base, port = request.getfixturevalue("git_daemon")
        remote = base / "team.git"
        git(tmp_path, "init", "-q", "--bare", str(remote))
        url = f"git://127.0.0.1:{port}/team.git"
    else:
        remote, url = bare_remote, str(bare_remote)
    a, b = make_team(tmp_path, remote, url)
    recorded: dict[str, dict[str, str]] = {}  # run id -> {clone, label}
    remote_tip = None

    for rnd in range(rounds):
        # Both clones record two runs at the same time, in their own processes.
        def work(d: Path, rnd: int = rnd) -> None:
            for k in range(2):
                label = f"{d.name} round {rnd} run {k}"
                recorded[record(d, label)] = {"clone": d.name, "label": label}

        threads = [threading.Thread(target=work, args=(d,)) for d in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # ... and push at the same moment.
        env = dict(os.environ)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "gitrun", "push", "-q"],
                cwd=d,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for d in (a, b)
        ]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert "Traceback" not in err
        new_remote_tip = git(remote, "rev-parse", "refs/gitrun/runs").strip()
        if remote_tip:  # the remote's history only ever grows
            git(remote, "merge-base", "--is-ancestor", remote_tip, new_remote_tip)
        remote_tip = new_remote_tip

    assert len(recorded) == rounds * 2 * 2
    assert set(remote_runs(remote)) == set(recorded)
    for d in (a, b):
        old = tip(d)
        p = run_cli("pull", "-q", cwd=d)
        assert p.returncode == 0, p.stderr
        git(d, "merge-base", "--is-ancestor", old, tip(d))  # append-only
        assert set(runs_of(d)) == set(recorded)
        listed = json.loads(run_cli("ls", "--all", "--format", "json", cwd=d).stdout)
        ids = [r["run_id"] for r in listed]
        assert sorted(ids) == sorted(recorded)  # each run exactly once
        # Every run commit is in the history exactly once (merges add none).
        trailers = git(
            d, "log", "--format=%(trailers:key=Gitrun-Run,valueonly)", "refs/gitrun/runs"
        ).split()
        assert sorted(trailers) == sorted(recorded)

    # A teammate's run: its code commit and artifacts arrived with the ref.
    repo_b = Repo.discover(str(b))
    for rid, info in recorded.items():
        if info["clone"] != "a":
            continue
        rec = store.read_record(repo_b, rid, runs_of(b)[rid])
        code = rec.code["commit"]
        git(b, "cat-file", "-e", code)
        assert git(b, "show", f"{code}:train.py").startswith(f"# {info['label']}\n")
        blob = store.artifact_blobs(repo_b, rec.tree)["model.txt"][1]
        assert git(b, "cat-file", "blob", blob) == f"weights for # {info['label']}\n"


def test_pull_joins_diverged_histories_with_a_merge(team):
    a, b, _remote = team
    ra = record(a, "a first")
    assert run_cli("push", "-q", cwd=a).returncode == 0
    rb = record(b, "b first")
    old_b = tip(b)
    p = run_cli("pull", cwd=b)
    assert p.returncode == 0, p.stderr
    assert "Pulled 1 run from 'origin' (merged with local runs)" in p.stderr
    new_b = tip(b)
    parents = git(b, "rev-list", "--parents", "-n", "1", new_b).split()[1:]
    assert parents == [old_b, tip(a)]
    assert git(b, "log", "-1", "--format=%s", new_b).startswith("gitrun: merge runs from origin")
    assert set(runs_of(b)) == {ra, rb}
    # Pulling again changes nothing; a pull where we are ahead changes nothing either.
    p = run_cli("pull", "-q", cwd=b)
    assert p.returncode == 0 and p.stderr == "" and tip(b) == new_b
    # a is behind: fast-forward, no merge commit.
    assert run_cli("push", "-q", cwd=b).returncode == 0
    p = run_cli("pull", "-q", cwd=a)
    assert p.returncode == 0 and tip(a) == new_b


def test_push_retries_when_another_clone_pushed_in_between(team, tmp_path):
    """Deterministic race: a pre-push hook makes b push between a's fetch and a's push."""
    a, b, remote = team
    ra, rb = record(a, "a"), record(b, "b")
    marker = tmp_path / "raced"
    hook = a / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        f"[ -e '{marker}' ] && exit 0\n"
        f"touch '{marker}'\n"
        f"env -u GIT_DIR -u GIT_WORK_TREE git -C '{b}' push -q origin refs/gitrun/runs\n"
    )
    hook.chmod(0o755)
    old_a = tip(a)
    p = run_cli("push", cwd=a)
    assert p.returncode == 0, p.stderr
    assert marker.exists()
    assert "after 2 attempts" in p.stderr and "1 run arrived from it first" in p.stderr
    assert set(remote_runs(remote)) == {ra, rb}
    git(a, "merge-base", "--is-ancestor", old_a, tip(a))
    assert git(remote, "rev-parse", "refs/gitrun/runs").strip() == tip(a)


def test_pull_into_a_clone_without_runs_and_plain_git_fetch(team):
    a, b, _remote = team
    ra = record(a, "a")
    # Plain git carries runs too, and `gitrun pull` joins what plain git fetched.
    git(a, "push", "-q", "origin", "refs/gitrun/runs")
    git(b, "fetch", "-q", "origin", "refs/gitrun/runs:refs/remotes/origin/gitrun/runs")
    assert tip(b) is None
    p = run_cli("pull", "--no-fetch", cwd=b)
    assert p.returncode == 0, p.stderr
    assert "Pulled 1 run" in p.stderr
    assert set(runs_of(b)) == {ra} and tip(b) == tip(a)


def _stderr_on_a_terminal(args, cwd) -> tuple[int, str]:
    """Run gitrun with its stderr on a pseudo-terminal, as in an interactive shell."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitrun", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_push_progress_and_quiet(team):
    a, _b, remote = team
    record(a, "a")
    rc, err = _stderr_on_a_terminal(["push"], a)
    assert rc == 0, err
    assert "Writing objects" in err and "Pushed 1 run to 'origin'" in err
    record(a, "to a pipe")
    p = run_cli("push", cwd=a)  # stderr is a pipe: git's progress stays out, as plain git
    assert p.returncode == 0, p.stderr
    assert "Writing objects" not in p.stderr and "Pushed 1 run to 'origin'" in p.stderr
    record(a, "a again")
    p = run_cli("push", "-q", cwd=a)
    assert p.returncode == 0 and p.stderr == "" and p.stdout == ""
    assert len(remote_runs(remote)) == 3


def test_remote_runs_lists_what_we_lack(team):
    a, b, _remote = team
    rb = record(b, "b")
    assert run_cli("push", "-q", cwd=b).returncode == 0
    p = run_cli("remote-runs", "--format", "json", cwd=a)
    assert p.returncode == 0, p.stderr
    assert [r["run_id"] for r in json.loads(p.stdout)] == [rb]
    assert tip(a) is None  # listing does not pull


# ---------------------------------------------------------------------------
# errors: exit 1, one sentence, no traceback
# ---------------------------------------------------------------------------
def test_unknown_remote(team):
    a, _b, _remote = team
    record(a, "a")
    for verb in ("push", "pull"):
        p = run_cli(verb, "nosuch", cwd=a)
        assert p.returncode == 1
        assert "no git remote named 'nosuch'" in p.stderr and "'origin'" in p.stderr
        assert_no_traceback(p)


def test_unreachable_remotes(team, tmp_path):
    a, _b, _remote = team
    old = record(a, "a") and tip(a)
    git(a, "remote", "add", "gone", str(tmp_path / "no" / "such.git"))
    git(a, "remote", "add", "down", f"git://127.0.0.1:{free_port()}/x.git")
    for name in ("gone", "down"):
        for verb in ("push", "pull"):
            p = run_cli(verb, name, cwd=a)
            assert p.returncode == 1, p.stderr
            assert f"Remote '{name}'" in p.stderr and "cannot be reached" in p.stderr
            assert_no_traceback(p)
    assert tip(a) == old


def test_authentication_failure_passes_gits_message(team, tmp_path):
    a, _b, _remote = team
    record(a, "a")
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text(
        "#!/bin/sh\necho 'git@example.invalid: Permission denied (publickey).' >&2\nexit 255\n"
    )
    fake_ssh.chmod(0o755)
    git(a, "remote", "add", "locked", "ssh://git@example.invalid/team.git")
    p = run_cli("push", "locked", cwd=a, env={"GIT_SSH_COMMAND": str(fake_ssh)})
    assert p.returncode == 1
    assert "Authentication to remote 'locked'" in p.stderr
    assert "Permission denied (publickey)" in p.stderr
    assert_no_traceback(p)


def test_remote_without_runs(team):
    a, _b, _remote = team
    p = run_cli("pull", cwd=a)
    assert p.returncode == 0
    assert "has no gitrun runs yet" in p.stderr
    p = run_cli("pull", "-q", cwd=a)  # said even when quiet: it is the answer
    assert p.returncode == 0 and "has no gitrun runs yet" in p.stderr
    assert tip(a) is None


def test_remote_ref_that_is_not_a_runs_history(team):
    a, _b, remote = team
    record(a, "a")
    old = tip(a)
    git(a, "push", "-q", "origin", "main:refs/gitrun/runs")
    for verb in ("pull", "push"):
        p = run_cli(verb, cwd=a)
        assert p.returncode == 1
        assert "not a gitrun runs history" in p.stderr
        assert_no_traceback(p)
    assert tip(a) == old
    assert git(remote, "rev-parse", "refs/gitrun/runs") == git(a, "rev-parse", "main")


def test_remote_in_a_newer_format(team):
    a, _b, _remote = team
    p = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=a,
        input="format: 2\n",
        capture_output=True,
        text=True,
        check=True,
    )
    tree = subprocess.run(
        ["git", "mktree"],
        cwd=a,
        input=f"100644 blob {p.stdout.strip()}\tgitrun.yaml\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    commit = git(a, "commit-tree", "-m", "future", tree.strip()).strip()
    git(a, "push", "-q", "origin", f"{commit}:refs/gitrun/runs")
    p = run_cli("pull", cwd=a)
    assert p.returncode == 1
    assert "format 2" in p.stderr and "upgrade gitrun" in p.stderr
    assert_no_traceback(p)
    assert tip(a) is None


# ---------------------------------------------------------------------------
# auto-push
# ---------------------------------------------------------------------------
def test_auto_push_after_record_and_soft_failure(team, tmp_path):
    a, _b, remote = team
    assert run_cli("config", "auto-push", cwd=a).stdout.strip() == "false"
    assert run_cli("config", "auto-push", "true", cwd=a).returncode == 0
    assert git(a, "config", "--local", "gitrun.autopush").strip() == "true"
    assert run_cli("config", "auto-push", cwd=a).stdout.strip() == "true"
    p = run_cli("config", "auto-push", "maybe", cwd=a)
    assert p.returncode == 1 and "true or false" in p.stderr
    r1 = record(a, "a")
    assert set(remote_runs(remote)) == {r1}
    # The remote goes away: the run is kept, record still succeeds and warns.
    git(a, "remote", "set-url", "origin", str(tmp_path / "moved.git"))
    (a / "train.py").write_text("# a2\n" + TRAIN)
    p = run_cli("record", "-q", "--", sys.executable, "train.py", cwd=a)
    assert p.returncode == 0
    assert "auto-push failed" in p.stderr and "kept locally" in p.stderr
    assert len(runs_of(a)) == 2 and set(remote_runs(remote)) == {r1}
    # The next push sends it.
    git(a, "remote", "set-url", "origin", str(remote))
    assert run_cli("push", "-q", cwd=a).returncode == 0
    assert set(remote_runs(remote)) == set(runs_of(a))


def test_checkout_of_a_teammates_run(team, tmp_path):
    a, b, _remote = team
    ra = record(a, "a's experiment")
    assert run_cli("push", "-q", cwd=a).returncode == 0
    assert run_cli("pull", "-q", cwd=b).returncode == 0
    wt = tmp_path / "wt"
    p = run_cli("checkout", ra, "--worktree", str(wt), cwd=b)
    assert p.returncode == 0, p.stderr
    assert (wt / "train.py").read_text().startswith("# a's experiment\n")
    assert (wt / "model.txt").read_text() == "weights for # a's experiment\n"


def test_pull_rebuilds_the_merge_when_a_local_run_lands_meanwhile(team, monkeypatch):
    """A run recorded here during the join: the CAS fails, the merge is rebuilt on top."""
    import uuid

    from gitrun.workflows import sync

    a, b, _remote = team
    ra = record(a, "a")
    assert run_cli("push", "-q", cwd=a).returncode == 0
    rb = record(b, "b")
    repo = Repo.discover(str(b))
    late = store.read_record(repo, rb, runs_of(b)[rb])
    late.run_id = uuid.uuid4().hex
    real_update = Repo.update_ref
    calls = []

    def concurrent_record_first(self, ref, new, old, message="gitrun"):
        if ref == store.RUNS_REF and not calls:
            calls.append(None)
            calls[0] = store.commit_run(self, late)  # as if another process recorded a run
        return real_update(self, ref, new, old, message)

    monkeypatch.setattr(Repo, "update_ref", concurrent_record_first)
    result = sync.pull(repo, quiet=True)
    assert result.merged and result.arrived == 1
    assert set(runs_of(b)) == {ra, rb, late.run_id}
    parents = git(b, "rev-list", "--parents", "-n", "1", "refs/gitrun/runs").split()[1:]
    assert parents == [calls[0], tip(a)]
