"""Live runs: an append-only journal per run under .git/gitrun/live/<run_id>/.

Every log call appends one line with a single write(2) before it returns, so a
kill -9 of the process loses nothing that was logged (the kernel has the bytes).
A power loss can still lose the last seconds of a journal unless
`gitrun.journalFsync` is true (git config), which fsyncs after every line.  The
process(es) of a live run hold a shared flock on the journal; the kernel drops it
however they die.  Any gitrun command that gets the exclusive lock therefore knows
the run is dead, and commits it (KILLED, or what its end marker says) - a run never
stays RUNNING for ever, and is never committed as RUNNING.

While a run is live, the objects it already wrote (environment, code snapshot,
artifacts) are reachable from refs/gitrun/live/<run_id>, so `git gc` never prunes
them; the ref goes when the run is committed.

Journal lines (this module owns their format: `encode` writes them, `replay` reads
them).  Fields are tab-separated, text fields JSON, and every line ends with
`\\t#<crc32 of the rest, 8 hex digits>` so a torn or garbled line is recognised and
dropped alone, never merged with the next one:
    H <json header>            run id, name, experiment, start time, code, command...
    p <key> <json value>       param
    t <key> <json value>       tag          T <key>   tag deleted
    m <key> <value> <ts> <step> metric point
    a <json artifact>          path, size, sha256, blob (content already in git)
    n <json name>              run name     x <json experiment>
    v <env blob id>            environment recorded by the training process
    e <json end>               status, exit code, end time (written before committing)
Journals written before the checksum existed (no `"journal": 2` in the header) are
read without it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Sequence
from typing import Any

from .._git import BLOB_MODE, Repo
from ..errors import GitrunError
from . import store
from .entities import Artifact, Input, Metric, RunRecord
from .layout import (
    JOURNAL,
    LIVE_OUTPUT,
    LIVE_REF_PREFIX,
    RUN_FILE,
    live_ref,
    live_root,
    quarantine_root,
    sweep_marker,
    tmp_dir,
)
from .textfmt import has_control

JOURNAL_VERSION = 2
_CRC = re.compile(rb"\t#([0-9a-f]{8})\Z")
SWEEP_EVERY = 24 * 3600  # seconds between sweeps of leftovers
LEFTOVER_AGE = 3600  # temporary files older than this belong to dead processes
LFS_TMP_AGE = 24 * 3600  # gitrun-* files in <lfs dir>/tmp: a large object being written


is_run_id = store.is_run_id  # the one id rule, also for ids read back from journals


# ---------------------------------------------------------------------------
# the line format
# ---------------------------------------------------------------------------
def _seal(body: bytes) -> bytes:
    return body + b"\t#%08x\n" % zlib.crc32(body)


def encode(code: str, *fields: str) -> bytes:
    """One journal line: code and fields, tab-separated, with its checksum."""
    return _seal("\t".join((code, *fields)).encode("utf-8", "surrogateescape"))


def metric_line(key: str, value: float, timestamp: int, step: int) -> bytes:
    # The hot path of log_metric: the same as encode("m", ...), without the tuple.
    return _seal(f"m\t{key}\t{value!r}\t{timestamp}\t{step}".encode())


def json_line(code: str, value: Any, key: str | None = None) -> bytes:
    text = json.dumps(value, ensure_ascii=False)
    return encode(code, key, text) if key is not None else encode(code, text)


def _check(raw: bytes, strict: bool) -> str | None:
    """The line's content without its checksum, or None when it is damaged."""
    m = _CRC.search(raw)
    if m is not None:
        body = raw[: m.start()]
        if zlib.crc32(body) != int(m.group(1), 16):
            return None
        return body.decode("utf-8", "surrogateescape")
    if strict:
        return None
    return raw.decode("utf-8", "surrogateescape")


class Journal:
    """An open journal; holding it open (LOCK_SH) is what keeps the run alive."""

    def __init__(self, path: str, fsync: bool = False) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        self.fsync = fsync
        self._torn = False

    def write(self, data: bytes) -> None:
        """Append whole lines with one write(2); a short write (a full disk) is an error."""
        if self._torn:
            # The last write stopped mid-line: end that fragment so it stays alone.
            data = b"\n" + data
        try:
            n = os.write(self.fd, data)
            if n != len(data):
                self._torn = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
            if self.fsync:
                os.fsync(self.fd)
        except OSError as e:
            raise GitrunError(
                f"Could not write to the run's journal {self.path}: {e.strerror or e}; "
                "everything logged before this call is kept (free some space and go on, "
                "or end the run)."
            ) from None
        self._torn = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_journal(repo: Repo, path: str) -> Journal:
    return Journal(path, fsync=_fsync_policy(repo))


def _fsync_policy(repo: Repo) -> bool:
    value = os.environ.get("GITRUN_JOURNAL_FSYNC") or repo.config("gitrun.journalfsync") or ""
    return value.lower() in ("1", "true", "yes", "on")


def create(repo: Repo, header: dict[str, Any]) -> tuple[str, Journal]:
    """A new live run, made visible only once its journal is locked and has its header.

    (Otherwise a concurrent recover() could take the lock of an empty journal between
    its creation and the flock, and retire a run that is just starting.)
    """
    root = live_root(repo)
    d = os.path.join(root, header["run_id"])
    tmp = os.path.join(root, f".new-{header['run_id']}")
    os.makedirs(tmp, exist_ok=True)
    j = open_journal(repo, os.path.join(tmp, JOURNAL))
    j.write(json_line("H", {**header, "journal": JOURNAL_VERSION}))
    os.rename(tmp, d)
    j.path = os.path.join(d, JOURNAL)
    return d, j


# ---------------------------------------------------------------------------
# keeping a live run's objects reachable
# ---------------------------------------------------------------------------
def protect(repo: Repo, run_id: str, blobs: Sequence[str], commits: Sequence[str] = ()) -> None:
    """Make objects the live run wrote reachable from refs/gitrun/live/<run_id>.

    Each call adds a commit (parents: the previous one, plus `commits`; tree: `blobs`)
    so the cost is proportional to what is new.  Without it `git gc --prune=now`, or a
    plain `git gc` during a training longer than gc.pruneExpire, deletes them and the
    run would commit pointing at missing objects.
    """
    if not blobs and not commits:
        return
    ref = live_ref(run_id)
    entries = [(BLOB_MODE, f"{i:06d}", sha) for i, sha in enumerate(dict.fromkeys(blobs))]
    tree = repo.write_tree(entries)
    for _ in range(50):
        old = repo.read_ref(ref)
        parents = ([old] if old else []) + [c for c in commits if c != old]
        commit = repo.write_commit(
            tree, parents, f"gitrun: objects of live run {run_id}\n", when_ms=0
        )
        if repo.cas_ref(ref, commit, old, f"gitrun: live run {run_id}"):
            return


def unprotect(repo: Repo, run_id: str) -> None:
    try:
        repo.delete_ref(live_ref(run_id))
    except (OSError, GitrunError):
        pass  # a stale keeper ref only keeps objects alive; the sweep removes it


# ---------------------------------------------------------------------------
# reading a journal back
# ---------------------------------------------------------------------------
class Replay:
    """What a journal holds: the record (None without a valid header) and damage seen."""

    def __init__(self) -> None:
        self.record: RunRecord | None = None
        self.damaged = 0  # lines that were garbled, torn or did not parse
        self.header_ok = False


def replay(path: str) -> RunRecord | None:
    """Rebuild a run from its journal; None when it has no valid header."""
    return read(path).record


def read(path: str, run_id: str | None = None) -> Replay:
    """Replay a journal.  With `run_id` (the live directory's name), a journal whose
    header is missing or damaged is still salvaged under that id."""
    out = Replay()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return out
    rec: RunRecord | None = None
    end: dict[str, Any] = {}
    last_ts = 0
    strict = True  # lines before a header (none, or a damaged one) must carry a checksum
    lines = data.split(b"\n")
    if lines and lines[-1]:
        out.damaged += 1  # a torn last line (no newline) is dropped
    for raw in lines[:-1]:
        if not raw:
            continue
        line = _check(raw, strict and not (rec is None and raw.startswith(b"H\t")))
        if line is None:
            out.damaged += 1
            continue
        code, _, rest = line.partition("\t")
        try:
            if code == "H":
                if rec is not None:
                    out.damaged += 1
                    continue
                h = json.loads(rest)
                strict = h.get("journal", 1) >= JOURNAL_VERSION
                rec = _from_header(h)
                if rec is None or (run_id is not None and rec.run_id != run_id):
                    rec = None
                    out.damaged += 1
                    continue
                out.header_ok = True
                last_ts = rec.start_time or 0
                continue
            if rec is None:
                if run_id is None or not is_run_id(run_id):
                    out.damaged += 1
                    continue
                # No usable header: salvage what follows under the directory's id.
                rec = RunRecord(run_id=run_id, run_name=f"recovered-{run_id[:8]}")
                rec.tags["mlflow.runName"] = rec.run_name
            if code == "m":
                key, value, ts, step = rest.split("\t")
                m = Metric(_key(key), float(value), int(ts), int(step))
                rec.history.setdefault(m.key, []).append(m)
                last_ts = max(last_ts, m.timestamp)
            elif code == "p":
                key, value = rest.split("\t", 1)
                rec.params[_key(key)] = _text(json.loads(value))
            elif code == "t":
                key, value = rest.split("\t", 1)
                rec.tags[_key(key)] = _text(json.loads(value))
                if key == "mlflow.runName":
                    rec.run_name = rec.tags[key]
            elif code == "T":
                rec.tags.pop(rest, None)
            elif code == "n":
                rec.run_name = _text(json.loads(rest))
                rec.tags["mlflow.runName"] = rec.run_name
            elif code == "x":
                rec.experiment = _text(json.loads(rest))
            elif code == "a":
                a = json.loads(rest)
                path_ = _text(a["path"])
                storage = _text(a.get("storage") or "git")
                blob = _hex(a["blob"]) if a.get("blob") or storage == "git" else None
                location = _text(a["location"]) if a.get("location") else None
                rec.artifacts[path_] = Artifact(
                    path_, int(a["size"]), _hex(a["sha256"]), storage, blob, location
                )
            elif code == "i":
                inp = Input.from_dict(json.loads(rest))
                rec.inputs[inp.path] = inp
            elif code == "v":
                rec.env_blob = _hex(rest.strip())
            elif code == "e":
                e = json.loads(rest)
                if not isinstance(e, dict) or e.get("status") not in store.STATUSES:
                    raise ValueError(rest)
                end = e
            else:
                out.damaged += 1
        except (ValueError, KeyError, TypeError, AttributeError):
            out.damaged += 1  # one damaged line must not cost the rest of the run
    if rec is None:
        return out
    rec.metrics = rec.latest_metrics()
    if end:
        rec.status = end.get("status") or rec.status
        rec.exit_code = end.get("exit_code") if isinstance(end.get("exit_code"), int) else None
        rec.end_time = end.get("end_time") if isinstance(end.get("end_time"), int) else None
    rec.updated_time = rec.end_time or last_ts
    if isinstance(end.get("updated_time"), int):  # an explicit (earlier) end_time was given
        rec.updated_time = max(rec.updated_time or 0, end["updated_time"])
    if not end:
        rec.end_time = None
    out.record = rec
    return out


_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")


def _hex(v: Any) -> str:
    if not isinstance(v, str) or not _HEX.match(v):
        raise ValueError(f"not an object id: {v!r}")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(v)
    return v


def _key(v: str) -> str:
    if not v or has_control(v) or v.startswith(("/", "..")):
        raise ValueError(v)
    return v


def _name(v: Any, default: str) -> str:
    if v is None or v == "":
        return default
    if not isinstance(v, str) or has_control(v):
        raise ValueError(v)
    return v


def _from_header(h: Any) -> RunRecord | None:
    """The record a header starts; None when anything in it is not what gitrun writes
    (ids and names read back are validated exactly as at creation)."""
    if not isinstance(h, dict) or not is_run_id(h.get("run_id")):
        return None
    try:
        start = h.get("start_time")
        if start is not None and not isinstance(start, int):
            raise TypeError(start)
        code = h.get("code") or {}
        if not isinstance(code, dict):
            raise TypeError(code)
        for k in ("commit", "head", "snapshot"):
            if code.get(k) is not None:
                _hex(code[k])
        command = h.get("command")
        if command is not None and not (
            isinstance(command, list) and all(isinstance(c, str) for c in command)
        ):
            raise TypeError(command)
        env_blob = h.get("env_blob")
        return RunRecord(
            run_id=h["run_id"],
            run_name=_name(h.get("run_name"), ""),
            experiment=_name(h.get("experiment"), "Default"),
            status="RUNNING",
            start_time=start,
            user=_name(h.get("user"), ""),
            host=_name(h.get("host"), ""),
            source_name=_name(h.get("source_name"), ""),
            command=command,
            cwd=_name(h.get("cwd"), "") or None,
            code=code,
            env_blob=_hex(env_blob) if env_blob else None,
        )
    except (ValueError, TypeError):
        return None


# ---------------------------------------------------------------------------
# committing and retiring
# ---------------------------------------------------------------------------
def finish(repo: Repo, live_dir: str, rec: RunRecord) -> str:
    """Commit a finished run and retire its live directory; returns the commit id."""
    if rec.status not in store.TERMINAL:
        rec.status = "KILLED"
    out = os.path.join(live_dir, LIVE_OUTPUT)
    if os.path.exists(out) and not rec.output_blob:
        rec.output_blob = repo.write_blob_file(out)[0]
    if rec.updated_time is None or (rec.end_time and rec.updated_time < rec.end_time):
        rec.updated_time = rec.end_time
    commit = store.commit_run(repo, rec)
    retire(live_dir)
    unprotect(repo, rec.run_id)
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


def quarantine(repo: Repo, live_dir: str) -> str | None:
    """Move a damaged live directory aside (never delete what could not be read)."""
    qroot = quarantine_root(repo)
    dest = os.path.join(qroot, f"{os.path.basename(live_dir)}-{int(time.time())}")
    try:
        os.makedirs(qroot, exist_ok=True)
        os.rename(live_dir, dest)
    except OSError:
        return None
    return dest


def _rmtree(path: str, ignore_errors: bool = True) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=ignore_errors)


def live_runs(repo: Repo) -> list[RunRecord]:
    """Runs in progress (their journals are locked by a living process)."""
    root = live_root(repo)
    out: list[RunRecord] = []
    try:
        names = os.listdir(root)
    except OSError:
        return out
    for name in names:
        if name.startswith(".") or not is_run_id(name):
            continue
        rec = read(os.path.join(root, name, JOURNAL)).record
        if rec is not None and rec.run_id == name:
            out.append(rec)
    return out


def recover(repo: Repo, quiet: bool = False) -> list[RunRecord]:
    """Commit every run whose processes are gone.  Cheap when nothing is live.

    Never raises for what it finds on disk: a run it cannot commit now (a read-only
    repository, a held ref lock) stays live, with one warning, for a later command.
    """
    _maybe_sweep(repo)
    root = live_root(repo)
    try:
        names = os.listdir(root)
    except OSError:
        return []
    recovered = []
    for name in names:
        d = os.path.join(root, name)
        try:
            rec = _recover_one(repo, d, name, quiet)
        except (OSError, GitrunError) as e:
            if not quiet:
                msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                print(
                    f"gitrun: could not yet commit the stopped run {name[:8]} ({msg}); "
                    "it is kept in .git/gitrun/live for a later gitrun command.",
                    file=sys.stderr,
                )
            continue
        if rec is not None:
            recovered.append(rec)
    return recovered


def _recover_one(repo: Repo, d: str, name: str, quiet: bool) -> RunRecord | None:
    if name.startswith(".done-"):
        _rmtree(d, ignore_errors=True)  # a retire() interrupted half-way
        return None
    if name.startswith("."):
        # .new-*: a run being created right now, or whose creator died doing so
        if time.time() - _mtime(d) > LEFTOVER_AGE:
            _rmtree(d, ignore_errors=True)
        return None
    path = os.path.join(d, JOURNAL)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if os.path.isdir(d) and time.time() - _mtime(d) > LEFTOVER_AGE:
            _say_quarantined(repo, d, name, None, quiet)
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # alive
        if not os.path.exists(path):
            return None  # committed by its owner meanwhile
        got = read(path, run_id=name if is_run_id(name) else None)
        rec = got.record
        if rec is None or not is_run_id(name) or rec.run_id != name:
            _say_quarantined(repo, d, name, None, quiet)
            return None
        if rec.status == "RUNNING":
            rec.status = "KILLED"
            rec.end_time = max(rec.updated_time or 0, int(os.path.getmtime(path) * 1000))
        elif rec.end_time is None:
            rec.end_time = rec.updated_time
        rec.tags.setdefault("gitrun.recovered", "true")
        damaged = got.damaged or not got.header_ok
        if damaged:
            rec.tags["gitrun.recovered"] = "damaged journal"
        if _already_committed(repo, rec):
            retire(d)
            unprotect(repo, rec.run_id)
            return None
        if damaged:
            # Keep the original for inspection; commit what could be salvaged.
            import shutil

            qroot = quarantine_root(repo)
            os.makedirs(qroot, exist_ok=True)
            kept = os.path.join(qroot, f"{name}-{int(time.time())}.journal")
            shutil.copyfile(path, kept)
        finish(repo, d, rec)
        if not quiet:
            extra = ""
            if damaged:
                points = sum(len(v) for v in rec.history.values())
                extra = (
                    f" Its journal was damaged ({got.damaged} unreadable line(s)); "
                    f"{points} metric point(s) were salvaged and the original is kept in "
                    f"{kept}."
                )
            print(
                f"gitrun: run {rec.run_id[:8]} ({rec.run_name or 'unnamed'}) had stopped "
                f"without finishing; recorded it as {rec.status} with everything it "
                f"logged.{extra}",
                file=sys.stderr,
            )
        return rec
    finally:
        os.close(fd)


def _say_quarantined(repo: Repo, d: str, name: str, rec: RunRecord | None, quiet: bool) -> None:
    dest = quarantine(repo, d)
    if dest and not quiet:
        print(
            f"gitrun: the live run directory {name} could not be read as a run (no "
            f"usable journal); moved it to {dest} instead of deleting it.",
            file=sys.stderr,
        )


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
    old = store.read_records(repo, {rec.run_id: tree}, [RUN_FILE]).get(rec.run_id)
    if old is None:
        return False
    return old.status in store.TERMINAL and (old.updated_time or 0) >= (rec.updated_time or 0)


# ---------------------------------------------------------------------------
# leftovers of processes that died
# ---------------------------------------------------------------------------
def _maybe_sweep(repo: Repo) -> None:
    marker = sweep_marker(repo)
    try:
        if time.time() - os.path.getmtime(marker) < SWEEP_EVERY:
            return
    except FileNotFoundError:
        if not os.path.isdir(repo.gitrun_dir):
            return  # nothing of gitrun's here yet
    except OSError:
        return
    try:
        with open(marker, "w"):
            pass
    except OSError:
        return  # a read-only repository: nothing to clean
    sweep(repo)


def sweep(repo: Repo, age: float = LEFTOVER_AGE, lfs_age: float = LFS_TMP_AGE) -> int:
    """Remove what processes that died left behind, as git does with its temporary
    files: index copies, temporary object and pack files, a .pack without its .idx,
    gitrun's own temporary files in Git LFS's tmp directory (older than `lfs_age`: a
    large artifact can take long to write; git-lfs's files there are never touched),
    and keeper refs of live runs that are gone.  Returns how many were removed."""
    now = time.time()
    removed = 0

    def old(path: str, limit: float = age) -> bool:
        try:
            return now - os.lstat(path).st_mtime > limit
        except OSError:
            return False

    def rm(path: str) -> None:
        nonlocal removed
        try:
            os.unlink(path)
            removed += 1
        except OSError:
            pass

    tmp = tmp_dir(repo)
    for n in _listdir(tmp):
        if old(os.path.join(tmp, n)):
            rm(os.path.join(tmp, n))
    objects = os.path.join(repo.common_dir, "objects")
    packdir = os.path.join(objects, "pack")
    names = set(_listdir(packdir))
    for n in names:
        p = os.path.join(packdir, n)
        orphan = n.endswith(".pack") and n[:-5] + ".idx" not in names
        if (n.startswith("tmp_") or orphan) and old(p):
            rm(p)
    for sub in _listdir(objects):
        if len(sub) == 2:
            d = os.path.join(objects, sub)
            for n in _listdir(d):
                if n.startswith("tmp_obj_") and old(os.path.join(d, n)):
                    rm(os.path.join(d, n))
    from . import lfs  # here: logging small artifacts never loads the large-file code

    lfs_tmp = os.path.join(lfs.lfs_dir(repo), "tmp")
    for n in _listdir(lfs_tmp):
        if n.startswith(lfs.TMP_PREFIX) and old(os.path.join(lfs_tmp, n), lfs_age):
            rm(os.path.join(lfs_tmp, n))
    live = set(_listdir(live_root(repo)))
    refs = repo.gitout("for-each-ref", "--format=%(refname)", LIVE_REF_PREFIX, check=False)
    for ref in refs.split():
        rid = ref[len(LIVE_REF_PREFIX) :]
        if rid not in live and f".new-{rid}" not in live:
            unprotect(repo, rid)
            removed += 1
    return removed


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
