"""`gitrun rerun RUN`: re-execute a recorded run on its exact code and compare the results.

By default the run's code commit is checked out in a temporary `git worktree` (removed
afterwards unless `keep`); `in_place` runs in the current work tree, which must already
hold the run's code (after `gitrun checkout RUN`).  The command runs in the recorded
directory under `gitrun.record.record`, so the rerun is itself a run — recorded on the
same refs/gitrun/runs (a worktree shares the repository's refs and objects), named
`<name>-rerun` (`-rerun-2`, ... when taken), in the same experiment, tagged
`gitrun.rerun_of=<original id>`.

What is repeated: the recorded argv, in the recorded working directory, with what was
given to the original `gitrun record` (`-p` params, `--params-file`, `--metrics-file`,
`-a` artifacts; tag `gitrun.record.options`), while `params.yaml` and `.gitrun.yaml`
come back with the code.  The run's artifacts are *not* restored before a rerun in a
temporary worktree: the rerun has to produce them itself, otherwise comparing their
hashes would compare the restored copy with itself.  Stored copies of inputs (`-i PATH
--store`) are restored, since they are what the run read: an input that changed on disk
since (or that git ignores, so the worktree lacks it) is then read as the run read it.

Then every final metric (|rerun - original| <= atol + rtol * |original|; NaN equals NaN;
missing on one side is a difference), every artifact's sha256 and the exit code are
compared.  `RerunResult.reproduced` is the verdict; the CLI exits 1 when it is False.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .._git import Repo
from ..capture import envinfo
from ..errors import DirtyWorkTreeError, GitError, GitrunError
from ..format.entities import RunRecord
from ..format.layout import cache_dir
from ..format.store import is_stored_input, stored_copies
from ..query import resolve as runs
from . import checkout

RERUN_TAG = "gitrun.rerun_of"
CHANGED_INPUTS_TAG = "gitrun.rerun.changed_inputs"  # --allow-changed-inputs: what changed
RECORD_OPTIONS_TAG = "gitrun.record.options"  # written by gitrun.record


@dataclass
class Comparison:
    """One line of the comparison table."""

    kind: str  # "metric", "artifact" or "exit code"
    name: str
    original: Any
    rerun: Any
    delta: float | None
    ok: bool
    note: str = ""

    @property
    def label(self) -> str:
        return self.name if self.kind == "metric" else f"{self.kind} {self.name}".strip()

    def why(self) -> str:
        if self.note:
            return f"{self.label} ({self.note})"
        if self.original is None:
            return f"{self.label} (only in the rerun)"
        if self.rerun is None:
            return f"{self.label} (missing from the rerun)"
        return f"{self.label} ({show_value(self.original)} vs {show_value(self.rerun)})"


@dataclass
class RerunResult:
    original: RunRecord
    rerun: RunRecord | None  # None with env_diff_only
    rows: list[Comparison] = field(default_factory=list)
    env_differences: list[str] = field(default_factory=list)  # recorded env vs this one
    rerun_env_differences: list[str] = field(default_factory=list)  # vs the rerun's own
    notes: list[str] = field(default_factory=list)
    rtol: float = 0.0
    atol: float = 0.0
    worktree: str | None = None  # kept with keep=True

    @property
    def reproduced(self) -> bool:
        if self.rerun is None:  # env_diff_only: "reproduced" means "same environment"
            return not self.env_differences
        return all(r.ok for r in self.rows)

    def differences(self) -> list[str]:
        if self.rerun is None:
            return list(self.env_differences)
        return [r.why() for r in self.rows if not r.ok]

    def verdict(self) -> str:
        o = self.original.run_id[:8]
        if self.rerun is None:
            if not self.env_differences:
                return f"The environment matches the one run {o} recorded."
            return f"The environment differs from run {o}'s in {len(self.env_differences)} way(s)."
        n = self.rerun.run_id[:8]
        if self.reproduced:
            counts = {k: sum(1 for r in self.rows if r.kind == k) for k in ("metric", "artifact")}
            return (
                f"Reproduced: rerun {n} matches run {o} ({counts['metric']} metric(s), "
                f"{counts['artifact']} artifact(s), exit code) within rtol={self.rtol:g}, "
                f"atol={self.atol:g}."
            )
        return (
            f"Not reproduced: rerun {n} differs from run {o} in "
            + "; ".join(self.differences())
            + f" (rtol={self.rtol:g}, atol={self.atol:g})."
        )


def show_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.10g}"
    return str(v)


def close(rerun: float, original: float, rtol: float, atol: float) -> bool:
    """|rerun - original| <= atol + rtol * |original|; NaN equals NaN, inf equals inf."""
    if math.isnan(rerun) or math.isnan(original):
        return math.isnan(rerun) and math.isnan(original)
    if rerun == original:
        return True
    if math.isinf(rerun) or math.isinf(original):
        return False
    return abs(rerun - original) <= atol + rtol * abs(original)


def compare(
    original: RunRecord, new: RunRecord, rtol: float = 0.0, atol: float = 0.0
) -> list[Comparison]:
    rows = []
    for key in sorted(set(original.metrics) | set(new.metrics)):
        a, b = original.metrics.get(key), new.metrics.get(key)
        if a is None or b is None:
            rows.append(Comparison("metric", key, a, b, None, False))
            continue
        delta = None if math.isnan(a) or math.isnan(b) or a == b else b - a
        rows.append(Comparison("metric", key, a, b, delta, close(b, a, rtol, atol)))
    for path in sorted(set(original.artifacts) | set(new.artifacts)):
        if is_stored_input(path):
            continue  # a copy of an input, not a result: inputs are compared by digest
        oa, na = original.artifacts.get(path), new.artifacts.get(path)
        o = oa.sha256[:12] if oa else None
        n = na.sha256[:12] if na else None
        ok = bool(oa and na and oa.sha256 == na.sha256)
        note = "" if ok or not (oa and na) else "sha256 differs"
        rows.append(Comparison("artifact", path, o, n, None, ok, note))
    rows.append(
        Comparison(
            "exit code",
            "",
            original.exit_code,
            new.exit_code,
            None,
            original.exit_code == new.exit_code,
        )
    )
    return rows


def environment_differences(repo: Repo, rec: RunRecord) -> list[str]:
    if not rec.env:
        return []
    current = envinfo.capture(cache_dir(repo))
    return envinfo.differences(rec.env, current)


def record_options(rec: RunRecord) -> tuple[dict[str, Any], list[str]]:
    """What the original `gitrun record` was given on its command line (and notes)."""
    import json

    raw = rec.tags.get(RECORD_OPTIONS_TAG)
    if raw is None:
        return {}, []
    try:
        opts = json.loads(raw)
        assert isinstance(opts, dict)
    except (ValueError, AssertionError):
        return {}, [f"tag {RECORD_OPTIONS_TAG} is malformed; rerunning without its options"]
    out: dict[str, Any] = {
        "params": {str(k): str(v) for k, v in (opts.get("params") or {}).items()},
        "params_file": opts.get("params_file") or None,
        "metrics_file": opts.get("metrics_file") or None,
        "artifacts": [str(a) for a in opts.get("artifacts") or []],
        "inputs": [str(a) for a in opts.get("inputs") or []],
        "autolog": opts.get("autolog") is True,
        "store_inputs": opts.get("store_inputs") is True,
    }
    return out, []


def repeat_options(
    options: dict[str, Any],
    command: list[str],
    where: str,
    name: str | None,
    experiment: str | None,
    tags: dict[str, str],
    quiet: bool,
) -> Any:
    """RecordOptions that repeat a run's `gitrun record` options (record_options) in the
    directory `where` of a worktree, as rerun and bisect run it again."""
    from .record import RecordOptions

    # -i again, for the inputs the directory has (ignored data is not in a worktree)
    inputs = [p for p in options.get("inputs") or [] if os.path.exists(os.path.join(where, p))]
    return RecordOptions(
        command=command,
        name=name,
        experiment=experiment,
        params=dict(options.get("params") or {}),
        tags=tags,
        inputs=inputs,
        artifacts=list(options.get("artifacts") or []),
        params_file=options.get("params_file"),
        metrics_file=options.get("metrics_file"),
        quiet=quiet,
        cwd=where,
        autolog=bool(options.get("autolog")),
        store_inputs=bool(options.get("store_inputs")) and bool(inputs),
    )


def changed_input_paths(repo: Repo, rec: RunRecord) -> dict[str, str]:
    """input path -> a phrase, for each file/directory input whose content is not the one
    the run read."""
    if not rec.inputs:
        return {}
    from ..capture import inputs

    out = {}
    for path, (state, digest) in inputs.current(repo, list(rec.inputs.values())).items():
        if state != "same":
            old = rec.inputs[path].digest
            out[path] = f"{path} (recorded {_short(old)}, now {_short(digest) or 'missing'})"
    return out


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else ""


def rerun(
    repo: Repo,
    run_ref: str,
    rtol: float = 0.0,
    atol: float = 0.0,
    in_place: bool = False,
    keep: bool = False,
    env_diff_only: bool = False,
    quiet: bool = False,
    allow_changed_inputs: bool = False,
) -> RerunResult:
    """Re-execute a run's command on its code and compare; see the module docstring."""
    if rtol < 0 or atol < 0:
        raise GitrunError("--rtol and --atol must be zero or positive.")
    rec = runs.load(repo, run_ref, history=False)
    env_diffs = environment_differences(repo, rec)
    result = RerunResult(rec, None, env_differences=env_diffs, rtol=rtol, atol=atol)
    if env_diff_only:
        if not rec.env:
            result.notes.append(f"run {rec.run_id[:8]} recorded no environment")
        return result
    if not rec.command:
        raise GitrunError(
            f"Run {rec.run_id[:8]} ({rec.run_name}) was recorded through the tracking API, "
            "not `gitrun record`, so it has no command to rerun; `gitrun checkout "
            f"{rec.run_id[:8]}` still restores its code and artifacts."
        )
    if rec.status == "RUNNING":
        raise GitrunError(f"Run {rec.run_id[:8]} is still running; rerun it once it has finished.")
    # Inputs the run kept a copy of (--store) are put back in the rerun's worktree, so
    # their content now does not matter there; in place, the work tree is used as it is.
    copies = sorted(stored_copies(rec))
    stored = [] if in_place else copies
    changed_at = changed_input_paths(repo, rec)
    restored = [changed_at.pop(p) for p in stored if p in changed_at]
    changed = list(changed_at.values())
    if changed and not allow_changed_inputs:
        kept = [p for p in changed_at if p in copies]
        raise GitrunError(
            f"Run {rec.run_id[:8]} read data whose content changed since: "
            + "; ".join(changed)
            + ", so a rerun would not reproduce it; restore the data, or pass "
            "--allow-changed-inputs to rerun on the data as it is now"
            + (
                f" (the run keeps a copy of {', '.join(kept)}: without --in-place the rerun "
                "runs on that copy)."
                if kept
                else "."
            )
        )
    commit = checkout.code_commit(rec, repo)
    base = checkout.base_dir(rec)
    options, notes = record_options(rec)
    if restored:
        result.notes.append(
            "restored the run's stored copy of inputs changed since: " + "; ".join(restored)
        )
    if changed:
        options["changed_inputs"] = "; ".join(changed)
        result.notes.append("inputs changed since the run: " + "; ".join(changed))
    result.notes += notes
    if RECORD_OPTIONS_TAG not in rec.tags and (rec.artifacts or rec.params):
        result.notes.append(
            "the original run does not say which -p/-a/--metrics-file options `gitrun record` "
            "was given (recorded by an older gitrun); only params.yaml and .gitrun.yaml, "
            "which come with the code, apply to the rerun"
        )
    for big in checkout.large_artifact_warnings(rec):
        result.notes.append(f"not in the code snapshot (too large when recorded): {big}")
    if env_diffs and not quiet:
        print(
            f"gitrun: warning: the environment differs from the one run {rec.run_id[:8]} "
            "recorded:\n" + "\n".join(f"  {d}" for d in env_diffs),
            file=sys.stderr,
        )
    if in_place:
        root = _check_in_place(repo, rec, commit)
        before = _stats(root, base, rec)
        new = _record_in(repo, root, base, rec, options, quiet)
        stale = [p for p, s in before.items() if p in new.artifacts and _stat(root, base, p) == s]
    else:
        tmp = tempfile.mkdtemp(prefix="gitrun-rerun-")
        root = os.path.join(tmp, f"rerun-{rec.run_id[:8]}")
        try:
            checkout.add_worktree(repo, "--detach", root, commit)
        except GitError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            if stored:
                checkout.restore_inputs(repo, rec, root, stored)
            new = _record_in(repo, root, base, rec, options, quiet)
        finally:
            if keep:
                result.worktree = root
            else:
                checkout.remove_worktree(repo, root)
                shutil.rmtree(tmp, ignore_errors=True)
        stale = []
    result.rerun = new
    result.rows = compare(rec, new, rtol, atol)
    _same_model_metadata(repo, rec, new, result.rows)
    for row in result.rows:
        if row.kind == "artifact" and row.name in stale:
            row.ok = False
            row.note = "not rewritten by the rerun: it is the copy gitrun checkout restored"
    if new.env and rec.env:
        result.rerun_env_differences = [
            d for d in envinfo.differences(rec.env, new.env) if d not in env_diffs
        ]
    if keep and result.worktree:
        result.notes.append(
            f"kept the worktree {result.worktree}; remove it with "
            f"`git worktree remove --force {result.worktree}`"
        )
    return result


# What MLflow's MLmodel file says about *this* logging of a model rather than the model:
# a rerun logs the same model under a new run id, uuid and time.
MLMODEL_VOLATILE = ("run_id", "model_uuid", "utc_time_created", "model_id", "mlflow_version")


def _same_model_metadata(repo: Repo, a: RunRecord, b: RunRecord, rows: list[Comparison]) -> None:
    """An MLmodel file that differs only in MLMODEL_VOLATILE is the same model."""
    from ..format import store, yamlio

    def meta(rec: RunRecord, path: str) -> Any:
        blobs = store.artifact_blobs(repo, rec.tree) if rec.tree else {}
        if path not in blobs:
            return None
        try:
            data = yamlio.load(repo.read_object(blobs[path][1])[1])
        except Exception:  # noqa: BLE001 - unreadable: leave the row as it is
            return None
        if not isinstance(data, dict):
            return None
        return {k: v for k, v in data.items() if k not in MLMODEL_VOLATILE}

    for row in rows:
        if row.kind != "artifact" or row.ok or row.name.rsplit("/", 1)[-1] != "MLmodel":
            continue
        if row.original is None or row.rerun is None:
            continue
        ma, mb = meta(a, row.name), meta(b, row.name)
        if ma is not None and ma == mb:
            row.ok = True
            row.note = "same model; only its run id, uuid and creation time differ"


def _check_in_place(repo: Repo, rec: RunRecord, commit: str) -> str:
    if not repo.work_tree:
        raise GitrunError("This repository has no work tree; drop --in-place.")
    st = repo.status()
    short = rec.run_id[:8]
    if st.head != commit and (
        not st.head or repo.read_commit(st.head)[0] != repo.read_commit(commit)[0]
    ):
        raise GitrunError(
            f"The work tree is at {str(st.head)[:12]}, not at the code of run {short} "
            f"({commit[:12]}); run `gitrun checkout {short}` first, or drop --in-place to "
            "rerun in a temporary worktree."
        )
    dirty = checkout.dirty_paths(repo, rec)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise DirtyWorkTreeError(
            f"The work tree has changes that are not the code of run {short} ({shown}); "
            "commit or stash them, or drop --in-place to rerun in a temporary worktree."
        )
    return repo.work_tree


def _stat(root: str, base: list[str], path: str) -> tuple[int, int, int] | None:
    try:
        s = os.lstat(os.path.join(root, *base, *path.split("/")))
    except OSError:
        return None
    return (s.st_ino, s.st_mtime_ns, s.st_size)


def _stats(root: str, base: list[str], rec: RunRecord) -> dict[str, tuple[int, int, int]]:
    out = {}
    for path in rec.artifacts:
        s = _stat(root, base, path)
        if s is not None:
            out[path] = s
    return out


def _rerun_name(repo: Repo, name: str) -> str:
    """`<name>-rerun`, then `-rerun-2`, ...: each rerun gets a name of its own, so it can be
    shown by name."""
    from ..query.index import run_names

    taken = set(run_names(repo).values())
    candidate, n = f"{name}-rerun", 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-rerun-{n}"
    return candidate


def _record_in(
    repo: Repo, root: str, base: list[str], rec: RunRecord, options: dict[str, Any], quiet: bool
) -> RunRecord:
    from .record import record

    assert rec.command
    where = os.path.join(root, *base)
    if not os.path.isdir(where):
        raise GitrunError(
            f"The directory the run ran in ({rec.cwd}) is not in its code; it cannot be rerun."
        )
    tags = {RERUN_TAG: rec.run_id}
    if options.get("changed_inputs"):
        tags[CHANGED_INPUTS_TAG] = options["changed_inputs"]
    opts = repeat_options(
        options,
        list(rec.command),
        where,
        name=_rerun_name(repo, rec.run_name) if rec.run_name else None,
        experiment=rec.experiment,
        tags=tags,
        quiet=quiet,
    )
    _code, new = record(opts)
    if new is None:
        raise GitrunError(f"The rerun of run {rec.run_id[:8]} was not recorded.")
    # Read it back as committed (with the training process's environment).
    return runs.load(repo, new.run_id, history=False)
