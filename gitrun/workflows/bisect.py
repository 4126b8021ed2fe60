"""`gitrun bisect`: which code commit made a metric stop holding.

    gitrun bisect --good <run|commit> --bad <run|commit> --metric "metrics.f1 >= 0.95" [-- CMD]

`git bisect` runs in a temporary linked worktree under `.git/gitrun/bisect/<session>`; a
linked worktree has its own HEAD, index and bisect state (`refs/bisect/*` and BISECT_* are
per-worktree in git), so the user's HEAD, branch, index, work tree and any bisect they
have going are untouched.  At each commit git picks, the command runs there under
`gitrun record` (the same machinery as `gitrun record` and `gitrun rerun`), tagged
`gitrun.bisect=<session>`, and the run is judged by the predicate, written in the search
grammar: it holds -> `git bisect good`, it does not -> `git bisect bad`; a command that
fails, or a run that lacks a metric the predicate names -> `git bisect skip`.

The command defaults to the bad run's recorded command and `gitrun record` options (as
`gitrun rerun` repeats them).  With `reuse`, a commit that already has a finished run of the
same command (clean code, same experiment) is judged from that run instead of rerunning.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .._git import Repo
from ..errors import GitError, GitrunError, InvalidInputError, UsageError
from ..format import store
from ..format.entities import RunRecord
from ..format.layout import bisect_dir
from ..query import filter as F
from ..query import resolve as runs
from ..query.index import search
from . import checkout
from . import rerun as rerun_mod

BISECT_TAG = "gitrun.bisect"
GOOD, BAD, SKIP = "good", "bad", "skip"


@dataclass
class Step:
    """One commit bisect tried."""

    commit: str
    verdict: str  # good, bad or skip
    run_id: str | None  # the run that judged it (None when the command could not start)
    reused: bool = False
    why: str = ""  # for skips: what made the commit untestable
    values: dict[str, float] = field(default_factory=dict)  # the metrics the predicate names


@dataclass
class BisectResult:
    session: str
    good: str
    bad: str
    predicate: str
    command: list[str]
    steps: list[Step] = field(default_factory=list)
    first_bad: str | None = None
    candidates: list[str] = field(default_factory=list)  # when skips left several
    subject: str = ""  # first bad commit's subject line
    stat: str = ""  # its `git show --stat`

    def as_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "good": self.good,
            "bad": self.bad,
            "predicate": self.predicate,
            "command": self.command,
            "first_bad_commit": self.first_bad,
            "candidates": self.candidates,
            "subject": self.subject,
            "stat": self.stat,
            "steps": [
                {
                    "commit": s.commit,
                    "verdict": s.verdict,
                    "run_id": s.run_id,
                    "reused": s.reused,
                    "why": s.why,
                    "values": s.values,
                }
                for s in self.steps
            ],
        }


class _Data:
    """The bad run's stored inputs (-i PATH --store): put back at every step, so that data
    git ignores (and so no worktree has) is there, as `gitrun rerun` does."""

    def __init__(self, run: RunRecord | None) -> None:
        self.run = run
        self.stored = sorted(store.stored_copies(run)) if run is not None else []


@dataclass
class _End:
    """A side of the bisect: a commit, and the run it came from (if a run was named)."""

    commit: str
    run: RunRecord | None


def _side(repo: Repo, ref: str, which: str) -> _End:
    """A run reference (id, prefix, name) or a commit-ish -> the code commit."""
    if not ref or not ref.strip():
        raise UsageError(f"--{which} is empty; give a run (id, prefix or name) or a commit.")
    rec = None
    try:
        rec = runs.load(repo, ref, history=False)
    except GitrunError:
        rec = None
    if rec is not None:
        head = (rec.code or {}).get("head")
        if not head:
            raise GitrunError(
                f"Run {rec.run_id[:8]} (--{which}) has no code commit to bisect from; give "
                "a commit instead."
            )
        if not repo.has_object(head):
            raise GitrunError(
                f"The code commit {head[:12]} of run {rec.run_id[:8]} (--{which}) is not in "
                "this repository; fetch it and try again."
            )
        return _End(head, rec)
    if ref.startswith("-"):
        raise UsageError(f"--{which} {ref!r} is neither a run nor a commit.")
    proc = repo.git(
        "rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}", check=False
    )
    if proc.returncode != 0:
        raise InvalidInputError(
            f"--{which} {ref!r} is neither a run (id, prefix or name) nor a commit of this "
            "repository; `gitrun ls` lists runs, `git log` commits."
        )
    return _End(proc.stdout.decode().strip(), None)


def metric_keys(node: Any) -> list[str]:
    """The metrics a predicate names (a run lacking one cannot be judged)."""
    return sorted({i.key for i in F.idents(node) if i.kind == F.METRIC})


def judge(repo: Repo, rec: RunRecord, predicate: str) -> tuple[str, str, dict[str, float]]:
    """(verdict, why, the metric values) of one run against the predicate."""
    node = F.parse_filter(predicate)
    keys = metric_keys(node)
    values = {k: rec.metrics[k] for k in keys if k in rec.metrics}
    if rec.status != "FINISHED":
        return SKIP, f"the command ended {rec.status} (exit code {rec.exit_code})", values
    missing = [k for k in keys if k not in rec.metrics]
    if missing:
        return SKIP, "the run logged no " + ", ".join(f"metrics.{k}" for k in missing), values
    if not store.is_run_id(rec.run_id):  # the id goes into the filter below
        raise GitrunError(f"Run id {rec.run_id!r} is malformed.")
    matched = search(
        repo,
        f"({predicate}) and attributes.run_id = '{rec.run_id}'",
        experiments=None,
        lifecycles=None,
        max_results=1,
    )
    return (GOOD if matched else BAD), "", values


def _check_predicate(predicate: str) -> None:
    if not predicate or not predicate.strip():
        raise UsageError('--metric is empty; give a predicate, e.g. --metric "metrics.f1 >= 0.95".')
    node = F.parse_filter(predicate)  # FilterError: one sentence naming the token
    if not metric_keys(node):
        raise UsageError(
            f"--metric {predicate!r} names no metric; bisect judges runs by their metrics, "
            'e.g. --metric "metrics.f1 >= 0.95".'
        )


def _is_ancestor(repo: Repo, a: str, b: str) -> bool:
    return repo.git("merge-base", "--is-ancestor", a, b, check=False).returncode == 0


def _reusable(
    repo: Repo, commit: str, command: list[str], experiment: str | None
) -> RunRecord | None:
    """The newest finished-or-failed run of this command on exactly this (clean) commit."""
    if not re.fullmatch(r"[0-9a-f]{40,64}", commit):  # it goes into the filter below
        raise GitError(f"git gave a malformed commit id {commit!r}.")
    rows = search(
        repo,
        f"tags.`mlflow.source.git.commit` = '{commit}'",
        order_by=["attributes.start_time DESC"],
        experiments=[experiment] if experiment else None,
        lifecycles=None,
    )
    for row in rows:
        if row.status not in ("FINISHED", "FAILED"):
            continue
        rec = runs.load(repo, row.run_id, history=False)
        code = rec.code or {}
        if code.get("head") == commit and not code.get("dirty") and rec.command == command:
            return rec
    return None


def bisect(
    repo: Repo,
    good: str,
    bad: str,
    predicate: str,
    command: list[str] | None = None,
    experiment: str | None = None,
    reuse: bool = False,
    quiet: bool = False,
    on_step: Callable[[Step, int], None] | None = None,
) -> BisectResult:
    """Find the first commit between good and bad where the predicate stops holding."""
    _check_predicate(predicate)
    if not repo.work_tree:
        raise GitrunError("gitrun bisect needs a repository with a work tree.")
    g, b = _side(repo, good, "good"), _side(repo, bad, "bad")
    options: dict[str, Any] = {}
    if not command:
        if b.run is None or not b.run.command:
            raise UsageError(
                "Give the command to run after `--` (e.g. `-- python train.py`), or a --bad "
                "run recorded with `gitrun record`, whose command is used."
            )
        command = list(b.run.command)
        options, _notes = rerun_mod.record_options(b.run)
    if experiment is None:
        known = b.run or g.run
        experiment = known.experiment if known is not None else None
    for end, want in ((g, GOOD), (b, BAD)):
        if end.run is not None:
            verdict, why, _ = judge(repo, end.run, predicate)
            if verdict != want:
                shown = "does not hold" if want == GOOD else "holds"
                raise InvalidInputError(
                    f"The predicate {predicate!r} {shown} for the {want} run "
                    f"{end.run.run_id[:8]}"
                    + (f" ({why})" if why else "")
                    + "; bisect needs it to hold for --good and fail for --bad."
                )
    if g.commit == b.commit:
        raise InvalidInputError(
            f"--good and --bad are the same commit ({g.commit[:12]}); there is nothing to bisect."
        )
    if not _is_ancestor(repo, g.commit, b.commit):
        raise InvalidInputError(
            f"The good commit {g.commit[:12]} is not an ancestor of the bad commit "
            f"{b.commit[:12]}; give a --good older than --bad on the same history."
        )
    session = uuid.uuid4().hex[:12]
    result = BisectResult(session, g.commit, b.commit, predicate, list(command))
    base = checkout.base_dir(b.run) if b.run is not None else []
    root = os.path.join(bisect_dir(repo), session)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    checkout.add_worktree(repo, "--detach", root, b.commit)
    data = _Data(b.run)
    try:
        _loop(repo, root, base, result, options, experiment, reuse, quiet, on_step, data)
    finally:
        _git_in(root, "bisect", "reset")
        checkout.remove_worktree(repo, root)
        shutil.rmtree(root, ignore_errors=True)
    if result.first_bad:
        show = repo.git("show", "--no-color", "--stat", "--format=%s", result.first_bad)
        lines = show.stdout.decode(errors="replace").splitlines()
        result.subject = lines[0] if lines else ""
        result.stat = "\n".join(line for line in lines[1:] if line.strip())
    return result


def _git_in(root: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)
    return subprocess.run(
        ["git", "-C", root, *args], capture_output=True, env=env, stdin=subprocess.DEVNULL
    )


_FIRST_BAD = re.compile(rb"^([0-9a-f]{40,64}) is the first bad commit", re.M)
_ONLY_SKIPPED = b"There are only 'skip'ped commits left to test"


def _done(out: bytes, result: BisectResult) -> bool:
    m = _FIRST_BAD.search(out)
    if m:
        result.first_bad = m.group(1).decode()
        return True
    if _ONLY_SKIPPED in out:
        result.candidates = [
            line.strip()
            for line in out.decode(errors="replace").splitlines()
            if re.fullmatch(r"[0-9a-f]{40,64}", line.strip())
        ]
        return True
    return False


def _loop(
    repo: Repo,
    root: str,
    base: list[str],
    result: BisectResult,
    options: dict[str, Any],
    experiment: str | None,
    reuse: bool,
    quiet: bool,
    on_step: Callable[[Step, int], None] | None,
    data: _Data,
) -> None:
    start = _git_in(root, "bisect", "start", result.bad, result.good, "--")
    if start.returncode != 0:
        raise GitError("git bisect start failed: " + start.stderr.decode(errors="replace").strip())
    out = start.stdout
    n = 0
    while not _done(out, result):
        commit = _git_in(root, "rev-parse", "HEAD").stdout.decode().strip()
        n += 1
        step = _try(repo, root, base, commit, result, options, experiment, reuse, quiet, data)
        result.steps.append(step)
        if on_step:
            on_step(step, n)
        # What the command wrote must not block git's checkout of the next commit.
        _git_in(root, "reset", "--hard", "-q")
        _git_in(root, "clean", "-fdxq")
        proc = _git_in(root, "bisect", step.verdict)
        if proc.returncode != 0 and not _done(proc.stdout, result):
            raise GitError(
                f"git bisect {step.verdict} failed: "
                + (proc.stderr or proc.stdout).decode(errors="replace").strip()
            )
        out = proc.stdout


def _try(
    repo: Repo,
    root: str,
    base: list[str],
    commit: str,
    result: BisectResult,
    options: dict[str, Any],
    experiment: str | None,
    reuse: bool,
    quiet: bool,
    data: _Data,
) -> Step:
    if reuse:
        old = _reusable(repo, commit, result.command, experiment)
        if old is not None:
            verdict, why, values = judge(repo, old, result.predicate)
            return Step(commit, verdict, old.run_id, True, why, values)
    from .record import record

    where = os.path.join(root, *base)
    if not os.path.isdir(where):
        return Step(commit, SKIP, None, why=f"the directory {'/'.join(base)} is not in this commit")
    if data.stored and data.run is not None:  # the bad run's data, kept (-i PATH --store)
        try:
            checkout.restore_inputs(repo, data.run, root, data.stored)
        except GitrunError as e:
            return Step(commit, SKIP, None, why=f"its stored inputs cannot go back: {e.message}")
    # the bad run's `gitrun record` options (-p, -i, -a, --autolog, ...), as rerun repeats them
    opts = rerun_mod.repeat_options(
        options,
        list(result.command),
        where,
        name=None,
        experiment=experiment,
        tags={BISECT_TAG: result.session},
        quiet=quiet,
    )
    try:
        _code, new = record(opts)
    except GitrunError as e:  # e.g. a params file this commit does not have
        return Step(commit, SKIP, None, why=e.message)
    if new is None:
        return Step(commit, SKIP, None, why="the run was not recorded")
    rec = runs.load(repo, new.run_id, history=False)
    verdict, why, values = judge(repo, rec, result.predicate)
    return Step(commit, verdict, rec.run_id, False, why, values)
