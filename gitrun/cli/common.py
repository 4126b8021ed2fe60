"""Options and helpers shared by several commands."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..errors import UsageError
from .render import FORMATS


def format_option(
    default: str = "table", choices: tuple[str, ...] = FORMATS
) -> Callable[[Any], Any]:
    scripts = [c for c in choices if c != "table"]
    listed = ", ".join(scripts[:-1]) + (" or " if len(scripts) > 1 else "") + scripts[-1]
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help=f"Output format: aligned table for people; {listed} for scripts.",
    )


quiet_option = click.option("-q", "--quiet", is_flag=True, help="Print no progress or notices.")


def key_values(pairs: tuple[str, ...], what: str, option: str) -> dict[str, str]:
    """`-p k=v` pairs as a dict; a usage error for a pair without `=` or a key given
    twice with different values (`-p lr=1 -p lr=2`; the same value twice is fine)."""
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise UsageError(f"{what} '{p}' must be written KEY=VALUE.")
        k, v = p.split("=", 1)
        k = k.strip()
        if k in out and out[k] != v:
            raise UsageError(
                f"{what} '{k}' is given twice with different values ('{out[k]}' and '{v}') "
                f"by {option}; give each {what.lower()} once."
            )
        out[k] = v
    return out


def repo() -> Any:
    """The current repository; a bare one too (reading and sharing runs needs no work
    tree; commands that do need one say so)."""
    from .._git import Repo
    from ..format import journal

    r = Repo.discover(bare_ok=True)
    journal.recover(r)
    return r


# The most runs one command lists (the API has no limit: any positive int, as MLflow).
MAX_RESULTS_LIMIT = 1_000_000_000


def max_results_option(*names: str, default: int, zero_means_all: bool = False) -> Any:
    """--max-results: a whole number from 1 (0 too when it means "all") to a sane limit."""
    low = 0 if zero_means_all else 1

    def check(ctx: click.Context, param: click.Parameter, value: int) -> int:
        if not low <= value <= MAX_RESULTS_LIMIT:
            raise click.BadParameter(
                f"{value} is not a number of runs from {low} to {MAX_RESULTS_LIMIT}"
                + (" (0 means all)." if zero_means_all else ".")
            )
        return value

    help_text = "At most this many runs" + (" (0: all)." if zero_means_all else ".")
    return click.option(
        *names, type=int, default=default, show_default=True, callback=check, help=help_text
    )


def index_progress(quiet: bool) -> Callable[[int, int], None] | None:
    """How a long build of the search index shows: a bar on a terminal; nothing with -q
    or when stderr is not a terminal.  Pass it as `progress=` to query functions."""
    import atexit
    import sys

    if quiet or not sys.stderr.isatty():
        return None
    bar: Any = None

    def finish() -> None:  # also when interrupted: the bar hides the cursor until then
        nonlocal bar
        if bar is not None:
            bar.render_finish()
            bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None or total != bar.length or done < bar.pos:  # a new build
            finish()
            bar = click.progressbar(
                length=total, label="gitrun: indexing runs", file=sys.stderr, show_pos=True
            )
            bar.render_progress()
        bar.update(done - bar.pos)
        if done >= total:
            finish()

    atexit.register(finish)
    return progress


def check_experiment_names(
    r: Any,
    names: tuple[str, ...] | list[str],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """-e NAME must name an experiment that has runs: say which ones exist instead of
    answering "no runs" for a typo."""
    from ..errors import GitrunError
    from ..query import experiment_names

    if not names:
        return
    known = experiment_names(r, progress)
    missing = [n for n in names if n not in known]
    if not missing:
        return
    shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
    raise GitrunError(
        f"No experiment named '{missing[0]}'; "
        + (f"known experiments: {shown}." if known else "this repository has no runs yet.")
    )


def check_nonempty_experiments(names: tuple[str, ...]) -> None:
    for n in names:
        if not n.strip():
            raise UsageError("-e/--experiment needs an experiment name, not an empty string.")


def command_after_options(command: tuple[str, ...]) -> list[str]:
    """The COMMAND of record/sweep/bisect, refusing a mistyped option of ours: options must
    come before it, so `gitrun record --autlog -- python x.py` would otherwise run a command
    named `--autlog`. (A real command never starts with '-'.)"""
    args = list(command)
    if args and args[0].startswith("-") and args[0] != "-":
        ctx = click.get_current_context()
        known = [o for p in ctx.command.params for o in getattr(p, "opts", []) if o.startswith("-")]
        import difflib

        name = args[0].split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise click.UsageError(
            f"No such option: {name}.{hint} (Options go before the command, which follows `--`.)",
            ctx,
        )
    return args


parent_option = click.option(
    "--parent", metavar="RUN", help="Only the child runs of RUN (a sweep's trials, nested runs)."
)


def parent_filter(r: Any, parent: str) -> str:
    """--parent RUN as a search filter: the runs whose tags.mlflow.parentRunId is RUN's id."""
    from ..query.resolve import resolve

    pid = resolve(r, parent)  # a run id: hex only, safe inside the quotes
    return f"tags.mlflow.parentRunId = '{pid}'"
