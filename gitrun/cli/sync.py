"""push, pull, remote-runs, config: sharing runs through git remotes."""

from __future__ import annotations

import click

from . import cli
from .common import format_option, quiet_option, repo

CONFIG_KEYS = ("auto-push", "large-file-threshold", "artifact-store")


@cli.command()
@click.argument("remote", required=False)
@quiet_option
def push(remote, quiet):
    """Send local runs to REMOTE, with their code and artifacts.

    REMOTE defaults to the current branch's upstream remote, else origin. The
    remote's runs are pulled and joined first; when someone else pushes at the
    same moment, gitrun joins their runs and tries again. Never forces.
    Plain git does the same transfer: git push origin refs/gitrun/runs

    \b
    Example:
      gitrun push
      gitrun push team -q
    """
    from ..workflows import sync

    result = sync.push(repo(), remote, quiet=quiet)
    for w in result.warnings:
        click.echo(f"gitrun: warning: {w}", err=True)
    if not quiet:
        click.echo(f"gitrun: {result.push_summary()}", err=True)


@cli.command()
@click.argument("remote", required=False)
@click.option(
    "--no-fetch",
    is_flag=True,
    help="Only join what git already fetched into refs/remotes/REMOTE/gitrun/runs.",
)
@quiet_option
def pull(remote, no_fetch, quiet):
    """Fetch REMOTE's runs and join them with the local ones.

    REMOTE defaults to the current branch's upstream remote, else origin. When
    both sides recorded runs, a merge commit joins the histories; nothing is
    rewritten. Runs fetched by plain git
    (git fetch origin refs/gitrun/runs:refs/remotes/origin/gitrun/runs) are
    joined with --no-fetch.

    \b
    Example:
      gitrun pull
      gitrun pull team
      gitrun pull origin --no-fetch
    """
    from ..workflows import sync

    result = sync.pull(repo(), remote, quiet=quiet, fetch_first=not no_fetch)
    for w in result.warnings:
        click.echo(f"gitrun: warning: {w}", err=True)
    if not quiet or not result.remote_has_runs:
        click.echo(f"gitrun: {result.pull_summary()}", err=True)


@cli.command(name="remote-runs")
@click.argument("remote", required=False)
@format_option()
def remote_runs(remote, fmt):
    """List the runs REMOTE has that this repository does not (yet).

    \b
    Example:
      gitrun remote-runs origin
      gitrun pull origin
    """
    from ..format import store
    from ..workflows import sync
    from .render import fmt_time, render

    r = repo()
    only = sync.remote_only_runs(r, remote)
    recs = sorted(store.read_records(r, only).values(), key=lambda x: -(x.start_time or 0))
    if fmt == "table":
        if not recs:
            click.echo("gitrun: the remote has no runs that are not here.", err=True)
            return
        rows = [
            [x.run_id[:8], x.run_name, x.experiment, x.status, fmt_time(x.start_time), x.user]
            for x in recs
        ]
        click.echo(render(["run", "name", "experiment", "status", "started", "user"], rows, fmt))
        return
    rows = [
        [x.run_id, x.run_name, x.experiment, x.status, x.start_time, x.end_time, x.user]
        for x in recs
    ]
    cols = ["run_id", "run_name", "experiment", "status", "start_time", "end_time", "user"]
    click.echo(render(cols, rows, fmt))


@cli.command(name="config")
@click.argument("key", type=click.Choice(CONFIG_KEYS), metavar="KEY", required=False)
@click.argument("value", required=False)
def config_cmd(key, value):
    """Show or set a gitrun setting of this repository (kept in .git/config); with no KEY,
    every setting and its value.

    auto-push: when true, `gitrun record` pushes each finished run to the
    default remote; a failed push only warns, the run stays local and the next
    gitrun push or pull sends it.

    large-file-threshold: artifacts of at least this size (default 50MB, at
    least 1MB; 0: never) are kept in Git LFS (or the artifact store), not as
    git blobs.

    artifact-store: an object store URL (s3://bucket/prefix, gs://..., az://...,
    file:///shared/dir) for large artifacts instead of Git LFS; none: Git LFS.

    \b
    Example:
      gitrun config
      gitrun config auto-push true
      gitrun config large-file-threshold 100MB
      gitrun config artifact-store s3://ml-artifacts/team
    """
    from ..workflows import sync

    r = repo()
    if key is None:
        from ..capture import largefiles

        threshold, store = largefiles.describe(r)
        on = "true" if sync.auto_push_enabled(r) else "false"
        for k, v in zip(CONFIG_KEYS, (on, threshold, store)):
            click.echo(f"{k:<22}{v or 'none'}")
        return
    if key != "auto-push":
        from ..capture import largefiles

        if value is None:
            threshold, store = largefiles.describe(r)
            click.echo(threshold if key == "large-file-threshold" else store)
        elif key == "large-file-threshold":
            largefiles.set_threshold(r, value)
        else:
            largefiles.set_store(r, value)
        return
    if value is None:
        click.echo("true" if sync.auto_push_enabled(r) else "false")
        return
    sync.set_auto_push(r, sync.parse_bool(value, key))
