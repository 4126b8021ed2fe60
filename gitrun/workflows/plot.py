"""`gitrun plot` and the data behind `gitrun report`: runs chosen, their values per axis,
their metric histories, and matplotlib figures of them.

Runs are chosen by reference (ids, unique prefixes, names) and/or by a search (experiments,
filter, order, limit), through the query layer.  An axis key is `metrics.<key>`,
`params.<key>`, `tags.<key>` or `attributes.duration|status|run_name` (a bare key names
whichever of a metric, param or tag the chosen runs have).  Params and tags whose values
are all numbers plot as numbers; otherwise the axis is categorical, its categories evenly
spaced (numbers first, in order, then the other values alphabetically).

The figures are built with matplotlib's object API on an Agg canvas (no pyplot, no global
backend); the file is written to a temp file beside the target and renamed into place, so
a failure leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from typing import Any

from .._git import Repo
from ..errors import GitrunError, InvalidInputError, UsageError
from ..format.entities import Metric, RunRecord

SUFFIXES = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
X_AXES = ("step", "time", "relative")
KINDS = {"metrics": "metrics", "metric": "metrics", "params": "params", "param": "params"}
KINDS.update({"tags": "tags", "tag": "tags", "attributes": "attributes", "attribute": "attributes"})
ATTRIBUTES = ("duration", "status", "run_name")
_NUMBER = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$")

# A figure readable at paper size: matplotlib's default 6.4 x 4.8 in made a little flatter.
FIG_W, FIG_H, DPI = 6.4, 4.0, 150
LEGEND_MAX = 30  # more runs than this: no legend (colours by order, or by the last axis)
LABEL_POINTS_MAX = 25  # a scatter of at most this many runs names its points
PLOT_POINTS_MAX = 5000  # per series in a figure (min/max of each bucket kept)


# ---------------------------------------------------------------------------
# choosing runs
# ---------------------------------------------------------------------------
def select_runs(
    repo: Repo,
    refs: list[str] | tuple[str, ...] = (),
    experiments: list[str] | None = None,
    filter_string: str = "",
    order_by: list[str] | tuple[str, ...] = (),
    max_results: int | None = None,
    progress: Any = None,
) -> list[RunRecord]:
    """The runs to draw, without their metric histories (load_histories adds them).

    With `refs`, those runs in the order given (a filter or experiments narrow them, an
    order_by sorts them);
    otherwise the runs a search finds (`experiments` None: every experiment), in its order
    (newest first unless `order_by` says otherwise).  No run: one sentence."""
    from .. import query
    from ..query import resolve
    from ..query.index import search

    ids: list[str] = []
    for ref in refs:
        rid = resolve.resolve(repo, ref)
        if rid not in ids:
            ids.append(rid)
    searched = bool(filter_string or order_by or experiments is not None or not ids)
    rows: list[Any] = []
    if searched:
        if experiments == []:
            rows = []
        else:
            rows = search(
                repo,
                filter_string,
                order_by=list(order_by),
                experiments=experiments,
                lifecycles=("active",) if not ids else None,
                max_results=None if ids else max_results,
                progress=progress,
            )
    if ids:
        recs = query.records(repo, ids)
        if searched:  # the named runs that match, in the order asked (--order-by) or given
            found = [r.run_id for r in rows]
            named, matched = set(ids), set(found)
            order = found if order_by else ids
            chosen = [recs[i] for i in order if i in recs and i in named and i in matched]
        else:
            chosen = [recs[i] for i in ids if i in recs]
        if max_results:
            chosen = chosen[:max_results]
    else:
        chosen = [r.to_record() for r in rows]
    if not chosen:
        raise GitrunError(_no_runs(ids, experiments, filter_string))
    return chosen


def _no_runs(ids: list[str], experiments: list[str] | None, filter_string: str) -> str:
    where = f" in experiment(s) {', '.join(experiments)}" if experiments else ""
    if ids:
        return (
            f"None of the {len(ids)} runs named matches"
            + (f" the filter '{filter_string}'" if filter_string else "")
            + f"{where}; `gitrun search` shows which runs do."
        )
    if filter_string:
        return f"No runs match the filter '{filter_string}'{where}; nothing was drawn."
    return f"No runs{where} to draw; record one with `gitrun record -- python train.py`."


def load_histories(repo: Repo, recs: list[RunRecord], keys: set[str] | None = None) -> None:
    """Fill each record's `history` with its metrics' points (only `keys` when given) from
    refs/gitrun/runs, or from its journal when the run is still in progress.

    Committed histories are read in two `git cat-file` streams (the run trees, then their
    metrics.tsv blobs) through the format's one metrics.tsv reader; only the points of the
    wanted keys become objects (a 200-run sweep of 2,000-step metrics: ~1 s, not ~2.5)."""
    import warnings

    from .._git import parse_tree
    from ..format import journal, store
    from ..format.layout import HISTORY_FILE

    todo = [r for r in recs if not r.history]
    if not todo:
        return
    live = {r.run_id: r for r in journal.live_runs(repo)}
    trees = store.list_run_trees(repo)
    wanted = {r.run_id: trees[r.run_id] for r in todo if r.run_id not in live and r.run_id in trees}
    hash_len = 32 if repo.object_format == "sha256" else 20
    tree_data = {
        sha: (kind, data) for sha, kind, data in store.read_many(repo, list(wanted.values()))
    }
    blob_of: dict[str, str] = {}
    for rid, tree in wanted.items():
        kind, data = tree_data.get(tree, ("missing", b""))
        if kind == "tree":
            for _mode, name, sha in parse_tree(data, hash_len):
                if name == HISTORY_FILE:
                    blob_of[rid] = sha
    blobs = {sha: (kind, data) for sha, kind, data in store.read_many(repo, list(blob_of.values()))}
    for r in todo:
        if r.run_id in live:
            r.history = {
                k: v for k, v in live[r.run_id].history.items() if keys is None or k in keys
            }
            continue
        kind, data = blobs.get(blob_of.get(r.run_id, ""), ("missing", b""))
        if kind != "blob":
            continue
        try:
            rows = store.history_rows(data.decode())
            hist: dict[str, list[Metric]] = {}
            for key, step, ts, text in rows:
                if keys is None or key in keys:
                    hist.setdefault(key, []).append(Metric(key, float(text), int(ts), int(step)))
        except ValueError:  # damaged, or not written by gitrun: drawn from its latest values
            warnings.warn(
                f"The metric history of run {r.run_id} is malformed; only its latest values "
                "are drawn.",
                stacklevel=2,
            )
            continue
        r.history = hist
    for r in todo:  # no history read (a damaged record): the latest values, as one point
        for key, value in r.metrics.items():
            if key not in r.history and (keys is None or key in keys):
                when = r.end_time or r.start_time or 0
                r.history[key] = [Metric(key, value, when, 0)]


# ---------------------------------------------------------------------------
# keys and values
# ---------------------------------------------------------------------------
def label(rec: RunRecord) -> str:
    return rec.run_name or rec.run_id[:8]


def labels(recs: list[RunRecord]) -> dict[str, str]:
    """run id -> legend label: the run name, with a short id when two runs share it."""
    seen: dict[str, int] = {}
    for r in recs:
        seen[label(r)] = seen.get(label(r), 0) + 1
    return {
        r.run_id: label(r) if seen[label(r)] == 1 else f"{label(r)} ({r.run_id[:8]})" for r in recs
    }


def duration(rec: RunRecord) -> float | None:
    """Seconds from start to end (None while running or without times)."""
    if rec.start_time is None or rec.end_time is None:
        return None
    return (rec.end_time - rec.start_time) / 1000


def raw_value(rec: RunRecord, kind: str, name: str) -> Any:
    if kind == "metrics":
        return rec.metrics.get(name)
    if kind == "params":
        return rec.params.get(name)
    if kind == "tags":
        return rec.tags.get(name)
    if name == "duration":
        return duration(rec)
    return rec.status if name == "status" else label(rec)


def parse_key(key: str, recs: list[RunRecord], metric_only: bool = False) -> tuple[str, str]:
    """(kind, name) of an axis key, checked against the chosen runs; one sentence (with the
    key meant) when none of them has it."""
    if not isinstance(key, str) or not key.strip():
        raise UsageError("An axis key must be a non-empty string such as metrics.loss.")
    key = key.strip()
    prefix, dot, rest = key.partition(".")
    kind = KINDS.get(prefix) if dot and rest else None
    if kind is None:
        kinds = ["metrics"] if metric_only else ["metrics", "params", "tags"]
        having = [k for k in kinds if any(raw_value(r, k, key) is not None for r in recs)]
        if len(having) == 1:
            return having[0], key
        if len(having) > 1:
            raise UsageError(
                f"'{key}' is both a " + " and a ".join(k[:-1] for k in having) + " of the "
                f"chosen runs; write {having[0]}.{key} or {having[1]}.{key}."
            )
        if metric_only:
            other = [k for k in ("params", "tags") if any(raw_value(r, k, key) for r in recs)]
            if other:
                raise InvalidInputError(
                    f"'{key}' is a {other[0][:-1]}, not a metric; a metric history needs a "
                    "metric key such as metrics.loss."
                )
        kind, rest = "metrics" if metric_only else "", key
    if metric_only and kind != "metrics":
        raise UsageError(f"'{key}' is not a metric; a metric history key is metrics.<key>.")
    if kind == "attributes":
        if rest not in ATTRIBUTES:
            raise UsageError(
                f"Unknown attribute '{rest}'; plot attributes."
                + ", attributes.".join(ATTRIBUTES)
                + " or a metrics./params./tags. key."
            )
        return kind, rest
    if kind and any(raw_value(r, kind, rest) is not None for r in recs):
        return kind, rest
    raise InvalidInputError(_unknown_key(key, kind, rest, recs))


def _unknown_key(key: str, kind: str, name: str, recs: list[RunRecord]) -> str:
    import difflib

    known = {f"{k}.{n}" for r in recs for k in ("metrics", "params") for n in getattr(r, k)}
    known |= {f"tags.{n}" for r in recs for n in r.tags if not n.startswith("mlflow.")}
    asked = f"{kind}.{name}" if kind else key
    hint = difflib.get_close_matches(asked, sorted(known), n=1, cutoff=0.6)
    meant = f" (did you mean {hint[0]}?)" if hint else ""
    runs = "the chosen run" if len(recs) == 1 else f"any of the {len(recs)} chosen runs"
    if not kind:
        return (
            f"'{key}' is not a metric, param or tag of {runs}{meant}; write "
            "metrics.<key>, params.<key> or tags.<key>."
        )
    return f"'{asked}' is not a {kind[:-1]} of {runs}{meant}."


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and _NUMBER.match(v):
        return float(v)
    return None


class Axis:
    """One axis: the values of one key for the chosen runs, numeric or categorical."""

    def __init__(self, key: str, kind: str, name: str, recs: list[RunRecord]) -> None:
        self.key = key  # as shown: "params.lr"
        self.kind = kind
        self.name = name
        raw = {r.run_id: raw_value(r, kind, name) for r in recs}
        raw = {k: v for k, v in raw.items() if v is not None}
        numbers = {k: _as_number(v) for k, v in raw.items()}
        self.numeric = kind == "metrics" or all(n is not None for n in numbers.values())
        self.values: dict[str, Any] = {}
        self.categories: list[str] = []
        self.dropped = 0  # NaN / infinite values left out of a numeric axis
        if self.numeric:
            for k, n in numbers.items():
                if n is not None and math.isfinite(n):
                    self.values[k] = n
                else:
                    self.dropped += 1
        else:
            self.values = {k: str(v) for k, v in raw.items()}
            self.categories = sorted(set(self.values.values()), key=_category_order)
        # whole numbers only (steps, epochs, depths): ticks at whole numbers, never 0.2 apart
        self.integer = self.numeric and all(float(v).is_integer() for v in self.values.values())

    def position(self, run_id: str) -> float | None:
        """The run's value on this axis as a number (a category: its index)."""
        v = self.values.get(run_id)
        if v is None:
            return None
        return float(v) if self.numeric else float(self.categories.index(v))

    def span(self) -> tuple[float, float]:
        if not self.numeric:
            return 0.0, float(max(len(self.categories) - 1, 0))
        vals = list(self.values.values())
        return (min(vals), max(vals)) if vals else (0.0, 1.0)

    def normalized(self, run_id: str) -> float | None:
        """Position in [0, 1] along a parallel-coordinates axis (categories evenly spaced;
        an axis of one value puts it in the middle)."""
        p = self.position(run_id)
        return None if p is None else self.normalize(p)

    def normalize(self, p: float) -> float:
        lo, hi = self.span()
        return 0.5 if hi == lo else (p - lo) / (hi - lo)


def _category_order(v: str) -> tuple[int, float, str]:
    n = _as_number(v)
    return (0, n, v) if n is not None and math.isfinite(n) else (1, 0.0, v)


def axis(key: str, recs: list[RunRecord]) -> Axis:
    kind, name = parse_key(key, recs)
    return Axis(f"{kind}.{name}", kind, name, recs)


def axes(keys: list[str] | tuple[str, ...], recs: list[RunRecord]) -> list[Axis]:
    out: list[Axis] = []
    for k in keys:
        a = axis(k, recs)
        if all(a.key != b.key for b in out):
            out.append(a)
    return out


# ---------------------------------------------------------------------------
# metric histories
# ---------------------------------------------------------------------------
def series(rec: RunRecord, key: str, x_axis: str = "step") -> tuple[list[float], list[float]]:
    """One run's history of `key` as (x, y), in step order; NaN and infinite values are
    left out.  x: the step, the wall time (epoch seconds) or seconds since the run's start."""
    if x_axis not in X_AXES:
        raise UsageError(f"Unknown x axis '{x_axis}'; use step, time or relative.")
    points = sorted(rec.history.get(key, ()), key=lambda m: (m.step, m.timestamp))
    points = [m for m in points if math.isfinite(m.value)]
    if not points:
        return [], []
    if x_axis == "step":
        xs = [float(m.step) for m in points]
    elif x_axis == "time":
        xs = [m.timestamp / 1000 for m in points]
    else:
        t0 = rec.start_time if rec.start_time is not None else points[0].timestamp
        xs = [(m.timestamp - t0) / 1000 for m in points]
    return xs, [m.value for m in points]


def downsample(xs: list[float], ys: list[float], limit: int) -> tuple[list[float], list[float]]:
    """At most `limit` points (>= 4), the shape kept: the first and last points, and the
    minimum and maximum of each of limit/2 - 1 buckets, in x order."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    limit = max(limit, 4)
    buckets = limit // 2 - 1
    keep = {0, n - 1}
    inner = n - 2
    for b in range(buckets):
        lo = 1 + b * inner // buckets
        hi = 1 + (b + 1) * inner // buckets
        if lo >= hi:
            continue
        part = range(lo, hi)
        keep.add(min(part, key=ys.__getitem__))
        keep.add(max(part, key=ys.__getitem__))
    idx = sorted(keep)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def history_keys(recs: list[RunRecord], keys: list[str] | tuple[str, ...]) -> list[str]:
    """The metric names for `keys` (metrics.loss, loss), each checked against the runs."""
    out = []
    for k in keys:
        kind, name = parse_key(k, recs, metric_only=True)
        if not any(r.history.get(name) for r in recs):
            raise InvalidInputError(_unknown_key(k, kind, name, recs))
        if name not in out:
            out.append(name)
    return out


# ---------------------------------------------------------------------------
# figures (matplotlib, Agg canvas)
# ---------------------------------------------------------------------------
def output_format(path: str) -> str:
    """png, svg or pdf from the output file's suffix; one sentence otherwise."""
    return SUFFIXES[check_output(path, SUFFIXES, "name the output file .png, .svg or .pdf")]


def check_output(path: str, suffixes: Iterable[str], advice: str) -> str:
    """The output file's suffix (lowercase) when it is one of `suffixes` and the file can
    be written where it is named; one sentence (ending with `advice` for a bad suffix)
    otherwise."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in suffixes:
        shown = f"'{suffix}'" if suffix else "no suffix"
        raise InvalidInputError(f"Cannot write '{path}': it has {shown}; {advice}.")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InvalidInputError(f"Cannot write '{path}': the directory {d} does not exist.")
    if os.path.isdir(path):
        raise InvalidInputError(f"Cannot write '{path}': it is a directory.")
    return suffix


def _matplotlib() -> Any:
    from ..errors import require

    require("matplotlib", "gitrun-ml[plot]")
    import matplotlib

    global _PARSE_MATH_RC
    if "text.parse_math" not in matplotlib.rcParams:  # matplotlib < 3.6
        _PARSE_MATH_RC = False
        _RC.pop("text.parse_math", None)

    return matplotlib


_RC = {
    "svg.fonttype": "none",  # text stays text in SVG (searchable, editable)
    "pdf.fonttype": 42,  # TrueType in PDF, as journals ask
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "text.parse_math": False,  # run names are text, never math
}


_PARSE_MATH_RC = True


def _figure(width: float = FIG_W, height: float = FIG_H, rows: int = 1) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, constrained_layout=True)
    FigureCanvasAgg(fig)
    axs = fig.subplots(rows, 1, sharex=True, squeeze=False)
    return fig, [a[0] for a in axs]


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    if n <= 10:
        cmap = colormaps["tab10"]
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _legend(ax: Any, n: int) -> None:
    if n <= 1 or n > LEGEND_MAX:
        return
    if n <= 10:
        ax.legend(fontsize="small", loc="best", frameon=False)
    else:
        ax.legend(
            fontsize="x-small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            ncol=1 if n <= 15 else 2,
        )


def history_figure(
    recs: list[RunRecord], keys: list[str], x_axis: str = "step", log_y: bool = False
) -> Any:
    """Each metric's history, one line per run (a panel per metric)."""
    mpl = _matplotlib()
    names = labels(recs)
    with mpl.rc_context(_RC):
        width = FIG_W + (1.6 if 10 < len(recs) <= LEGEND_MAX else 0)
        height = FIG_H if len(keys) == 1 else 2.6 * len(keys)
        fig, axs = _figure(width, height, rows=len(keys))
        colors = _colors(len(recs))
        for ax, key in zip(axs, keys):
            drawn = 0
            for rec, color in zip(recs, colors):
                xs, ys = series(rec, key, x_axis)
                if not xs:
                    continue
                xs, ys = downsample(xs, ys, PLOT_POINTS_MAX)
                if x_axis == "time":
                    import datetime as dt

                    xs = [dt.datetime.fromtimestamp(x) for x in xs]  # type: ignore[misc]
                ax.plot(
                    xs,
                    ys,
                    label=_t(names[rec.run_id]),
                    color=color,
                    linewidth=1.2,
                    marker="o" if len(xs) == 1 else None,
                    markersize=3,
                )
                drawn += 1
            ax.set_ylabel(_t(f"metrics.{key}"))
            if log_y:
                _log_scale(ax, key, recs, "y")
            if ax is axs[0]:
                _legend(ax, drawn)
                if drawn > LEGEND_MAX:
                    ax.set_title(f"{drawn} runs (legend left out)", fontsize="small")
                elif len(recs) == 1:
                    ax.set_title(_t(names[recs[0].run_id]), fontsize="medium")
        xlabel = {"step": "step", "time": "time", "relative": "relative time (s)"}[x_axis]
        axs[-1].set_xlabel(xlabel)
        if x_axis == "time":
            fig.autofmt_xdate()
    return fig


def _log_scale(ax: Any, key: str, recs: list[RunRecord], which: str) -> None:
    values = [m.value for r in recs for m in r.history.get(key, ())]
    if any(math.isfinite(v) and v <= 0 for v in values):
        raise InvalidInputError(
            f"metrics.{key} has values <= 0, which a log scale cannot show; drop --log-y."
        )
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")


def _categorical_ticks(ax: Any, a: Axis, which: str) -> None:
    if a.numeric:
        return
    positions = list(range(len(a.categories)))
    step = max(1, len(positions) // 20)
    shown = positions[::step]
    texts = [_short(a.categories[i]) for i in shown]
    if which == "x":
        ax.set_xticks(shown)
        ax.set_xticklabels(texts, rotation=30 if len(shown) > 6 else 0, ha="right")
        ax.set_xlim(-0.5, len(positions) - 0.5)
    else:
        ax.set_yticks(shown)
        ax.set_yticklabels(texts)
        ax.set_ylim(-0.5, len(positions) - 0.5)


def _short(text: str, n: int = 24) -> str:
    return _t(text if len(text) <= n else text[: n - 1] + "…")


def _t(text: str) -> str:
    """Untrusted text as matplotlib shows it literally: no mathtext (rc text.parse_math is
    off; `$` escaped where matplotlib lacks it), and a label starting with `_`, which a
    legend would leave out, gets a space in front."""
    if not _PARSE_MATH_RC:
        text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def scatter_figure(recs: list[RunRecord], x: Axis, y: Axis, log_y: bool = False) -> Any:
    """One point per run that has both values; at most 25 runs: each point named."""
    mpl = _matplotlib()
    names = labels(recs)
    pts = [
        (x.position(r.run_id), y.position(r.run_id), names[r.run_id])
        for r in recs
        if x.position(r.run_id) is not None and y.position(r.run_id) is not None
    ]
    if not pts:
        raise InvalidInputError(
            f"None of the {len(recs)} chosen runs has both {x.key} and {y.key}; nothing to draw."
        )
    if log_y and (not y.numeric or any(p[1] is not None and p[1] <= 0 for p in pts)):
        raise InvalidInputError(
            f"{y.key} has values <= 0 or is not numeric, which a log scale cannot show; "
            "drop --log-y."
        )
    with mpl.rc_context(_RC):
        fig, (ax,) = _figure()
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=22, alpha=0.85, color="C0")
        if len(pts) <= LABEL_POINTS_MAX:
            for px, py, name in pts:
                ax.annotate(
                    _t(name),
                    (px, py),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize="x-small",
                )
        ax.set_xlabel(_t(x.key))
        ax.set_ylabel(_t(y.key))
        _categorical_ticks(ax, x, "x")
        _categorical_ticks(ax, y, "y")
        if log_y:
            ax.set_yscale("log")
    return fig


def parallel_figure(recs: list[RunRecord], cols: list[Axis]) -> Any:
    """Parallel coordinates: an axis per key, a line per run, coloured by the last axis
    (a colour bar for a number, a legend for categories). A run without a value on an
    axis has a gap there."""
    mpl = _matplotlib()
    if len(cols) < 2:
        raise UsageError("--parallel needs at least two keys, e.g. params.lr metrics.f1.")
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    last = cols[-1]
    with mpl.rc_context({**_RC, "axes.grid": False}):
        width = max(FIG_W, 1.5 * len(cols) + 1.5)
        fig, (ax,) = _figure(width, FIG_H)
        from matplotlib.colors import ListedColormap

        viridis = colormaps["viridis"]  # without its palest yellows, which vanish on white
        cmap = ListedColormap([viridis(0.88 * i / 255) for i in range(256)])
        lo, hi = last.span()
        norm = Normalize(lo, hi if hi > lo else lo + 1)
        cat_colors = _colors(len(last.categories))
        drawn = 0
        # the best (highest) values drawn last, on top; runs without one first, below
        order = sorted(
            recs,
            key=lambda r: (last.position(r.run_id) is not None, last.position(r.run_id) or 0.0),
        )
        for rec in order:
            ys = [c.normalized(rec.run_id) for c in cols]
            if sum(v is not None for v in ys) < 2:
                continue
            v = last.position(rec.run_id)
            if v is None:
                color: Any = (0.6, 0.6, 0.6, 1.0)
            elif last.numeric:
                color = cmap(norm(v))
            else:
                color = cat_colors[int(v)]
            ax.plot(
                range(len(cols)),
                [math.nan if y is None else y for y in ys],
                color=color,
                alpha=0.75 if len(recs) <= 50 else 0.45,
                linewidth=1.1,
            )
            drawn += 1
        if not drawn:
            raise InvalidInputError(
                "No chosen run has values on two of these axes; nothing to draw."
            )
        for i, c in enumerate(cols):
            ax.axvline(i, color="0.25", linewidth=0.8)
            for pos, text in axis_ticks(c):
                ax.text(
                    i + 0.02,
                    pos,
                    text,
                    fontsize="small",
                    va="center",
                    ha="left",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.6},
                )
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels([_short(c.key, 28) for c in cols])
        ax.set_xlim(-0.15, len(cols) - 1 + 0.6)
        ax.set_ylim(-0.04, 1.04)
        ax.set_yticks([])
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        if last.numeric:
            from matplotlib.cm import ScalarMappable

            sm = ScalarMappable(norm=norm, cmap=cmap)
            fig.colorbar(sm, ax=ax, label=_t(last.key), pad=0.01, shrink=0.85, aspect=30)
        elif len(last.categories) <= LEGEND_MAX:
            from matplotlib.lines import Line2D

            handles = [
                Line2D([], [], color=cat_colors[i], label=_short(c))
                for i, c in enumerate(last.categories)
            ]
            ax.legend(handles=handles, title=_t(last.key), fontsize="x-small", frameon=False)
    return fig


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About `n` round tick values between lo and hi (1, 2, 2.5 or 5 times a power of 10;
    `integer`: whole numbers only, at least 1 apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, step if step < 1 or float(step).is_integer() else math.ceil(step))
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    t = first
    while t <= hi + step * 1e-9:
        out.append(round(t, 12))
        t = first + len(out) * step
    return out


def axis_ticks(a: Axis) -> list[tuple[float, str]]:
    """(position in [0, 1], label) of the ticks along a parallel-coordinates axis."""
    lo, hi = a.span()
    if not a.numeric:
        n = len(a.categories)
        step = max(1, n // 12)
        return [(a.normalize(float(i)), _short(a.categories[i], 16)) for i in range(0, n, step)]
    if hi == lo:
        return [(0.5, f"{lo:g}")]
    out = [((t - lo) / (hi - lo), f"{t:g}") for t in nice_ticks(lo, hi, integer=a.integer)]
    for end, pos in ((lo, 0.0), (hi, 1.0)):  # the extremes, unless a tick is close
        if all(abs(p - pos) > 0.08 for p, _ in out):
            out.append((pos, f"{end:.4g}"))
    return sorted(out)


def save(fig: Any, path: str, fmt: str) -> None:
    """Write the figure to `path` (png at 150 dpi, svg, pdf) through a temp file."""
    with _matplotlib().rc_context(_RC):
        write_atomic(path, lambda f: fig.savefig(f, format=fmt, dpi=DPI, metadata=_metadata(fmt)))


def write_atomic(path: str, write: Any) -> None:
    """Call write(binary file) on a new file beside `path`, then rename it to `path`; on
    any failure the temp file is removed and `path` is left as it was.  The file gets the
    permissions of any new file (the umask applies)."""
    import secrets

    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".gitrun-{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _metadata(fmt: str) -> dict[str, Any]:
    # Reproducible files: no creation date in PDF/SVG (PNG has none by default).
    if fmt == "pdf":
        return {"Creator": "gitrun", "CreationDate": None}
    if fmt == "svg":
        return {"Date": None, "Creator": "gitrun"}
    return {"Software": "gitrun"}


# ---------------------------------------------------------------------------
# the verb
# ---------------------------------------------------------------------------
def plot(
    repo: Repo,
    output: str,
    metrics: list[str] | tuple[str, ...] = (),
    x: str | None = None,
    y: str | None = None,
    parallel: list[str] | tuple[str, ...] = (),
    x_axis: str = "step",
    log_y: bool = False,
    refs: list[str] | tuple[str, ...] = (),
    experiments: list[str] | None = None,
    filter_string: str = "",
    order_by: list[str] | tuple[str, ...] = (),
    max_results: int | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Draw one chart into `output`: metric histories (`metrics`), a scatter (`x`, `y`) or
    parallel coordinates (`parallel`).  Returns what was drawn: kind, path, runs."""
    modes = [bool(metrics), bool(x or y), bool(parallel)]
    if sum(modes) != 1:
        raise UsageError(
            "Say what to draw: metric keys (gitrun plot metrics.loss), --x and --y for a "
            "scatter, or --parallel KEY KEY... for parallel coordinates; one of them."
        )
    if (x or y) and not (x and y):
        raise UsageError("A scatter needs both --x and --y, e.g. --x params.lr --y metrics.f1.")
    if x_axis not in X_AXES:
        raise UsageError(f"Unknown x axis '{x_axis}'; use step, time or relative.")
    fmt = output_format(output)
    _matplotlib()  # the install hint before any work
    recs = select_runs(repo, refs, experiments, filter_string, order_by, max_results, progress)
    if metrics:
        load_histories(repo, recs, {parse_key(k, recs, metric_only=True)[1] for k in metrics})
        keys = history_keys(recs, metrics)
        fig = history_figure(recs, keys, x_axis, log_y)
        kind, shown = "history", [f"metrics.{k}" for k in keys]
    elif parallel:
        cols = axes(parallel, recs)
        fig = parallel_figure(recs, cols)
        kind, shown = "parallel", [c.key for c in cols]
    else:
        assert x is not None and y is not None
        ax_x, ax_y = axis(x, recs), axis(y, recs)
        fig = scatter_figure(recs, ax_x, ax_y, log_y)
        kind, shown = "scatter", [ax_x.key, ax_y.key]
    save(fig, output, fmt)
    return {"kind": kind, "path": output, "format": fmt, "keys": shown, "runs": len(recs)}


# ---------------------------------------------------------------------------
# the data of a report (gitrun/ui/report.py draws it)
# ---------------------------------------------------------------------------
REPORT_SERIES_POINTS = 1000  # at most this many points per metric history in a report
REPORT_TOTAL_POINTS = 120_000  # and about this many in all (a few MB for 200 runs)
REPORT_CHARTS_MAX = 12  # metric history charts at most (--metric chooses others)
PARALLEL_PARAMS_MAX = 8


def _json_number(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _compact(v: float) -> float:
    """A chart value to 7 significant digits (what a chart can show; keeps the file small)."""
    return float(f"{v:.7g}")


def report_data(
    recs: list[RunRecord],
    metrics: list[str] | tuple[str, ...] = (),
    series_points: int = REPORT_SERIES_POINTS,
    total_points: int = REPORT_TOTAL_POINTS,
) -> dict[str, Any]:
    """Everything a report shows, as JSON-ready data: the runs (table rows), their metric
    histories (downsampled), and per-key values for the scatter and parallel coordinates.

    `metrics` chooses the charted metrics (default: every metric with a history, up to
    REPORT_CHARTS_MAX, in name order).  Histories are cut to at most `series_points`
    points per series and about `total_points` in all, each bucket's min and max kept."""
    names = labels(recs)
    param_keys = sorted({k for r in recs for k in r.params})
    metric_keys = sorted({k for r in recs for k in (*r.metrics, *r.history)})
    if metrics:
        charted = focus = history_keys(recs, metrics)
    else:  # a metric logged once per run is in the table, the scatter and the parallel chart
        focus = metric_keys
        charted = [k for k in metric_keys if any(len(series(r, k)[0]) > 1 for r in recs)]
    left_out = charted[REPORT_CHARTS_MAX:] if not metrics else []
    charted = charted if metrics else charted[:REPORT_CHARTS_MAX]
    runs = []
    for r in recs:
        runs.append(
            {
                "run_id": r.run_id,
                "run_name": r.run_name,
                "label": names[r.run_id],
                "experiment": r.experiment,
                "status": r.status,
                "start_time": r.start_time,
                "end_time": r.end_time,
                "duration": duration(r),
                "params": dict(r.params),
                "metrics": {k: _json_number(v) for k, v in r.metrics.items()},
            }
        )
    # histories: columnar, per metric a list of [run index, steps, values]
    n_series = sum(1 for k in charted for r in recs if r.history.get(k))
    per_series = max(20, min(series_points, total_points // max(n_series, 1)))
    histories: dict[str, list[Any]] = {}
    cut = 0
    longest = 0
    for k in charted:
        out = []
        for i, r in enumerate(recs):
            xs, ys = series(r, k, "step")
            if not xs:
                continue
            longest = max(longest, len(xs))
            if len(xs) > per_series:
                cut += 1
                xs, ys = downsample(xs, ys, per_series)
            out.append([i, [int(x) for x in xs], [_compact(y) for y in ys]])
        histories[k] = out
    # axes for the scatter and the parallel coordinates
    candidates = [f"params.{k}" for k in param_keys] + [f"metrics.{k}" for k in metric_keys]
    candidates.append("attributes.duration")
    axis_list = []
    for key in candidates:
        kind, _, name = key.partition(".")
        a = Axis(key, kind, name, recs)
        if not a.values:
            continue
        axis_list.append(
            {
                "key": key,
                "numeric": a.numeric,
                "integer": a.integer,
                "categories": a.categories,
                "values": [_axis_json(a, r.run_id) for r in recs],
                "varies": len(set(a.values.values())) > 1,
            }
        )
    par = _parallel_defaults(axis_list, focus)
    return {
        "runs": runs,
        "param_keys": param_keys,
        "metric_keys": metric_keys,
        "charted": charted,
        "charts_left_out": left_out,
        "histories": histories,
        "downsampling": {
            "points_per_series": per_series,
            "series_cut": cut,
            "longest": longest,
        },
        "axes": axis_list,
        "scatter": _scatter_defaults(axis_list, focus),
        "parallel": par,
        "parallel_data": _parallel_rows(recs, par),
    }


def _axis_json(a: Axis, run_id: str) -> Any:
    v = a.values.get(run_id)
    return _compact(v) if a.numeric and v is not None else v


def _scatter_defaults(axis_list: list[dict[str, Any]], focus: list[str]) -> list[str]:
    """x: the first param that varies (else another metric), y: the first metric of focus."""
    have = {a["key"] for a in axis_list}
    params = [a["key"] for a in axis_list if a["key"].startswith("params.") and a["varies"]]
    metrics = [f"metrics.{k}" for k in focus if f"metrics.{k}" in have]
    y = metrics[0] if metrics else None
    x = params[0] if params else next((m for m in metrics if m != y), None)
    return [x, y] if x and y else []


def _parallel_defaults(axis_list: list[dict[str, Any]], focus: list[str]) -> list[str]:
    """The params that vary, then up to three metrics of focus, its first one last (it
    colours the lines)."""
    have = {a["key"] for a in axis_list}
    params = [a["key"] for a in axis_list if a["key"].startswith("params.") and a["varies"]]
    metrics = [f"metrics.{k}" for k in focus if f"metrics.{k}" in have][:3]
    keys = params[:PARALLEL_PARAMS_MAX] + metrics[::-1]
    return keys if len(keys) >= 2 else []


def _parallel_rows(recs: list[RunRecord], keys: list[str]) -> dict[str, Any]:
    """Rows of a parallel-coordinates chart, normalized per axis, and each axis's ticks."""
    if len(recs) < 2 or not keys:
        return {"lines": [], "ticks": [], "color": None}
    cols = axes(keys, recs)
    lines = []
    for i, r in enumerate(recs):
        for j, c in enumerate(cols):
            y = c.normalized(r.run_id)
            if y is not None:
                v = c.values[r.run_id]
                lines.append({"r": i, "a": j, "y": round(y, 5), "v": _fmt_value(v)})
    ticks = []
    for j, c in enumerate(cols):
        for pos, text in axis_ticks(c):
            ticks.append({"a": j, "y": round(pos, 5), "t": text})
    last = cols[-1]
    color = {"key": last.key, "numeric": last.numeric}
    return {"lines": lines, "ticks": ticks, "color": color, "keys": [c.key for c in cols]}


def _fmt_value(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
