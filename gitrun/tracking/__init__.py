"""The tracking API: MLflow's fluent functions, recording into git.

A run this process owns is journaled under .git/gitrun/live/<id>/ as it is
logged and committed to refs/gitrun/runs when it ends.  A process started by
`gitrun record` (GITRUN_RUN_ID / GITRUN_JOURNAL in its environment) attaches
to the wrapper's run instead: its log calls go to the same journal and the
wrapper commits.
"""

from __future__ import annotations

import atexit
import json
import numbers
import os
import posixpath
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from .._git import Repo
from ..errors import GitrunError, InvalidInputError, ParamChangedError, RunNotFoundError
from ..format import journal
from ..format.entities import Experiment, Metric, Run, RunData, RunInfo, RunRecord
from ..format.textfmt import has_control

ENV_RUN_ID = "GITRUN_RUN_ID"
ENV_JOURNAL = "GITRUN_JOURNAL"
ENV_GIT_DIR = "GITRUN_GIT_DIR"
ENV_EXPERIMENT = "GITRUN_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "Default"
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250

_KEY_RE = re.compile(r"^[/\w.\- :]+$")
_valid_keys: set[str] = set()


def validate_key(key: Any, what: str = "key") -> str:
    if key in _valid_keys:
        return key  # type: ignore[no-any-return]
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"Invalid {what} {key!r}: it must be a non-empty string.")
    if (
        len(key) > MAX_KEY
        or not _KEY_RE.match(key)
        or posixpath.normpath(key) != key
        or key.startswith(("..", "/"))
    ):
        raise InvalidInputError(
            f"Invalid {what} '{key}': names may contain only alphanumerics, underscores, "
            "periods, dashes, spaces, colons and slashes, must not contain '..' or start "
            f"with '/', and must be at most {MAX_KEY} characters."
        )
    _valid_keys.add(key)
    return key


def _metric_value(key: str, value: Any) -> float:
    t = type(value)
    if t is float or t is int:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        if not isinstance(value, (str, bytes, bool)) and hasattr(value, "__float__"):
            try:
                return float(value)  # numpy 0-d arrays, torch scalars
            except (TypeError, ValueError):
                pass
        raise InvalidInputError(
            f"Got invalid value {value!r} for metric '{key}': a metric value must be a "
            "number (int or float; NaN and infinity are allowed)."
        )
    return float(value)  # type: ignore[arg-type]


_INT64 = 2**63


def _whole(value: Any) -> int | None:
    """`value` as an int the way MLflow stores a step or timestamp: any real number,
    truncated (numpy scalars too); None for anything else (text, NaN, infinity)."""
    if not isinstance(value, numbers.Real):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None


def _metric_step(key: str, step: Any) -> int:
    """A metric point's step as MLflow takes it: a 64-bit integer, 0 when not given."""
    if step is None:
        return 0
    st = _whole(step)
    if st is None or not -_INT64 <= st < _INT64:
        raise InvalidInputError(
            f"Invalid step {step!r} for metric '{key}': a step must be a number that fits "
            "a 64-bit integer."
        )
    return st


def _metric_timestamp(key: str, timestamp: Any) -> int | None:
    """A metric point's timestamp (ms since 1970, 64-bit, not negative), or None for now."""
    if timestamp is None:
        return None
    ts = _whole(timestamp)
    if ts is None or not 0 <= ts < _INT64:
        raise InvalidInputError(
            f"Invalid timestamp {timestamp!r} for metric '{key}': a timestamp must be a "
            "number of milliseconds since 1970, not negative."
        )
    return ts


def safe_artifact_path(path: str) -> str:
    """An artifact destination inside the run, normalised; see gitrun/paths.py for the rule."""
    from ..format.paths import check_artifact_path

    return check_artifact_path(path)


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
        text = str(value)
        if len(text) > MAX_PARAM_VALUE:
            print(
                f"gitrun: param '{key}' is longer than {MAX_PARAM_VALUE} characters; truncated.",
                file=sys.stderr,
            )
            text = text[:MAX_PARAM_VALUE]
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
        if key not in _valid_keys:
            validate_key(key, "metric name")
        v = _metric_value(key, value)
        # Plain ints (the common case) skip the validating helpers on this hot path.
        st = step if type(step) is int else _metric_step(key, step)
        if timestamp is None:
            ts = int(time.time() * 1000)
        else:
            ts = timestamp if type(timestamp) is int else _metric_timestamp(key, timestamp) or 0
        if ts < 0:
            raise InvalidInputError(
                f"Metric '{key}' has a negative timestamp {ts}; use ms since 1970."
            )
        # One write(2) per point: on disk (OS) before the call returns.
        self.journal.write(journal.metric_line(key, v, ts, st))

    def set_tag(self, key: str, value: Any) -> None:
        validate_key(key, "tag name")
        text = str(value)
        if len(text) > MAX_TAG_VALUE:
            print(
                f"gitrun: tag '{key}' is longer than {MAX_TAG_VALUE} characters; truncated.",
                file=sys.stderr,
            )
            text = text[:MAX_TAG_VALUE]
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
        blob, sha256, size = artwalk.store_file(
            self.repo, os.path.realpath(local_path), local_path if shown is None else shown
        )
        self._artifact(dest, blob, sha256, size)

    def log_artifact_bytes(self, data: bytes, dest: str) -> None:
        import hashlib

        dest = safe_artifact_path(dest)
        blob = self.repo.write_blob(data)
        self._artifact(dest, blob, hashlib.sha256(data).hexdigest(), len(data))

    def _artifact(self, dest: str, blob: str, sha256: str, size: int) -> None:
        if self._paths is None:
            from ..format.paths import ArtifactPaths

            self._paths = ArtifactPaths()
            for p in self.record.artifacts:
                self._paths.add(p)
        self._paths.add(dest)  # a path cannot be a file and a directory at once
        # The blob must survive a `git gc` until the run is committed.
        journal.protect(self.repo, self.run_id, [blob])
        a = {"path": dest, "blob": blob, "sha256": sha256, "size": size}
        self.journal.write(journal.json_line("a", a))

    # -- ending -----------------------------------------------------------
    def end(self, status: str = "FINISHED", exit_code: int | None = None) -> RunRecord | None:
        if self.ended:
            return None
        self.ended = True
        if not self.owner:
            self.journal.close()
            return None
        end_time = int(time.time() * 1000)
        end = {"status": status, "end_time": end_time, "exit_code": exit_code}
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
) -> LiveRun:
    """Create and journal a new run owned by this process (code and env captured now)."""
    from ..capture import codestate, envinfo
    from ..capture import settings as config
    from ..format import store

    store.check_runs_ref(repo, for_writing=True)
    if run_name is not None:  # checked before anything is written
        check_run_name(run_name)
    _check_experiment_name(experiment)
    journal.recover(repo, quiet=quiet)
    run_id = new_run_id()
    if max_untracked is None:
        max_untracked = config.max_untracked_size(config.load(repo.work_tree))
    code = codestate.capture(repo, run_id, max_untracked, quiet=quiet)
    env = envinfo.capture(os.path.join(repo.gitrun_dir, "cache"))
    env_blob = _env_blob(repo, env)
    user = _user()
    name = run_name or _generated_name(run_id)
    source = source_name or os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "python")
    header = {
        "format": store.FORMAT_VERSION,
        "run_id": run_id,
        "run_name": name,
        "experiment": experiment,
        "start_time": int(time.time() * 1000),
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
    system = {
        "mlflow.runName": name,
        "mlflow.user": user,
        "mlflow.source.name": source,
        "mlflow.source.type": "LOCAL",
    }
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

    env = envinfo.capture(os.path.join(git_dir, "gitrun", "cache"))
    # The training interpreter's environment is the one that matters for a rerun.
    blob = _env_blob(repo, env)
    journal.protect(repo, run_id, [blob])
    jrnl.write(journal.encode("v", blob))
    return live


# ---------------------------------------------------------------------------
# the fluent API
# ---------------------------------------------------------------------------
class ActiveRun(Run):
    """What start_run returns: a Run (info, data) usable as a context manager."""

    def __init__(self, live: LiveRun) -> None:
        rec = live.record
        info = RunInfo(
            run_id=live.run_id,
            experiment_id=rec.experiment,
            run_name=rec.run_name,
            status="RUNNING",
            start_time=rec.start_time or int(time.time() * 1000),
            end_time=None,
            artifact_uri=rec.artifact_uri,
            user_id=rec.user,
        )
        super().__init__(info, RunData(params=dict(rec.params), tags=dict(rec.tags)))
        self._live = live

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        if exc_type is KeyboardInterrupt:
            status = "KILLED"
        if self in _stack:
            end_run(status)


_stack: list[ActiveRun] = []
_experiment: str | None = None
_last: ActiveRun | None = None
_atexit_installed = False
_failed = False


def _install_atexit() -> None:
    global _atexit_installed
    if _atexit_installed:
        return
    _atexit_installed = True
    prev_hook = sys.excepthook

    def hook(t: Any, v: Any, tb: Any) -> None:
        global _failed
        _failed = True
        prev_hook(t, v, tb)

    sys.excepthook = hook
    atexit.register(_end_all)


def _end_all() -> None:
    while _stack:
        try:
            end_run("FAILED" if _failed else "FINISHED")
        except Exception as e:  # never a traceback at interpreter exit
            print(f"gitrun: could not end run: {e}", file=sys.stderr)
            _stack.pop()


def _experiment_name(experiment_id: str | None = None) -> str:
    if experiment_id is not None:
        return str(experiment_id)
    if _experiment:
        return _experiment
    return (
        os.environ.get(ENV_EXPERIMENT)
        or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        or os.environ.get("MLFLOW_EXPERIMENT_ID")
        or DEFAULT_EXPERIMENT
    )


def _check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or has_control(name):
        raise InvalidInputError(
            f"Invalid experiment name {name!r}: use a non-empty string without newlines, "
            "tabs or other control characters."
        )
    return name


def check_run_name(name: Any) -> str:
    """A run name as given to start_run / gitrun record -n / the mlflow.runName tag."""
    if not isinstance(name, str) or has_control(name):
        raise InvalidInputError(
            f"Invalid run name {name!r}: use a string without newlines, tabs or other "
            "control characters."
        )
    return name


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    global _experiment
    if experiment_name is None and experiment_id is None:
        raise InvalidInputError(
            "set_experiment needs an experiment_name (or experiment_id); both were None."
        )
    name = _check_experiment_name(experiment_name if experiment_name is not None else experiment_id)
    _experiment = name
    return Experiment(experiment_id=name, name=name, artifact_location=f"gitrun:experiments/{name}")


def get_experiment_by_name(name: str) -> Experiment | None:
    from .. import query

    names = query.experiment_names(Repo.discover())
    if name not in names and name != DEFAULT_EXPERIMENT and name != _experiment:
        return None
    return Experiment(experiment_id=name, name=name, artifact_location=f"gitrun:experiments/{name}")


def get_experiment(experiment_id: str) -> Experiment:
    e = get_experiment_by_name(str(experiment_id))
    if e is None:
        raise RunNotFoundError(f"No experiment '{experiment_id}' has any runs yet.")
    return e


def create_experiment(name: str, artifact_location: str | None = None, tags: Any = None) -> str:
    return _check_experiment_name(name)


def _attached_env() -> tuple[str, str, str] | None:
    rid = os.environ.get(ENV_RUN_ID)
    jp = os.environ.get(ENV_JOURNAL)
    gd = os.environ.get(ENV_GIT_DIR)
    if rid and jp and gd and os.path.exists(jp):
        return rid, jp, gd
    return None


_attached_once = False


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    global _last, _attached_once
    if run_name is not None:
        check_run_name(run_name)
    if experiment_id is not None:
        _check_experiment_name(str(experiment_id))
    if _stack and not nested:
        raise GitrunError(
            f"Run {_stack[-1].info.run_id} is already active. To start a nested run, call "
            "start_run with nested=True; to start a new run, end the current one with end_run()."
        )
    _install_atexit()
    attached = _attached_env()
    live: LiveRun
    if not _stack and attached and run_id in (None, attached[0]) and not _attached_once:
        # Inside `gitrun record`: the first top-level run is the wrapper's run.
        live = attach(*attached)
        _attached_once = True
        if run_name and live.record.tags.get("gitrun.name_from_cli") != "true":
            live.set_name(run_name)
            live.record.run_name = run_name
        if experiment_id is not None or _experiment:
            if live.record.tags.get("gitrun.experiment_from_cli") != "true":
                name = _experiment_name(experiment_id)
                live.journal.write(journal.json_line("x", name))
                live.record.experiment = name
    elif run_id is not None:
        live = _resume(run_id)
    else:
        repo = Repo.discover()
        parent = parent_run_id or (_stack[-1].info.run_id if _stack else None)
        if parent is None and attached:
            parent = attached[0]  # a later run of a script under `gitrun record`
        all_tags = dict(tags or {})
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        if description:
            all_tags["mlflow.note.content"] = description
        live = new_run(
            repo, run_name=run_name, experiment=_experiment_name(experiment_id), tags=all_tags
        )
    if run_id is None and tags and not live.owner:
        for k, v in tags.items():
            live.set_tag(k, v)
    active = ActiveRun(live)
    _stack.append(active)
    _last = active
    return active


def _resume(run_id: str) -> LiveRun:
    """MLflow's start_run(run_id=...): continue a finished run; it is committed again."""
    from ..format import store
    from ..query import resolve as runs_mod

    repo = Repo.discover()
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
    jrnl.write(b"".join(lines))
    return LiveRun(repo, rec.run_id, live_dir, jrnl, True, rec)


def end_run(status: str = "FINISHED") -> None:
    from ..format import store

    if status not in store.STATUSES:
        raise InvalidInputError(
            f"Invalid run status '{status}'; use one of {', '.join(store.TERMINAL)}."
        )
    if not _stack:
        return
    active = _stack.pop()
    active._live.end(status)


def active_run() -> ActiveRun | None:
    return _stack[-1] if _stack else None


def last_active_run() -> Run | None:
    if _stack:
        return _stack[-1]
    if _last is None:
        return None
    return get_run(_last.info.run_id)


def _live() -> LiveRun:
    if not _stack:
        start_run()
    return _stack[-1]._live


def _other_run(run_id: str | None) -> Any:
    """MLflow's run_id= on fluent calls: a client for that run, unless it is the active one."""
    if run_id is None or (_stack and _stack[-1].info.run_id == run_id):
        return None
    from .client import MlflowClient

    return MlflowClient()


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    _live().log_param(key, value)
    return value


def log_params(
    params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    client = _other_run(run_id)
    if client is not None:
        for k, v in params.items():
            client.log_param(run_id, k, v)
        return
    live = _live()
    for k, v in params.items():
        live.log_param(k, v)


def log_metric(
    key: str,
    value: Any,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    **_: Any,
) -> None:
    if step is not None and (type(step) is not int or not -_INT64 <= step < _INT64):
        step = _metric_step(key, step)
    if timestamp is not None and (type(timestamp) is not int or not 0 <= timestamp < _INT64):
        timestamp = _metric_timestamp(key, timestamp)
    if run_id is not None:
        client = _other_run(run_id)
        if client is not None:
            client.log_metric(run_id, key, value, timestamp=timestamp, step=step)
            return
    (_stack[-1]._live if _stack else _live()).log_metric(key, value, step, timestamp)


def log_metrics(
    metrics: dict[str, Any],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
    **_: Any,
) -> None:
    if not isinstance(metrics, dict):
        raise InvalidInputError(
            f"log_metrics takes a dict of metric names to values, not {type(metrics).__name__}."
        )
    first = str(next(iter(metrics), ""))
    step = _metric_step(first, step) if step is not None else None
    timestamp = _metric_timestamp(first, timestamp)
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    client = _other_run(run_id)
    if client is not None:
        for k, v in metrics.items():
            client.log_metric(run_id, k, v, timestamp=ts, step=step)
        return
    live = _live()
    for k, v in metrics.items():
        live.log_metric(k, v, step, ts)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    if key == "mlflow.runName":
        check_run_name(str(value))
    live = _live()
    live.set_tag(key, value)
    if key == "mlflow.runName":
        _stack[-1].info.run_name = str(value)


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    for k, v in tags.items():
        set_tag(k, v)


def delete_tag(key: str) -> None:
    _live().delete_tag(key)


def _dest(local_path: str, artifact_path: str | None) -> str:
    name = os.path.basename(os.path.abspath(local_path))  # "." names the directory itself
    prefix = artifact_path.strip("/") if artifact_path else ""
    if not name:  # "/"
        return prefix
    return f"{prefix}/{name}" if prefix else name


def log_artifact(
    local_path: str,
    artifact_path: str | None = None,
    run_id: str | None = None,
    *,
    max_artifact_files: int | None = None,
    max_artifact_size: int | str | None = None,
) -> None:
    """MLflow's log_artifact; a directory is logged by `log_artifacts` (and its limits)."""
    if os.path.isdir(local_path):
        log_artifacts(
            local_path,
            _dest(local_path, artifact_path),
            run_id,
            max_artifact_files=max_artifact_files,
            max_artifact_size=max_artifact_size,
        )
        return
    client = _other_run(run_id)
    if client is not None:
        client.log_artifact(run_id, local_path, artifact_path)
        return
    if not os.path.exists(local_path):
        raise InvalidInputError(
            f"Artifact '{local_path}' does not exist; check the path (relative paths are "
            f"taken from {os.getcwd()})."
        )
    _live().log_artifact_file(local_path, _dest(local_path, artifact_path))


def log_artifacts(
    local_dir: str,
    artifact_path: str | None = None,
    run_id: str | None = None,
    *,
    max_artifact_files: int | None = None,
    max_artifact_size: int | str | None = None,
) -> None:
    """MLflow's log_artifacts, guarded: symlinks never lead out of `local_dir`, special
    files are skipped, and at most `max_artifact_files` files / `max_artifact_size` bytes
    (default 10,000 and 2 GiB; 0: no limit) are taken, checked before anything is stored.
    """
    client = _other_run(run_id)
    if client is not None:
        client.log_artifacts(
            run_id,
            local_dir,
            artifact_path,
            max_artifact_files=max_artifact_files,
            max_artifact_size=max_artifact_size,
        )
        return
    from ..capture import artwalk

    live = _live()
    lim = artwalk.api_limits(live.repo.work_tree, max_artifact_files, max_artifact_size)
    for full, dest, shown in artwalk.dir_files(local_dir, artifact_path, lim):
        try:
            live.log_artifact_file(full, dest, shown)
        except InvalidInputError as e:
            print(f"gitrun: {e} It was skipped.", file=sys.stderr)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    client = _other_run(run_id)
    if client is not None:
        client.log_text(run_id, text, artifact_file)
        return
    _live().log_artifact_bytes(text.encode("utf-8"), artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: str | None = None) -> None:
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_dump(dictionary, default_flow_style=False, sort_keys=False)
    else:
        data = json.dumps(dictionary, indent=2)
    log_text(data, artifact_file, run_id)


def log_figure(
    figure: Any, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None
) -> None:
    import io

    buf = io.BytesIO()
    ext = os.path.splitext(artifact_file)[1].lstrip(".") or "png"
    if hasattr(figure, "savefig"):  # matplotlib
        figure.savefig(buf, format=ext, **(save_kwargs or {}))
    elif hasattr(figure, "to_image"):  # plotly
        buf.write(figure.to_image(format=ext))
    elif hasattr(figure, "write_html") and ext == "html":
        buf.write(figure.to_html().encode())
    else:
        raise InvalidInputError(
            f"log_figure needs a matplotlib or plotly figure, not {type(figure).__name__}."
        )
    _live().log_artifact_bytes(buf.getvalue(), artifact_file)


def log_image(image: Any, artifact_file: str | None = None, **_: Any) -> None:
    if artifact_file is None:
        raise NotImplementedError(
            "gitrun.log_image needs artifact_file; step-indexed image logging (key=, step=) "
            "is not implemented - pass artifact_file='name.png'."
        )
    try:
        from PIL import Image
    except ImportError:
        raise InvalidInputError(
            "log_image needs Pillow to encode images; install it with `pip install pillow`."
        ) from None
    img = image if isinstance(image, Image.Image) else Image.fromarray(_to_uint8(image))
    import io

    buf = io.BytesIO()
    img.save(buf, format=os.path.splitext(artifact_file)[1].lstrip(".").upper() or "PNG")
    _live().log_artifact_bytes(buf.getvalue(), artifact_file)


def _to_uint8(arr: Any) -> Any:
    import numpy as np

    a = np.asarray(arr)
    if a.dtype.kind == "f":
        a = (np.clip(a, 0, 1) * 255).round().astype("uint8")
    return a


def _check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise InvalidInputError(
            f"Invalid run id {run_id!r}: pass the run's id (32 hex characters, or a unique "
            "prefix of 4 or more) or its unique name, as a string."
        )
    return run_id


def get_run(run_id: str) -> Run:
    from ..query import resolve as runs_mod

    _check_run_id(run_id)
    return runs_mod.load(Repo.discover(bare_ok=True), run_id).to_run()


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    from ..query import resolve as runs_mod

    _check_run_id(run_id)
    validate_key(key, "metric name")
    rec = runs_mod.load(Repo.discover(bare_ok=True), run_id, history=True)
    return list(rec.history.get(key, []))


def get_artifact_uri(artifact_path: str | None = None) -> str:
    run = _stack[-1] if _stack else None
    if run is None:
        raise GitrunError("No active run: start one with gitrun.start_run() first.")
    base = run.info.artifact_uri
    return f"{base}/{artifact_path}" if artifact_path else base


def iter_keys(d: Iterable[str]) -> list[str]:
    return sorted(d)
