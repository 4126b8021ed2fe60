"""bisect."""

from __future__ import annotations

import json
import sys

import click

from . import cli
from .common import command_after_options, format_option, quiet_option, repo
from .render import render

VERDICT_WORDS = {"good": "holds", "bad": "fails", "skip": "skipped"}


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--good",
    "good",
    required=True,
    metavar="RUN|COMMIT",
    help="A run (id, prefix or name) or commit where the predicate holds.",
)
@click.option(
    "--bad",
    "bad",
    required=True,
    metavar="RUN|COMMIT",
    help="A later run or commit where it no longer holds.",
)
@click.option(
    "--metric",
    "predicate",
    required=True,
    metavar="FILTER",
    help='The predicate in the search grammar, e.g. "metrics.f1 >= 0.95".',
)
@click.option(
    "-e",
    "--experiment",
    metavar="NAME",
    help="Experiment of the runs bisect makes (default: the bad run's).",
)
@click.option(
    "--reuse",
    is_flag=True,
    help="Judge a commit by an existing run of the same command on it, instead of rerunning.",
)
@format_option(choices=("table", "json"))
@quiet_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def bisect(good, bad, predicate, experiment, reuse, fmt, quiet, command):
    """Find the code commit between --good and --bad where a metric stopped holding.

    git bisect runs in a temporary worktree (your HEAD, branch, index, work tree and
    any bisect of your own are untouched). At each commit it picks, COMMAND (default:
    the --bad run's recorded command and record options) runs under gitrun record,
    tagged gitrun.bisect=<session>, and the run is judged by --metric: holds -> good,
    fails -> bad; a command that fails, or a run without the metric, is skipped
    (git bisect skip). Prints the first bad commit, its message and diff stat, and
    the runs bisect made.

    \b
    Example:
      gitrun bisect --good rf-v1 --bad rf-v7 --metric "metrics.f1 >= 0.95"
      gitrun bisect --good v1.0 --bad HEAD --metric "metrics.loss < 0.3" -- python train.py
      gitrun bisect --good 3f2a --bad 9c1d --metric "metrics.f1 >= 0.95" --reuse
    """
    from ..workflows.bisect import bisect as do_bisect

    def on_step(step, n):
        if quiet or fmt == "json":
            return
        run = step.run_id[:8] if step.run_id else "-"
        how = " (reused)" if step.reused else ""
        why = f": {step.why}" if step.why else ""
        click.echo(
            f"bisect step {n}: {step.commit[:12]} {VERDICT_WORDS[step.verdict]}, "
            f"run {run}{how}{why}",
            err=True,
        )

    result = do_bisect(
        repo(),
        good,
        bad,
        predicate,
        command=command_after_options(command) or None,
        experiment=experiment,
        reuse=reuse,
        quiet=quiet or fmt == "json",
        on_step=on_step,
    )
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        rows = [
            [
                s.commit[:12],
                VERDICT_WORDS[s.verdict],
                s.run_id[:8] if s.run_id else "-",
                ", ".join(f"{k}={v:.6g}" for k, v in sorted(s.values.items())) or "-",
                ("reused" if s.reused else "") + (s.why if s.why else ""),
            ]
            for s in result.steps
        ]
        if rows:
            click.echo(render(["commit", "predicate", "run", "values", "note"], rows, "table"))
        if result.first_bad:
            click.echo(f"First bad commit: {result.first_bad} {result.subject}")
            if result.stat:
                click.echo(result.stat)
        elif result.candidates:
            click.echo(
                "The first bad commit could be any of these (the others could not be tested): "
                + ", ".join(c[:12] for c in result.candidates)
            )
        if any(st.run_id and not st.reused for st in result.steps):
            click.echo(
                "Runs made by this bisect: "
                f"gitrun search \"tags.gitrun.bisect = '{result.session}'\""
            )
    if not result.first_bad:
        sys.exit(1)
