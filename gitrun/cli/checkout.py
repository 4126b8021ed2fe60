"""checkout, rerun."""

from __future__ import annotations

import click

from ..workflows.rerun import RerunResult, show_value
from . import cli
from .common import quiet_option, repo
from .render import table


@cli.command()
@click.argument("run")
@click.option(
    "-b",
    "--branch",
    metavar="NAME",
    help="Branch to create at the run's code (default: gitrun/<short id>).",
)
@click.option(
    "--stash",
    is_flag=True,
    help="Stash uncommitted changes and untracked files first "
    "(git stash push --include-untracked).",
)
@click.option(
    "--worktree",
    metavar="DIR",
    help="Check out into a new git worktree at DIR; the current one is not touched.",
)
@click.option(
    "--artifacts-only", metavar="DIR", help="Only restore the run's artifacts, verified, into DIR."
)
@click.option(
    "--force-branch",
    is_flag=True,
    help="Move an existing branch NAME to the run's code (its old tip stays in the reflog).",
)
def checkout(run, branch, stash, worktree, artifacts_only, force_branch):
    """Restore the exact code and the artifacts RUN was recorded with.

    The code is the run's snapshot commit when its work tree was dirty (edits and
    untracked files included), otherwise its HEAD. In place, a branch gitrun/<id> is
    created there and switched to; a dirty work tree is refused (or stashed with
    --stash), so nothing is lost. Artifacts are restored under the directory the run
    ran in, each verified against its sha256; unsafe artifact paths (absolute, '..',
    '.git', through a symlink) are refused and nothing is written. An artifact kept in a
    storage this gitrun does not know is named on stderr and left out (exit 1).

    \b
    Example:
      gitrun checkout rf-baseline
      gitrun checkout 3f2a --worktree ../rf-baseline
      gitrun checkout 3f2a --artifacts-only /tmp/rf-artifacts
    """
    from ..workflows.checkout import checkout as do_checkout

    result = do_checkout(
        repo(),
        run,
        branch=branch,
        stash=stash,
        worktree=worktree,
        artifacts_only=artifacts_only,
        force_branch=force_branch,
    )
    click.echo(result.render())
    if result.unavailable:
        # The others were restored; exit 1 because not everything could be.
        for sentence in result.unavailable:
            click.echo(f"gitrun: {sentence}", err=True)
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("run")
@click.option(
    "--rtol",
    type=float,
    default=0.0,
    show_default=True,
    help="Relative tolerance for metrics: |rerun-original| <= atol + rtol*|original|.",
)
@click.option(
    "--atol", type=float, default=0.0, show_default=True, help="Absolute tolerance for metrics."
)
@click.option(
    "--in-place",
    is_flag=True,
    help="Run in the current work tree, which must hold the run's code "
    "(after gitrun checkout RUN).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary worktree afterwards.")
@click.option(
    "--env-diff-only",
    is_flag=True,
    help="Only list how this environment differs from the recorded one (exit 1 when it differs).",
)
@click.option(
    "--allow-changed-inputs",
    is_flag=True,
    help="Rerun even when an input's content changed (recorded as tag "
    "gitrun.rerun.changed_inputs).",
)
@quiet_option
def rerun(run, rtol, atol, in_place, keep, env_diff_only, allow_changed_inputs, quiet):
    """Re-execute RUN's recorded command on its exact code and compare the results.

    Runs in a temporary git worktree at the run's code (or --in-place) under gitrun
    record, so the rerun is itself a run, tagged gitrun.rerun_of=<id>. Then compares
    every final metric (within --rtol/--atol, default exact), every artifact's sha256
    and the exit code, prints a table and a verdict. Exit code: 0 when reproduced,
    1 when anything differs (named in the message), so it can gate CI. A run whose
    inputs (-i, log_input) changed content since is refused, naming them, unless the
    run kept a copy of them (-i PATH --store): the rerun's worktree gets that copy.

    \b
    Example:
      gitrun rerun rf-baseline
      gitrun rerun 3f2a --rtol 1e-6 --atol 0
      gitrun checkout 3f2a && gitrun rerun 3f2a --in-place
      gitrun rerun 3f2a --env-diff-only
    """
    from ..errors import NotReproducedError
    from ..workflows.rerun import rerun as do_rerun

    result = do_rerun(
        repo(),
        run,
        rtol=rtol,
        atol=atol,
        in_place=in_place,
        keep=keep,
        env_diff_only=env_diff_only,
        quiet=quiet,
        allow_changed_inputs=allow_changed_inputs,
    )
    if env_diff_only:
        click.echo(render_report(result))
        if not result.reproduced:
            raise click.exceptions.Exit(1)
        return
    if quiet:
        lines = [f"note: {n}" for n in result.notes if n.startswith("kept")]
        if lines:
            click.echo("\n".join(lines))
    else:
        body = render_report(result, verdict=False)
        if body:
            click.echo(body)
    if not result.reproduced:
        raise NotReproducedError(result.verdict())
    click.echo(result.verdict())


def _report_table(report: RerunResult) -> str:
    rows = [
        [
            r.label,
            show_value(r.original),
            show_value(r.rerun),
            "" if r.delta is None else f"{r.delta:+.3g}",
            "ok" if r.ok else "DIFFERS",
        ]
        for r in report.rows
    ]
    return table(["metric", "original", "rerun", "delta", "ok"], rows)


def render_report(report: RerunResult, verdict: bool = True) -> str:
    """The comparison table, notes and (unless verdict=False) the one-line verdict."""
    out = []
    if report.rerun is None:
        out += [f"  {d}" for d in report.env_differences]
        out += [f"note: {n}" for n in report.notes]
        if verdict:
            out.append(report.verdict())
        return "\n".join(out)
    if report.rows:
        out.append(_report_table(report))
    for d in report.rerun_env_differences:
        out.append(f"note: the rerun's environment differs: {d}")
    out += [f"note: {n}" for n in report.notes]
    if verdict:
        out.append(report.verdict())
    return "\n".join(out)
