"""`gitrun report`: ONE self-contained HTML file about a set of runs.

The file holds the runs' table (rendered as HTML: readable without JavaScript), the data
as JSON (`<script type="application/json" id="gitrun-data">`), Vega-Lite specs of the
charts, and the vendored chart library (static/vendor/: vega, vega-lite, vega-embed)
inlined, so it opens offline from disk and can be attached to a review or mailed.  A
Content-Security-Policy in the page forbids every network request.

Untrusted text (run names, params, tags, keys) is escaped for HTML wherever it goes into
markup, and every JSON block escapes `<`, `>` and `&` (so nothing in the data can close
its script tag); charts draw names as text, never as markup.  The data (workflows.plot.
report_data) is downsampled: at most 1,000 points per metric history (min/max kept).
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from .._git import Repo
from ..workflows import plot as P

VENDOR = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
LICENSES = ("LICENSE.vega", "LICENSE.vega-lite", "LICENSE.vega-embed")
SUFFIXES = (".html", ".htm")
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
)
LEGEND_MAX = 20  # more runs than this: charts without a legend (names in tooltips)
SCATTER_LABELS_MAX = 8  # more points than this: no names beside them (they overlap; tooltips)
INTEGER_AXIS = {"format": "d", "tickMinStep": 1}  # steps, epochs, depths: 0 1 2, never 0.2


def check_output(path: str) -> None:
    """One sentence for an output name the report cannot be written to."""
    P.check_output(path, SUFFIXES, "name the report file .html")


def vendor_file(name: str) -> str:
    """A file of the vendored chart library (static/vendor/), as text."""
    from importlib import resources

    return resources.files("gitrun.ui").joinpath("static", "vendor", name).read_text("utf-8")


def script_json(obj: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` (they are \\u escapes, which
    JSON.parse reads back), no NaN (not JSON)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _script(code: str) -> str:
    # A literal `</script` cannot occur in valid minified code outside a string or a regex,
    # and there `<\/` means the same; a guard all the same.
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


# ---------------------------------------------------------------------------
# Vega-Lite specs
# ---------------------------------------------------------------------------
def _legend(n: int) -> Any:
    return {"title": "run", "symbolLimit": LEGEND_MAX} if n <= LEGEND_MAX else None


def history_spec(key: str, data_name: str, n_runs: int, points: bool) -> dict[str, Any]:
    """A metric's history, one line per run; data rows {run, step, value} from `data_name`
    (steps are whole numbers: so are the x ticks)."""
    return {
        "width": "container",
        "height": 260,
        "title": {"text": f"metrics.{key}", "anchor": "start", "fontSize": 13},
        "data": {"name": data_name},
        "mark": {"type": "line", "strokeWidth": 1.3, "point": points, "clip": True},
        "encoding": {
            "x": {
                "field": "step",
                "type": "quantitative",
                "title": "step",
                "axis": {"tickCount": 10, **INTEGER_AXIS},
            },
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": f"metrics.{key}",
                "scale": {"zero": False},
            },
            "color": {
                "field": "run",
                "type": "nominal",
                "sort": None,
                "legend": _legend(n_runs),
                "scale": {"scheme": "tableau10" if n_runs <= 10 else "category20"},
            },
            "tooltip": [
                {"field": "run", "type": "nominal"},
                {"field": "step", "type": "quantitative"},
                {"field": "value", "type": "quantitative", "format": ".6g"},
            ],
        },
    }


def axis_encoding(a: dict[str, Any], field: str) -> dict[str, Any]:
    """How an axis key (an entry of report_data's "axes") is encoded on x or y."""
    if a["numeric"]:
        enc: dict[str, Any] = {"field": field, "type": "quantitative", "title": a["key"]}
        enc["scale"] = {"zero": False}
        enc["axis"] = {"tickCount": 10, **(INTEGER_AXIS if a.get("integer") else {})}
        return enc
    return {"field": field, "type": "ordinal", "title": a["key"], "sort": a["categories"]}


def scatter_spec(x: dict[str, Any], y: dict[str, Any], n_runs: int) -> dict[str, Any]:
    """One point per run (named beside it for a handful of runs, else in its tooltip only);
    data rows {run, x, y}."""
    layers: list[dict[str, Any]] = [
        {"mark": {"type": "point", "filled": True, "size": 60, "opacity": 0.85}}
    ]
    if n_runs <= SCATTER_LABELS_MAX:
        layers.append(
            {
                "mark": {"type": "text", "align": "left", "dx": 7, "fontSize": 10},
                "encoding": {"text": {"field": "run", "type": "nominal"}},
            }
        )
    return {
        "width": "container",
        "height": 320,
        "data": {"name": "scatter"},
        "encoding": {
            "x": axis_encoding(x, "x"),
            "y": axis_encoding(y, "y"),
            "tooltip": [
                {"field": "run", "type": "nominal", "title": "run"},
                {"field": "x", "title": x["key"]},
                {"field": "y", "title": y["key"]},
            ],
        },
        "layer": layers,
    }


def parallel_spec(par: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Parallel coordinates: an axis per key (values normalized per axis, its ticks drawn
    as text), a line per run coloured by the last axis."""
    keys = par["keys"]
    color_key = par["color"]["key"]
    last_values = {row["r"]: row["v"] for row in par["lines"] if row["a"] == len(keys) - 1}
    lines = [
        {
            "run": names[row["r"]],
            "axis": keys[row["a"]],
            "y": row["y"],
            "v": row["v"],
            "c": last_values.get(row["r"]),
        }
        for row in par["lines"]
    ]
    if par["color"]["numeric"]:
        for row in lines:
            row["c"] = None if row["c"] is None else float(row["c"])
        color: dict[str, Any] = {
            "field": "c",
            "type": "quantitative",
            "title": color_key,
            "scale": {"scheme": "viridis"},
        }
    else:
        color = {"field": "c", "type": "nominal", "title": color_key}
    x = {"field": "axis", "type": "nominal", "sort": keys, "title": None}
    x_axis = {**x, "axis": {"labelAngle": 0, "domain": False, "ticks": False, "grid": False}}
    y = {"field": "y", "type": "quantitative", "axis": None, "scale": {"domain": [-0.05, 1.05]}}
    return {
        "width": "container",
        "height": 340,
        "layer": [
            {
                "data": {"values": [{"axis": k} for k in keys]},
                "mark": {"type": "rule", "color": "#555"},
                "encoding": {"x": x_axis},
            },
            {
                "data": {"values": lines},
                "mark": {"type": "line", "strokeWidth": 1.2, "opacity": 0.7},
                "encoding": {
                    "x": x,
                    "y": y,
                    "detail": {"field": "run", "type": "nominal"},
                    "color": color,
                    "tooltip": [
                        {"field": "run", "type": "nominal"},
                        {"field": "axis", "type": "nominal", "title": "key"},
                        {"field": "v", "type": "nominal", "title": "value"},
                    ],
                },
            },
            {
                "data": {
                    "values": [
                        {"axis": keys[t["a"]], "y": t["y"], "t": t["t"]} for t in par["ticks"]
                    ]
                },
                "mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 9},
                "encoding": {"x": x, "y": y, "text": {"field": "t", "type": "nominal"}},
            },
        ],
    }


def specs(data: dict[str, Any]) -> dict[str, Any]:
    """Every chart's Vega-Lite spec (history data sets are filled in by the page from the
    embedded data, so the points are not written twice)."""
    n = len(data["runs"])
    names = [r["label"] for r in data["runs"]]

    def dots(key: str) -> bool:
        # points drawn for short histories, and wherever a run has a single point (a line
        # of one point is invisible)
        lengths = [len(s[1]) for s in data["histories"][key]]
        return bool(lengths) and (max(lengths) <= 30 or min(lengths) == 1)

    out: dict[str, Any] = {
        "histories": [
            history_spec(k, f"h{i}", n, points=dots(k)) for i, k in enumerate(data["charted"])
        ],
        "scatter": None,
        "axes": {},
        "parallel": None,
    }
    by_key = {a["key"]: a for a in data["axes"]}
    if n >= 2 and data["scatter"]:
        x, y = (by_key[k] for k in data["scatter"])
        out["scatter"] = scatter_spec(x, y, n)
        out["axes"] = {
            k: {"x": axis_encoding(a, "x"), "y": axis_encoding(a, "y")} for k, a in by_key.items()
        }
    if n >= 2 and data["parallel_data"]["lines"]:
        out["parallel"] = parallel_spec(data["parallel_data"], names)
    return out


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------
STYLE = """
:root { color-scheme: light; --muted: #667; --line: #dde; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fff; }
header, section, footer { padding: 0 24px; max-width: 1400px; margin: 0 auto; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta, .note { color: var(--muted); margin: 4px 0; } .note { font-size: 13px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr));
          gap: 18px; }
.chart { width: 100%; min-height: 120px; } .chart .error { color: #b00; }
.wide { width: 100%; }
.controls { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; margin: 6px 0; }
.tablewrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; font-size: 13px; white-space: nowrap; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; }
th { position: sticky; top: 0; background: #f6f6fa; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:hover td { background: #fafaff; }
.FAILED, .KILLED { color: #b00; } .RUNNING { color: #06c; }
details pre { white-space: pre-wrap; font-size: 11px; color: var(--muted); }
footer { margin: 32px auto 24px; color: var(--muted); font-size: 12px; }
"""

APP = r"""
(function () {
  "use strict";
  var state = window.gitrunReport = { done: false, errors: [] };
  window.addEventListener("error", function (e) { state.errors.push(String(e.message)); });
  var D = JSON.parse(document.getElementById("gitrun-data").textContent);
  var S = JSON.parse(document.getElementById("gitrun-specs").textContent);
  var names = D.runs.map(function (r) { return r.label; });
  var opts = { actions: false, renderer: "canvas" };
  function clone(o) { return JSON.parse(JSON.stringify(o)); }
  function show(el, spec) {
    return vegaEmbed(el, spec, opts).catch(function (err) {
      state.errors.push(String(err && err.message || err));
      var p = document.createElement("p");
      p.className = "error";
      p.textContent = "This chart could not be drawn: " + (err && err.message || err);
      el.appendChild(p);
    });
  }
  var historyRows = D.charted.map(function (key) {
    var rows = [];
    (D.histories[key] || []).forEach(function (s) {
      var run = names[s[0]], steps = s[1], values = s[2];
      for (var i = 0; i < steps.length; i++) {
        rows.push({ run: run, step: steps[i], value: values[i] });
      }
    });
    return rows;
  });
  function drawHistories() {
    var logY = document.getElementById("log-y");
    var log = logY && logY.checked;
    return Promise.all(S.histories.map(function (base, i) {
      var spec = clone(base);
      spec.datasets = {}; spec.datasets["h" + i] = historyRows[i];
      if (log) spec.encoding.y.scale = { type: "log" };
      return show(document.getElementById("chart-history-" + i), spec);
    }));
  }
  function drawScatter() {
    if (!S.scatter) return Promise.resolve();
    var xs = document.getElementById("scatter-x"), ys = document.getElementById("scatter-y");
    var ax = D.axes.filter(function (a) { return a.key === xs.value; })[0];
    var ay = D.axes.filter(function (a) { return a.key === ys.value; })[0];
    var spec = clone(S.scatter);
    spec.encoding.x = clone(S.axes[ax.key].x); spec.encoding.y = clone(S.axes[ay.key].y);
    spec.encoding.tooltip[1].title = ax.key; spec.encoding.tooltip[2].title = ay.key;
    var rows = [];
    names.forEach(function (n, i) {
      var x = ax.values[i], y = ay.values[i];
      if (x !== null && y !== null) rows.push({ run: n, x: x, y: y });
    });
    spec.datasets = { scatter: rows };
    return show(document.getElementById("chart-scatter"), spec);
  }
  function drawParallel() {
    if (!S.parallel) return Promise.resolve();
    return show(document.getElementById("chart-parallel"), clone(S.parallel));
  }
  var logBox = document.getElementById("log-y");
  if (logBox) logBox.addEventListener("change", drawHistories);
  ["scatter-x", "scatter-y"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) el.addEventListener("change", drawScatter);
  });
  // the table: click a header to sort by it (numbers as numbers)
  var table = document.getElementById("runs-table");
  if (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        function key(tr) {
          var c = tr.cells[col], v = c.getAttribute("data-v");
          if (v === null) v = c.textContent;
          var n = parseFloat(v);
          return v !== "" && isFinite(n) && String(n) === String(Number(v)) ? [0, n] : [1, v];
        }
        rows.sort(function (a, b) {
          var ka = key(a), kb = key(b);
          var missA = ka[1] === "", missB = kb[1] === "";
          if (missA || missB) return missA - missB;
          var r = ka[0] - kb[0] || (ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0);
          return asc ? r : -r;
        });
        rows.forEach(function (tr) { body.appendChild(tr); });
      });
    });
  }
  Promise.all([drawHistories(), drawScatter(), drawParallel()]).then(function () {
    state.done = true;
    document.body.setAttribute("data-charts", state.errors.length ? "error" : "ok");
  });
})();
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _utc(ms: int | None) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _duration(s: float | None) -> str:
    if s is None:
        return ""
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


def _metric_cell(v: Any) -> str:
    if v is None:
        return '<td class="num" data-v="">nan</td>'
    if isinstance(v, str):  # "inf" / "-inf"
        return f'<td class="num" data-v="{_e(v)}">{_e(v)}</td>'
    return f'<td class="num" data-v="{v!r}">{v:.6g}</td>'


def table_html(data: dict[str, Any]) -> str:
    """The runs table: name, id, status, (experiment), start, duration, params, metrics."""
    several_exps = len({r["experiment"] for r in data["runs"]}) > 1
    heads = ["name", "run id", "status"] + (["experiment"] if several_exps else [])
    heads += ["start (UTC)", "duration"]
    heads += [f"params.{k}" for k in data["param_keys"]]
    heads += [f"metrics.{k}" for k in data["metric_keys"]]
    out = ['<div class="tablewrap"><table id="runs-table"><thead><tr>']
    out += [f'<th scope="col">{_e(h)}</th>' for h in heads]
    out.append("</tr></thead><tbody>")
    for r in data["runs"]:
        cells = [
            f"<td>{_e(r['run_name'])}</td>",
            f'<td data-v="{_e(r["run_id"])}"><code title="{_e(r["run_id"])}">'
            f"{_e(r['run_id'][:8])}</code></td>",
            f'<td class="{_e(r["status"])}">{_e(r["status"])}</td>',
        ]
        if several_exps:
            cells.append(f"<td>{_e(r['experiment'])}</td>")
        cells.append(f'<td data-v="{r["start_time"] or ""}">{_utc(r["start_time"])}</td>')
        d = r["duration"]
        cells.append(f'<td class="num" data-v="{"" if d is None else d!r}">{_duration(d)}</td>')
        for k in data["param_keys"]:
            cells.append(f"<td>{_e(r['params'].get(k))}</td>")
        for k in data["metric_keys"]:
            if k in r["metrics"]:
                cells.append(_metric_cell(r["metrics"][k]))
            else:
                cells.append('<td class="num" data-v=""></td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _select(id_: str, keys: list[str], chosen: str) -> str:
    options = "".join(
        f'<option value="{_e(k)}"{" selected" if k == chosen else ""}>{_e(k)}</option>'
        for k in keys
    )
    return f'<select id="{id_}">{options}</select>'


def build_html(data: dict[str, Any], title: str, about: dict[str, Any]) -> str:
    """The whole report as one HTML document (see the module docstring)."""
    spec = specs(data)
    n = len(data["runs"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="gitrun">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">{n} run{"s" if n != 1 else ""}'
        + "".join(f" · {_e(k)}: <code>{_e(v)}</code>" for k, v in about["selection"])
        + "</p>",
        f'<p class="meta">Generated {_e(about["generated"])} UTC by gitrun '
        f"{_e(about['version'])} from refs/gitrun/runs at <code>{_e(about['tip'])}</code>.</p>",
        '<noscript><p class="note">The charts need JavaScript; the table and the data '
        "(in the page source) are here without it.</p></noscript>",
        "</header>",
    ]
    if spec["histories"]:
        ds = data["downsampling"]
        if ds["series_cut"]:
            note = (
                f"Metric histories are downsampled for drawing: {ds['series_cut']} series "
                f"longer than {ds['points_per_series']:,} points are drawn from at most "
                f"{ds['points_per_series']:,} points each (the first and last points and "
                f"each bucket's minimum and maximum; the longest has {ds['longest']:,}). "
                "The table shows exact latest values."
            )
        else:
            note = "Every logged point is drawn."
        if data["charts_left_out"]:
            note += (
                f" {len(data['charts_left_out'])} more metrics are not charted ("
                + ", ".join(_e(k) for k in data["charts_left_out"][:10])
                + "); choose with --metric."
            )
        parts += [
            '<section id="histories"><h2>Metric histories</h2>',
            f'<p class="note">{note}</p>',
            '<div class="controls"><label><input type="checkbox" id="log-y"> log scale'
            "</label></div>",
            '<div class="charts">',
        ]
        parts += [
            f'<div class="chart" id="chart-history-{i}" data-key="{_e(k)}"></div>'
            for i, k in enumerate(data["charted"])
        ]
        parts.append("</div></section>")
    if spec["scatter"]:
        keys = [a["key"] for a in data["axes"]]
        x, y = data["scatter"]
        parts += [
            '<section id="scatter"><h2>Scatter</h2>',
            '<div class="controls"><label>x ' + _select("scatter-x", keys, x) + "</label>"
            "<label>y " + _select("scatter-y", keys, y) + "</label></div>",
            '<div class="chart wide" id="chart-scatter"></div></section>',
        ]
    if spec["parallel"]:
        parts += [
            '<section id="parallel"><h2>Parallel coordinates</h2>',
            f'<p class="note">One line per run, coloured by {_e(data["parallel"][-1])}; '
            "categorical values are evenly spaced; a run without a value skips that axis."
            "</p>",
            '<div class="chart wide" id="chart-parallel"></div></section>',
        ]
    parts += ['<section id="runs"><h2>Runs</h2>', table_html(data), "</section>"]
    licenses = "\n\n".join(_e(vendor_file(name)) for name in LICENSES)
    parts += [
        "<footer><details><summary>The inlined chart library: Vega, Vega-Lite and "
        "vega-embed (BSD-3-Clause)</summary>",
        f"<pre>{licenses}</pre></details></footer>",
        f'<script type="application/json" id="gitrun-data">{script_json(data)}</script>',
        f'<script type="application/json" id="gitrun-specs">{script_json(spec)}</script>',
    ]
    parts += [_script(vendor_file(name)) for name in VENDOR]
    parts += [_script(APP), "</body></html>"]
    return "\n".join(parts)


def write_report(
    repo: Repo,
    output: str,
    metrics: list[str] | tuple[str, ...] = (),
    title: str | None = None,
    refs: list[str] | tuple[str, ...] = (),
    experiments: list[str] | None = None,
    filter_string: str = "",
    order_by: list[str] | tuple[str, ...] = (),
    max_results: int | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Choose the runs (as `gitrun plot`), gather their data and write the report to
    `output` through a temp file (a failure leaves nothing).  Returns runs, charts, bytes."""
    from ..format.layout import RUNS_REF

    check_output(output)
    recs = P.select_runs(repo, refs, experiments, filter_string, order_by, max_results, progress)
    P.load_histories(repo, recs)
    data = report_data(recs, metrics)
    selection = []
    if refs:
        selection.append(("runs", " ".join(refs)))
    if experiments:
        selection.append(("experiment", ", ".join(experiments)))
    if filter_string:
        selection.append(("filter", filter_string))
    if order_by:
        selection.append(("order by", ", ".join(order_by)))
    from .. import __version__

    about = {
        "selection": selection,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "version": __version__,
        "tip": (repo.read_ref(RUNS_REF) or "")[:12],
    }
    if title is None:
        if experiments:
            title = f"gitrun report: {', '.join(experiments)}"
        elif len(recs) == 1:
            title = f"gitrun report: {P.label(recs[0])}"
        else:
            title = f"gitrun report: {len(recs)} runs"
    text = build_html(data, title, about)
    body = text.encode("utf-8")
    P.write_atomic(output, lambda f: f.write(body))
    charts = len(data["charted"]) + (len(recs) >= 2 and bool(data["scatter"]))
    charts += bool(len(recs) >= 2 and data["parallel_data"]["lines"])
    return {"path": output, "runs": len(recs), "charts": int(charts), "bytes": len(body)}


def report_data(recs: list[Any], metrics: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    return P.report_data(recs, metrics)
