/* gitrun ui: a small single-page app over gitrun's read-only API.
 *
 * Views (each a bookmarkable URL; back/forward work through history.pushState/popstate):
 *   /?experiment=E&filter=F&order_by=O&columns=C   the runs table
 *   /compare?runs=a,b,c   (or ?experiment=E&filter=F)   runs side by side
 *   /runs/<id>                                     one run
 * Data: MLflow's REST API (runs/search) and gitrun's own /api/gitrun/ endpoints
 * (views.py).  Charts: Vega-Lite through vega-embed, vendored under /static/vendor/.
 * Nothing here asks any host but the one that served the page.
 */
"use strict";
(function () {
  const PAGE_SIZE = 100;
  const POLL_MS = 2000;
  const MAX_DEFAULT_COLUMNS = 6; // metrics shown by default
  const MAX_DEFAULT_PARAMS = 4; // params shown by default (3 beside the Experiment column)
  const MAX_OVERLAY_RUNS = 50;
  const PALETTE = [
    "#1f6feb", "#e8590c", "#2f9e44", "#c2255c", "#7048e8", "#0c8599",
    "#f08c00", "#5c7cfa", "#a61e4d", "#37b24d", "#845ef7", "#1098ad",
  ];

  // Charts drawn on the page, by name: the vega-embed results (tests read their views).
  const gitrun = (window.gitrun = { charts: {}, version: null, ready: false });

  // ---------------------------------------------------------------------------
  // small helpers
  // ---------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  // Replace el's children (arrays flattened, null/false left out).
  function fill(el, ...children) {
    el.replaceChildren();
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  class ApiError extends Error {
    constructor(message, code, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  async function api(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new ApiError("The gitrun ui server does not answer; is `gitrun ui` still running?", "NETWORK", 0);
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      const msg = (data && data.message) || `${resp.status} ${resp.statusText}`;
      throw new ApiError(msg, data && data.error_code, resp.status);
    }
    return data;
  }

  function qs(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== "") u.set(k, v);
    }
    const s = u.toString();
    return s ? "?" + s : "";
  }

  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(ms) {
    if (ms === null || ms === undefined) return "";
    const d = new Date(Number(ms));
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  // "11-28 22:57" this year, "2025-11-28 22:57" before (the whole time in a title)
  function fmtShortTime(ms) {
    const t = fmtTime(ms);
    if (!t) return t;
    return t.slice(0, 4) === String(new Date().getFullYear()) ? t.slice(5, 16) : t.slice(0, 16);
  }
  function fmtDuration(start, end) {
    if (!start) return "";
    const ms = (end || Date.now()) - start;
    if (ms < 0) return "";
    const s = ms / 1000;
    if (s < 60) return s < 10 ? `${s.toFixed(1)}s` : `${Math.round(s)}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${pad(Math.round(s % 60))}s`;
    const hr = Math.floor(m / 60);
    if (hr < 48) return `${hr}h ${pad(m % 60)}m`;
    return `${Math.floor(hr / 24)}d ${hr % 24}h`;
  }
  function fmtNum(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "string") return v; // "inf", "-inf"
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-4 || a >= 1e7)) return v.toExponential(3);
    return String(Number(v.toPrecision(5)));
  }
  function fmtSize(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }
  const short = (id) => (id || "").slice(0, 8);
  const runHref = (id) => "/runs/" + encodeURIComponent(id);
  function statusBadge(status) {
    return h("span", { class: `status status-${(status || "").toLowerCase()}` }, status || "?");
  }
  function numeric(v) {
    if (typeof v === "number") return Number.isFinite(v);
    if (typeof v !== "string" || v.trim() === "") return false;
    return Number.isFinite(Number(v));
  }
  // Category order: numbers first, in numeric order (2 before 10), then the rest as text.
  function naturalOrder(values) {
    return Array.from(new Set(values.map(String))).sort((a, b) => {
      const na = numeric(a);
      const nb = numeric(b);
      if (na && nb) return Number(a) - Number(b);
      if (na !== nb) return na ? -1 : 1;
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }
  // Whole numbers (steps, epochs, depths) get whole-number ticks, never 0.2 apart.
  const INTEGER_AXIS = { format: "d", tickMinStep: 1 };
  const allIntegers = (values) => values.length > 0 && values.every((v) => numeric(v) && Number.isInteger(Number(v)));

  // A key in a filter / order_by: backticks when it is not a plain name.
  function ident(kind, key) {
    return /^[A-Za-z_][A-Za-z0-9_.\-/]*$/.test(key) ? `${kind}.${key}` : `${kind}.\`${key}\``;
  }

  function copyButton(text) {
    const b = h("button", { class: "copy", type: "button", title: "Copy to the clipboard" }, "Copy");
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) {
        const ta = h("textarea", {}, text);
        document.body.append(ta);
        ta.select();
        document.execCommand("copy");
        ta.remove();
      }
      b.textContent = "Copied";
      setTimeout(() => (b.textContent = "Copy"), 1500);
    });
    return b;
  }

  function errorBox(message) {
    return h("div", { class: "notice error", role: "alert" }, message);
  }

  // ---------------------------------------------------------------------------
  // charts (Vega-Lite through vega-embed)
  // ---------------------------------------------------------------------------
  const EMBED_OPTS = { actions: false, renderer: "canvas", mode: "vega-lite" };
  const THEME = {
    background: null,
    font: "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
    axis: { labelColor: "#57606a", titleColor: "#24292f", gridColor: "#eaeef2", domainColor: "#d0d7de", tickColor: "#d0d7de", labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600 },
    legend: { labelColor: "#24292f", titleColor: "#24292f", labelFontSize: 11, titleFontSize: 11, labelLimit: 220 },
    view: { stroke: null },
    range: { category: PALETTE },
  };

  async function embed(el, name, spec) {
    const old = gitrun.charts[name];
    if (old && old.view) old.view.finalize();
    spec.config = Object.assign({}, THEME, spec.config || {});
    if (typeof window.vegaEmbed !== "function") {
      el.append(errorBox("The chart library did not load (static/vendor/)."));
      return null;
    }
    const result = await window.vegaEmbed(el, spec, EMBED_OPTS);
    gitrun.charts[name] = result;
    return result;
  }

  function finalizeCharts() {
    for (const [k, r] of Object.entries(gitrun.charts)) {
      if (r && r.view) r.view.finalize();
      delete gitrun.charts[k];
    }
  }

  function seriesLabel(id, names) {
    const n = names[id];
    return n ? `${n} (${short(id)})` : short(id);
  }

  // points: [{run, step, time, rel, value}]; xKind: "step" | "time" | "relative"
  function historySpec(key, points, xKind, log, runOrder, height) {
    const xField = { step: "step", time: "time", relative: "rel" }[xKind] || "step";
    const xTitle = { step: "step", time: "wall time", relative: "seconds since start" }[xKind] || "step";
    const shown = log ? points.filter((p) => p.value > 0) : points;
    const manyPoints = shown.length > 60 * Math.max(1, runOrder.length);
    // a run with a single point: a line of one point is invisible, so points are drawn
    const perRun = {};
    for (const p of shown) perRun[p.run] = (perRun[p.run] || 0) + 1;
    const lone = Object.keys(perRun).filter((r) => perRun[r] === 1);
    const dots = !manyPoints && shown.length < 400;
    const xAxis = xKind === "step" ? Object.assign({ tickCount: 8 }, INTEGER_AXIS) : { tickCount: 8 };
    const layer = [{ mark: { type: "line", strokeWidth: 2, interpolate: "linear", point: dots ? { size: 18 } : false } }];
    if (!dots && lone.length) layer.push({ transform: [{ filter: { field: "run", oneOf: lone } }], mark: { type: "point", filled: true, size: 30 } });
    return {
      data: { name: "points", values: shown },
      width: "container",
      height: height || 240,
      layer,
      encoding: {
        x: { field: xField, type: xKind === "time" ? "temporal" : "quantitative", title: xTitle, axis: xAxis },
        y: { field: "value", type: "quantitative", title: key, scale: { type: log ? "log" : "linear", zero: false, nice: true } },
        color: { field: "run", type: "nominal", title: "run", scale: { domain: runOrder, range: runOrder.map((_, i) => PALETTE[i % PALETTE.length]) }, legend: null },
        tooltip: [
          { field: "run", type: "nominal" },
          { field: "step", type: "quantitative" },
          { field: "value", type: "quantitative", format: ".6~g" },
        ],
      },
    };
  }

  // One legend for a grid of charts (the charts color runs in this order).
  function legend(labels, hrefs) {
    return h("div", { class: "legend" }, labels.map((l, i) => h("span", { class: "entry" },
      h("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }),
      hrefs ? h("a", { href: hrefs[i], "data-nav": true }, l) : l)));
  }

  function historyPoints(series, label) {
    const out = [];
    if (!series || !series.length) return out;
    const t0 = series[0][1];
    for (const [step, ts, value] of series) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      out.push({ run: label, step, time: ts, rel: (ts - t0) / 1000, value });
    }
    return out;
  }

  // ---------------------------------------------------------------------------
  // routing
  // ---------------------------------------------------------------------------
  let current = null; // {name, refresh()}
  let token = 0; // bumps on every navigation: stale async renders drop their results

  function navigate(url, replace) {
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
    route();
  }

  function route() {
    token += 1;
    finalizeCharts();
    gitrun.ready = false;
    const path = location.pathname;
    const app = $("#app");
    app.replaceChildren();
    $$(".nav a").forEach((a) => a.classList.remove("active"));
    window.scrollTo(0, 0);
    if (path === "/" || path === "/index.html") {
      $("#nav-runs").classList.add("active");
      current = tableView(app, token);
    } else if (path === "/compare") {
      current = compareView(app, token);
    } else if (path.startsWith("/runs/")) {
      current = runView(app, token, decodeURIComponent(path.slice("/runs/".length)));
    } else {
      app.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "/", "data-nav": true }, "Back to the runs")));
      current = null;
    }
  }

  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[data-nav]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(a.getAttribute("href"));
  });
  window.addEventListener("popstate", route);
  // An open picker (Columns, Axes) closes on a click elsewhere or on Escape.
  const closePickers = (except) => $$("details.picker[open]").forEach((d) => d !== except && d.removeAttribute("open"));
  document.addEventListener("click", (e) => closePickers(e.target.closest && e.target.closest("details.picker")));
  document.addEventListener("keydown", (e) => e.key === "Escape" && closePickers(null));

  // ---------------------------------------------------------------------------
  // live: poll the tip; a new tip or a journal that grew refreshes the view
  // ---------------------------------------------------------------------------
  let polling = false;
  async function poll() {
    if (polling || document.hidden) return;
    polling = true;
    try {
      const t = await api("/api/gitrun/tip");
      const ind = $("#live-indicator");
      ind.classList.toggle("on", t.live.length > 0);
      ind.classList.remove("down");
      ind.title = t.live.length ? `${t.live.length} run(s) in progress` : "Live: new runs appear as they land";
      if (t.repo) $("#repo-name").textContent = t.repo;
      if (gitrun.version !== null && t.version !== gitrun.version && current && current.refresh) {
        gitrun.version = t.version;
        await current.refresh(t);
      }
      gitrun.version = t.version;
    } catch (e) {
      $("#live-indicator").classList.add("down");
      $("#live-indicator").title = e.message;
    } finally {
      polling = false;
    }
  }

  // ---------------------------------------------------------------------------
  // the runs table
  // ---------------------------------------------------------------------------
  function tableView(app, tk) {
    const params = new URLSearchParams(location.search);
    const st = {
      experiment: params.get("experiment") || "",
      filter: params.get("filter") || "",
      orderBy: params.get("order_by") || "",
      columns: params.get("columns"), // null: the default choice
      pageTokens: [null], // token of each page seen so far
      page: 0,
      nextToken: null,
      meta: null,
      runs: [],
      selected: new Set(),
    };

    const expSelect = h("select", { id: "experiment", "aria-label": "Experiment" });
    const filterInput = h("input", {
      type: "search", id: "filter", name: "filter", value: st.filter, spellcheck: "false",
      autocomplete: "off", "aria-label": "Filter runs",
      placeholder: "filter, e.g. metrics.loss < 0.5 and params.lr = '0.01'   (Enter applies)",
    });
    const filterError = h("div", { id: "filter-error", class: "filter-error", role: "alert", hidden: true });
    const compareBtn = h("button", { id: "compare-btn", class: "primary", type: "button", disabled: true }, "Compare");
    const compareAll = h("a", { id: "compare-matching", class: "button", href: "#", "data-nav": true }, "Compare all matching");
    const colDetails = h("details", { id: "column-picker", class: "picker" }, h("summary", {}, "Columns"));
    const colBody = h("div", { class: "picker-body" });
    colDetails.append(colBody);
    const table = h("table", { id: "runs-table", class: "runs" });
    const pager = h("div", { class: "pager" });
    const info = h("span", { id: "page-info", class: "muted" });
    const prev = h("button", { id: "prev-page", type: "button" }, "‹ Previous");
    const next = h("button", { id: "next-page", type: "button" }, "Next ›");
    pager.append(prev, info, next);

    app.append(
      h("div", { class: "toolbar" },
        h("label", { class: "exp" }, h("span", { class: "label" }, "Experiment"), expSelect),
        h("form", { class: "filter-form", id: "filter-form", role: "search" }, filterInput, filterError),
        colDetails, compareAll, compareBtn),
      h("div", { class: "table-wrap" }, table),
      pager,
    );

    function urlFor(over) {
      const s = Object.assign({ experiment: st.experiment, filter: st.filter, order_by: st.orderBy, columns: st.columns }, over || {});
      return "/" + qs(s);
    }

    function chosenColumns() {
      const m = st.meta;
      if (!m) return { params: [], metrics: [] };
      if (st.columns !== null && st.columns !== undefined) {
        const want = st.columns.split(",").filter(Boolean);
        return {
          params: want.filter((c) => c.startsWith("params.")).map((c) => c.slice(7)),
          metrics: want.filter((c) => c.startsWith("metrics.")).map((c) => c.slice(8)),
        };
      }
      // a few params, so that the metrics fit on the screen (the Columns picker adds more)
      const maxParams = st.experiment ? MAX_DEFAULT_PARAMS : MAX_DEFAULT_PARAMS - 1;
      return {
        params: m.params.slice(0, maxParams).map((p) => p[0]).sort(),
        metrics: m.metrics.slice(0, MAX_DEFAULT_COLUMNS).map((p) => p[0]).sort(),
      };
    }

    function drawPicker() {
      const m = st.meta;
      const chosen = chosenColumns();
      const group = (title, kind, keys, on) => {
        if (!keys.length) return null;
        return h("fieldset", {}, h("legend", {}, title),
          keys.map(([k, n]) => h("label", { title: `${n} run(s)` },
            h("input", { type: "checkbox", value: `${kind}.${k}`, checked: on.includes(k) }), " ", k)));
      };
      fill(colBody,
        group("Params", "params", m.params, chosen.params),
        group("Metrics", "metrics", m.metrics, chosen.metrics),
        (!m.params.length && !m.metrics.length) ? h("p", { class: "muted" }, "No params or metrics yet.") : null,
      );
      colBody.onchange = () => {
        const cols = $$("input:checked", colBody).map((i) => i.value);
        st.columns = cols.join(",");
        history.replaceState(null, "", urlFor());
        draw();
      };
    }

    function drawExperiments() {
      const m = st.meta;
      fill(expSelect,
        h("option", { value: "" }, `All experiments`),
        m.experiments.map((e) => h("option", { value: e.name, selected: e.name === st.experiment }, `${e.name} (${e.runs})`)),
      );
      if (st.experiment && !m.experiments.some((e) => e.name === st.experiment)) {
        expSelect.append(h("option", { value: st.experiment, selected: true }, `${st.experiment} (no runs)`));
      }
      expSelect.value = st.experiment;
    }

    function headerCell(label, sortKey, cls) {
      let arrow = "";
      let sortedCls = "";
      const m = /^(.*?)(?:\s+(ASC|DESC))?$/i.exec(st.orderBy || "");
      if (sortKey && m && m[1] === sortKey) {
        const desc = (m[2] || "ASC").toUpperCase() === "DESC";
        arrow = desc ? " ▼" : " ▲";
        sortedCls = desc ? " sorted desc" : " sorted asc";
      }
      const th = h("th", { class: (cls || "") + (sortKey ? " sortable" : "") + sortedCls, "data-sort": sortKey || null, title: sortKey ? `Sort by ${sortKey}` : null }, label, arrow ? h("span", { class: "arrow" }, arrow) : null);
      if (sortKey) {
        th.addEventListener("click", () => {
          const cur = /^(.*?)(?:\s+(ASC|DESC))?$/i.exec(st.orderBy || "");
          let dir = "ASC";
          if (cur && cur[1] === sortKey) dir = (cur[2] || "ASC").toUpperCase() === "ASC" ? "DESC" : "ASC";
          else if (sortKey === "attributes.start_time") dir = "DESC";
          apply({ order_by: `${sortKey} ${dir}` });
        });
      }
      return th;
    }

    function metricValue(run, key) {
      const m = ((run.data || {}).metrics || []).find((x) => x.key === key);
      return m ? m.value : undefined;
    }

    function draw() {
      const chosen = chosenColumns();
      const thead = h("thead", {}, h("tr", {},
        h("th", { class: "check" }, h("input", { type: "checkbox", id: "select-all", title: "Select the runs on this page", "aria-label": "Select all" })),
        headerCell("Run", "attributes.run_name", "name"),
        headerCell("ID", "attributes.run_id", "id"),
        headerCell("Status", "attributes.status"),
        !st.experiment ? headerCell("Experiment", "attributes.experiment_id") : null,
        headerCell("Started", "attributes.start_time"),
        headerCell("Duration", null),
        headerCell("Code", ident("tags", "gitrun.code_commit")),
        // metrics first, as MLflow's table: they stay on the screen when params are many
        chosen.metrics.map((k) => headerCell(k, ident("metrics", k), "metric")),
        chosen.params.map((k) => headerCell(k, ident("params", k), "param")),
      ));
      const rows = st.runs.map((run) => {
        const i = run.info;
        const data = run.data || {}; // MLflow's JSON leaves out empty lists
        const tags = Object.fromEntries((data.tags || []).map((t) => [t.key, t.value]));
        const params = Object.fromEntries((data.params || []).map((t) => [t.key, t.value]));
        const commit = tags["gitrun.code_commit"];
        const dirty = tags["gitrun.git.dirty"] === "true";
        const cb = h("input", { type: "checkbox", class: "select", value: i.run_id, checked: st.selected.has(i.run_id), "aria-label": `Select ${i.run_name}` });
        return h("tr", { "data-run-id": i.run_id, class: i.status === "RUNNING" ? "running" : null },
          h("td", { class: "check" }, cb),
          h("td", { class: "name" }, h("a", { href: runHref(i.run_id), "data-nav": true }, i.run_name || short(i.run_id))),
          h("td", { class: "id mono" }, short(i.run_id)),
          h("td", {}, statusBadge(i.status)),
          !st.experiment ? h("td", {}, i.experiment_id) : null,
          h("td", { class: "time", title: fmtTime(i.start_time) }, fmtShortTime(i.start_time)),
          h("td", { class: "num" }, fmtDuration(i.start_time, i.end_time)),
          h("td", { class: "mono code" }, commit ? short(commit) : "", dirty ? h("span", { class: "dirty", title: "dirty work tree: the code is a snapshot commit" }, " dirty") : null),
          chosen.metrics.map((k) => {
            const v = metricValue(run, k);
            return h("td", { class: "num metric", "data-key": k, "data-value": v === undefined || v === null ? "" : String(v) }, fmtNum(v));
          }),
          chosen.params.map((k) => h("td", { class: "param", title: params[k] }, params[k] === undefined ? "" : params[k])),
        );
      });
      const empty = !rows.length ? h("tr", { class: "empty" }, h("td", { colspan: 99 }, st.filter ? "No runs match this filter." : "No runs yet: record one with `gitrun record -- python train.py`.")) : null;
      table.replaceChildren(thead, h("tbody", {}, rows, empty));
      $("#select-all", table).addEventListener("change", (e) => {
        for (const c of $$("input.select", table)) {
          c.checked = e.target.checked;
          if (c.checked) st.selected.add(c.value);
          else st.selected.delete(c.value);
        }
        updateSelection();
      });
      table.querySelector("tbody").addEventListener("change", (e) => {
        if (!e.target.classList.contains("select")) return;
        if (e.target.checked) st.selected.add(e.target.value);
        else st.selected.delete(e.target.value);
        updateSelection();
      });
      const first = st.page * PAGE_SIZE;
      const total = !st.filter && st.meta ? ` of ${st.meta.runs.toLocaleString()}` : "";
      info.textContent = st.runs.length ? `runs ${first + 1}–${first + st.runs.length}${total}` : "";
      prev.disabled = st.page === 0;
      next.disabled = !st.nextToken;
      updateSelection();
    }

    function updateSelection() {
      const n = st.selected.size;
      compareBtn.disabled = n < 1;
      compareBtn.textContent = n ? `Compare ${n} run${n > 1 ? "s" : ""}` : "Compare";
      compareAll.setAttribute("href", "/compare" + qs({ experiment: st.experiment, filter: st.filter, order_by: st.orderBy }));
    }
    compareBtn.addEventListener("click", () => {
      if (st.selected.size) navigate("/compare" + qs({ runs: Array.from(st.selected).join(",") }));
    });

    async function search(pageToken, filter, orderBy) {
      // no experiment_ids: every experiment (rest.py's rule)
      const body = { experiment_ids: st.experiment ? [st.experiment] : [], filter: filter || "", max_results: PAGE_SIZE, run_view_type: "ACTIVE_ONLY" };
      if (orderBy) body.order_by = [orderBy];
      if (pageToken) body.page_token = pageToken;
      const r = await api("/api/2.0/mlflow/runs/search", body);
      return { runs: r.runs || [], next_page_token: r.next_page_token || null };
    }

    function showFilterError(msg) {
      filterError.textContent = msg || "";
      filterError.hidden = !msg;
      filterInput.classList.toggle("invalid", !!msg);
    }

    async function load(pageToken) {
      const r = await search(pageToken, st.filter, st.orderBy);
      if (tk !== token) return;
      st.runs = r.runs;
      st.nextToken = r.next_page_token;
      draw();
    }

    // A new filter / order: searched first; only a valid one changes the URL and the rows.
    async function apply(over) {
      const filter = over.filter !== undefined ? over.filter : st.filter;
      const orderBy = over.order_by !== undefined ? over.order_by : st.orderBy;
      let r;
      try {
        r = await search(null, filter, orderBy);
      } catch (e) {
        if (tk !== token) return;
        showFilterError(e.message);
        return;
      }
      if (tk !== token) return;
      showFilterError("");
      st.filter = filter;
      st.orderBy = orderBy;
      st.pageTokens = [null];
      st.page = 0;
      st.runs = r.runs;
      st.nextToken = r.next_page_token;
      history.pushState(null, "", urlFor());
      draw();
    }

    filterInput.form.addEventListener("submit", (e) => {
      e.preventDefault();
      apply({ filter: filterInput.value.trim() });
    });
    filterInput.addEventListener("search", () => {
      if (filterInput.value === "" && st.filter) apply({ filter: "" });
    });
    expSelect.addEventListener("change", () => navigate(urlFor({ experiment: expSelect.value, columns: null })));
    prev.addEventListener("click", async () => {
      if (st.page === 0) return;
      st.page -= 1;
      await load(st.pageTokens[st.page]);
      window.scrollTo(0, 0);
    });
    next.addEventListener("click", async () => {
      if (!st.nextToken) return;
      st.page += 1;
      st.pageTokens[st.page] = st.nextToken;
      await load(st.nextToken);
      window.scrollTo(0, 0);
    });

    async function start() {
      try {
        st.meta = await api("/api/gitrun/columns" + qs({ experiment: st.experiment }));
      } catch (e) {
        app.prepend(errorBox(e.message));
        return;
      }
      if (tk !== token) return;
      drawExperiments();
      drawPicker();
      try {
        await load(null);
      } catch (e) {
        if (tk !== token) return;
        showFilterError(e.message);
        st.runs = [];
        draw();
      }
      performance.mark("gitrun:table"); // the first rows are in the page
      gitrun.ready = true;
    }
    start();

    return {
      name: "table",
      async refresh() {
        try {
          const meta = await api("/api/gitrun/columns" + qs({ experiment: st.experiment }));
          if (tk !== token) return;
          const changed = JSON.stringify([meta.params, meta.metrics]) !== JSON.stringify([st.meta.params, st.meta.metrics]);
          st.meta = meta;
          drawExperiments();
          if (changed && !colDetails.open) drawPicker();
          await load(st.pageTokens[st.page]);
        } catch (e) {
          console.warn("gitrun: refreshing the table failed (the next poll tries again):", e);
        }
      },
    };
  }

  // ---------------------------------------------------------------------------
  // compare
  // ---------------------------------------------------------------------------
  function compareView(app, tk) {
    const params = new URLSearchParams(location.search);
    const refs = params.get("runs") || "";
    const byFilter = !refs;
    const st = { runs: [], names: {}, labels: {}, xKind: params.get("x") || "step", log: params.get("log") === "1", history: {} };

    const title = h("h1", {}, "Compare runs");
    app.append(title);
    const notices = h("div", {});
    app.append(notices);

    function setParam(k, v) {
      const p = new URLSearchParams(location.search);
      if (v === null || v === "" || v === false) p.delete(k);
      else p.set(k, v);
      history.replaceState(null, "", "/compare?" + p.toString());
    }

    async function start() {
      let data;
      try {
        const q = byFilter
          ? qs({ experiment: params.get("experiment"), filter: params.get("filter"), order_by: params.get("order_by") })
          : qs({ runs: refs });
        data = await api("/api/gitrun/compare" + q);
      } catch (e) {
        if (tk === token) notices.append(errorBox(e.message));
        return;
      }
      if (tk !== token) return;
      st.runs = data.runs;
      for (const err of data.errors) notices.append(errorBox(err.message));
      if (data.truncated) notices.append(h("div", { class: "notice" }, `Only the first ${data.limit} runs are compared.`));
      for (const r of st.runs) st.names[r.run_id] = r.run_name;
      for (const r of st.runs) st.labels[r.run_id] = seriesLabel(r.run_id, st.names);
      title.textContent = `Compare ${st.runs.length} run${st.runs.length === 1 ? "" : "s"}`;
      if (byFilter) {
        title.append(h("span", { class: "sub" }, [params.get("experiment"), params.get("filter")].filter(Boolean).join(" · ")));
      }
      if (!st.runs.length) {
        app.append(h("p", { class: "muted" }, "No runs to compare."));
        return;
      }
      top = h("div", { class: st.runs.length <= 4 ? "compare-top split" : "compare-top" });
      app.append(top);
      drawTable();
      await drawHistory();
      if (tk !== token) return;
      performance.mark("gitrun:compare"); // values and curves drawn
      drawSweep();
      drawCode();
      gitrun.ready = true;
    }

    let top = null; // the values table and the curves (side by side for a few runs)

    // -- params and metrics side by side ------------------------------------
    function drawTable() {
      const runs = st.runs;
      const sec = h("section", { class: "card", id: "compare-values" });
      const onlyDiff = h("input", { type: "checkbox", id: "only-diff" });
      sec.append(h("div", { class: "card-head" }, h("h2", {}, "Params and metrics"),
        h("label", { class: "toggle" }, onlyDiff, " only differences")));
      const head = h("tr", {}, h("th", { class: "key" }, ""), runs.map((r) =>
        h("th", { class: "run" }, h("a", { href: runHref(r.run_id), "data-nav": true }, r.run_name || short(r.run_id)), h("div", { class: "mono muted" }, short(r.run_id)))));
      const body = h("tbody");
      const row = (group, key, values, fmt, numericBest) => {
        const texts = values.map((v) => (v === undefined || v === null ? "" : String(v)));
        // times always differ: only what the runs were given, logged or ran is marked
        const differ = new Set(texts).size > 1 && !(group === "attr" && key !== "code");
        const tr = h("tr", { class: differ ? "diff" : "same", "data-group": group, "data-key": key },
          h("th", { class: "key", title: key }, key),
          values.map((v, i) => h("td", { class: "val" + (numericBest === i ? " best" : "") }, fmt ? fmt(v) : texts[i])));
        body.append(tr);
      };
      const section = (label) => body.append(h("tr", { class: "group" }, h("th", { colspan: runs.length + 1 }, label)));
      section("Run");
      row("attr", "status", runs.map((r) => r.status));
      row("attr", "experiment", runs.map((r) => r.experiment));
      row("attr", "started", runs.map((r) => fmtTime(r.start_time).slice(5, 16)));
      row("attr", "duration", runs.map((r) => fmtDuration(r.start_time, r.end_time)));
      row("attr", "code", runs.map((r) => (r.code_commit ? short(r.code_commit) + (r.dirty ? " (dirty)" : "") : "")));
      const keys = (f) => Array.from(new Set(runs.flatMap((r) => Object.keys(r[f])))).sort();
      const pk = keys("params");
      if (pk.length) section("Params");
      for (const k of pk) row("param", k, runs.map((r) => r.params[k]));
      const mk = keys("metrics");
      if (mk.length) section("Metrics");
      for (const k of mk) row("metric", k, runs.map((r) => r.metrics[k]), fmtNum);
      const tk2 = keys("tags");
      if (tk2.length) section("Tags");
      for (const k of tk2) row("tag", k, runs.map((r) => r.tags[k]));
      onlyDiff.addEventListener("change", () => sec.classList.toggle("only-diff", onlyDiff.checked));
      sec.append(h("div", { class: "table-wrap" }, h("table", { class: "compare", id: "compare-table" }, h("thead", {}, head), body)));
      top.append(sec);
    }

    // -- metric histories, overlaid ------------------------------------------
    let histSec = null;
    async function drawHistory() {
      const mkeys = Array.from(new Set(st.runs.flatMap((r) => Object.keys(r.metrics)))).sort();
      if (!mkeys.length) return;
      const overlay = st.runs.slice(0, MAX_OVERLAY_RUNS).map((r) => r.run_id);
      const maxPoints = Math.max(100, Math.min(2000, Math.floor(60000 / (overlay.length * mkeys.length))));
      let data;
      try {
        data = await api("/api/gitrun/history" + qs({ runs: overlay.join(","), max_points: maxPoints }));
      } catch (e) {
        app.append(errorBox(e.message));
        return;
      }
      if (tk !== token) return;
      st.history = data.runs;
      const curveKeys = mkeys.filter((k) => overlay.some((id) => (data.runs[id] && data.runs[id][k] || []).length > 1));
      if (!histSec) {
        histSec = h("section", { class: "card", id: "compare-history" });
        top.append(histSec);
      }
      histSec.replaceChildren();
      const xSel = h("select", { id: "x-axis" },
        h("option", { value: "step" }, "step"), h("option", { value: "relative" }, "relative time"), h("option", { value: "time" }, "wall time"));
      xSel.value = st.xKind;
      const logBox = h("input", { type: "checkbox", id: "log-scale", checked: st.log });
      histSec.append(h("div", { class: "card-head" }, h("h2", {}, "Metric history"),
        h("div", { class: "controls" }, h("label", {}, "x ", xSel), h("label", { class: "toggle" }, logBox, " log scale"))));
      if (st.runs.length > overlay.length) histSec.append(h("p", { class: "muted" }, `Curves of the first ${overlay.length} runs.`));
      if (overlay.length > 1) histSec.append(legend(overlay.map((id) => st.labels[id]), overlay.map(runHref)));
      if (!curveKeys.length) {
        histSec.append(h("p", { class: "muted" }, "No metric was logged at more than one step."));
        return;
      }
      const grid = h("div", { class: "chart-grid" });
      histSec.append(grid);
      const draw = () => {
        for (const key of curveKeys) { // every box first: the grid's columns settle
          if (!grid.querySelector(`[data-metric="${CSS.escape(key)}"]`)) {
            grid.append(h("div", { class: "chart", "data-metric": key }, h("h3", {}, key), h("div", { class: "vega" })));
          }
        }
        for (const key of curveKeys) {
          const box = grid.querySelector(`[data-metric="${CSS.escape(key)}"]`);
          const pts = [];
          for (const id of overlay) pts.push(...historyPoints((data.runs[id] || {})[key], st.labels[id]));
          const order = overlay.map((id) => st.labels[id]);
          const height = top.classList.contains("split") ? 190 : 230;
          embed(box.querySelector(".vega"), "history:" + key, historySpec(key, pts, st.xKind, st.log, order, height));
        }
      };
      xSel.addEventListener("change", () => { st.xKind = xSel.value; setParam("x", st.xKind === "step" ? null : st.xKind); draw(); });
      logBox.addEventListener("change", () => { st.log = logBox.checked; setParam("log", st.log ? "1" : null); draw(); });
      draw();
    }

    // -- parallel coordinates and scatter ------------------------------------
    function dims() {
      const out = [];
      const add = (kind, key, get) => {
        const vals = st.runs.map(get);
        const present = vals.filter((v) => v !== undefined && v !== null && v !== "");
        if (!present.length) return;
        // numeric-looking (every value parses as a number): a quantitative axis
        const isNum = present.every(numeric);
        const distinct = new Set(present.map(String)).size;
        const integer = isNum && allIntegers(present);
        const categories = isNum ? [] : naturalOrder(present);
        out.push({ id: `${kind}.${key}`, kind, key, get, isNum, integer, categories, distinct });
      };
      const keys = (f) => Array.from(new Set(st.runs.flatMap((r) => Object.keys(r[f])))).sort();
      for (const k of keys("params")) add("params", k, (r) => r.params[k]);
      for (const k of keys("metrics")) add("metrics", k, (r) => r.metrics[k]);
      return out;
    }

    const MAX_PC_AXES = 8;
    const MAX_PC_CATEGORIES = 30; // a param with more distinct texts is no axis

    function drawSweep() {
      if (st.runs.length < 2) return;
      const all = dims();
      const numDims = all.filter((d) => d.isNum);
      if (!all.length) return;
      const sec = h("section", { class: "card", id: "compare-sweep" });
      sec.append(h("div", { class: "card-head" }, h("h2", {}, "Sweep")));
      app.append(sec);
      const cols = h("div", { class: "sweep-grid" });
      sec.append(cols);

      // parallel coordinates: the params that vary (numbers, or categories evenly spaced),
      // then the metrics (a few kept even when many params vary)
      const pcBox = h("div", { class: "chart wide" });
      const pcDims = all.filter((d) => d.isNum || (d.kind === "params" && d.distinct <= MAX_PC_CATEGORIES));
      const varying = pcDims.filter((d) => d.kind === "params" && d.distinct > 1);
      const metricsD = numDims.filter((d) => d.kind === "metrics");
      const room = Math.max(MAX_PC_AXES - Math.min(metricsD.length, 3), MAX_PC_AXES - metricsD.length);
      const chosenParams = varying.slice(0, room);
      let chosen = [...chosenParams, ...metricsD.slice(0, MAX_PC_AXES - chosenParams.length)];
      if (chosen.length < 2) chosen = pcDims.slice(0, MAX_PC_AXES);
      const colorSel = h("select", { id: "pc-color" }, metricsD.concat(numDims.filter((d) => d.kind === "params")).map((d) => h("option", { value: d.id }, d.id)));
      const picker = h("details", { class: "picker" }, h("summary", {}, "Axes"),
        h("div", { class: "picker-body" }, pcDims.map((d) => h("label", {}, h("input", { type: "checkbox", value: d.id, checked: chosen.includes(d) }), " ", d.id))));
      pcBox.append(h("div", { class: "chart-head" }, h("h3", {}, "Parallel coordinates"),
        h("div", { class: "controls" }, picker, h("label", {}, "color ", colorSel))), h("div", { class: "vega", id: "parallel" }));
      cols.append(pcBox);
      const drawPC = () => {
        const ds = pcDims.filter((d) => $$("input:checked", picker).some((i) => i.value === d.id));
        const color = numDims.find((d) => d.id === colorSel.value);
        const el = $("#parallel", pcBox);
        if (ds.length < 2) {
          el.replaceChildren(h("p", { class: "muted" }, "Choose at least two axes."));
          return;
        }
        const keyCount = {};
        for (const d of ds) keyCount[d.key] = (keyCount[d.key] || 0) + 1;
        const label = (d) => (keyCount[d.key] > 1 ? d.id : d.key);
        const rows = [];
        const ticks = [];
        ds.forEach((d) => {
          let pos; // a run's value -> [0, 1] along the axis
          if (d.isNum) {
            const vals = st.runs.map((r) => Number(d.get(r))).filter(Number.isFinite);
            const lo = Math.min(...vals);
            const hi = Math.max(...vals);
            ticks.push({ axis: label(d), y: 1, label: fmtNum(hi), base: "bottom" }, { axis: label(d), y: 0, label: fmtNum(lo), base: "top" });
            pos = (v) => (numeric(v) ? (hi > lo ? (Number(v) - lo) / (hi - lo) : 0.5) : null);
          } else {
            const n = d.categories.length;
            const at = (i) => (n > 1 ? i / (n - 1) : 0.5);
            const every = Math.max(1, Math.ceil(n / 12));
            d.categories.forEach((c, i) => {
              if (i % every === 0 || i === n - 1) ticks.push({ axis: label(d), y: at(i), label: c.length > 16 ? c.slice(0, 15) + "…" : c, base: "middle" });
            });
            pos = (v) => (v === undefined || v === null || v === "" ? null : at(d.categories.indexOf(String(v))));
          }
          for (const r of st.runs) {
            const v = d.get(r);
            const norm = pos(v);
            if (norm === null || !Number.isFinite(norm)) continue;
            const c = color ? Number(color.get(r)) : 0;
            rows.push({ run: st.labels[r.run_id], id: r.run_id, axis: label(d), value: d.isNum ? fmtNum(Number(v)) : String(v), norm, color: Number.isFinite(c) ? c : null });
          }
        });
        const x = { field: "axis", type: "nominal", sort: ds.map(label), title: null, scale: { paddingOuter: 0.15 }, axis: { orient: "bottom", offset: 18, labelAngle: 0, labelLimit: 110, domain: false, ticks: false, labelFontWeight: 600, labelColor: "#1f2328" } };
        const tickText = (baseline, dy) => ({
          data: { values: ticks.filter((t) => t.base === baseline) },
          mark: baseline === "middle"
            ? { type: "text", align: "left", baseline, dx: 4, fontSize: 10, color: "#59636e" }
            : { type: "text", baseline, dy, fontSize: 10, color: "#59636e" },
          encoding: { x, y: { field: "y", type: "quantitative", scale: { domain: [0, 1] }, axis: null }, text: { field: "label" } },
        });
        const spec = {
          width: "container",
          height: 290,
          layer: [
            { data: { values: ds.map((d) => ({ axis: label(d) })) }, mark: { type: "rule", color: "#8c959f" }, encoding: { x, y: { datum: 0, type: "quantitative", scale: { domain: [0, 1] }, axis: null }, y2: { datum: 1 } } },
            {
              data: { name: "lines", values: rows },
              mark: { type: "line", strokeWidth: 1.6, opacity: 0.8 },
              encoding: {
                x, y: { field: "norm", type: "quantitative", axis: null, scale: { domain: [0, 1] } },
                detail: { field: "id", type: "nominal" },
                color: color ? { field: "color", type: "quantitative", title: label(color), scale: { scheme: "viridis" }, legend: { gradientLength: 200 } } : { value: "#1f6feb" },
                tooltip: [{ field: "run" }, { field: "axis" }, { field: "value" }],
              },
            },
            tickText("bottom", -5),
            tickText("top", 5),
            tickText("middle", 0),
          ],
          resolve: { scale: { color: "independent" } },
        };
        embed(el, "parallel", spec);
      };
      picker.addEventListener("change", drawPC);
      colorSel.addEventListener("change", drawPC);
      drawPC();

      // scatter: any param / metric on each axis (numbers quantitative, whole numbers with
      // whole-number ticks; categories in natural order: 2 before 10)
      const scBox = h("div", { class: "chart" });
      const xs = h("select", { id: "scatter-x" }, all.map((d) => h("option", { value: d.id }, d.id)));
      const ys = h("select", { id: "scatter-y" }, all.map((d) => h("option", { value: d.id }, d.id)));
      xs.value = (varying[0] || all[0]).id;
      ys.value = (metricsD[0] || all[all.length - 1]).id;
      scBox.append(h("div", { class: "chart-head" }, h("h3", {}, "Scatter"),
        h("div", { class: "controls" }, h("label", {}, "x ", xs), h("label", {}, "y ", ys))), h("div", { class: "vega", id: "scatter" }));
      cols.append(scBox);
      const axisEnc = (d, field) => (d.isNum
        ? Object.assign({ field, type: "quantitative", title: d.id, scale: { zero: false } }, d.integer ? { axis: INTEGER_AXIS } : {})
        : { field, type: "ordinal", title: d.id, sort: d.categories });
      const drawSC = () => {
        const dx = all.find((d) => d.id === xs.value);
        const dy = all.find((d) => d.id === ys.value);
        const pts = st.runs.map((r) => ({ run: st.labels[r.run_id], x: dx.isNum ? Number(dx.get(r)) : dx.get(r), y: dy.isNum ? Number(dy.get(r)) : dy.get(r) }))
          .filter((p) => p.x !== undefined && p.y !== undefined && p.x !== null && p.y !== null && !(typeof p.x === "number" && !Number.isFinite(p.x)) && !(typeof p.y === "number" && !Number.isFinite(p.y)));
        embed($("#scatter", scBox), "scatter", {
          data: { name: "points", values: pts },
          width: "container",
          height: 300,
          mark: { type: "point", filled: true, size: 70, opacity: 0.85, color: "#1f6feb" },
          encoding: {
            x: axisEnc(dx, "x"),
            y: axisEnc(dy, "y"),
            tooltip: [{ field: "run" }, { field: "x", title: dx.id }, { field: "y", title: dy.id }],
          },
        });
      };
      xs.addEventListener("change", drawSC);
      ys.addEventListener("change", drawSC);
      drawSC();
    }

    // -- the code: gitrun diff ------------------------------------------------
    function drawCode() {
      if (st.runs.length < 2) return;
      const sec = h("section", { class: "card", id: "compare-code" });
      const base = st.runs[0];
      const others = st.runs.slice(1, 51);
      const sel = h("select", { id: "diff-against" }, others.map((r) => h("option", { value: r.run_id }, st.labels[r.run_id])));
      sec.append(h("div", { class: "card-head" }, h("h2", {}, "Code"),
        h("div", { class: "controls" }, h("span", { class: "muted" }, st.labels[base.run_id], " → "), sel)));
      const out = h("div", { id: "code-diff" });
      sec.append(out);
      app.append(sec);
      const load = async () => {
        out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
        let d;
        try {
          d = await api("/api/gitrun/diff" + qs({ a: base.run_id, b: sel.value }));
        } catch (e) {
          out.replaceChildren(errorBox(e.message));
          return;
        }
        out.replaceChildren(renderDiff(d));
      };
      sel.addEventListener("change", load);
      load();
    }

    start();
    return {
      name: "compare",
      async refresh(t) {
        // Live runs among the compared ones: their curves grow.
        const ids = new Set(st.runs.map((r) => r.run_id));
        const live = (t.live || []).some((r) => ids.has(r.run_id)) || st.runs.some((r) => r.status === "RUNNING");
        if (live && histSec) await drawHistory();
      },
    };
  }

  function renderDiff(d) {
    const code = d.code;
    const box = h("div", { class: "diff-box" });
    const commits = h("p", { class: "muted mono" },
      `${code.a ? code.a.slice(0, 12) : "(no code commit)"} → ${code.b ? code.b.slice(0, 12) : "(no code commit)"}`);
    box.append(commits);
    if (!code.a || !code.b) {
      box.append(h("p", {}, "One of the runs has no code commit."));
      return box;
    }
    if (code.same) {
      box.append(h("p", { class: "same-code" }, "Same code."));
      return box;
    }
    box.append(h("ul", { class: "files", id: "diff-files" }, code.files.map((f) =>
      h("li", {}, h("span", { class: "mono" }, f.path), " ",
        f.binary ? h("span", { class: "muted" }, "binary") : [h("span", { class: "add" }, `+${f.added}`), " ", h("span", { class: "del" }, `−${f.removed}`)]))));
    const pre = h("pre", { class: "patch", id: "diff-patch" });
    for (const line of code.patch.split("\n")) {
      let cls = null;
      if (line.startsWith("diff --git") || line.startsWith("index ")) cls = "meta";
      else if (line.startsWith("+++") || line.startsWith("---")) cls = "meta";
      else if (line.startsWith("@@")) cls = "hunk";
      else if (line.startsWith("+")) cls = "add";
      else if (line.startsWith("-")) cls = "del";
      pre.append(h("span", { class: cls }, line + "\n"));
    }
    if (code.truncated) pre.append(h("span", { class: "meta" }, "… (cut; `git diff` shows the whole patch)\n"));
    box.append(pre);
    box.append(h("div", { class: "cmd" }, h("code", {}, `git diff ${code.a} ${code.b}`), copyButton(`git diff ${code.a} ${code.b}`)));
    return box;
  }

  // ---------------------------------------------------------------------------
  // one run
  // ---------------------------------------------------------------------------
  function runView(app, tk, ref) {
    const st = { run: null, xKind: "step", log: false };

    const kv = (rows) => h("table", { class: "kv" }, h("tbody", {}, rows.filter(Boolean).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));

    function card(id, title, ...body) {
      return h("section", { class: "card", id }, h("div", { class: "card-head" }, h("h2", {}, title)), ...body);
    }

    function cmdline(argv) {
      return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\"'\"'") + "'")).join(" ");
    }

    function drawHeader(r) {
      return h("div", { class: "run-head" },
        h("div", { class: "crumbs" }, h("a", { href: "/" + qs({ experiment: r.experiment }), "data-nav": true }, r.experiment), " / "),
        h("h1", {}, r.run_name || short(r.run_id), " ", statusBadge(r.status)),
        h("div", { class: "mono muted" }, r.run_id, " ", copyButton(r.run_id)));
    }

    function overview(r) {
      const code = r.code || {};
      return card("run-overview", "Overview", kv([
        ["experiment", h("a", { href: "/" + qs({ experiment: r.experiment }), "data-nav": true }, r.experiment)],
        ["status", [statusBadge(r.status), r.exit_code !== null && r.exit_code !== undefined ? h("span", { class: "muted" }, ` exit ${r.exit_code}`) : null]],
        ["started", fmtTime(r.start_time)],
        ["ended", r.end_time ? fmtTime(r.end_time) : "—"],
        ["duration", fmtDuration(r.start_time, r.end_time)],
        ["user", `${r.user || ""}${r.host ? "@" + r.host : ""}`],
        r.source_name ? ["source", r.source_name] : null,
        r.command ? ["command", h("code", { class: "cmdline" }, cmdline(r.command))] : null,
        r.command ? ["directory", r.cwd || "."] : null,
        r.lifecycle_stage !== "active" ? ["lifecycle", r.lifecycle_stage] : null,
      ]));
    }

    function codeCard(r) {
      const c = r.code || {};
      if (!c.commit) return card("run-code", "Code", h("p", { class: "muted" }, "No code was captured (not in a git work tree)."));
      const rows = [
        ["commit", h("span", { class: "mono" }, c.commit)],
        ["state", c.dirty ? h("span", { class: "dirty" }, "dirty work tree: snapshot commit") : "clean"],
        ["branch", c.branch || "detached HEAD"],
        c.head && c.head !== c.commit ? ["HEAD", h("span", { class: "mono" }, c.head)] : null,
        c.snapshot ? ["snapshot", h("span", { class: "mono" }, c.snapshot)] : null,
        c.repo_url ? ["remote", h("span", { class: "mono" }, c.repo_url)] : null,
      ];
      const body = [kv(rows)];
      if (r.git_show) body.push(h("div", { class: "cmd", id: "git-show" }, h("code", {}, r.git_show), copyButton(r.git_show)));
      for (const big of c.large_untracked || []) {
        body.push(h("p", { class: "muted" }, `not captured: ${big.path} (${fmtSize(big.size)}, sha256 ${String(big.sha256).slice(0, 12)})`));
      }
      return card("run-code", "Code", ...body);
    }

    function paramsCard(r) {
      const keys = Object.keys(r.params);
      return card("run-params", `Params (${keys.length})`, keys.length
        ? h("table", { class: "kv" }, h("tbody", {}, keys.map((k) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, r.params[k])))))
        : h("p", { class: "muted" }, "none"));
    }

    function metricsCard(r) {
      const keys = Object.keys(r.metrics);
      const table = h("table", { class: "grid metrics", id: "run-metrics-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "metric"), h("th", { class: "num" }, "latest"), h("th", { class: "num" }, "min"), h("th", { class: "num" }, "max"), h("th", { class: "num" }, "points"))),
        h("tbody", {}, keys.map((k) => {
          const m = r.metrics[k];
          return h("tr", { "data-key": k }, h("th", {}, k), h("td", { class: "num" }, fmtNum(m.value)), h("td", { class: "num" }, fmtNum(m.min)), h("td", { class: "num" }, fmtNum(m.max)), h("td", { class: "num" }, m.points));
        })));
      const xSel = h("select", { id: "run-x-axis" }, h("option", { value: "step" }, "step"), h("option", { value: "relative" }, "relative time"), h("option", { value: "time" }, "wall time"));
      xSel.value = st.xKind;
      const logBox = h("input", { type: "checkbox", id: "run-log-scale", checked: st.log });
      const head = h("div", { class: "card-head" }, h("h2", {}, `Metrics (${keys.length})`),
        h("div", { class: "controls" }, h("label", {}, "x ", xSel), h("label", { class: "toggle" }, logBox, " log scale")));
      const grid = h("div", { class: "chart-grid small", id: "run-charts" });
      xSel.addEventListener("change", () => { st.xKind = xSel.value; drawCharts(); });
      logBox.addEventListener("change", () => { st.log = logBox.checked; drawCharts(); });
      return h("section", { class: "card", id: "run-metrics" }, head, keys.length ? table : h("p", { class: "muted" }, "none"), grid);
    }

    async function drawCharts() {
      const r = st.run;
      const keys = Object.keys(r.metrics).filter((k) => r.metrics[k].points > 1).slice(0, 24);
      const grid = $("#run-charts");
      if (!grid || !keys.length) return;
      let data;
      try {
        data = await api("/api/gitrun/history" + qs({ runs: r.run_id, keys: keys.join(",") }));
      } catch (e) {
        grid.replaceChildren(errorBox(e.message));
        return;
      }
      if (tk !== token) return;
      const series = data.runs[r.run_id] || {};
      // every box first: a chart takes its container's width when drawn, so the grid's
      // columns must be settled by then
      for (const key of keys) {
        if (!grid.querySelector(`[data-metric="${CSS.escape(key)}"]`)) {
          grid.append(h("div", { class: "chart", "data-metric": key }, h("h3", {}, key), h("div", { class: "vega" })));
        }
      }
      for (const key of keys) {
        const box = grid.querySelector(`[data-metric="${CSS.escape(key)}"]`);
        const label = r.run_name || short(r.run_id);
        const pts = historyPoints(series[key], label);
        const name = "run:" + key;
        const existing = gitrun.charts[name];
        if (existing && existing.view && existing.xKind === st.xKind && existing.log === st.log) {
          // a live run: the chart grows in place
          const shown = st.log ? pts.filter((p) => p.value > 0) : pts;
          existing.view.change("points", vega.changeset().remove(() => true).insert(shown)).run();
          continue;
        }
        const res = await embed(box.querySelector(".vega"), name, historySpec(key, pts, st.xKind, st.log, [label], 160));
        if (res) {
          res.xKind = st.xKind;
          res.log = st.log;
        }
      }
    }

    function tagsCard(r) {
      const user = r.user_tags || {};
      const system = Object.fromEntries(Object.entries(r.tags).filter(([k]) => !(k in user)));
      const rows = (o) => Object.keys(o).sort().map((k) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, o[k])));
      return card("run-tags", "Tags",
        Object.keys(user).length ? h("table", { class: "kv" }, h("tbody", {}, rows(user))) : h("p", { class: "muted" }, "none besides mlflow.* / gitrun.*"),
        Object.keys(system).length ? h("details", {}, h("summary", {}, `system tags (${Object.keys(system).length})`), h("table", { class: "kv" }, h("tbody", {}, rows(system)))) : null);
    }

    function inputsCard(r) {
      if (!r.inputs || !r.inputs.length) return null;
      return card("run-inputs", `Inputs (${r.inputs.length})`, h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, h("th", {}, "path"), h("th", {}, "kind"), h("th", { class: "num" }, "size"), h("th", {}, "digest"), h("th", {}, "now"), h("th", {}, "context"))),
        h("tbody", {}, r.inputs.map((i) => h("tr", {},
          h("td", { class: "mono" }, i.path), h("td", {}, i.kind), h("td", { class: "num" }, fmtSize(i.size)),
          h("td", { class: "mono", title: i.digest }, String(i.digest).replace(/^sha256:/, "").slice(0, 16)),
          h("td", { class: i.now === "changed" || i.now === "missing" ? "warn" : null }, i.now || ""), h("td", {}, i.context || ""))))));
    }

    function artifactUrl(r, path) {
      return "/get-artifact" + qs({ run_id: r.run_id, path });
    }

    function artifactsCard(r) {
      const arts = r.artifacts || [];
      if (!arts.length) return card("run-artifacts", "Artifacts", h("p", { class: "muted" }, "none"));
      const rows = arts.map((a) => {
        const prev = a.kind === "text"
          ? h("details", { class: "preview", "data-path": a.path }, h("summary", {}, "preview"), h("pre", { class: "text-preview" }))
          : null;
        if (prev) {
          prev.addEventListener("toggle", async () => {
            const pre = $("pre", prev);
            if (!prev.open || pre.dataset.loaded) return;
            pre.dataset.loaded = "1";
            pre.textContent = "Loading…";
            try {
              const p = await api("/api/gitrun/preview" + qs({ run_id: r.run_id, path: a.path }));
              pre.textContent = prettyText(a.path, p.text) + (p.truncated ? `\n… (first ${fmtSize(p.text.length)} of ${fmtSize(p.size)})` : "");
            } catch (e) {
              pre.textContent = e.message;
            }
          });
        }
        return h("tr", { "data-path": a.path },
          h("td", { class: "mono path" }, h("a", { href: artifactUrl(r, a.path), download: a.path.split("/").pop() }, a.path), prev),
          h("td", { class: "num" }, fmtSize(a.size)),
          h("td", { class: "mono sha", title: a.sha256 }, a.sha256.slice(0, 16)),
          h("td", { class: "muted" }, a.storage !== "git" ? a.storage : ""));
      });
      const images = arts.filter((a) => a.kind === "image").slice(0, 24);
      return card("run-artifacts", `Artifacts (${arts.length})`,
        h("table", { class: "grid", id: "artifacts-table" }, h("thead", {}, h("tr", {}, h("th", {}, "path"), h("th", { class: "num" }, "size"), h("th", {}, "sha256"), h("th", {}, ""))), h("tbody", {}, rows)),
        images.length ? h("div", { class: "images", id: "artifact-images" }, images.map((a) => h("figure", {},
          h("a", { href: artifactUrl(r, a.path), download: a.path.split("/").pop() }, h("img", { src: artifactUrl(r, a.path), alt: a.path, loading: "lazy" })),
          h("figcaption", { class: "mono" }, a.path)))) : null);
    }

    function prettyText(path, text) {
      if (/\.json$/i.test(path)) {
        try {
          return JSON.stringify(JSON.parse(text), null, 2);
        } catch (e) {
          return text;
        }
      }
      return text;
    }

    function envCard(r) {
      const env = r.env || {};
      if (!Object.keys(env).length) return null;
      const py = env.python || {};
      const pl = env.platform || {};
      const pkgs = env.packages || {};
      const names = Object.keys(pkgs).sort();
      return card("run-env", "Environment", kv([
        ["python", `${py.version || ""} ${py.implementation ? "(" + py.implementation + ")" : ""}`],
        ["platform", [pl.system, pl.release, pl.machine].filter(Boolean).join(" ")],
        ["packages", names.length ? h("details", {}, h("summary", {}, `${names.length} installed`),
          h("table", { class: "kv small" }, h("tbody", {}, names.map((n) => h("tr", {}, h("th", {}, n), h("td", { class: "mono" }, String(pkgs[n]))))))) : "none recorded"],
      ]));
    }

    function logCard(r) {
      if (!r.output_log) return null;
      const l = r.output_log;
      return card("run-output", "Output log",
        l.truncated ? h("p", { class: "muted" }, `The last ${fmtSize(l.text.length)} of ${fmtSize(l.size)}.`) : null,
        h("pre", { class: "log", id: "output-log" }, l.text),
        h("div", { class: "cmd" }, h("code", {}, l.git_show), copyButton(l.git_show)));
    }

    async function load() {
      const r = await api("/api/gitrun/run/" + encodeURIComponent(ref));
      if (tk !== token) return null;
      st.run = r;
      return r;
    }

    function drawAll(r) {
      app.replaceChildren(
        drawHeader(r),
        h("div", { class: "run-grid" },
          h("div", { class: "col" }, overview(r), codeCard(r), paramsCard(r), tagsCard(r)),
          h("div", { class: "col wide" }, metricsCard(r), artifactsCard(r), inputsCard(r), logCard(r), envCard(r))));
      document.title = `${r.run_name || short(r.run_id)} · gitrun`;
    }

    (async () => {
      let r;
      try {
        r = await load();
      } catch (e) {
        if (tk === token) app.replaceChildren(h("h1", {}, "Run"), errorBox(e.message), h("p", {}, h("a", { href: "/", "data-nav": true }, "Back to the runs")));
        return;
      }
      if (!r) return;
      if (r.run_id !== ref && location.pathname !== runHref(r.run_id)) history.replaceState(null, "", runHref(r.run_id) + location.search);
      drawAll(r);
      await drawCharts();
      gitrun.ready = true;
    })();

    return {
      name: "run",
      async refresh() {
        if (!st.run) return;
        const wasLive = st.run.status === "RUNNING";
        if (!wasLive) return;
        let r;
        try {
          r = await load();
        } catch (e) {
          return;
        }
        if (!r) return;
        if (r.status !== "RUNNING") {
          finalizeCharts();
          drawAll(r);
          await drawCharts();
          return;
        }
        const old = $("#run-metrics");
        if (old) {
          const fresh = metricsCard(r);
          const grid = $("#run-charts", old);
          $("#run-charts", fresh).replaceWith(grid); // keep the charts: they grow in place
          old.replaceWith(fresh);
        }
        await drawCharts();
      },
    };
  }

  // ---------------------------------------------------------------------------
  document.title = "gitrun";
  route();
  poll();
  setInterval(poll, POLL_MS);
})();
