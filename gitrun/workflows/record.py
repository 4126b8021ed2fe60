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
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from .. import tracking
from .._git import Repo
from ..capture import settings as config
from ..errors import GitrunError, InvalidInputError, UsageError
from ..format.entities import RunRecord
from ..format.layout import LIVE_OUTPUT
from ..format.store import STORED_INPUTS

DEFAULT_PARAMS_FILE = "params.yaml"
RECORD_OPTIONS_TAG = "gitrun.record.options"
PROBLEMS_TAG = "gitrun.problems"


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
        max_artifact_files: int | None = None,
        max_artifact_size: str | None = None,
        cwd: str | None = None,
        inputs: list[str] | None = None,
        autolog: bool = False,
        store_inputs: bool = False,
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
        self.max_artifact_files = max_artifact_files
        self.max_artifact_size = max_artifact_size
        # The directory the command runs in (default: the current one); relative paths
        # (params/metrics files, artifacts) are taken from it.
        self.cwd = cwd
        self.inputs = inputs or []  # -i: data the command reads, hashed before it runs
        self.store_inputs = store_inputs  # --store: and a copy of it kept with the run
        # --autolog / GITRUN_AUTOLOG=1: a Python child autologs the frameworks it imports
        self.autolog = autolog or autolog_from_env()


ENV_AUTOLOG = "GITRUN_AUTOLOG"
# A directory with a sitecustomize.py that turns autologging on in a Python child (and runs
# the child's own sitecustomize); it lives with the autolog code, in gitrun/mlflow/.
AUTOLOG_SITE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mlflow", "_autolog_site"
)


def autolog_from_env() -> bool:
    return os.environ.get(ENV_AUTOLOG, "").strip().lower() in ("1", "true", "yes", "on")


def autolog_env(env: dict[str, str]) -> None:
    """Turn autologging on in a Python child: GITRUN_AUTOLOG=1 and the sitecustomize directory
    first on its PYTHONPATH (frameworks are enabled as the child imports them)."""
    env[ENV_AUTOLOG] = "1"
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != AUTOLOG_SITE]
    env["PYTHONPATH"] = os.pathsep.join([AUTOLOG_SITE, *rest])


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


def read_structured(path: str, what: str, cwd: str | None = None) -> dict[str, Any]:
    """A JSON/YAML mapping, flattened; one InvalidInputError sentence when it cannot be.

    A relative `path` is taken from `cwd` (default: the current directory)."""
    from ..capture.artwalk import read_text

    text = read_text(_at(cwd, path), what)
    try:
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            from ..format import yamlio

            data = yamlio.load(text)
    except Exception as e:  # any parser failure (RecursionError included) is bad input
        raise InvalidInputError(
            f"The {what} file '{path}' cannot be parsed ({_one_line(e)}); fix it."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"The {what} file '{path}' must hold a mapping of names to values.")
    return flatten(data)


def _at(cwd: str | None, path: str) -> str:
    """`path` as typed, taken from `cwd` (None: the current directory)."""
    return path if cwd is None else os.path.join(cwd, path)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def artifact_dest(path: str, root: str, git_dirs: Sequence[str], cwd: str | None = None) -> str:
    """Where `-a PATH` is stored in the run (relative to `cwd`, the directory the command
    runs in; default: the current one).

    Checked before the command runs, with the path as the user typed it; the path need
    not exist yet.
    """
    from ..capture.artwalk import CONTROL_CHARS, inside

    if not path.strip():
        raise UsageError("An artifact path (-a) is empty; name a file or directory.")
    if any(c in path for c in CONTROL_CHARS):
        raise UsageError(f"Artifact path {path!r} contains control characters; rename it.")
    real_root = os.path.realpath(root)
    cwd = os.path.abspath(cwd) if cwd is not None else os.getcwd()
    full = os.path.abspath(os.path.join(cwd, path))
    if not inside(full, real_root) and not inside(full, os.path.abspath(root)):
        raise UsageError(
            f"Artifact path '{path}' is outside the repository work tree ({root}); "
            "-a keeps files from inside it."
        )
    rel = os.path.relpath(full, cwd)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise UsageError(
            f"Artifact path '{path}' is outside the directory the command runs in ({cwd}); "
            "artifacts are stored relative to it, so run gitrun record from a directory "
            "that contains the path."
        )
    if ".git" in rel.split(os.sep):
        raise UsageError(
            f"Artifact path '{path}' is inside git's own directory (.git), which is never "
            "an artifact."
        )
    if rel.split(os.sep)[0] == STORED_INPUTS:
        raise UsageError(
            f"Artifact path '{path}' is reserved: {STORED_INPUTS}/ holds the stored copies "
            "of inputs (-i PATH --store); rename it."
        )
    problem = _leaves_tree(full, real_root, git_dirs, path)
    if problem:
        raise UsageError(problem)
    return rel.replace(os.sep, "/")


def _leaves_tree(
    path: str, real_root: str, git_dirs: Sequence[str], shown: str | None = None
) -> str | None:
    """A sentence when `path` leads out of the work tree (or into .git) through a symlink
    (`shown`: the path as the user typed it)."""
    from ..capture.artwalk import inside

    real = os.path.realpath(path)
    if inside(real, real_root) and not any(inside(real, g) for g in git_dirs):
        return None
    where = "into git's own directory" if inside(real, real_root) else "outside the repository"
    return (
        f"Artifact path '{shown or path}' leads {where} (to {real}) through a symlink; "
        "gitrun does not follow it, so that nothing from elsewhere is kept in the runs ref "
        "(copy what you need into the repository instead)."
    )


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
    """Run the command as a run; returns (exit code, the committed record).

    Everything that can be refused is refused before the command runs (nothing is
    recorded then).  Once it has run, the run is always committed with the command's
    own status and exit code; what could not be collected is named in the tag
    `gitrun.problems` and on stderr, and turns an exit code of 0 into 1.
    """
    from ..capture import artwalk

    if not opts.command:
        raise UsageError(
            "gitrun record needs a command after `--`, e.g. `gitrun record -- python train.py`."
        )
    here = os.path.abspath(opts.cwd) if opts.cwd is not None else None
    repo = Repo.discover(here)
    cfg = config.load(repo.work_tree)
    if opts.experiment is not None and not opts.experiment.strip():
        raise UsageError("The experiment name given with -e is empty; give a name, e.g. -e churn.")
    experiment = opts.experiment or cfg.get("experiment") or tracking.experiment_name()
    name = opts.name or cfg.get("name")
    tags = {str(k): str(v) for k, v in (cfg.get("tags") or {}).items()}
    tags.update(opts.tags)
    if opts.name or cfg.get("name"):
        tags["gitrun.name_from_cli"] = "true"
    if opts.experiment or cfg.get("experiment"):
        tags["gitrun.experiment_from_cli"] = "true"
    params: dict[str, str] = {}
    params_file = opts.params_file or cfg.get("params-file")
    if params_file is None and os.path.lexists(_at(here, DEFAULT_PARAMS_FILE)):
        params_file = DEFAULT_PARAMS_FILE
    if params_file:
        params.update(
            {k: _param_text(v) for k, v in read_structured(params_file, "params", here).items()}
        )
    params.update(opts.params)
    metrics_file = opts.metrics_file or cfg.get("metrics-file")
    artifacts = list(cfg.get("artifacts") or []) + list(opts.artifacts)
    root = repo.work_tree or here or os.getcwd()
    # A linked worktree may itself live inside the common git dir (gitrun sweep's trial
    # slots do): what counts as "git's own directory" is then the repository data around
    # it, not the worktree's files.
    real_top = os.path.realpath(root)
    git_dirs = sorted(
        g
        for g in {os.path.realpath(repo.git_dir), os.path.realpath(repo.common_dir)}
        if not (real_top == g or real_top.startswith(g.rstrip(os.sep) + os.sep))
    )
    dests = [(path, artifact_dest(path, root, git_dirs, here)) for path in artifacts]
    limits = artwalk.limits(cfg, opts.max_artifact_files, opts.max_artifact_size)
    if opts.store_inputs and not opts.inputs:
        raise UsageError("--store keeps copies of inputs; name them with -i PATH.")
    inputs = _hash_inputs(repo, opts.inputs, here, limits if opts.store_inputs else None)
    # What was given on this command line (config files travel with the code), so that
    # `gitrun rerun` can repeat the same `gitrun record` invocation.
    given = {
        "params": dict(opts.params),
        "params_file": opts.params_file,
        "metrics_file": opts.metrics_file,
        "artifacts": list(opts.artifacts),
        "inputs": list(opts.inputs),
        "store_inputs": opts.store_inputs,
        "max_artifact_files": opts.max_artifact_files,
        "max_artifact_size": opts.max_artifact_size,
        "autolog": opts.autolog,
    }
    # Always written, so that its absence means "recorded by an older gitrun".
    given = {k: v for k, v in given.items() if v}
    tags[RECORD_OPTIONS_TAG] = json.dumps(given, sort_keys=True, ensure_ascii=False)
    for key in list(params) + list(tags):
        tracking.validate_key(key)

    cwd = os.path.relpath(here or os.getcwd(), root).replace(os.sep, "/")
    live = tracking.new_run(
        repo,
        run_name=name,
        experiment=tracking.check_experiment_name(experiment),
        tags=tags,
        command=list(opts.command),
        cwd=cwd,
        source_name=opts.command[0],
        quiet=opts.quiet,
        max_untracked=config.max_untracked_size(cfg),
    )
    for k, v in params.items():
        live.log_param(k, v)
    for inp, copies in inputs:
        live.log_input(inp, copies)
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
    if opts.autolog:
        autolog_env(env)

    status, exit_code = _run_child(
        opts.command, env, os.path.join(live.live_dir, LIVE_OUTPUT), live, here
    )

    # From here on nothing may stop the run from being committed with the command's own
    # status and exit code: every failure becomes a problem.
    problems: list[str] = []
    try:
        _collect(live, metrics_file, exit_code, dests, limits, root, git_dirs, problems, here)
    except (Exception, KeyboardInterrupt) as e:
        what = "it was interrupted" if isinstance(e, KeyboardInterrupt) else _one_line(e)
        problems.append(
            f"gitrun stopped collecting after the command ended ({what}); what was "
            "collected before is kept."
        )
    problems = [" ".join(p.split()) for p in problems]
    main = threading.current_thread() is threading.main_thread()
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # a few ms
    try:
        if problems:
            try:
                live.set_tag(PROBLEMS_TAG, " ".join(problems))
            except Exception as e:
                problems.append(f"The problems could not be kept in the run ({_one_line(e)}).")
        rec = live.end(status, exit_code)
    except (GitrunError, OSError) as e:
        # The journal holds the end marker; the next gitrun command commits the run.
        print(
            f"gitrun: run {live.run_id[:8]} could not be committed now ({_one_line(e)}); "
            "the next gitrun command commits it.",
            file=sys.stderr,
        )
        for p in problems:
            print(f"gitrun: {p}", file=sys.stderr)
        return exit_code or 1, None
    finally:
        if main:
            signal.signal(signal.SIGINT, old_int)
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
        exit_code = 1  # the command succeeded, but the run lacks something asked for
    if repo.config("gitrun.autopush") is not None or cfg.get("auto-push") is not None:
        from . import sync

        sync.maybe_auto_push(repo, opts.quiet)
    return exit_code, rec


MAX_PROBLEMS_PER_ARTIFACT = 20


def _hash_inputs(
    repo: Repo, paths: list[str], cwd: str | None, store_limits: Any = None
) -> list[tuple[Any, list[Any]]]:
    """`-i PATH`: checked and hashed before the command runs (the data it is about to
    read); a missing or unreadable input refuses the run.  With `store_limits` (--store,
    the artifact limits) each is also copied into the run: (Input, its stored copy)."""
    from ..capture import inputs

    for path in paths:
        if not path.strip():
            raise UsageError("An input path (-i) is empty; name a file or directory.")
        if not os.path.exists(_at(cwd, path)):
            raise UsageError(
                f"Input '{path}' does not exist (relative paths are taken from "
                f"{cwd or os.getcwd()}); check the path."
            )
    try:
        if store_limits is None:
            return [(i, []) for i in inputs.hash_paths(repo, [_at(cwd, p) for p in paths])]
        root = repo.work_tree
        return [inputs.store_path(repo, _at(cwd, p), root, store_limits, "", "cli") for p in paths]
    except InvalidInputError as e:
        raise UsageError(str(e)) from None


def _collect(
    live: tracking.LiveRun,
    metrics_file: str | None,
    exit_code: int,
    dests: list[tuple[str, str]],
    limits: Any,
    root: str,
    git_dirs: Sequence[str],
    problems: list[str],
    cwd: str | None = None,
) -> None:
    """Metrics file and artifacts, after the command: each failure is one problem."""
    if metrics_file and (exit_code == 0 or os.path.lexists(_at(cwd, metrics_file))):
        try:
            problems.extend(_log_metrics_file(live, metrics_file, cwd))
        except Exception as e:
            problems.append(f"The metrics file '{metrics_file}' was not read ({_one_line(e)}).")
    for path, dest in dests:
        try:
            got = _collect_artifact(live, path, dest, root, git_dirs, limits, cwd)
        except GitrunError as e:
            got = [str(e)]
        except Exception as e:
            got = [f"Artifact '{path}' was not collected ({_one_line(e)})."]
        if len(got) > MAX_PROBLEMS_PER_ARTIFACT:
            more = len(got) - MAX_PROBLEMS_PER_ARTIFACT
            got = got[:MAX_PROBLEMS_PER_ARTIFACT] + [f"And {more} more under '{path}'."]
        problems.extend(got)


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    return f"a {type(v).__name__}"


def _log_metrics_file(live: tracking.LiveRun, path: str, cwd: str | None = None) -> list[str]:
    """Log every numeric value of the file; name the keys that were left out."""
    try:
        values = read_structured(path, "metrics", cwd)
    except InvalidInputError as e:
        return [str(e)]
    bad = []
    for k, v in values.items():
        try:
            tracking.validate_key(k, "metric name")
        except InvalidInputError:
            bad.append(f"'{k}' (not a valid metric name)")
            continue
        try:
            live.log_metric(k, v, None, None)
        except InvalidInputError:
            bad.append(f"'{k}' ({_describe(v)})")
    if not bad:
        return []
    listed = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    return [
        f"The metrics file '{path}' has values that are not numbers, left out: {listed}; "
        "its other metrics were kept."
    ]


def _collect_artifact(
    live: tracking.LiveRun,
    path: str,
    dest: str,
    root: str,
    git_dirs: Sequence[str],
    limits: Any,
    cwd: str | None = None,
) -> list[str]:
    """Store one `-a` path (relative to `cwd`) after the command; problems as sentences."""
    from ..capture import artwalk

    at = _at(cwd, path)
    if not os.path.lexists(at):
        return [f"Artifact '{path}' was not there after the command finished."]
    # The command may have replaced the path by a symlink: check again.
    leaves = _leaves_tree(at, os.path.realpath(root), git_dirs, path)
    if leaves:
        return [leaves]
    try:
        real = os.path.realpath(at, strict=True)
        st = os.stat(real)
    except OSError as e:
        return [f"Artifact '{path}' is a symlink that cannot be resolved ({_one_line(e)})."]
    if stat.S_ISREG(st.st_mode):
        live.log_artifact_file(real, dest, path)
        return []
    if not stat.S_ISDIR(st.st_mode):
        return [f"Artifact '{path}' is {artwalk.file_kind(st.st_mode)}, not a regular file."]
    w = artwalk.walk(real, limits, path, "cli")
    problems = list(w.problems)
    for full, rel, _ in w.files:
        try:
            live.log_artifact_file(
                full, rel if dest == "." else f"{dest}/{rel}", artwalk.show(path, rel)
            )
        except InvalidInputError as e:
            problems.append(f"{e} It was skipped.")
    return problems


def _run_child(
    command: list[str],
    env: dict[str, str],
    log_path: str,
    live: tracking.LiveRun,
    cwd: str | None = None,
) -> tuple[str, int]:
    log = open(log_path, "ab")
    try:
        try:
            proc = subprocess.Popen(
                command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as e:
            code = 127 if isinstance(e, FileNotFoundError) else 126
            if isinstance(e, FileNotFoundError):
                msg = f"gitrun: command not found: {command[0]}\n"
            elif isinstance(e, PermissionError):
                msg = f"gitrun: permission denied: {command[0]} is not executable\n"
            else:  # a directory, a script without #!, ...
                msg = f"gitrun: cannot run {command[0]}: {(e.strerror or str(e)).lower()}\n"
            log.write(msg.encode())
            sys.stderr.write(msg)
            return "FAILED", code
        with _Signals(proc) as sigs:
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
                t.start()  # after _Signals blocked the signals, so the pumps never get them
            rc = sigs.wait()
        for t in pumps:
            t.join(timeout=5)
        if rc < 0:
            return "KILLED", 128 - rc
        if sigs.interrupted and rc != 0:
            return "KILLED", rc
        return ("FINISHED" if rc == 0 else "FAILED"), rc
    finally:
        log.close()


# How long the child gets to react to a SIGINT sent to the wrapper alone before it is
# passed on; see _Signals.
SIGINT_GRACE = 0.5


class _Signals:
    """Waits for the child while passing signals on to it.

    SIGTERM and SIGHUP are forwarded at once.  SIGINT is trickier: the child stays in
    the wrapper's process group (so job control and reading the terminal keep working),
    so a Ctrl-C typed in the terminal reaches it directly, and forwarding a second one
    would hit a Python child's KeyboardInterrupt handler (saving a checkpoint, say) with
    another KeyboardInterrupt.  But an IDE's stop button or `kill -INT <pid>` signals
    the wrapper alone.  So where the OS says who sent a signal (sigtimedwait's siginfo),
    a SIGINT from the terminal (si_code SI_KERNEL) is only noted, and one sent by a
    process is forwarded if the child has not exited within SIGINT_GRACE seconds (a
    `kill` of the whole group has ended most children by then).  Without siginfo
    (platforms lacking sigtimedwait) every SIGINT is treated as sent by a process.
    """

    WAITED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    MASK = (*WAITED, signal.SIGCHLD)  # SIGCHLD wakes the wait when the child exits

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.interrupted: list[int] = []
        self.int_due: float | None = None
        # Signal handlers can only be set from the main thread; elsewhere just wait.
        self.main = threading.current_thread() is threading.main_thread()
        self.sigwait = (
            self.main and hasattr(signal, "sigtimedwait") and hasattr(signal, "pthread_sigmask")
        )
        self.old: dict[int, Any] = {}
        self.old_mask: set[int] | None = None

    def __enter__(self) -> _Signals:
        if not self.main:
            return self
        # Python-level handlers too: a signal the kernel hands to a thread that does not
        # block it (one started before us) still arrives, just without siginfo.
        for s in self.WAITED:
            self.old[s] = signal.signal(s, self._handler)
        if self.sigwait:
            self.old_mask = set(signal.pthread_sigmask(signal.SIG_BLOCK, self.MASK))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.old_mask is not None:
            while signal.sigtimedwait(self.MASK, 0) is not None:
                pass  # arrived after the child ended: nothing to pass on
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)
        for s, h in self.old.items():
            signal.signal(s, h)

    def _handler(self, signum: int, frame: Any) -> None:
        self._note(signum, from_terminal=False)

    def _note(self, signum: int, from_terminal: bool) -> None:
        self.interrupted.append(signum)
        if signum != signal.SIGINT:
            self._send(signum)
        elif not from_terminal and self.int_due is None:
            self.int_due = time.monotonic() + SIGINT_GRACE

    def _send(self, signum: int) -> None:
        try:
            self.proc.send_signal(signum)
        except OSError:
            pass

    def wait(self) -> int:
        while True:
            rc = self.proc.poll()
            if rc is not None:
                return rc
            timeout = 1.0
            if self.int_due is not None:
                timeout = max(0.0, min(timeout, self.int_due - time.monotonic()))
            if self.sigwait:
                info = signal.sigtimedwait(self.MASK, timeout)
                if info is not None and info.si_signo != signal.SIGCHLD:
                    self._note(info.si_signo, from_terminal=info.si_code > 0)
            else:
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            if self.int_due is not None and time.monotonic() >= self.int_due:
                self.int_due = None
                if self.proc.poll() is None:
                    self._send(signal.SIGINT)


def _out(stream: Any) -> IO[bytes] | None:
    return getattr(stream, "buffer", None)
