"""The write path under stress: vanishing object directories, `git gc` during live runs,
short writes (a full disk), stale ref locks, leftovers, exit handlers, kill -9 mid-commit."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time

import pytest

from gitrun._git import Repo
from gitrun.format import journal, store
from tests.conftest import git, run_cli


def fsck_errors(repo_dir) -> list[str]:
    p = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"], cwd=repo_dir, capture_output=True, text=True
    )
    bad = [ln for ln in (p.stdout + p.stderr).splitlines() if ln and "dangling" not in ln]
    assert p.returncode == 0 or bad, p.stderr
    return bad


def run_ids(repo_dir) -> list[str]:
    r = Repo.discover(str(repo_dir))
    return sorted(store.list_run_trees(r))


def python(repo_dir, code: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def test_long_sweep_in_one_process_with_a_dirty_tree(repo):
    """80 runs in one process: git's prune-packed removes empty objects/xx/ directories
    (gitrun's own repack after 50 packs) and every run still commits."""
    (repo / "untracked.txt").write_text("dirty\n")  # every run writes a snapshot commit
    p = python(
        repo,
        """
        import gitrun
        for i in range(80):
            with gitrun.start_run():
                gitrun.log_params({"i": i, "lr": 0.1})
                gitrun.log_metrics({"m": i, "n": 2 * i})
                gitrun.log_text("a", "a.txt")
        print("ok")
        """,
    )
    assert p.returncode == 0, p.stderr
    assert len(run_ids(repo)) == 80
    assert fsck_errors(repo) == []


def test_runs_survive_git_gc_running_concurrently(repo):
    """A plain `git gc` (what users and gc --auto run) during a sweep.  (`--prune=now`
    during concurrent writes is unsafe for git itself, see git-gc(1); the live-run case
    below covers it for a run in progress.)"""
    (repo / "untracked.txt").write_text("dirty\n")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import gitrun
                for i in range(40):
                    with gitrun.start_run():
                        gitrun.log_metric("m", i)
                        gitrun.log_text("x" * i, "a.txt")
                """
            ),
        ],
        cwd=repo,
        stderr=subprocess.PIPE,
        text=True,
    )
    gcs = 0
    while worker.poll() is None:
        git(repo, "gc", "-q", check=False)
        gcs += 1
    assert worker.returncode == 0, worker.stderr.read()
    assert gcs >= 1
    assert len(run_ids(repo)) == 40
    assert fsck_errors(repo) == []


def test_git_gc_prune_now_during_a_live_run_loses_nothing(repo):
    """A live run's artifacts, environment and code snapshot are unreachable until it
    commits; its keeper ref keeps them through `git gc --prune=now`."""
    import gitrun

    (repo / "notes.txt").write_text("uncommitted work\n")
    with gitrun.start_run(run_name="long") as run:
        gitrun.log_text("checkpoint bytes", "ckpt.txt")
        gitrun.log_metric("loss", 0.5)
        live = Repo.discover(str(repo)).read_ref(journal.live_ref(run.info.run_id))
        assert live is not None
        git(repo, "gc", "-q", "--prune=now")
    assert fsck_errors(repo) == []
    rec = gitrun.get_run(run.info.run_id)
    assert rec.info.status == "FINISHED"
    assert "gitrun.problems" not in rec.data.tags
    # The keeper ref is gone once the run is committed; its content is in the run.
    r = Repo.discover(str(repo))
    assert r.read_ref(journal.live_ref(run.info.run_id)) is None
    out = repo.parent / "restored"
    p = run_cli("checkout", run.info.run_id, "--worktree", str(out), cwd=repo)
    assert p.returncode == 0, p.stderr
    assert (out / "notes.txt").read_text() == "uncommitted work\n"
    assert (out / "ckpt.txt").read_text() == "checkpoint bytes"


def test_a_run_whose_objects_vanished_is_committed_without_them(repo):
    """Verified at commit time: never a run commit pointing at a missing object."""
    import gitrun

    with gitrun.start_run(run_name="lossy") as run:
        gitrun.log_text("will vanish", "gone.txt")
        gitrun.log_metric("acc", 0.9)
        r = Repo.discover(str(repo))
        blob = r.git("hash-object", "--stdin", input=b"will vanish").stdout.decode().strip()
        os.unlink(os.path.join(r.common_dir, "objects", blob[:2], blob[2:]))
    rec = gitrun.get_run(run.info.run_id)
    assert rec.data.metrics == {"acc": 0.9}
    assert "gone.txt" in rec.data.tags["gitrun.problems"]
    assert fsck_errors(repo) == []


SHORT_WRITE = """
import resource, signal, os, gitrun
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of death, like a full disk
run = gitrun.start_run(run_name="full-disk")
path = os.environ["GITRUN_TEST_JOURNAL"] = gitrun.tracking.live_run().journal.path
for i in range(10):
    gitrun.log_metric("before", i, step=i)
size = os.path.getsize(path)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 20, hard))  # the next line is torn
errors = []
for i in range(3):
    try:
        gitrun.log_metric("lost", i, step=i)
    except gitrun.MlflowException as e:
        errors.append(str(e))
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))         # space freed again
for i in range(5):
    gitrun.log_metric("after", i, step=i)
gitrun.end_run()
print(run.info.run_id)
print(errors[0])
"""


def test_a_short_write_is_detected_and_loses_no_other_point(repo):
    p = python(repo, SHORT_WRITE)
    assert p.returncode == 0, p.stderr
    run_id, error = p.stdout.splitlines()[:2]
    assert "journal" in error and "kept" in error
    import gitrun

    rec = gitrun.get_run(run_id)
    assert rec.info.status == "FINISHED"  # never RUNNING, whatever the disk did
    hist = gitrun.MlflowClient().get_metric_history
    assert [m.value for m in hist(run_id, "before")] == list(range(10))
    assert [m.value for m in hist(run_id, "after")] == list(range(5))
    assert "lost" not in rec.data.metrics or rec.data.metrics["lost"] in (0, 1, 2)


def test_a_torn_end_line_is_never_committed_as_running(repo):
    import gitrun

    r = Repo.discover(str(repo))
    from gitrun import tracking

    live = tracking.new_run(r, run_name="torn-end", experiment="e", quiet=True)
    live.log_metric("m", 1.0, 0, None)
    end = journal.json_line("e", {"status": "FINISHED", "exit_code": 0, "end_time": 1})
    live.journal.write(end[:-12])  # the disk filled up in the middle of the end line
    live.journal.close()
    [rec] = journal.recover(r, quiet=True)
    assert rec.status == "KILLED"
    assert gitrun.get_run(live.run_id).info.status == "KILLED"


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)   # as a living gitrun writer holds its ref lock
print("held", flush=True)
sys.stdin.read()
"""


def _hold(lock) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "held"
    return p


def _old_lock(repo):
    lock = repo / ".git" / "refs" / "gitrun" / "runs.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("left by a dead process\n")
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    return lock


def test_a_ref_lock_left_by_a_dead_process_is_broken(repo):
    """No living process holds it (no flock) and it is older than any git command's:
    the next writer removes it and records; nothing is lost."""
    lock = _old_lock(repo)
    p = run_cli("record", "-n", "after-crash", "--", "sh", "-c", "exit 3", cwd=repo, timeout=60)
    assert p.returncode == 3, p.stderr
    assert not lock.exists()
    p = run_cli("ls", "--format", "json", cwd=repo)
    assert [r["status"] for r in json.loads(p.stdout)] == ["FAILED"]


def test_a_held_ref_lock_is_named_and_never_broken(repo):
    import gitrun

    with gitrun.start_run(run_name="before-lock"):
        gitrun.log_metric("m", 1)
    lock = _old_lock(repo)
    holder = _hold(lock)
    try:
        # Reading commands need no lock.
        p = run_cli("ls", cwd=repo, timeout=60)
        assert p.returncode == 0 and "before-lock" in p.stdout, p.stderr
        # A recorded command keeps its exit code; the run waits in .git/gitrun/live.
        t0 = time.monotonic()
        p = run_cli("record", "-n", "during-lock", "--", "sh", "-c", "exit 3", cwd=repo)
        assert time.monotonic() - t0 < 30
        assert p.returncode == 3, p.stderr
        assert "runs.lock" in p.stderr and "Traceback" not in p.stderr
        assert lock.read_text() == "left by a dead process\n"  # never broken
    finally:
        holder.kill()
        holder.wait()
    p = run_cli("ls", "--format", "json", cwd=repo, timeout=60)
    rows = {r["run_name"]: r for r in json.loads(p.stdout)}
    assert rows["during-lock"]["status"] == "FAILED"
    assert fsck_errors(repo) == []


RACER = """
import gitrun
try:
    with gitrun.start_run(run_name="racer"):
        gitrun.log_metric("m", 1)
except gitrun.MlflowException as e:
    print("refused:", e)
"""


def _racers(repo, n: int) -> list[tuple[str, str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    return [p.communicate(timeout=60) for p in procs]


def test_racing_writers_never_break_a_held_lock(repo):
    import gitrun

    with gitrun.start_run(run_name="first"):
        pass
    r = Repo.discover(str(repo))
    tip = r.read_ref(store.RUNS_REF)
    lock = _old_lock(repo)
    holder = _hold(lock)
    try:
        outs = _racers(repo, 4)
        assert all("runs.lock" in o + e for o, e in outs), outs
        assert r.read_ref(store.RUNS_REF) == tip
        assert lock.read_text() == "left by a dead process\n"
    finally:
        holder.kill()
        holder.wait()
    p = run_cli("ls", "--format", "json", cwd=repo)
    names = [r["run_name"] for r in json.loads(p.stdout)]
    assert names.count("racer") == 4  # kept live, committed by the next command


def test_racing_breakers_of_a_stale_lock_lose_no_run(repo):
    """Eight writers find the same stale lock at once: exactly one breaks it, the others
    see the new (held) lock; every run is committed exactly once."""
    _old_lock(repo)
    outs = _racers(repo, 8)
    assert not any("refused" in o for o, _ in outs), outs
    p = run_cli("ls", "--format", "json", cwd=repo)
    assert [r["run_name"] for r in json.loads(p.stdout)].count("racer") == 8
    assert all(n == 1 for n in _commit_counts(repo).values())
    assert len(_commit_counts(repo)) == 8
    assert fsck_errors(repo) == []


def test_leftovers_of_dead_processes_are_swept_by_age(repo):
    import gitrun

    with gitrun.start_run():
        pass
    r = Repo.discover(str(repo))
    gd = repo / ".git"
    old_files = [
        gd / "gitrun" / "tmp" / "index-deadbeef",
        gd / "objects" / "pack" / "tmp_pack_123_456",
        gd / "objects" / "pack" / "pack-0123456789012345678901234567890123456789.pack",
        gd / "objects" / "ab" / "tmp_obj_123_456",
    ]
    fresh = gd / "objects" / "pack" / "tmp_idx_999_999"
    for f in [*old_files, fresh]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x" * 100)
    for f in old_files:
        os.utime(f, (0, 0))
    git(repo, "update-ref", journal.live_ref("f" * 32), "HEAD")
    marker = gd / "gitrun" / "last-sweep"
    if marker.exists():
        os.utime(marker, (0, 0))
    p = run_cli("ls", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert [f for f in old_files if f.exists()] == []
    assert fresh.exists()
    assert r.read_ref(journal.live_ref("f" * 32)) is None


def test_a_run_left_open_at_exit_commits_after_the_ref_moved(repo):
    """The cat-file helper closes at exit before the run ends; it is started again."""
    code = """
    import subprocess, sys, gitrun
    gitrun.start_run(run_name="left-open")
    gitrun.log_metric("m", 1.0)
    gitrun.search_runs(search_all_experiments=True)   # starts the cat-file helper
    subprocess.run([sys.executable, "-m", "gitrun", "record", "-q", "--", "true"], check=True)
    subprocess.run(["git", "repack", "-adq"], check=True)  # the new tip is packed now
    """
    p = python(repo, code)
    assert p.returncode == 0, p.stderr
    assert "closed file" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = run_cli("ls", "--format", "json", cwd=repo)
    rows = {r["run_name"]: r for r in json.loads(p.stdout)}
    assert rows["left-open"]["status"] == "FINISHED"


def _commit_counts(repo_dir) -> dict[str, int]:
    log = git(repo_dir, "log", "--first-parent", "--format=%B%x00", store.RUNS_REF)
    counts: dict[str, int] = {}
    for line in log.splitlines():
        if line.startswith("Gitrun-Run: "):
            rid = line.split(": ", 1)[1].strip()
            counts[rid] = counts.get(rid, 0) + 1
    return counts


FAULT_WORKER = """
import sys, gitrun
out = open(sys.argv[1], "a")
for i in range(10_000):
    run = gitrun.start_run(run_name=f"w{i}")
    out.write(run.info.run_id + "\\n"); out.flush()
    gitrun.log_params({"i": i, "k": "v"})
    for s in range(3):
        gitrun.log_metric("loss", 1.0 / (s + 1), step=s)
    gitrun.log_text("artifact %d" % i, "a.txt")
    gitrun.end_run()
"""


def test_kill_9_at_random_points_of_the_write_path(repo):
    """Fault injection: kill -9 the recorder at random moments, many times; afterwards
    git fsck is clean, the ref resolves, no started run is lost or committed twice, and
    the next command is never stuck."""
    (repo / "untracked.txt").write_text("dirty\n")
    (repo / "worker.py").write_text(FAULT_WORKER)
    started = repo.parent / "started.txt"
    rng = random.Random(1234)
    deadline = time.monotonic() + 25
    kills = 0
    while time.monotonic() < deadline and kills < 15:
        w = subprocess.Popen(
            [sys.executable, "worker.py", str(started)],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.0))
        w.kill()
        w.wait()
        kills += 1
        p = run_cli("ls", "-q", cwd=repo, timeout=60)  # recovers; must never hang
        assert p.returncode == 0, p.stderr
    ids = set(started.read_text().split())
    have = set(run_ids(repo))
    assert ids and ids <= have  # every run that was started is there
    assert all(n == 1 for n in _commit_counts(repo).values())
    assert fsck_errors(repo) == []
    assert not os.listdir(repo / ".git" / "gitrun" / "live") or all(
        n.startswith(".") for n in os.listdir(repo / ".git" / "gitrun" / "live")
    )
    assert Repo.discover(str(repo)).read_ref(store.RUNS_REF)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01garbage\xff\n" * 3, b'H\t{"run_id": "../../x"}\n'],
    ids=["emptied", "random-bytes", "crafted-id"],
)
def test_a_damaged_journal_is_quarantined_never_deleted(repo, content):
    r = Repo.discover(str(repo))
    from gitrun import tracking

    live = tracking.new_run(r, run_name="damaged", experiment="e", quiet=True)
    live.log_metric("m", 1.0, 0, None)
    live.journal.close()
    with open(live.journal.path, "wb") as f:
        f.write(content)
    p = run_cli("ls", cwd=repo)
    assert p.returncode == 0, p.stderr
    q = repo / ".git" / "gitrun" / "quarantine"
    kept = [os.path.join(d, f) for d, _, fs in os.walk(q) for f in fs]
    assert kept, p.stderr
    assert "quarantine" in p.stderr
    assert fsck_errors(repo) == []
    names = git(repo, "ls-tree", "-r", "--name-only", store.RUNS_REF, check=False)
    assert "/../" not in names and "/x/" not in names


def test_a_damaged_header_still_salvages_every_line_that_parses(repo):
    r = Repo.discover(str(repo))
    from gitrun import tracking

    live = tracking.new_run(r, run_name="salvage", experiment="e", quiet=True)
    for i in range(5):
        live.log_metric("loss", 1.0 / (i + 1), i, None)
    live.journal.close()
    data = open(live.journal.path, "rb").read()
    with open(live.journal.path, "wb") as f:
        f.write(b"\x00garbage header\n" + data.split(b"\n", 1)[1])
    p = run_cli("ls", cwd=repo)
    assert p.returncode == 0, p.stderr
    import gitrun

    rec = gitrun.get_run(live.run_id)
    assert rec.info.status == "KILLED"
    hist = gitrun.MlflowClient().get_metric_history(live.run_id, "loss")
    assert len(hist) == 5
    assert rec.data.tags["gitrun.recovered"] == "damaged journal"
    assert os.listdir(repo / ".git" / "gitrun" / "quarantine")
