"""`gitrun sweep`: many runs of one command over a parameter space (grid, seeded random,
Optuna), on local worker processes or a Dask cluster.

A sweep is a parent run (its spec in the tag gitrun.sweep.spec, sampler, seed, counts and
the best trial so far as tags and metrics) and every trial a child run (tags
mlflow.parentRunId and gitrun.sweep = the parent's id, gitrun.sweep.trial = its number),
recorded by workflows/record.py exactly as `gitrun record` records, in a git worktree of
the sweep's code commit (the snapshot when the work tree is dirty) under
.git/gitrun/worktrees/, one per worker slot (workflows/sweep_worker.py).  The params
reach the command as `{name}` in its argv items, as GITRUN_PARAM_<NAME> environment
variables, and in a params file with `params_file`.

`resume` completes a sweep from what its parent run holds: the trials that never ran,
failed or were killed run again with the same params (grid, random) or from the study
the finished ones make (Optuna).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from .. import tracking
from .._git import Repo
from ..capture import settings as config
from ..errors import InvalidInputError, UsageError
from ..format.layout import worktrees_root
from . import sweep_space as space

SPEC_TAG = "gitrun.sweep.spec"
SWEEP_TAG = "gitrun.sweep"
TRIAL_TAG = "gitrun.sweep.trial"
PARENT_TAG = "mlflow.parentRunId"
BEST_RUN_TAG = "gitrun.sweep.best_run"
BEST_PARAMS_TAG = "gitrun.sweep.best_params"
SPACE_TAG_PREFIX = "gitrun.sweep.space."  # + param name: its spec as given to -p
ENV_PARAM_PREFIX = "GITRUN_PARAM_"
ENV_TRIAL = "GITRUN_SWEEP_TRIAL"
ENV_PARAMS = "GITRUN_PARAMS"  # all of the trial's params, as a JSON object
SPEC_VERSION = 1
_SUBST = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")


class SweepOptions:
    """What `gitrun sweep` was asked to do."""

    def __init__(
        self,
        command: list[str] | None = None,
        params: list[str] | None = None,
        experiment: str | None = None,
        name: str | None = None,
        random: int | None = None,
        optuna: int | None = None,
        seed: int | None = None,
        maximize: str | None = None,
        minimize: str | None = None,
        jobs: int | None = None,
        executor: str = "local",
        scheduler: str | None = None,
        remote: str | None = None,
        max_failures: int | None = None,
        params_file: str | None = None,
        metrics_file: str | None = None,
        artifacts: list[str] | None = None,
        quiet: bool = False,
        cwd: str | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.command = command or []
        self.params = params or []
        self.experiment = experiment
        self.name = name
        self.random = random
        self.optuna = optuna
        self.seed = seed
        self.maximize = maximize
        self.minimize = minimize
        self.jobs = jobs
        self.executor = executor
        self.scheduler = scheduler
        self.remote = remote
        self.max_failures = max_failures
        self.params_file = params_file
        self.metrics_file = metrics_file
        self.artifacts = artifacts or []
        self.quiet = quiet
        self.cwd = cwd
        self.argv = argv  # how gitrun sweep was called: the parent run's command


class Progress:
    """What the progress bar shows; handed to the `progress` callback after each change."""

    def __init__(self, total: int, done_before: int) -> None:
        self.total = total
        self.done_before = done_before  # finished in an earlier run of the sweep (resume)
        self.finished = 0
        self.failed = 0
        self.killed = 0
        self.running = 0
        self.best: float | None = None
        self.best_run: str | None = None
        self.objective: str | None = None
        self.started = time.monotonic()

    @property
    def done(self) -> int:
        return self.done_before + self.finished + self.failed + self.killed

    def eta(self) -> float | None:
        ran = self.finished + self.failed + self.killed
        left = self.total - self.done
        if ran == 0 or left <= 0:
            return None
        return (time.monotonic() - self.started) / ran * left


class SweepResult:
    def __init__(self, parent_id: str, status: str, progress: Progress, errors: list[str]):
        self.parent_id = parent_id
        self.status = status
        self.progress = progress
        self.errors = errors  # one sentence per trial that could not be recorded


def substitute(command: list[str], params: dict[str, str]) -> list[str]:
    """`{name}` inside each argv item replaced by the param's value (no shell involved);
    braces around anything that is not a param are left as they are."""

    def one(m: re.Match[str]) -> str:
        return params.get(m.group(1), m.group(0))

    return [_SUBST.sub(one, a) for a in command]


def result_without_run(index: Any, status: str, error: str | None = None) -> dict[str, Any]:
    """A trial's result line when it made no run (stopped before it started, its worker or
    task lost)."""
    return {"index": index, "status": status, "run_id": None, "metrics": {}, "error": error}


def env_name(name: str) -> str:
    """GITRUN_PARAM_<NAME>: upper case, every character other than A-Z, 0-9 and _ as _."""
    return ENV_PARAM_PREFIX + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def _check_paths(
    params_file: Any, metrics_file: Any, artifacts: Any, cwd: Any, where: str = ""
) -> None:
    """Relative paths inside the trial's worktree: given on the command line, or read back
    from a sweep's spec (`where`: whose; a spec may come from someone's push)."""
    named = [("--params-file", params_file), ("--metrics-file", metrics_file), ("cwd", cwd)]
    for option, path in named + [("-a", a) for a in artifacts or []]:
        if path is None:
            continue
        if (
            not isinstance(path, str)
            or not path.strip()
            or os.path.isabs(path)
            or ".." in path.replace("\\", "/").split("/")
        ):
            if where:
                raise InvalidInputError(
                    f"The spec of {where} has {option} {str(path)[:100]!r}, which is not a "
                    "relative path inside the repository; it cannot be resumed."
                )
            raise UsageError(
                f"{option} {path!r} must be a relative path inside the repository (each "
                "trial has a worktree of its own), e.g. out/model.pkl."
            )


def metric_key(objective: str) -> str:
    key = objective[len("metrics.") :] if objective.startswith("metrics.") else objective
    if not key.strip():
        raise UsageError(f"--maximize/--minimize {objective!r} names no metric; e.g. metrics.f1.")
    tracking.validate_key(key, "metric name")
    return key


# ---------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------
def build_spec(opts: SweepOptions, repo: Repo) -> dict[str, Any]:
    """Everything a sweep needs, checked; kept in the parent run so --resume needs nothing."""
    if not opts.command:
        raise UsageError(
            "gitrun sweep needs a command after `--`, e.g. "
            "`gitrun sweep -p lr=0.01,0.1 -- python train.py --lr {lr}`."
        )
    if not opts.params:
        raise UsageError("gitrun sweep needs at least one -p NAME=VALUES, e.g. -p lr=0.01,0.1.")
    if opts.random is not None and opts.optuna is not None:
        raise UsageError("Give --random N or --optuna N, not both.")
    if opts.maximize and opts.minimize:
        raise UsageError("Give --maximize or --minimize, not both.")
    dims = [space.parse(p) for p in opts.params]
    names = [d.name for d in dims]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"Param {dup[0]!r} is given twice with -p; give each name once.")
    for n in names:
        tracking.validate_key(n, "param name")
    import difflib

    for word in sorted({m.group(1) for a in opts.command for m in _SUBST.finditer(a)}):
        close = difflib.get_close_matches(word, names, n=1) if word not in names else []
        if close:  # {lrr} for {lr}: left as it is, the trial would get the literal text
            raise UsageError(
                f"The command has {{{word}}}, which is no -p param; did you mean {{{close[0]}}}?"
            )
    objective = opts.maximize or opts.minimize
    key = metric_key(objective) if objective else None
    if opts.optuna is not None:
        sampler, total = "optuna", opts.optuna
        if key is None:
            raise UsageError(
                "--optuna needs an objective: --maximize metrics.KEY or --minimize metrics.KEY."
            )
        space.optuna_distributions(dims)  # optuna installed, and the space fits it
    elif opts.random is not None:
        sampler, total = "random", opts.random
    else:
        space.check_grid(dims)
        sampler, total = "grid", space.grid_size(dims)
    if total < 1:
        raise UsageError("A sweep needs at least one trial (--random/--optuna N with N >= 1).")
    if opts.experiment is not None and not opts.experiment.strip():
        raise UsageError("The experiment name given with -e is empty; give a name, e.g. -e churn.")
    seed = opts.seed
    if seed is None and sampler != "grid":
        seed = int.from_bytes(os.urandom(4), "big") >> 1
    here = os.path.abspath(opts.cwd or os.getcwd())
    root = repo.work_tree or here
    cwd = os.path.relpath(here, root).replace(os.sep, "/")
    if cwd == ".." or cwd.startswith("../"):
        raise UsageError("Run gitrun sweep from inside the repository's work tree.")
    _check_paths(opts.params_file, opts.metrics_file, opts.artifacts, cwd)
    return {
        "version": SPEC_VERSION,
        "command": list(opts.command),
        "params": [d.to_dict() for d in dims],
        "sampler": sampler,
        "trials": total,
        "seed": seed,
        "objective": key,
        "direction": ("maximize" if opts.maximize else "minimize") if key else None,
        "max_failures": opts.max_failures,
        "params_file": opts.params_file,
        "metrics_file": opts.metrics_file,
        "artifacts": list(opts.artifacts),
        "cwd": cwd,
    }


def _dims(spec: dict[str, Any]) -> list[space.Dim]:
    return [space.parse_spec(p["name"], p["spec"]) for p in spec["params"]]


# ---------------------------------------------------------------------------
# starting and resuming
# ---------------------------------------------------------------------------
def start(opts: SweepOptions, progress: Callable[[Progress], None] | None = None) -> SweepResult:
    repo = Repo.discover(opts.cwd)
    if repo.work_tree is None:
        raise UsageError("gitrun sweep runs trials from a work tree; run it in a clone.")
    if not repo.gitout("rev-parse", "--verify", "-q", "HEAD", check=False).strip():
        raise UsageError(
            "gitrun sweep needs a commit to run the trials on; commit your code first."
        )
    spec = build_spec(opts, repo)
    cfg = config.load(repo.work_tree)
    experiment = opts.experiment or cfg.get("experiment") or tracking.experiment_name()
    spec["experiment"] = tracking.check_experiment_name(experiment)
    executor = _make_executor(opts, repo)  # checked before anything is recorded
    tags = {
        SPEC_TAG: json.dumps(spec, sort_keys=True),
        "gitrun.sweep.sampler": spec["sampler"],
        "gitrun.sweep.trials": str(spec["trials"]),
    }
    if spec["seed"] is not None:
        tags["gitrun.sweep.seed"] = str(spec["seed"])
    if spec["objective"]:
        tags["gitrun.sweep.objective"] = f"{spec['direction']} metrics.{spec['objective']}"
    parent = tracking.new_run(
        repo,
        run_name=opts.name,
        experiment=spec["experiment"],
        tags=tags,
        command=opts.argv or ["gitrun", "sweep", *opts.command],
        cwd=spec["cwd"],
        source_name="gitrun sweep",
        quiet=opts.quiet,
    )
    # The space goes into tags, not params: the parent's params would otherwise sit beside
    # its trials' values ("0.01,0.1" among 0.01, 0.1) in every table, plot and filter.
    for p in spec["params"]:
        parent.set_tag(f"{SPACE_TAG_PREFIX}{p['name']}", p["spec"])
    from ..format import journal

    rec = journal.replay(parent.journal.path)
    commit = (rec.code.get("commit") if rec else None) or repo.gitout("rev-parse", "HEAD").strip()
    state = _State(repo, parent, spec, commit, rec.run_name if rec else parent.run_id[:8], {}, {})
    return _drive(state, executor, opts, progress)


def resume(
    ref: str, opts: SweepOptions, progress: Callable[[Progress], None] | None = None
) -> SweepResult:
    """Run the trials of sweep `ref` that are missing, failed or were killed."""
    from ..format import journal
    from ..query import resolve
    from ..query.index import search
    from ..tracking.live import resume as resume_run

    repo = Repo.discover(opts.cwd)
    if repo.work_tree is None:
        raise UsageError("gitrun sweep runs trials from a work tree; run it in a clone.")
    rid = resolve.resolve(repo, ref)
    wait_for_workers(repo, rid, opts.quiet)  # an earlier driver's trials, still running
    journal.recover(repo, quiet=opts.quiet)
    rec = resolve.load(repo, rid, history=False)
    text = rec.tags.get(SPEC_TAG)
    if not text:
        raise UsageError(f"Run {rid[:8]} ({rec.run_name}) is not a sweep (no {SPEC_TAG} tag).")
    try:
        spec = json.loads(text)
        spec["command"], spec["params"], spec["trials"]  # noqa: B018
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError(
            f"The spec of sweep {rid[:8]} (tag {SPEC_TAG}) cannot be read."
        ) from None
    _check_paths(
        spec.get("params_file"),
        spec.get("metrics_file"),
        spec.get("artifacts"),
        spec.get("cwd"),
        where=f"sweep {rid[:8]}",
    )
    if spec.get("sampler") == "optuna":
        space.optuna_distributions(_dims(spec))
    commit = rec.code.get("commit")
    if not commit or not repo.has_object(commit):
        raise InvalidInputError(
            f"The code commit of sweep {rid[:8]} is not in this repository; gitrun pull first."
        )
    rows = search(repo, f"tags.`{SWEEP_TAG}` = '{rid}'", lifecycles=None)
    finished: dict[int, Any] = {}
    earlier: dict[int, int] = {}  # trial number -> runs it already has (a retry's name)
    for row in rows:
        r = row.to_record()
        try:
            n = int(r.tags.get(TRIAL_TAG, ""))
        except ValueError:
            continue
        earlier[n] = earlier.get(n, 0) + 1
        if r.status == "FINISHED" and 0 <= n < int(spec["trials"]):
            finished[n] = r
    opts.max_failures = (
        opts.max_failures if opts.max_failures is not None else spec.get("max_failures")
    )
    executor = _make_executor(opts, repo)
    parent = resume_run(repo, rid)
    parent.set_tag("gitrun.sweep.resumed", str(int(rec.tags.get("gitrun.sweep.resumed", "0")) + 1))
    state = _State(repo, parent, spec, commit, rec.run_name, finished, earlier)
    return _drive(state, executor, opts, progress)


class _State:
    def __init__(
        self,
        repo: Repo,
        parent: Any,
        spec: dict[str, Any],
        commit: str,
        name: str,
        finished: dict[int, Any],
        earlier: dict[int, int],
    ) -> None:
        self.repo = repo
        self.parent = parent
        self.spec = spec
        self.commit = commit
        self.name = name
        self.finished = finished  # trial number -> RunRecord, from an earlier run (resume)
        self.earlier = earlier  # resume: runs each trial number already has
        self.errors: list[str] = []


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------
def _drive(
    st: _State, executor: Any, opts: SweepOptions, progress: Callable[[Progress], None] | None
) -> SweepResult:
    spec = st.spec
    total = int(spec["trials"])
    key, direction = spec.get("objective"), spec.get("direction")
    prog = Progress(total, len(st.finished))
    prog.objective = key
    for r in st.finished.values():
        _better(prog, key, direction, r.metrics.get(key) if key else None, r.run_id)
    try:
        sampler = _sampler(st)
        return _loop(st, executor, opts, progress, prog, sampler, total, key, direction)
    except BaseException:
        if not st.parent.ended:  # an unexpected error: the sweep is over all the same
            st.parent.end("FAILED", 1)
        raise


def _loop(
    st: _State,
    executor: Any,
    opts: SweepOptions,
    progress: Callable[[Progress], None] | None,
    prog: Progress,
    sampler: _Sampler,
    total: int,
    key: str | None,
    direction: str | None,
) -> SweepResult:
    spec = st.spec
    max_failures = opts.max_failures
    signals: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        signals.append(signum)
        if len(signals) > 1:
            executor.kill()  # a second Ctrl-C: stop at once

    old = {}
    if _main_thread():
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, on_signal)
    step = prog.done
    tick = 0.02 if spec["sampler"] == "optuna" else 0.2  # report() waits for an answer
    no_more = False  # --max-failures reached: start no more trials
    try:
        if total > len(st.finished):
            executor.open(st, min(executor.slots, total - len(st.finished)))
        pending = sampler.next_trials()
        while not signals:
            while not no_more and executor.free():
                trial = next(pending, None)
                if trial is None:
                    break
                executor.submit(_trial_spec(st, trial))
                prog.running += 1
            if progress:
                progress(prog)
            if executor.busy() == 0:
                break
            for res in executor.poll(tick, sampler.on_report):
                prog.running -= 1
                step += 1
                _account(st, prog, res, key, direction, step)
                sampler.tell(res)
                failures = prog.failed + prog.killed
                if res.get("error") and not res.get("run_id") and not no_more:
                    # refused before it ran (a bad -a path, a worktree that cannot be made):
                    # every other trial would be refused the same way
                    no_more = True
                    st.errors.append(
                        f"The sweep stopped starting trials: trial {res.get('index')} could "
                        "not be recorded."
                    )
                elif max_failures is not None and failures >= max_failures and not no_more:
                    no_more = True
                    st.errors.append(
                        f"The sweep stopped starting trials after {failures} failed "
                        f"(--max-failures {max_failures})."
                    )
            if progress and prog.running == executor.busy():
                progress(prog)
        if signals:
            for res in executor.stop():
                prog.running -= 1
                step += 1
                _account(st, prog, res, key, direction, step)
                sampler.tell(res)
            if progress:
                progress(prog)
    finally:
        executor.close()
        for s, h in old.items():
            signal.signal(s, h)
    if signals:
        parent_status = status = "KILLED"
    else:
        # FINISHED: every trial ran (some may have failed); FAILED: the sweep stopped early
        parent_status = "FINISHED" if prog.done >= total and not no_more else "FAILED"
        status = "FINISHED" if prog.finished + prog.done_before >= total else "FAILED"
    st.parent.end(parent_status, 130 if signals else 0)
    from ..format import journal

    journal.recover(st.repo, quiet=True)  # trials whose worker was killed: KILLED
    return SweepResult(st.parent.run_id, status, prog, st.errors)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _better(prog: Progress, key: str | None, direction: str | None, v: Any, run_id: str) -> bool:
    if key is None or v is None:
        return False
    try:
        v = float(v)
    except (TypeError, ValueError):
        return False
    if v != v:  # NaN never wins
        return False
    if prog.best is None or (v > prog.best if direction == "maximize" else v < prog.best):
        prog.best, prog.best_run = v, run_id
        return True
    return False


def _account(
    st: _State,
    prog: Progress,
    res: dict[str, Any],
    key: str | None,
    direction: str | None,
    step: int,
) -> None:
    status = res.get("status") or "FAILED"
    if res.get("error"):
        st.errors.append(f"Trial {res.get('index')}: {res['error']}")
    if status == "FAILED" and res.get("run_id") and not res.get("error"):
        why = f": {res['reason']}" if res.get("reason") else ""
        st.errors.append(
            f"Trial {res.get('index')} (run {res['run_id'][:8]}) failed with exit code "
            f"{res.get('exit_code')}{why}"
        )
    if status == "FINISHED":
        prog.finished += 1
    elif status == "KILLED":
        prog.killed += 1
    else:
        prog.failed += 1
    p = st.parent
    # Counts are tags (the trials' charts and parallel coordinates stay the trials' metrics).
    p.set_tag("gitrun.sweep.trials_finished", str(prog.finished + prog.done_before))
    p.set_tag("gitrun.sweep.trials_failed", str(prog.failed))
    p.set_tag("gitrun.sweep.trials_killed", str(prog.killed))
    if status == "FINISHED" and res.get("run_id") and not res.get("pruned"):
        v = (res.get("metrics") or {}).get(key) if key else None
        if _better(prog, key, direction, v, res["run_id"]):
            p.log_metric(f"best_{key}", prog.best, step, None)
            p.set_tag(BEST_RUN_TAG, res["run_id"])
            p.set_tag(BEST_PARAMS_TAG, json.dumps(res.get("params") or {}, sort_keys=True))


def _trial_spec(st: _State, trial: tuple[int, dict[str, str]]) -> dict[str, Any]:
    from ..tracking import ENV_SWEEP_OBJECTIVE

    index, params = trial
    spec = st.spec
    env = {env_name(k): v for k, v in params.items()}
    env[ENV_TRIAL] = str(index)
    env[ENV_PARAMS] = json.dumps(params)
    if spec.get("objective"):
        env[ENV_SWEEP_OBJECTIVE] = spec["objective"]
    return {
        "index": index,
        "command": substitute(spec["command"], params),
        "params": params,
        "env": env,
        # a retried trial gets a name of its own (-retry1, ...), so names stay unique
        "name": f"{st.name}-{index}"
        + (f"-retry{st.earlier[index]}" if st.earlier.get(index) else ""),
        "experiment": spec["experiment"],
        "tags": {
            PARENT_TAG: st.parent.run_id,
            SWEEP_TAG: st.parent.run_id,
            TRIAL_TAG: str(index),
        },
        "params_file": spec.get("params_file"),
        "metrics_file": spec.get("metrics_file"),
        "artifacts": spec.get("artifacts") or [],
        "cwd": spec.get("cwd") or ".",
    }


# ---------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------
class _Sampler:
    """Grid or random: trial i's params depend only on the spec, the seed and i."""

    def __init__(self, st: _State) -> None:
        self.st = st
        self.dims = _dims(st.spec)

    def params(self, i: int) -> dict[str, str]:
        if self.st.spec["sampler"] == "grid":
            return space.grid_trial(self.dims, i)
        return space.random_trial(self.dims, int(self.st.spec["seed"]), i)

    def next_trials(self) -> Iterator[tuple[int, dict[str, str]]]:
        for i in space.iter_indices(int(self.st.spec["trials"]), set(self.st.finished)):
            yield i, self.params(i)

    def tell(self, res: dict[str, Any]) -> None:
        pass

    def on_report(self, index: int, step: int, value: float) -> bool:
        return False


class _OptunaSampler(_Sampler):
    """Optuna's ask/tell: a TPE sampler seeded with the sweep's seed, the median pruner; a
    resumed sweep's study starts from its finished trials."""

    def __init__(self, st: _State) -> None:
        super().__init__(st)
        import logging

        import optuna

        logging.getLogger("optuna").setLevel(logging.WARNING)
        self.optuna = optuna
        self.dists = space.optuna_distributions(self.dims)
        spec = st.spec
        self.study = optuna.create_study(
            direction=spec["direction"],
            # resumed: a seed of its own, or its random start would repeat the first trials
            sampler=optuna.samplers.TPESampler(seed=int(spec["seed"]) + len(st.finished)),
            pruner=optuna.pruners.MedianPruner(),
        )
        key = spec["objective"]
        for r in st.finished.values():
            v = r.metrics.get(key)
            try:
                params = {k: space.optuna_value(d, r.params[k]) for k, d in self.dists.items()}
                self.study.add_trial(
                    optuna.trial.create_trial(
                        params=params,
                        distributions=self.dists,
                        value=None if v is None else float(v),
                        state=optuna.trial.TrialState.COMPLETE
                        if v is not None
                        else optuna.trial.TrialState.FAIL,
                    )
                )
            except (KeyError, ValueError):
                continue
        self.live: dict[int, Any] = {}

    def next_trials(self) -> Iterator[tuple[int, dict[str, str]]]:
        for i in space.iter_indices(int(self.st.spec["trials"]), set(self.st.finished)):
            t = self.study.ask(self.dists)
            self.live[i] = t
            yield i, {k: space.optuna_text(self.dists[k], v) for k, v in t.params.items()}

    def tell(self, res: dict[str, Any]) -> None:
        t = self.live.pop(int(res.get("index", -1)), None)
        if t is None:
            return
        TS = self.optuna.trial.TrialState
        v = (res.get("metrics") or {}).get(self.st.spec["objective"])
        if res.get("pruned"):
            self.study.tell(t, state=TS.PRUNED)
        elif res.get("status") == "FINISHED" and v is not None:
            self.study.tell(t, float(v))
        else:
            self.study.tell(t, state=TS.FAIL)

    def on_report(self, index: int, step: int, value: float) -> bool:
        t = self.live.get(index)
        if t is None:
            return False
        t.report(value, step)
        return bool(t.should_prune())


def _sampler(st: _State) -> _Sampler:
    return _OptunaSampler(st) if st.spec["sampler"] == "optuna" else _Sampler(st)


# ---------------------------------------------------------------------------
# executors
# ---------------------------------------------------------------------------
def _make_executor(opts: SweepOptions, repo: Repo) -> Any:
    jobs = opts.jobs or os.cpu_count() or 1
    if jobs < 1:
        raise UsageError("-j takes a number of parallel trials of at least 1.")
    if opts.executor == "local":
        return LocalExecutor(repo, jobs)
    if opts.executor == "dask":
        from .sweep_dask import DaskExecutor

        return DaskExecutor(repo, jobs, opts.scheduler, opts.remote, opts.quiet)
    raise UsageError(f"Unknown executor {opts.executor!r}; use local or dask.")


def worker_command() -> list[str]:
    """The worker's command: this interpreter, importing this very gitrun."""
    pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from gitrun.workflows.sweep_worker import main; main()"
    )
    return [sys.executable, "-c", code, pkg]


class _Worker:
    def __init__(self, proc: subprocess.Popen[bytes], chan_root: str) -> None:
        self.proc = proc
        self.trial: dict[str, Any] | None = None
        self.ready = False
        self.buf = b""
        self.chan_root = chan_root
        self.report_pos = 0
        self.dead = False


class LocalExecutor:
    """Trials on `jobs` worker processes of this machine, one worktree each."""

    def __init__(self, repo: Repo, jobs: int) -> None:
        self.repo = repo
        self.slots = jobs
        self.workers: list[_Worker] = []
        self.sel = selectors.DefaultSelector()
        self.queue: list[dict[str, Any]] = []
        self.st: _State | None = None
        self.root = worktrees_root(repo)

    def open(self, st: _State, n: int) -> None:
        self.st = st
        remove_stale_worktrees(self.repo)
        token = os.urandom(3).hex()
        os.makedirs(self.root, exist_ok=True)
        for slot in range(max(1, n)):
            name = f"{st.parent.run_id[:8]}-{token}-{slot}"
            path = os.path.join(self.root, name)
            cfg = {
                "repo": self.repo.work_tree,
                "worktree": path,
                "commit": st.commit,
                "lock": path + ".lock",
            }
            proc = subprocess.Popen(
                [*worker_command(), json.dumps(cfg)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.repo.work_tree,
            )
            w = _Worker(proc, path + ".chan")
            self.workers.append(w)
            assert proc.stdout is not None
            self.sel.register(proc.stdout, selectors.EVENT_READ, w)
        self.slots = len(self.workers)

    def free(self) -> bool:
        return any(w.trial is None and not w.dead for w in self.workers)

    def busy(self) -> int:
        return sum(1 for w in self.workers if w.trial is not None)

    def submit(self, trial: dict[str, Any]) -> None:
        w = next(w for w in self.workers if w.trial is None and not w.dead)
        w.trial = trial
        if self.st is not None and self.st.spec.get("sampler") == "optuna":
            from ..tracking import ENV_SWEEP_CHANNEL

            chan = os.path.join(w.chan_root, str(trial["index"]))
            os.makedirs(chan, exist_ok=True)
            trial["env"][ENV_SWEEP_CHANNEL] = chan
            w.report_pos = 0
        assert w.proc.stdin is not None
        try:
            w.proc.stdin.write((json.dumps(trial) + "\n").encode())
            w.proc.stdin.flush()
        except OSError:
            pass  # it died: poll() reports the trial as failed

    def poll(self, timeout: float, on_report: Callable[[int, int, float], bool]) -> list[Any]:
        out: list[Any] = []
        for key, _ in self.sel.select(timeout):
            w: _Worker = key.data
            chunk = os.read(key.fd, 65536)
            if not chunk:
                self.sel.unregister(key.fileobj)
                w.dead = True
                if w.trial is not None:
                    out.append(self._lost(w, "its worker process ended unexpectedly"))
                continue
            w.buf += chunk
            while b"\n" in w.buf:
                line, w.buf = w.buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("ready"):
                    w.ready = True
                elif msg.get("fatal"):
                    w.dead = True
                    err = f"the trial worktree could not be made ({msg['fatal']})"
                    if w.trial is not None:
                        out.append(self._lost(w, err))
                    elif self.st is not None:
                        self.st.errors.append(f"A worker slot stopped: {err}.")
                elif w.trial is not None:
                    msg["params"] = w.trial["params"]
                    msg["pruned"] = self._pruned(w)
                    w.trial = None
                    out.append(msg)
        for w in self.workers:
            if w.trial is not None and tracking.ENV_SWEEP_CHANNEL in w.trial["env"]:
                self._answer_reports(w, on_report)
        if not any(not w.dead for w in self.workers) and self.busy():
            for w in self.workers:
                if w.trial is not None:
                    out.append(self._lost(w, "its worker process ended unexpectedly"))
        return out

    def _lost(self, w: _Worker, why: str) -> dict[str, Any]:
        t = w.trial or {}
        w.trial = None
        return {**result_without_run(t.get("index"), "FAILED", why), "params": t.get("params")}

    def _answer_reports(self, w: _Worker, on_report: Callable[[int, int, float], bool]) -> None:
        from ..tracking import ENV_SWEEP_CHANNEL, SWEEP_ANSWERS, SWEEP_REPORTS

        assert w.trial is not None
        chan = w.trial["env"][ENV_SWEEP_CHANNEL]
        try:
            with open(os.path.join(chan, SWEEP_REPORTS), "rb") as f:
                f.seek(w.report_pos)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        w.report_pos += end
        answers = []
        for line in data[:end].decode().splitlines():
            try:
                s, v = line.split("\t")
                prune = on_report(int(w.trial["index"]), int(s), float(v))
            except ValueError:
                continue
            answers.append(f"{int(s)}\t{'prune' if prune else 'go'}\n")
        if answers:
            with open(os.path.join(chan, SWEEP_ANSWERS), "a", encoding="utf-8") as f:
                f.write("".join(answers))

    def _pruned(self, w: _Worker) -> bool:
        from ..tracking import ENV_SWEEP_CHANNEL, SWEEP_ANSWERS

        chan = (w.trial or {}).get("env", {}).get(ENV_SWEEP_CHANNEL)
        if not chan:
            return False
        try:
            with open(os.path.join(chan, SWEEP_ANSWERS), encoding="utf-8") as f:
                return any(line.endswith("\tprune") for line in f.read().splitlines())
        except FileNotFoundError:
            return False

    def stop(self) -> list[Any]:
        """SIGTERM to every worker (passed on to its trial: recorded KILLED); their results."""
        out: list[Any] = []
        for w in self.workers:
            self._close_stdin(w)
        deadline = time.monotonic() + 30
        last = 0.0
        while self.busy() and time.monotonic() < deadline:
            if time.monotonic() - last > 1.0:  # again: a trial may have started since
                last = time.monotonic()
                for w in self.workers:
                    if w.trial is not None and w.proc.poll() is None:
                        try:
                            os.kill(w.proc.pid, signal.SIGTERM)
                        except OSError:
                            pass
            out.extend(self.poll(0.1, lambda *a: True))
        if self.busy():
            self.kill()
            out.extend(self.poll(1.0, lambda *a: True))
        return out

    def kill(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                try:
                    os.killpg(w.proc.pid, signal.SIGKILL)
                except OSError:
                    pass

    def _close_stdin(self, w: _Worker) -> None:
        try:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        except OSError:
            pass

    def close(self) -> None:
        for w in self.workers:
            self._close_stdin(w)
        for w in self.workers:
            try:
                w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            if w.proc.stdout is not None:
                w.proc.stdout.close()
        self.sel.close()
        import shutil

        for w in self.workers:
            shutil.rmtree(w.chan_root, ignore_errors=True)


# ---------------------------------------------------------------------------
# leftover worktrees
# ---------------------------------------------------------------------------
def _locks(repo: Repo, prefix: str = "") -> list[str]:
    root = worktrees_root(repo)
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return [os.path.join(root, n) for n in names if n.endswith(".lock") and n.startswith(prefix)]


def remove_stale_worktrees(repo: Repo) -> int:
    """Worktrees whose worker is gone (killed with -9, say): removed, with git's admin data."""
    from .sweep_worker import remove_worktree

    removed = 0
    root = worktrees_root(repo)
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    for n in names:
        if n.endswith((".lock", ".chan")) or n.startswith("."):
            continue
        path = os.path.join(root, n)
        fd = _try_lock(path + ".lock")
        if fd is None:
            continue  # in use
        try:
            remove_worktree(repo, path)
            import shutil

            shutil.rmtree(path + ".chan", ignore_errors=True)
            os.unlink(path + ".lock")
            removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _try_lock(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def wait_for_workers(repo: Repo, sweep_id: str, quiet: bool, out: IO[str] | None = None) -> None:
    """Block until the worker processes of an earlier driver of this sweep are done."""
    locks = _locks(repo, sweep_id[:8])
    said = False
    for path in locks:
        if not os.path.exists(path):
            continue
        fd = _try_lock(path)
        if fd is None:
            if not quiet and not said:
                print(
                    f"gitrun: waiting for the trials of sweep {sweep_id[:8]} that an earlier "
                    "gitrun sweep started and are still running...",
                    file=out or sys.stderr,
                )
                said = True
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.close(fd)
    remove_stale_worktrees(repo)
