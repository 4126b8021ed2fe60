"""plot, report: runs drawn as PNG/SVG/PDF (matplotlib) or one self-contained HTML file."""

from __future__ import annotations

import json
from typing import Any

import click

from . import cli
from .common import (
    check_experiment_names,
    check_nonempty_experiments,
    index_progress,
    max_results_option,
    quiet_option,
    repo,
)

_KEY_PREFIXES = ("metrics.", "metric.", "params.", "param.", "tags.", "tag.", "attributes.")


class _RunsCommand(click.Command):
    """`--runs a b c` takes the following words up to the next option or axis key (click
    options take one value each, so it becomes `--runs a --runs b --runs c`); commas split
    too (`--runs a,b,c`, `--runs=a,b`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        greedy, got = False, 0

        def add(word: str) -> int:
            refs = [v.strip() for v in word.split(",") if v.strip()]
            for ref in refs:
                out.extend(("--runs", ref))
            return len(refs)

        for i, a in enumerate(args):
            if greedy and not a.startswith("-") and not a.startswith(_KEY_PREFIXES):
                got += add(a)
                continue
            if greedy and not got:
                raise click.UsageError("--runs needs run ids, prefixes or names.", ctx)
            greedy = False
            if a == "--":
                out.extend(args[i:])
                break
            if a == "--runs":
                greedy, got = True, 0
            elif a.startswith("--runs="):
                if not add(a[len("--runs=") :]):
                    raise click.UsageError("--runs needs run ids, prefixes or names.", ctx)
            else:
                out.append(a)
        if greedy and not got:
            raise click.UsageError("--runs needs run ids, prefixes or names.", ctx)
        return super().parse_args(ctx, out)


# plot and report: what they print about the file they wrote.
_written_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="What is printed about the file written.",
)


def _selection_options(default_max: int) -> Any:
    def decorate(f: Any) -> Any:
        options = [
            click.option(
                "--runs",
                "refs",
                multiple=True,
                metavar="RUN...",
                help="These runs (ids, unique prefixes or names), in this order.",
            ),
            click.option(
                "-e",
                "--experiment",
                "experiments",
                multiple=True,
                help="Runs of these experiments (repeatable).",
            ),
            click.option("--all-experiments", is_flag=True, help="Runs of every experiment."),
            click.option(
                "--filter", "filter_string", default="", metavar="FILTER", help="As gitrun search."
            ),
            click.option(
                "--order-by",
                "order_by",
                multiple=True,
                metavar="X",
                help="'<identifier> [ASC|DESC]', repeatable (default: newest first).",
            ),
            max_results_option("--max-results", default=default_max, zero_means_all=True),
            quiet_option,
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _selection(
    refs: tuple[str, ...],
    experiments: tuple[str, ...],
    all_experiments: bool,
    quiet: bool,
) -> tuple[Any, list[str] | None, Any]:
    """The repository, the experiments to search (None: all) and the progress bar; as
    `gitrun search`: without -e, $GITRUN_EXPERIMENT_NAME / $MLFLOW_EXPERIMENT_NAME when set
    (unless runs are named), else every experiment."""
    import os

    check_nonempty_experiments(experiments)
    progress = index_progress(quiet)
    r = repo()
    check_experiment_names(r, experiments, progress)
    if experiments:
        return r, list(experiments), progress
    env_exp = os.environ.get("GITRUN_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if env_exp and not all_experiments and not refs:
        from ..query import experiment_names

        return r, [env_exp] if env_exp in experiment_names(r, progress) else [], progress
    return r, None, progress


@cli.command(cls=_RunsCommand)
@click.argument("metrics", nargs=-1, metavar="[METRIC]...")
@click.option("-o", "--output", required=True, metavar="FILE", help="FILE.png, .svg or .pdf.")
@click.option("--x", "x", metavar="KEY", help="Scatter: this key on the x axis (with --y).")
@click.option("--y", "y", metavar="KEY", help="Scatter: this key on the y axis (with --x).")
@click.option(
    "--parallel",
    is_flag=True,
    help="Parallel coordinates of the keys given as arguments (the last one colours lines).",
)
@click.option(
    "--x-axis",
    "x_axis",
    type=click.Choice(["step", "time", "relative"]),
    default="step",
    show_default=True,
    help="Metric histories: step, wall time, or seconds since each run started.",
)
@click.option("--log-y", is_flag=True, help="Log scale on the y axis.")
@_selection_options(default_max=1000)
@_written_format
def plot(
    metrics,
    output,
    x,
    y,
    parallel,
    x_axis,
    log_y,
    refs,
    experiments,
    all_experiments,
    filter_string,
    order_by,
    max_results,
    quiet,
    fmt,
):
    """Draw runs into a PNG, SVG or PDF file (by the suffix of -o): metric histories,
    a scatter (--x KEY --y KEY) or parallel coordinates (--parallel KEY KEY...).

    Keys are metrics.<key>, params.<key>, tags.<key> or attributes.duration; params
    whose values are all numbers plot as numbers, others as evenly spaced categories.
    Runs: --runs (ids, prefixes, names) and/or a search (-e, --filter, --order-by,
    --max-results, as `gitrun search`). Needs matplotlib: pip install 'gitrun-ml[plot]'.

    \b
    Example:
      gitrun plot metrics.loss --runs a1b2 c3d4 e5f6 -o loss.png
      gitrun plot metrics.loss -e sweep --x-axis relative --log-y -o loss.pdf
      gitrun plot --filter "metrics.f1 > 0.9" -e sweep --x params.max_depth --y metrics.f1 -o f1.svg
      gitrun plot --parallel params.lr params.max_depth metrics.f1 -e sweep -o sweep.png
    """
    from ..workflows.plot import output_format
    from ..workflows.plot import plot as do_plot

    if parallel and not metrics:
        raise click.UsageError("--parallel needs the keys of its axes, e.g. params.lr metrics.f1.")
    output_format(output)  # a bad file name before any work
    r, exps, progress = _selection(refs, experiments, all_experiments, quiet)
    done = do_plot(
        r,
        output,
        metrics=() if parallel else metrics,
        x=x,
        y=y,
        parallel=metrics if parallel else (),
        x_axis=x_axis,
        log_y=log_y,
        refs=refs,
        experiments=exps,
        filter_string=filter_string,
        order_by=order_by,
        max_results=max_results or None,
        progress=progress,
    )
    if fmt == "json":
        click.echo(json.dumps(done))
    elif not quiet:
        what = {"history": "metric history", "scatter": "scatter", "parallel": "parallel"}
        click.echo(
            f"Wrote {output} ({what[done['kind']]} of {', '.join(done['keys'])}; "
            f"{done['runs']} run{'s' if done['runs'] != 1 else ''}).",
            err=True,
        )


@cli.command(cls=_RunsCommand)
@click.option("-o", "--output", required=True, metavar="FILE.html", help="The HTML file to write.")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="KEY",
    help="Chart these metrics' histories (repeatable; default: up to 12 in name order).",
)
@click.option("--title", default=None, help="The report's title (default: from the selection).")
@_selection_options(default_max=1000)
@_written_format
def report(
    output,
    metrics,
    title,
    refs,
    experiments,
    all_experiments,
    filter_string,
    order_by,
    max_results,
    quiet,
    fmt,
):
    """Write ONE self-contained HTML file about runs: their table (name, id, status,
    start, duration, params, latest metrics) and charts (metric histories overlaid, a
    scatter and parallel coordinates for several runs), with the data embedded.

    The chart library (Vega-Lite) is inlined, so the file opens offline from disk and
    can be mailed or attached to a review. Long metric histories are downsampled (at
    most 1,000 points per series, each bucket's min and max kept); the report says so.

    \b
    Example:
      gitrun report -e sweep --filter "metrics.f1 > 0.9" -o report.html
      gitrun report --runs baseline tuned -o compare.html --metric loss --metric f1
      gitrun report -e sweep --order-by "metrics.f1 DESC" --max-results 20 -o top20.html
    """
    from ..ui.report import check_output, write_report

    check_output(output)
    r, exps, progress = _selection(refs, experiments, all_experiments, quiet)
    done = write_report(
        r,
        output,
        metrics=metrics,
        title=title,
        refs=refs,
        experiments=exps,
        filter_string=filter_string,
        order_by=order_by,
        max_results=max_results or None,
        progress=progress,
    )
    if fmt == "json":
        click.echo(json.dumps(done))
    elif not quiet:
        click.echo(
            f"Wrote {output} ({done['runs']} run{'s' if done['runs'] != 1 else ''}, "
            f"{done['charts']} chart{'s' if done['charts'] != 1 else ''}, "
            f"{done['bytes'] / 1e6:.1f} MB).",
            err=True,
        )
