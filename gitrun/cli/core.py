"""record, ls, show, demo."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import cli
from .common import (
    check_experiment_names,
    check_nonempty_experiments,
    command_after_options,
    format_option,
    index_progress,
    key_values,
    max_results_option,
    parent_filter,
    parent_option,
    quiet_option,
    repo,
)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-n", "--name", help="Run name (default: generated).")
@click.option("-e", "--experiment", help="Experiment name (default: Default).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Log a param.")
@click.option("-t", "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Set a tag.")
@click.option(
    "-a",
    "--artifact",
    "artifacts",
    multiple=True,
    metavar="PATH",
    help="File or directory to keep as an artifact after the command ends.",
)
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    metavar="PATH",
    help="File or directory the command reads: hashed (not copied) before it runs.",
)
@click.option(
    "--store",
    "store_inputs",
    is_flag=True,
    help="Also keep a copy of each -i input with the run (restored by checkout and rerun).",
)
@click.option(
    "--params-file",
    metavar="FILE",
    help="YAML/JSON file logged as flat params (default: params.yaml when present).",
)
@click.option(
    "--metrics-file",
    metavar="FILE",
    help="JSON/YAML file the command writes; read as final metrics.",
)
@click.option(
    "--max-artifact-files",
    type=click.IntRange(min=0),
    metavar="N",
    help="At most N files per -a directory (default 10000; 0: no limit).",
)
@click.option(
    "--max-artifact-size",
    metavar="SIZE",
    help="At most SIZE bytes per -a directory, e.g. 5GB (default 2GB; 0: no limit).",
)
@click.option(
    "--autolog",
    is_flag=True,
    help="Autolog the ML frameworks a Python command imports (as GITRUN_AUTOLOG=1 does).",
)
@quiet_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def record(
    name,
    experiment,
    params,
    tags,
    artifacts,
    inputs,
    store_inputs,
    params_file,
    metrics_file,
    max_artifact_files,
    max_artifact_size,
    autolog,
    quiet,
    command,
):
    """Run COMMAND as a recorded run and exit with its exit code.

    Output streams to the terminal and is kept as the run's output.log; the
    command's own gitrun.log_* calls attach to this run.

    -a paths must lie inside the repository and the current directory (checked
    before the command runs); symlinks leading out of them are not followed,
    special files are skipped. What cannot be collected afterwards (artifacts,
    metrics file) is named on stderr and in the tag gitrun.problems: the run
    keeps the command's status and exit code, and gitrun exits 1 instead of 0.

    \b
    Example:
      gitrun record -n rf-baseline -e churn -p seed=1 -- python train.py --depth 8
      gitrun record -a models --max-artifact-files 50000 -- python train.py
      gitrun record -i data/train.csv -i data/images/ -- python train.py
      gitrun record -i data/train.csv --store -- python train.py
      gitrun record --autolog -- python train_xgboost.py
    """
    from ..workflows.record import RecordOptions
    from ..workflows.record import record as do_record

    opts = RecordOptions(
        command=command_after_options(command),
        name=name,
        experiment=experiment,
        params=key_values(params, "Param", "-p"),
        tags=key_values(tags, "Tag", "-t"),
        artifacts=list(artifacts),
        inputs=list(inputs),
        store_inputs=store_inputs,
        params_file=params_file,
        metrics_file=metrics_file,
        quiet=quiet,
        max_artifact_files=max_artifact_files,
        max_artifact_size=max_artifact_size,
        autolog=autolog,
    )
    code, _rec = do_record(opts)
    sys.exit(code)


def _ls_rows(recs, metric_cols):
    from .render import fmt_duration, fmt_time

    rows = []
    for r in recs:
        rows.append(
            [
                r.run_id[:8],
                r.run_name,
                r.experiment,
                r.status,
                fmt_time(r.start_time),
                fmt_duration(r.start_time, r.end_time),
            ]
            + [r.metrics.get(m) for m in metric_cols]
        )
    return rows


@cli.command(name="ls")
@click.option("-e", "--experiment", "experiments", multiple=True, help="Only these experiments.")
@max_results_option("-n", "--max-results", default=20, zero_means_all=True)
@click.option("--all", "show_all", is_flag=True, help="Show every run.")
@parent_option
@format_option()
@quiet_option
def ls_cmd(experiments, max_results, show_all, parent, fmt, quiet):
    """List recent runs, newest first (runs in progress show as RUNNING); in the table a
    parent's child runs (a sweep's trials, nested runs) are indented under it.

    \b
    Example:
      gitrun ls -e churn -n 50
      gitrun ls --parent my-sweep -n 0
    """
    from ..query import api

    check_nonempty_experiments(experiments)
    progress = index_progress(quiet)
    r = repo()
    check_experiment_names(r, experiments, progress)
    limit = None if show_all or max_results == 0 else max_results
    if parent is not None:
        from ..query.index import search

        rows = search(
            r,
            parent_filter(r, parent),
            experiments=list(experiments) or None,
            lifecycles=None,
            max_results=limit,
            progress=progress,
        )
        recs = [x.to_record() for x in rows]
    else:
        recs = api.list_runs(
            r, experiments=list(experiments) or None, max_results=limit, progress=progress
        )
    metric_cols: list[str] = []
    for rec in recs:
        for k in rec.metrics:
            if k not in metric_cols:
                metric_cols.append(k)
    metric_cols = metric_cols[:4] if fmt == "table" else metric_cols
    from .render import render

    if fmt != "table":
        cols = ["run_id", "run_name", "experiment", "status", "start_time", "end_time"]
        rows = [
            [x.run_id, x.run_name, x.experiment, x.status, x.start_time, x.end_time]
            + [x.metrics.get(m) for m in metric_cols]
            for x in recs
        ]
        click.echo(render(cols + [f"metrics.{m}" for m in metric_cols], rows, fmt))
        return
    if not recs:
        hint = ""
        remotes = r.gitout("remote", check=False).split()
        if remotes:  # a fresh clone: the team's runs are one pull away
            hint = f", or fetch your team's with: gitrun pull {remotes[0]}"
        click.echo(
            f"No runs yet. Record one with: gitrun record -- python train.py{hint}", err=True
        )
        return
    cols = ["run", "name", "experiment", "status", "started", "duration"] + metric_cols
    recs, depth = _grouped(recs)
    rows = _ls_rows(recs, metric_cols)
    for row, d in zip(rows, depth):
        row[1] = "  " * d + str(row[1])
    click.echo(render(cols, rows, fmt))


def _grouped(recs: list[Any]) -> tuple[list[Any], list[int]]:
    """Each run listed followed by its listed child runs (tags.mlflow.parentRunId), newest
    first at every level; (runs, depth of each)."""
    ids = {x.run_id for x in recs}
    kids: dict[str, list[Any]] = {}
    for x in recs:
        p = x.tags.get("mlflow.parentRunId")
        if p in ids and p != x.run_id:
            kids.setdefault(p, []).append(x)
    out: list[Any] = []
    depth: list[int] = []
    seen: set[str] = set()

    def visit(x: Any, d: int) -> None:
        if x.run_id in seen:
            return
        seen.add(x.run_id)
        out.append(x)
        depth.append(d)
        for c in kids.get(x.run_id, []):
            visit(c, d + 1)

    for x in recs:
        if x.tags.get("mlflow.parentRunId") not in ids:
            visit(x, 0)
    for x in recs:  # a cycle of parents (crafted tags): listed all the same
        visit(x, 0)
    return out, depth


@cli.command()
@click.argument("run")
@format_option()
def show(run, fmt):
    """Show one run: status, code, command, params, metrics, tags, artifacts, inputs, env.

    Inputs are shown with whether their content is the same now, changed or missing.

    RUN is a full id, a unique prefix of at least 4 characters, or a unique name.

    \b
    Example:
      gitrun show rf-baseline
      gitrun show 3f2a --format json
    """
    from ..query import resolve as runs
    from ..workflows import show as shape
    from .render import fmt_duration, fmt_size, fmt_time, yaml_block

    r = repo()
    rec = runs.load(r, run, history=True)
    now = shape.inputs_now(r, rec)
    if fmt == "json":
        click.echo(json.dumps(shape.as_dict(rec, now), indent=2, ensure_ascii=False))
        return
    if fmt != "table":
        from .render import render

        click.echo(render(["key", "value"], shape.as_rows(rec), fmt))
        return
    out = []
    out.append(f"run         {rec.run_id}  ({rec.run_name})")
    out.append(f"experiment  {rec.experiment}")
    status = rec.status + (f" (exit {rec.exit_code})" if rec.exit_code is not None else "")
    out.append(f"status      {status}")
    if rec.tags.get("gitrun.problems"):  # what `gitrun record` could not keep (also on stderr)
        out.append(f"problems    {rec.tags['gitrun.problems']}")
    if rec.tags.get("mlflow.parentRunId"):  # a sweep's trial, a nested run
        out.append(f"parent      {rec.tags['mlflow.parentRunId']}")
    duration = fmt_duration(rec.start_time, rec.end_time)
    out.append(f"started     {fmt_time(rec.start_time)}   duration {duration}")
    out.append(f"user        {rec.user}@{rec.host}")
    if rec.command:
        import shlex

        out.append(f"command     {shlex.join(rec.command)}   (in {rec.cwd or '.'})")
    code = rec.code or {}
    if code.get("commit"):
        where = code.get("branch") or "detached HEAD"
        line = f"code        {code['commit'][:12]}"
        if code.get("dirty"):
            head = str(code["head"])[:12] if code.get("head") else "no commits yet"
            line += f"  (snapshot of dirty work tree on {where}, HEAD {head})"
        else:
            line += f"  (clean, on {where})"
        out.append(line)
        for big in code.get("large_untracked") or []:
            size, digest = fmt_size(big["size"]), big["sha256"][:12]
            out.append(f"            not captured: {big['path']} ({size}, sha256 {digest})")
    out.append("params" + ("" if rec.params else "      (none)"))
    out += yaml_block(rec.params)
    out.append("metrics" + ("" if rec.metrics else "     (none)"))
    w = max((len(k) for k in rec.metrics), default=0)
    ranges = shape.metric_ranges(rec)
    for k, v in rec.metrics.items():
        extra = ""
        if k in ranges:
            n, low, high = ranges[k]
            extra = f"   ({n} points, min {low:.6g}, max {high:.6g})"
        out.append(f"  {k.ljust(w)}  {v:.6g}{extra}")
    user_tags = shape.user_tags(rec)
    out.append("tags" + ("" if user_tags else "        (none besides mlflow.* / gitrun.*)"))
    out += yaml_block(user_tags)
    out.append("artifacts" + ("" if rec.artifacts else "   (none)"))
    w = max((len(k) for k in rec.artifacts), default=0)
    for a in rec.artifacts.values():
        where = "" if a.storage == "git" else f" ({a.storage})"  # not a git blob: lfs, store
        size = f"{fmt_size(a.size):>9}{where}"
        out.append(f"  {a.path.ljust(w)}  {size}  sha256 {a.sha256[:16]}")
    if rec.inputs:
        from ..format.store import stored_copies

        out.append("inputs")
        w = max(len(i.path) for i in rec.inputs.values())
        stored = stored_copies(rec)
        for i in rec.inputs.values():
            state = now.get(i.path, ("", None))[0]
            digest = i.digest.split(":", 1)[-1][:16]
            notes = [i.context] if i.context else []
            if i.files is not None:
                listed = f", {len(i.members):,} listed" if len(i.members) < i.files else ""
                notes.append(f"{i.files:,} files{listed}")
            if i.path in stored:
                notes.append("stored")
            extra = f"  ({', '.join(notes)})" if notes else ""
            line = f"  {i.path.ljust(w)}  {i.kind:<7}  {fmt_size(i.size):>9}  sha256 {digest}"
            out.append(f"{line}  {state or '-'}{extra}")
    env = rec.env or {}
    if env:
        py = env.get("python", {})
        pl = env.get("platform", {})
        out.append(
            f"env         Python {py.get('version')} ({py.get('implementation')}), "
            f"{pl.get('system')} {pl.get('machine')}, {len(env.get('packages') or {})} packages"
        )
    if rec.output_blob:
        out.append(f"output      git show {rec.output_blob[:12]}   (output.log)")
    click.echo("\n".join(out))


@cli.command()
@click.argument("directory", required=False)
@quiet_option
def demo(directory, quiet):
    """Run the whole gitrun story on a bundled example in a scratch git repo.

    Creates DIRECTORY (default: a new temporary directory), records several
    training runs with different params, lists and shows them, searches for the
    best, checks it out into a worktree, reruns it and verifies it reproduces.

    \b
    Example:
      gitrun demo /tmp/gitrun-demo
    """
    from ..demo import run_demo

    sys.exit(run_demo(directory, quiet=quiet))
