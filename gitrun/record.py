"""`gitrun record -- COMMAND`: run a command as a gitrun run.

The command runs without a shell; its output streams to the terminal and into
the run's output.log.  The child learns the run through GITRUN_RUN_ID,
GITRUN_JOURNAL and GITRUN_GIT_DIR, so its own gitrun.log_* calls (and
start_run) attach to this run.  Exit code: the child's (127 when the command is
not found, 128+N when it died of signal N).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from . import config, tracking
from .entities import RunRecord
from .errors import InvalidInputError, UsageError
from .git import Repo

DEFAULT_PARAMS_FILE = "params.yaml"
RECORD_OPTIONS_TAG = "gitrun.record.options"


class RecordOptions:
    """What `gitrun record` was asked to do (a plain class: no dataclasses at start-up)."""

    def __init__(
        self,
        command: list[str],
        name: str | None = None,
        experiment: str | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        artifacts: list[str] | None = None,
        params_file: str | None = None,
        metrics_file: str | None = None,
        quiet: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.name = name
        self.experiment = experiment
        self.params = params or {}
        self.tags = tags or {}
        self.artifacts = artifacts or []
        self.params_file = params_file
        self.metrics_file = metrics_file
        self.quiet = quiet
        self.extra_env = extra_env or {}


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = v
    return out


def read_structured(path: str, what: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise InvalidInputError(f"The {what} file '{path}' does not exist.")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:
        raise InvalidInputError(
            f"The {what} file '{path}' cannot be parsed ({e}); fix it."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"The {what} file '{path}' must hold a mapping of names to values.")
    return flatten(data)


def _param_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _pump(src: IO[bytes], dst: IO[bytes] | None, log: IO[bytes], lock: threading.Lock) -> None:
    fd = src.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        with lock:
            log.write(chunk)
            log.flush()
        if dst is not None:
            try:
                dst.write(chunk)
                dst.flush()
            except (OSError, ValueError):
                pass


def record(opts: RecordOptions) -> tuple[int, RunRecord | None]:
    """Run the command as a run; returns (exit code, the committed record)."""
    if not opts.command:
        raise UsageError(
            "gitrun record needs a command after `--`, e.g. `gitrun record -- python train.py`."
        )
    repo = Repo.discover()
    cfg = config.load(repo.work_tree)
    experiment = opts.experiment or cfg.get("experiment") or tracking._experiment_name()
    name = opts.name or cfg.get("name")
    tags = {str(k): str(v) for k, v in (cfg.get("tags") or {}).items()}
    tags.update(opts.tags)
    if opts.name or cfg.get("name"):
        tags["gitrun.name_from_cli"] = "true"
    if opts.experiment or cfg.get("experiment"):
        tags["gitrun.experiment_from_cli"] = "true"
    params: dict[str, str] = {}
    params_file = opts.params_file or cfg.get("params-file")
    if params_file is None and os.path.exists(DEFAULT_PARAMS_FILE):
        params_file = DEFAULT_PARAMS_FILE
    if params_file:
        params.update(
            {k: _param_text(v) for k, v in read_structured(params_file, "params").items()}
        )
    params.update(opts.params)
    metrics_file = opts.metrics_file or cfg.get("metrics-file")
    artifacts = list(cfg.get("artifacts") or []) + list(opts.artifacts)
    # What was given on this command line (config files travel with the code), so that
    # `gitrun rerun` can repeat the same `gitrun record` invocation.
    given = {
        "params": dict(opts.params),
        "params_file": opts.params_file,
        "metrics_file": opts.metrics_file,
        "artifacts": list(opts.artifacts),
    }
    # Always written, so that its absence means "recorded by an older gitrun".
    given = {k: v for k, v in given.items() if v}
    tags[RECORD_OPTIONS_TAG] = json.dumps(given, sort_keys=True, ensure_ascii=False)
    for key in list(params) + list(tags):
        tracking.validate_key(key)

    root = repo.work_tree or os.getcwd()
    cwd = os.path.relpath(os.getcwd(), root).replace(os.sep, "/")
    live = tracking.new_run(
        repo,
        run_name=name,
        experiment=tracking._check_experiment_name(experiment),
        tags=tags,
        command=list(opts.command),
        cwd=cwd,
        source_name=opts.command[0],
        quiet=opts.quiet,
        max_untracked=config.max_untracked_size(cfg),
    )
    for k, v in params.items():
        live.log_param(k, v)
    rec0 = live.record
    if not opts.quiet:
        print(f"gitrun: run {live.run_id} ({rec0.run_name}) started", file=sys.stderr)

    env = dict(os.environ)
    env.update(opts.extra_env)
    env[tracking.ENV_RUN_ID] = live.run_id
    env[tracking.ENV_JOURNAL] = live.journal.path
    env[tracking.ENV_GIT_DIR] = repo.common_dir
    env[tracking.ENV_EXPERIMENT] = rec0.experiment
    env.setdefault("PYTHONUNBUFFERED", "1")  # so output streams as it is printed

    status, exit_code = _run_child(
        opts.command, env, os.path.join(live.live_dir, "output.log"), live
    )

    problems = []
    if metrics_file and (exit_code == 0 or os.path.exists(metrics_file)):
        try:
            for k, v in read_structured(metrics_file, "metrics").items():
                live.log_metric(k, v, None, None)
        except InvalidInputError as e:
            problems.append(str(e))
    for path in artifacts:
        try:
            if os.path.isdir(path):
                for r, dirs, files in os.walk(path):
                    dirs.sort()
                    for f in sorted(files):
                        full = os.path.join(r, f)
                        live.log_artifact_file(full, os.path.relpath(full, os.getcwd()))
            elif os.path.exists(path):
                live.log_artifact_file(path, os.path.relpath(path, os.getcwd()))
            else:
                problems.append(f"Artifact '{path}' was not there after the command finished.")
        except InvalidInputError as e:
            problems.append(str(e))
    if problems:
        live.set_tag("gitrun.problems", " ".join(problems))
    rec = live.end(status, exit_code)
    assert rec is not None
    if not opts.quiet:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(rec.metrics.items())[:4])
        secs = ((rec.end_time or 0) - (rec.start_time or 0)) / 1000
        print(
            f"gitrun: run {rec.run_id[:8]} ({rec.run_name}) {rec.status} in {secs:.1f}s, "
            f"exit {exit_code}" + (f"; {shown}" if shown else ""),
            file=sys.stderr,
        )
    for p in problems:
        print(f"gitrun: {p}", file=sys.stderr)
    if problems and exit_code == 0:
        exit_code = 1
    if repo.config("gitrun.autopush") is not None or cfg.get("auto-push") is not None:
        from . import sync

        sync.maybe_auto_push(repo, opts.quiet)
    return exit_code, rec


def _run_child(
    command: list[str], env: dict[str, str], log_path: str, live: tracking.LiveRun
) -> tuple[str, int]:
    log = open(log_path, "ab")
    try:
        try:
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            msg = f"gitrun: command not found: {command[0]}\n"
            log.write(msg.encode())
            sys.stderr.write(msg)
            return "FAILED", 127
        except PermissionError:
            msg = f"gitrun: permission denied: {command[0]} is not executable\n"
            log.write(msg.encode())
            sys.stderr.write(msg)
            return "FAILED", 126
        lock = threading.Lock()
        pumps = [
            threading.Thread(
                target=_pump, args=(proc.stdout, _out(sys.stdout), log, lock), daemon=True
            ),
            threading.Thread(
                target=_pump, args=(proc.stderr, _out(sys.stderr), log, lock), daemon=True
            ),
        ]
        for t in pumps:
            t.start()
        interrupted = []

        def on_int(signum: int, frame: Any) -> None:
            # Ctrl-C reaches the child from the terminal too; just remember it.
            interrupted.append(signum)

        def forward(signum: int, frame: Any) -> None:
            interrupted.append(signum)
            try:
                proc.send_signal(signum)
            except OSError:
                pass

        old = {
            signal.SIGINT: signal.signal(signal.SIGINT, on_int),
            signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
            signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
        }
        try:
            while True:
                try:
                    rc = proc.wait()
                    break
                except KeyboardInterrupt:
                    continue
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        for t in pumps:
            t.join(timeout=5)
        if rc < 0:
            return "KILLED", 128 - rc
        if interrupted and rc != 0:
            return "KILLED", rc
        return ("FINISHED" if rc == 0 else "FAILED"), rc
    finally:
        log.close()


def _out(stream: Any) -> IO[bytes] | None:
    return getattr(stream, "buffer", None)
