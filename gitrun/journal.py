"""Live runs: an append-only journal per run under .git/gitrun/live/<run_id>/.

Every log call appends one line with a single write(2) before it returns, so a
kill -9 loses nothing that was logged.  The process(es) of a live run hold a
shared flock on the journal; the kernel drops it however they die.  Any gitrun
command that gets the exclusive lock therefore knows the run is dead, and
commits it (FAILED/KILLED, or what its end marker says) - a run never stays
RUNNING for ever.

Journal lines (tab-separated, text fields JSON):
    H <json header>            run id, name, experiment, start time, code, command...
    p <key> <json value>       param
    t <key> <json value>       tag          T <key>   tag deleted
    m <key> <value> <ts> <step> metric point
    a <json artifact>          path, size, sha256, blob (content already in git)
    n <json name>              run name     x <json experiment>
    v <env blob id>            environment recorded by the training process
    e <json end>               status, exit code, end time (written before committing)
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from typing import Any

from . import store
from .entities import Artifact, Metric, RunRecord
from .git import Repo

LIVE_DIR = "live"
JOURNAL = "journal"
OUTPUT = "output.log"


def live_root(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, LIVE_DIR)


class Journal:
    """An open journal; holding it open (LOCK_SH) is what keeps the run alive."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def write(self, line: str) -> None:
        os.write(self.fd, line.encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def create(repo: Repo, header: dict[str, Any]) -> tuple[str, Journal]:
    """A new live run, made visible only once its journal is locked and has its header.

    (Otherwise a concurrent recover() could take the lock of an empty journal between
    its creation and the flock, and retire a run that is just starting.)
    """
    root = live_root(repo)
    d = os.path.join(root, header["run_id"])
    tmp = os.path.join(root, f".new-{header['run_id']}")
    os.makedirs(tmp, exist_ok=True)
    j = Journal(os.path.join(tmp, JOURNAL))
    j.write("H\t" + json.dumps(header, ensure_ascii=False) + "\n")
    os.rename(tmp, d)
    j.path = os.path.join(d, JOURNAL)
    return d, j


def replay(path: str) -> RunRecord | None:
    """Rebuild a run from its journal; None when it has no header."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    rec: RunRecord | None = None
    end: dict[str, Any] = {}
    last_ts = 0
    for raw in data.split(b"\n")[:-1]:  # a torn last line (no newline) is dropped
        line = raw.decode("utf-8", "surrogateescape")
        code, _, rest = line.partition("\t")
        try:
            if code == "H":
                h = json.loads(rest)
                rec = RunRecord(
                    run_id=h["run_id"],
                    run_name=h.get("run_name") or "",
                    experiment=h.get("experiment") or "Default",
                    status="RUNNING",
                    start_time=h.get("start_time"),
                    user=h.get("user") or "",
                    host=h.get("host") or "",
                    source_name=h.get("source_name") or "",
                    command=h.get("command"),
                    cwd=h.get("cwd"),
                    code=h.get("code") or {},
                    env_blob=h.get("env_blob"),
                )
                last_ts = rec.start_time or 0
                continue
            if rec is None:
                continue
            if code == "m":
                key, value, ts, step = rest.split("\t")
                m = Metric(key, float(value), int(ts), int(step))
                rec.history.setdefault(key, []).append(m)
                last_ts = max(last_ts, m.timestamp)
            elif code == "p":
                key, value = rest.split("\t", 1)
                rec.params[key] = json.loads(value)
            elif code == "t":
                key, value = rest.split("\t", 1)
                rec.tags[key] = json.loads(value)
                if key == "mlflow.runName":
                    rec.run_name = rec.tags[key]
            elif code == "T":
                rec.tags.pop(rest, None)
            elif code == "n":
                rec.run_name = json.loads(rest)
                rec.tags["mlflow.runName"] = rec.run_name
            elif code == "x":
                rec.experiment = json.loads(rest)
            elif code == "a":
                a = json.loads(rest)
                rec.artifacts[a["path"]] = Artifact(
                    a["path"], int(a["size"]), a["sha256"], "git", a["blob"]
                )
            elif code == "v":
                rec.env_blob = rest.strip()
            elif code == "e":
                end = json.loads(rest)
        except (ValueError, KeyError, TypeError):
            continue  # one damaged line must not cost the rest of the run
    if rec is None:
        return None
    rec.metrics = rec.latest_metrics()
    if end:
        rec.status = end.get("status") or rec.status
        rec.exit_code = end.get("exit_code")
        rec.end_time = end.get("end_time")
    rec.updated_time = rec.end_time or last_ts
    if not end:
        rec.end_time = None
    return rec


def finish(repo: Repo, live_dir: str, rec: RunRecord) -> str:
    """Commit a finished run and retire its live directory; returns the commit id."""
    out = os.path.join(live_dir, OUTPUT)
    if os.path.exists(out) and not rec.output_blob:
        rec.output_blob = repo.write_blob_file(out)[0]
    if rec.updated_time is None or (rec.end_time and rec.updated_time < rec.end_time):
        rec.updated_time = rec.end_time
    commit = store.commit_run(repo, rec)
    retire(live_dir)
    return commit


def retire(live_dir: str) -> None:
    # Rename first: a recoverer that gets the lock later finds no directory.
    parent, name = os.path.split(live_dir)
    trash = os.path.join(parent, f".done-{name}-{os.getpid()}")
    try:
        os.rename(live_dir, trash)
    except OSError:
        return
    _rmtree(trash, ignore_errors=True)


def _rmtree(path: str, ignore_errors: bool = True) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=ignore_errors)


def live_runs(repo: Repo) -> list[RunRecord]:
    """Runs in progress (their journals are locked by a living process)."""
    root = live_root(repo)
    out: list[RunRecord] = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return out
    for name in names:
        if name.startswith("."):
            continue
        rec = replay(os.path.join(root, name, JOURNAL))
        if rec is not None:
            out.append(rec)
    return out


def recover(repo: Repo, quiet: bool = False) -> list[RunRecord]:
    """Commit every run whose processes are gone.  Cheap when nothing is live."""
    root = live_root(repo)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    recovered = []
    for name in names:
        d = os.path.join(root, name)
        if name.startswith(".done-"):
            _rmtree(d, ignore_errors=True)  # a retire() interrupted half-way
            continue
        if name.startswith("."):
            # .new-*: a run being created right now, or whose creator died doing so
            if time.time() - _mtime(d) > 3600:
                _rmtree(d, ignore_errors=True)
            continue
        path = os.path.join(d, JOURNAL)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            if not os.path.exists(path):
                continue  # committed by its owner meanwhile
            rec = replay(path)
            if rec is None:
                retire(d)
                continue
            if rec.status == "RUNNING":
                rec.status = "KILLED"
                rec.end_time = max(rec.updated_time or 0, int(os.path.getmtime(path) * 1000))
            elif rec.end_time is None:
                rec.end_time = rec.updated_time
            rec.tags.setdefault("gitrun.recovered", "true")
            if _already_committed(repo, rec):
                retire(d)
                continue
            finish(repo, d, rec)
            recovered.append(rec)
            if not quiet:
                print(
                    f"gitrun: run {rec.run_id[:8]} ({rec.run_name or 'unnamed'}) had stopped "
                    f"without finishing; recorded it as {rec.status} with everything it logged.",
                    file=sys.stderr,
                )
        finally:
            os.close(fd)
    return recovered


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return time.time()


def _already_committed(repo: Repo, rec: RunRecord) -> bool:
    # The owner may have died between committing and retiring the journal.
    trees = store.list_run_trees(repo)
    tree = trees.get(rec.run_id)
    if not tree:
        return False
    old = store.read_records(repo, {rec.run_id: tree}, [store.RUN_FILE]).get(rec.run_id)
    if old is None:
        return False
    return old.status in store.TERMINAL and (old.updated_time or 0) >= (rec.updated_time or 0)
