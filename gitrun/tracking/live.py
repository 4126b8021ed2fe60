"""Live runs: a run this process writes to, journaled under .git/gitrun/live/<id>/ as it
is logged and committed to refs/gitrun/runs when it ends (`LiveRun`); creating one
(`new_run`), joining the run a `gitrun record` wrapper owns (`attach`), continuing a
finished one (`resume`); and the one generator of run ids (`new_run_id`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from .._git import Repo
from ..errors import GitrunError, InvalidInputError, ParamChangedError, RunNotFoundError
from ..format import journal, layout
from ..format.entities import RunRecord
from ..format.textfmt import has_control
from .validation import (
    check_experiment_name,
    check_run_name,
    known_keys,
    metric_step,
    metric_timestamp,
    metric_value,
    param_value,
    safe_artifact_path,
    tag_value,
    validate_key,
)

# What `gitrun record` puts in its child's environment so the script attaches to its run.
ENV_RUN_ID = "GITRUN_RUN_ID"
ENV_JOURNAL = "GITRUN_JOURNAL"
ENV_GIT_DIR = "GITRUN_GIT_DIR"
ENV_EXPERIMENT = "GITRUN_EXPERIMENT_NAME"


class LiveRun:
    """A run this process writes to: as its owner, or attached to a wrapper's run."""

    def __init__(
        self,
        repo: Repo,
        run_id: str,
        live_dir: str,
        jrnl: journal.Journal,
        owner: bool,
        record: RunRecord,
    ) -> None:
        self.repo = repo
        self.run_id = run_id
        self.live_dir = live_dir
        self.journal = jrnl
        self.owner = owner
        self.record = record  # as of start: params/tags seen so far
        self.params = dict(record.params)
        self._lock = threading.Lock()
        self.ended = False
        self._paths: Any = None  # paths.ArtifactPaths, made on the first artifact

    # -- logging ----------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        validate_key(key, "param name")
        text = param_value(key, value)
        old = self.params.get(key)
        if old is not None:
            if old != text:
                raise ParamChangedError(
                    f"Changing param values is not allowed: param '{key}' was already logged "
                    f"with value '{old}' for run {self.run_id}, and the new value is "
                    f"'{text}'. Log it under another name or start a new run."
                )
            return
        self.journal.write(journal.json_line("p", text, key))
        self.params[key] = text

    def log_metric(self, key: str, value: Any, step: int | None, timestamp: int | None) -> None:
        if key not in known_keys:
            validate_key(key, "metric name")
        v = metric_value(key, value)
        # Plain ints (the common case) skip the validating helpers on this hot path.
        st = step if type(step) is int else metric_step(key, step)
        if timestamp is None:
            ts = int(time.time() * 1000)
        else:
            ts = timestamp if type(timestamp) is int else metric_timestamp(key, timestamp) or 0
        if ts < 0:
            raise InvalidInputError(
                f"Metric '{key}' has a negative timestamp {ts}; use ms since 1970."
            )
        # One write(2) per point: on disk (OS) before the call returns.
        self.journal.write(journal.metric_line(key, v, ts, st))

    def set_tag(self, key: str, value: Any) -> None:
        validate_key(key, "tag name")
        text = tag_value(key, value)
        self.journal.write(journal.json_line("t", text, key))

    def delete_tag(self, key: str) -> None:
        validate_key(key, "tag name")
        self.journal.write(journal.encode("T", key))

    def set_name(self, name: str) -> None:
        self.journal.write(journal.json_line("n", str(name)))

    def log_artifact_file(self, local_path: str, dest: str, shown: str | None = None) -> None:
        """Store one regular file (a symlink named directly is resolved first)."""
        from ..capture import artwalk

        dest = safe_artifact_path(dest)
        art = artwalk.store_artifact(
            self.repo, os.path.realpath(local_path), local_path if shown is None else shown
        )
        self._artifact(dest, art.blob, art.sha256, art.size, art.storage, art.location)

    def log_artifact_bytes(self, data: bytes, dest: str) -> None:
        import hashlib

        dest = safe_artifact_path(dest)
        blob = self.repo.write_blob(data)
        self._artifact(dest, blob, hashlib.sha256(data).hexdigest(), len(data))

    def _artifact(
        self,
        dest: str,
        blob: str | None,
        sha256: str,
        size: int,
        storage: str = "git",
        location: str | None = None,
    ) -> None:
        if self._paths is None:
            from ..format.paths import ArtifactPaths

            self._paths = ArtifactPaths()
            for p in self.record.artifacts:
                self._paths.add(p)
        self._paths.add(dest)  # a path cannot be a file and a directory at once
        # The blob (content, or a large artifact's LFS pointer) must survive a `git gc`
        # until the run is committed.
        if blob:
            journal.protect(self.repo, self.run_id, [blob])
        a: dict[str, Any] = {"path": dest, "blob": blob, "sha256": sha256, "size": size}
        if storage != "git":  # lines of ordinary artifacts read as they always did
            a["storage"] = storage
            if location:
                a["location"] = location
        self.journal.write(journal.json_line("a", a))

    def log_input(self, inp: Any, copies: Any = ()) -> None:
        """Journal one input (format.entities.Input), hashed by capture/inputs.py, and its
        stored copy when it has one: (artifact path, format.entities.Artifact) pairs under
        the reserved store.STORED_INPUTS directory (capture.inputs.store_path)."""
        from ..format.paths import check_artifact_path
        from ..format.store import is_stored_input

        if any(c in v for v in (inp.path, inp.kind, inp.digest, inp.context) for c in "\t\n\r"):
            raise InvalidInputError(
                f"Input {inp.path!r} has a control character in its name, digest or context."
            )
        for dest, art in copies:
            dest = check_artifact_path(dest)
            assert is_stored_input(dest), dest
            self._artifact(dest, art.blob, art.sha256, art.size, art.storage, art.location)
        self.journal.write(journal.json_line("i", inp.to_dict()))

    # -- ending -----------------------------------------------------------
    def end(
        self, status: str = "FINISHED", exit_code: int | None = None, end_time: int | None = None
    ) -> RunRecord | None:
        """Commit the run; `end_time` (ms, MLflow's set_terminated) is recorded as given,
        else now.  `updated_time` stays the real time of this change (it decides which
        version of a run wins when histories are joined)."""
        if self.ended:
            return None
        self.ended = True
        if not self.owner:
            self.journal.close()
            return None
        now = int(time.time() * 1000)
        explicit = bool(end_time)
        end_time = end_time or now
        end: dict[str, Any] = {"status": status, "end_time": end_time, "exit_code": exit_code}
        if explicit:
            end["updated_time"] = now  # read back by journal.read (recovery)
        try:
            self.journal.write(journal.json_line("e", end))
        except GitrunError:
            pass  # a full disk: the status is set below all the same
        rec = journal.replay(self.journal.path)
        if rec is None:
            raise GitrunError(
                f"The journal of run {self.run_id} ({self.journal.path}) can no longer be "
                "read; the next gitrun command recovers what it holds."
            )
        # Never what a torn end line left (RUNNING): the status this call was given.
        rec.status = status
        rec.exit_code = exit_code
        rec.end_time = rec.end_time or end_time
        rec.updated_time = max(rec.updated_time or 0, now)
        journal.finish(self.repo, self.live_dir, rec)
        self.journal.close()
        if rec.env_blob:
            _committed_envs.add((self.repo.common_dir, rec.env_blob))
        return rec


# ---------------------------------------------------------------------------
# creating runs
# ---------------------------------------------------------------------------
def new_run(
    repo: Repo,
    *,
    run_name: str | None,
    experiment: str,
    tags: dict[str, Any] | None = None,
    command: list[str] | None = None,
    cwd: str | None = None,
    source_name: str | None = None,
    quiet: bool = False,
    max_untracked: int | None = None,
    start_time: int | None = None,
    user: str | None = None,
) -> LiveRun:
    """Create and journal a new run owned by this process (code and env captured now).

    `start_time` (ms) is recorded as given (MLflow's create_run), else now.  `user` is the
    run's user_id as given (MLflow's create_run: the `mlflow.user` tag, else "unknown"),
    and then no `mlflow.user` tag is added; None: this login, tagged `mlflow.user` (as
    MLflow's start_run)."""
    from ..capture import codestate, envinfo
    from ..capture import settings as config
    from ..format import store

    store.check_runs_ref(repo, for_writing=True)
    if run_name is not None:  # checked before anything is written
        check_run_name(run_name)
    if user is not None and has_control(user):  # the journal header would be unreadable
        raise InvalidInputError(
            f"Invalid user {user!r} (tag mlflow.user): use a name without newlines, tabs or "
            "other control characters."
        )
    check_experiment_name(experiment)
    journal.recover(repo, quiet=quiet)
    run_id = new_run_id()
    if max_untracked is None:
        max_untracked = config.max_untracked_size(config.load(repo.work_tree))
    code = codestate.capture(repo, run_id, max_untracked, quiet=quiet)
    env = envinfo.capture(layout.cache_dir(repo))
    env_blob = _env_blob(repo, env)
    system_user = user is None
    user = _user() if user is None else user
    name = run_name or _generated_name(run_id)
    source = source_name or os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "python")
    header = {
        "format": store.FORMAT_VERSION,
        "run_id": run_id,
        "run_name": name,
        "experiment": experiment,
        "start_time": start_time or int(time.time() * 1000),
        "user": user,
        "host": os.uname().nodename if hasattr(os, "uname") else "",
        "source_name": source,
        "command": command,
        "cwd": cwd,
        "code": code,
        "env_blob": env_blob,
        "pid": os.getpid(),
    }
    live_dir, jrnl = journal.create(repo, header)
    # Until the run is committed, its environment and code snapshot are reachable only
    # from its keeper ref (an environment this process committed before already is).
    journal.protect(
        repo,
        run_id,
        [env_blob] if (repo.common_dir, env_blob) not in _committed_envs else [],
        [code["snapshot"]] if code.get("snapshot") else [],
    )
    rec = RunRecord(run_id=run_id, run_name=name, experiment=experiment)
    live = LiveRun(repo, run_id, live_dir, jrnl, True, rec)
    system = {"mlflow.runName": name}
    if system_user:
        system["mlflow.user"] = user
    system["mlflow.source.name"] = source
    system["mlflow.source.type"] = "LOCAL"
    if code.get("head"):
        system["mlflow.source.git.commit"] = code["head"]
    if code.get("branch"):
        system["mlflow.source.git.branch"] = code["branch"]
    if code.get("repo_url"):
        system["mlflow.source.git.repoURL"] = code["repo_url"]
    if code:
        system["gitrun.git.dirty"] = "true" if code.get("dirty") else "false"
    if code.get("snapshot"):
        system["gitrun.git.snapshot"] = code["snapshot"]
    if code.get("commit"):
        system["gitrun.code_commit"] = code["commit"]
    for k, v in system.items():
        live.set_tag(k, v)
    for k, v in (tags or {}).items():
        live.set_tag(k, v)
    return live


_env_blobs: dict[tuple[str, int], str] = {}
_committed_envs: set[tuple[str, str]] = set()  # (repository, blob) already in a run


def _env_blob(repo: Repo, env: dict[str, Any]) -> str:
    from ..format import textfmt

    key = (repo.common_dir, id(env))
    if key not in _env_blobs:
        _env_blobs[key] = repo.write_blob(textfmt.dump_map(env))
    return _env_blobs[key]


def new_run_id() -> str:
    """A random UUID4 as 32 hex characters (MLflow's run id form); uuid costs 5 ms to import."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


_ADJ = ["bold", "calm", "eager", "gentle", "keen", "lucky", "merry", "proud", "quick", "wise"]
_NOUN = ["ant", "bat", "cod", "doe", "eel", "fox", "gnu", "hen", "owl", "yak"]


def _generated_name(run_id: str) -> str:
    n = int(run_id[:8], 16)
    return f"{_ADJ[n % 10]}-{_NOUN[(n // 10) % 10]}-{n % 1000}"


def attach(run_id: str, journal_path: str, git_dir: str) -> LiveRun:
    """Join the run a `gitrun record` wrapper owns."""
    rec = journal.replay(journal_path)
    if rec is None or rec.run_id != run_id:
        raise RunNotFoundError(
            f"The run {run_id} that gitrun record started is not live any more "
            f"({journal_path}); run the script under `gitrun record` again."
        )
    repo = Repo(git_dir=git_dir, common_dir=git_dir, work_tree=None)
    jrnl = journal.open_journal(repo, journal_path)
    live = LiveRun(repo, run_id, os.path.dirname(journal_path), jrnl, False, rec)
    from ..capture import envinfo

    env = envinfo.capture(layout.cache_dir(repo))
    # The training interpreter's environment is the one that matters for a rerun.
    blob = _env_blob(repo, env)
    journal.protect(repo, run_id, [blob])
    jrnl.write(journal.encode("v", blob))
    return live


def attached_env() -> tuple[str, str, str] | None:
    """(run id, journal path, git dir) of the `gitrun record` run this process runs under."""
    rid = os.environ.get(ENV_RUN_ID)
    jp = os.environ.get(ENV_JOURNAL)
    gd = os.environ.get(ENV_GIT_DIR)
    if rid and jp and gd and os.path.exists(jp):
        return rid, jp, gd
    return None


def resume(repo: Repo, run_id: str) -> LiveRun:
    """MLflow's start_run(run_id=...): continue a finished run; it is committed again."""
    from ..format import store
    from ..query import resolve as runs_mod

    rec = runs_mod.load(repo, run_id, history=True)
    header = {
        "format": store.FORMAT_VERSION,
        "run_id": rec.run_id,
        "run_name": rec.run_name,
        "experiment": rec.experiment,
        "start_time": rec.start_time,
        "user": rec.user,
        "host": rec.host,
        "source_name": rec.source_name,
        "command": rec.command,
        "cwd": rec.cwd,
        "code": rec.code,
        "env_blob": rec.env_blob,
        "pid": os.getpid(),
    }
    live_dir, jrnl = journal.create(repo, header)
    lines = []
    for k, v in rec.params.items():
        lines.append(journal.json_line("p", v, k))
    for k, v in rec.tags.items():
        lines.append(journal.json_line("t", v, k))
    for key, points in rec.history.items():
        for m in points:
            lines.append(journal.metric_line(key, m.value, m.timestamp, m.step))
    for a in rec.artifacts.values():
        d = {"path": a.path, "blob": a.blob, "sha256": a.sha256, "size": a.size}
        lines.append(journal.json_line("a", d))
    for i in rec.inputs.values():
        lines.append(journal.json_line("i", i.to_dict()))
    jrnl.write(b"".join(lines))
    return LiveRun(repo, rec.run_id, live_dir, jrnl, True, rec)
