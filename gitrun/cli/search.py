"""search, diff.  The search path never imports pandas (a fresh process must stay fast)."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from . import cli
from .common import (
    check_experiment_names,
    check_nonempty_experiments,
    format_option,
    index_progress,
    max_results_option,
    parent_filter,
    parent_option,
    quiet_option,
    repo,
)

# Attribute columns --columns accepts besides metrics.*, params.* and tags.*.
_ATTR_COLUMNS = {
    "run_id": lambda r: r.run_id,
    "run_name": lambda r: r.run_name,
    "experiment_id": lambda r: r.experiment,
    "experiment": lambda r: r.experiment,
    "status": lambda r: r.status,
    "artifact_uri": lambda r: r.artifact_uri,
    "user_id": lambda r: r.user_id,
    "lifecycle_stage": lambda r: r.lifecycle_stage,
    "start_time": lambda r: r.start_time,
    "end_time": lambda r: r.end_time,
}


class _NoRow:
    """Stands in for a row when only checking that a column name is known."""

    run_id = run_name = experiment = status = artifact_uri = user_id = None
    lifecycle_stage = start_time = end_time = None
    params: dict[str, Any] = {}
    tags: dict[str, Any] = {}

    def metric(self, key: str) -> Any:
        return None


_NO_ROW = _NoRow()


def column_value(row: Any, col: str) -> Any:
    if col in _ATTR_COLUMNS:
        return _ATTR_COLUMNS[col](row)
    kind, _, key = col.partition(".")
    if key and kind in ("metric", "metrics"):
        return row.metric(key)
    if key and kind in ("param", "params"):
        return row.params.get(key)
    if key and kind in ("tag", "tags"):
        return row.tags.get(key)
    from ..errors import UsageError

    raise UsageError(
        f"Unknown column '{col}'; use run_id, run_name, status, start_time, end_time, "
        "experiment_id, or metrics.<key>, params.<key>, tags.<key>."
    )


def _differing(rows: list[Any], attr: str) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(getattr(r, attr)))
    out = []
    for k in keys:
        values = {_same(getattr(r, attr).get(k)) for r in rows}
        if len(values) > 1 or len(rows) == 1:
            out.append(k)
    return out


def _same(v: Any) -> Any:
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def table_view(rows: list[Any]) -> tuple[list[str], list[list[Any]]]:
    """Short id, name, status, start, then the params and metrics that differ."""
    from .render import fmt_time

    params = _differing(rows, "params")
    metrics = _differing(rows, "metrics")
    cols = ["run", "name", "status", "started"] + [f"params.{k}" for k in params]
    cols += [f"metrics.{k}" for k in metrics]
    data = [
        [r.run_id[:8], r.run_name, r.status, fmt_time(r.start_time)]
        + [r.params.get(k) for k in params]
        + [r.metrics.get(k) for k in metrics]
        for r in rows
    ]
    return cols, data


@cli.command()
@click.argument("filter_string", required=False, default="", metavar="[FILTER]")
@click.option("-e", "--experiment", "experiments", multiple=True, help="Search these experiments.")
@click.option("--all-experiments", is_flag=True, help="Search every experiment.")
@click.option(
    "--order-by",
    "order_by",
    multiple=True,
    metavar="X",
    help="'<identifier> [ASC|DESC]', repeatable (default: newest first).",
)
@max_results_option("--max-results", default=100, zero_means_all=True)
@click.option("--columns", metavar="a,b,c", help="Exactly these columns (e.g. run_id,metrics.f1).")
@click.option(
    "--view",
    type=click.Choice(["active", "deleted", "all"]),
    default="active",
    show_default=True,
    help="Which runs by lifecycle stage.",
)
@parent_option
@format_option()
@quiet_option
def search(
    filter_string,
    experiments,
    all_experiments,
    order_by,
    max_results,
    columns,
    view,
    parent,
    fmt,
    quiet,
):
    """Search runs with MLflow's filter syntax (plus OR, NOT, parentheses, IN).

    Without -e, searches every experiment (like `gitrun ls`), or only the one
    named by $GITRUN_EXPERIMENT_NAME / $MLFLOW_EXPERIMENT_NAME when set. (The
    Python search_runs() keeps MLflow's rule: the active experiment.) The
    grammar is in docs/search.md. json and csv use search_runs' DataFrame columns.

    \b
    Example:
      gitrun search "metrics.f1 > 0.9 and params.model = 'gb'" --order-by "metrics.f1 DESC"
      gitrun search -e churn --columns run_id,params.depth,metrics.acc --format csv
      gitrun search --all-experiments "metrics.loss.min < 0.1 or tags.best = 'yes'"
      gitrun search --parent my-sweep --order-by "metrics.f1 DESC" --max-results 5
    """
    import os
    import warnings

    from ..query.api import frame_columns, resolve_experiments
    from ..query.index import search as do_search
    from .render import render

    check_nonempty_experiments(experiments)
    progress = index_progress(quiet)
    r = repo()
    check_experiment_names(r, experiments, progress)
    env_exp = os.environ.get("GITRUN_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not experiments and not all_experiments:
        if env_exp:
            experiments = (env_exp,)
        else:
            all_experiments = True
    with warnings.catch_warnings():  # an unknown $GITRUN_EXPERIMENT_NAME: "No runs match."
        warnings.simplefilter("ignore")
        exps = resolve_experiments(r, None, list(experiments) or None, all_experiments)
    lifecycles = {"active": ("active",), "deleted": ("deleted",), "all": None}[view]
    warn_unknown_keys(r, filter_string, order_by)
    if parent is not None:
        clause = parent_filter(r, parent)
        filter_string = f"({filter_string}) and {clause}" if filter_string.strip() else clause
    rows = []
    if exps != []:
        rows = do_search(
            r,
            filter_string,
            order_by=list(order_by),
            experiments=exps,
            lifecycles=lifecycles,
            max_results=max_results or None,
            progress=progress,
        )
    if columns is not None:
        cols = [c.strip() for c in columns.split(",") if c.strip()]
        if not cols:
            raise click.UsageError("--columns needs column names, e.g. run_id,metrics.acc.")
        for c in cols:
            column_value(_NO_ROW, c)  # an unknown column is refused even with no runs
        data = [[column_value(row, c) for c in cols] for row in rows]
    elif fmt == "table":
        cols, data = table_view(rows)
    else:
        cols, data = frame_columns(rows)
    if fmt == "table" and not rows:
        click.echo("No runs match.", err=True)
        return
    click.echo(render(cols, data, fmt))


def _num(v: Any) -> str:
    if v is None or isinstance(v, str):
        return v or ""
    return f"{v:.6g}"


def _delta(v: Any) -> str:
    if v is None or isinstance(v, str):  # "inf" / "-inf" as json_value writes them
        return "" if v is None else ("+" + v if v == "inf" else v)
    return f"{v:+.6g}"


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--patch", is_flag=True, help="Show the full code diff, not only --stat.")
@format_option(choices=("table", "json"))
def diff(run_a, run_b, patch, fmt):
    """Show what differs between two runs: params, metrics, tags, artifacts, code.

    Metrics are final values with B - A deltas; code is `git diff --stat` between
    the two runs' code commits (--patch for the whole diff).

    \b
    Example:
      gitrun diff rf-baseline rf-deeper
      gitrun diff 3f2a 9c1e --patch
      gitrun diff rf-baseline rf-deeper --format json
    """
    from ..workflows.diff import diff as do_diff

    result = do_diff(repo(), run_a, run_b, patch=patch)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(render_diff(result))


def render_diff(result: dict[str, Any]) -> str:
    """`gitrun diff` for people, from the dict workflows.diff.diff returns."""
    from .render import table

    out = [
        f"{side.upper()}  {run['run_id'][:8]}  {run['run_name']}  [{run['status']}]"
        for side, run in (("a", result["a"]), ("b", result["b"]))
    ]
    for section in ("params", "tags"):
        items = result[section]
        out.append(f"\n{section}" + ("" if items else "  (same)"))
        if items:
            rows = [[k, v["a"], v["b"]] for k, v in items.items()]
            out.append(table(["  key", "A", "B"], [["  " + r[0]] + r[1:] for r in rows]))
    items = result["metrics"]
    out.append("\nmetrics" + ("" if items else "  (same)"))
    if items:
        rows = [
            [
                "  " + k,
                _num(v["a"]),
                _num(v["b"]),
                _delta(v["delta"]),
            ]
            for k, v in items.items()
        ]
        out.append(table(["  key", "A", "B", "delta"], rows))
    items = result["artifacts"]
    out.append("\nartifacts" + ("" if items else "  (same)"))
    for k, v in items.items():
        sa = (v["a"] or "-")[:12]
        sb = (v["b"] or "-")[:12]
        out.append(f"  {k}  sha256 {sa} -> {sb}")
    code = result["code"]
    if not code["a"] or not code["b"]:
        out.append("\ncode  (a run has no code commit)")
    elif code["a"] == code["b"]:
        out.append(f"\ncode  same commit {code['a'][:12]}")
    elif code.get("same_tree"):
        out.append(f"\ncode  same code ({code['a'][:12]} and {code['b'][:12]} hold one tree)")
    else:
        out.append(f"\ncode  {code['a'][:12]} -> {code['b'][:12]}")
        out.append(code["diff"].rstrip("\n") or "  (no changes)")
    return "\n".join(out)


def warn_unknown_keys(r: Any, filter_string: str | None, order_by: tuple[str, ...]) -> None:
    """A typo in a key matches nothing and sorts nothing, silently: say so, with the key
    meant (one line each on stderr; the search still runs, as MLflow's would)."""
    import difflib

    from ..query import filter as F
    from ..query.index import unknown_keys

    table = {F.METRIC: "metrics", F.PARAM: "params", F.TAG: "tags"}
    idents = F.idents(F.parse_filter(filter_string))
    idents += [o.ident for o in F.parse_order_by(list(order_by))]
    asked = list(dict.fromkeys((table[i.kind], i.key) for i in idents if i.kind in table))
    if not asked:
        return
    for (t, key), keys in unknown_keys(r, asked).items():
        hint = difflib.get_close_matches(key, keys, n=1)
        meant = f" (did you mean {t}.{hint[0]}?)" if hint else ""
        click.echo(f"gitrun: warning: no run has {t[:-1]} '{key}'{meant}", err=True)
