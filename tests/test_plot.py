"""`gitrun plot` (PNG/SVG/PDF through matplotlib) and `gitrun report` (one self-contained
HTML file), on real repositories with real runs; the report opened in headless Chromium."""

from __future__ import annotations

import json
import math
import os
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import gitrun
from gitrun._git import Repo
from gitrun.cli import cli
from gitrun.workflows import plot as P
from tests.conftest import IDENTITY, git, run_cli
from tests.query_helpers import make_record, put_records

pytest.importorskip("matplotlib")

WEIRD = "run-2 <b>&amp;</b> $x^2$"  # markup and mathtext in a name: shown as text
SWEEP = [  # (name, lr, max_depth, optimizer, f1)
    ("run-0", 0.1, 3, "adam", 0.85),
    ("run-1", 0.01, 5, "sgd", 0.88),
    (WEIRD, 0.001, "None", "sgd", 0.91),
    ("run-3", 0.05, 8, "adam", 0.94),
    ("run-4", 0.2, 3, "sgd", 0.97),
]


def make_sweep() -> dict[str, str]:
    """Five runs of experiment "sweep" logged with the real fluent API, plus one run of
    another experiment; name -> run id."""
    ids = {}
    gitrun.set_experiment("sweep")
    for name, lr, depth, opt, f1 in SWEEP:
        with gitrun.start_run(run_name=name) as run:
            gitrun.log_params({"lr": lr, "max_depth": depth, "optimizer": opt})
            for step in range(40):
                gitrun.log_metric("loss", math.exp(-lr * step * 3) + 0.01 * (step % 3), step=step)
            gitrun.log_metric("f1", f1)
            ids[name] = run.info.run_id
    gitrun.set_experiment("other")
    with gitrun.start_run(run_name="elsewhere") as run:
        gitrun.log_param("lr", "high")
        gitrun.log_metric("loss", 1.0, step=0)
        gitrun.log_metric("loss", 0.5, step=1)
        ids["elsewhere"] = run.info.run_id
    return ids


@pytest.fixture
def sweep(repo):
    return make_sweep()


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()  # parses as XML, or raises
    assert root.tag.endswith("svg")
    return ["".join(el.itertext()) for el in root.iter() if el.tag.endswith("text")]


# ---------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------
def test_history_png_of_named_runs(repo, sweep):
    from PIL import Image

    a, b = sweep["run-0"][:6], sweep["run-3"][:8]
    result = invoke("plot", "metrics.loss", "--runs", a, b, "run-4", "-o", "loss.png")
    assert result.exit_code == 0, result.output
    data = (repo / "loss.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(repo / "loss.png").convert("RGB")
    assert img.size == (960, 600)  # 6.4 x 4 in at 150 dpi
    pixels = np.asarray(img).reshape(-1, 3).astype(int)

    def near(rgb):
        return int((np.abs(pixels - np.array(rgb)).sum(axis=1) < 30).sum())

    # three runs: the three first tab10 colours are drawn (blue, orange, green), no fourth
    for rgb in [(31, 119, 180), (255, 127, 14), (44, 160, 44)]:
        assert near(rgb) > 200, rgb
    assert near((214, 39, 40)) < 50


def test_history_svg_names_runs_and_pdf_by_suffix(repo, sweep):
    result = invoke("plot", "loss", "-e", "sweep", "--log-y", "-o", "loss.svg")
    assert result.exit_code == 0, result.output
    texts = svg_texts(repo / "loss.svg")
    for name, *_ in SWEEP:
        assert name in texts  # the legend, as text (mathtext off, markup escaped)
    assert "elsewhere" not in texts  # another experiment
    assert "metrics.loss" in texts and "step" in texts
    for x_axis, out in (("relative", "rel.pdf"), ("time", "time.png")):
        result = invoke("plot", "metrics.loss", "--x-axis", x_axis, "-o", out)
        assert result.exit_code == 0, result.output
    assert (repo / "rel.pdf").read_bytes().startswith(b"%PDF")
    assert (repo / "time.png").read_bytes()[:4] == b"\x89PNG"


def test_scatter_svg_with_filter_and_categorical_axis(repo, sweep):
    result = invoke(
        "plot",
        "--filter",
        "metrics.f1 > 0.9",
        "-e",
        "sweep",
        "--x",
        "params.max_depth",
        "--y",
        "metrics.f1",
        "-o",
        "f1.svg",
    )
    assert result.exit_code == 0, result.output
    texts = svg_texts(repo / "f1.svg")
    assert {WEIRD, "run-3", "run-4"} <= set(texts)  # points named
    assert not {"run-0", "run-1"} & set(texts)  # filtered out
    # max_depth has "None": a categorical axis, numbers first in order, then the rest
    ticks = [t for t in texts if t in ("3", "8", "None")]
    assert ticks == ["3", "8", "None"]
    assert "params.max_depth" in texts and "metrics.f1" in texts


def test_parallel_coordinates(repo, sweep):
    from PIL import Image

    keys = ["params.lr", "params.max_depth", "params.optimizer", "metrics.f1"]
    result = invoke("plot", "--parallel", *keys, "-e", "sweep", "-o", "sweep.png")
    assert result.exit_code == 0, result.output
    assert Image.open(repo / "sweep.png").size[1] == 600
    result = invoke("plot", "--parallel", *keys, "-e", "sweep", "-o", "sweep.svg")
    texts = svg_texts(repo / "sweep.svg")
    assert set(keys) <= set(texts)
    assert {"adam", "sgd", "None", "3", "5", "8"} <= set(texts)  # categorical ticks labelled


def test_runs_option_takes_several_words(repo, sweep):
    ids = [sweep["run-0"], sweep["run-1"], sweep["run-3"]]
    for args in (
        ["--runs", ids[0][:6], ids[1][:6], ids[2][:6], "metrics.loss"],
        [f"--runs={ids[0][:6]},{ids[1][:6]}", "--runs", ids[2][:6], "metrics.loss"],
    ):
        result = invoke("plot", *args, "-o", "l.svg", "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["runs"] == 3
        assert {"run-0", "run-1", "run-3"} <= set(svg_texts(repo / "l.svg"))
    # the legend follows --order-by when one is given (else the order of --runs)
    result = invoke("plot", "loss", "--runs", "run-0", "run-4", "run-1", "-o", "o.svg")
    names = [t for t in svg_texts(repo / "o.svg") if t.startswith("run-")]
    assert names == ["run-0", "run-4", "run-1"]
    result = invoke(
        "plot",
        "loss",
        "--runs",
        "run-0",
        "run-4",
        "run-1",
        "--order-by",
        "metrics.f1 DESC",
        "-o",
        "o.svg",
    )
    names = [t for t in svg_texts(repo / "o.svg") if t.startswith("run-")]
    assert names == ["run-4", "run-1", "run-0"]


def test_values_and_axes_units(repo, sweep):
    r = Repo.discover()
    recs = P.select_runs(r, experiments=["sweep"])
    lr = P.axis("params.lr", recs)
    assert lr.numeric and sorted(lr.values.values()) == [0.001, 0.01, 0.05, 0.1, 0.2]
    depth = P.axis("max_depth", recs)  # a bare key names the param
    assert not depth.numeric and depth.categories == ["3", "5", "8", "None"]
    assert [depth.normalized(sweep[n]) for n in ("run-0", "run-1", WEIRD)] == [0.0, 1 / 3, 1.0]
    xs = list(range(5000))
    ys = [math.sin(i / 50) + (5 if i == 2345 else 0) for i in xs]
    dx, dy = P.downsample(xs, ys, 1000)
    assert len(dx) <= 1000 and dx == sorted(dx)
    assert max(dy) == max(ys) and min(dy) == min(ys) and dx[0] == 0 and dx[-1] == 4999
    assert P.nice_ticks(0.001, 0.2) == [0.05, 0.1, 0.15, 0.2]


BAD = [
    (["plot", "metrics.los", "-o", "x.png"], 1, "did you mean metrics.loss"),
    (["plot", "metrics.loss", "-o", "x.jpg"], 1, "name the output file .png, .svg or .pdf"),
    (["plot", "metrics.loss", "--filter", "metrics.f1 > 5", "-o", "x.png"], 1, "No runs match"),
    (["plot", "metrics.loss", "--runs", "nosuchrun", "-o", "x.png"], 1, "No run matches"),
    (["plot", "lr", "-o", "x.png"], 1, "is a param, not a metric"),
    (["plot", "--x", "params.lr", "-o", "x.png"], 2, "needs both --x and --y"),
    (["plot", "--parallel", "params.lr", "-o", "x.png"], 2, "at least two keys"),
    (["plot", "metrics.loss", "-o", "nodir/x.png"], 1, "does not exist"),
    (["plot", "--x", "params.nope", "--y", "metrics.f1", "-o", "x.svg"], 1, "not a param"),
    (["plot", "metrics.loss", "-e", "nosuch", "-o", "x.png"], 1, "No experiment named"),
    (["report", "-o", "x.pdf"], 1, "name the report file .html"),
    (["report", "--filter", "metrics.f1 >", "-o", "x.html"], 1, ""),
    (["report", "-e", "sweep", "--metric", "nope", "-o", "x.html"], 1, "not a metric"),
]


@pytest.mark.parametrize("args,code,words", BAD, ids=[" ".join(b[0][:3]) for b in BAD])
def test_bad_input_is_one_sentence_and_writes_nothing(repo, sweep, args, code, words):
    before = files(repo)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("Usage")]
    lines = [ln for ln in lines if not ln.startswith("Try ")]
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert files(repo) == before


def test_bad_input_in_a_real_process(repo, sweep):
    p = run_cli("plot", "metrics.nope", "-e", "sweep", "-o", "x.svg")
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "not a metric" in p.stderr and "Traceback" not in p.stderr
    assert not (repo / "x.svg").exists()
    assert not [f for f in os.listdir(repo) if f.startswith(".gitrun-")]  # no temp file left


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
class Page(HTMLParser):
    """What matters in a report: references to other files, tags, scripts by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self.tags: list[str] = []
        self.scripts: dict[str, str] = {}
        self.inline: list[str] = []
        self.styles: list[str] = []
        self.meta: list[dict] = []
        self._in: tuple[str, dict] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href", "srcset", "action", "data", "poster", "background"):
            if a.get(name):
                self.refs.append(a[name])
        if a.get("style"):
            self.styles.append(a["style"])
        if tag == "meta":
            self.meta.append(a)
        if tag in ("script", "style"):
            self._in = (tag, a)
            self._text: list[str] = []

    def handle_data(self, data):
        if self._in:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._in and tag == self._in[0]:
            text = "".join(self._text)
            kind, a = self._in
            if kind == "style":
                self.styles.append(text)
            elif a.get("type") == "application/json":
                self.scripts[a["id"]] = text
            else:
                self.inline.append(text)
            self._in = None


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text("utf-8"))
    page.close()
    return page


def check_self_contained(page: Page) -> None:
    assert page.refs == []  # no src/href/... at all: nothing is loaded from anywhere
    assert "link" not in page.tags and "iframe" not in page.tags and "img" not in page.tags
    for css in page.styles:
        assert "url(" not in css and "@import" not in css
    for js in page.inline:
        assert not js.lstrip().startswith("import ")
    csp = [m["content"] for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]


def test_report_is_self_contained_and_escapes_names(repo, sweep):
    gitrun.set_experiment("sweep")
    evil = "</script><script>alert(1)</script>"
    with gitrun.start_run(run_name=evil) as run:
        gitrun.log_param("lr", "0.3")
        gitrun.log_metric("f1", 0.5)
        gitrun.log_metric("auc", float("nan"))  # NaN is not JSON: null in the data, "nan" shown
        sweep[evil] = run.info.run_id
    result = invoke("report", "-e", "sweep", "--filter", "metrics.f1 > 0", "-o", "report.html")
    assert result.exit_code == 0, result.output
    text = (repo / "report.html").read_text("utf-8")
    page = parse(repo / "report.html")
    check_self_contained(page)
    assert "b" not in page.tags  # the <b> in a run name stayed text
    assert page.tags.count("script") == 2 + 3 + 1  # data, specs, three libraries, the page
    for name, rid in sweep.items():
        if name != "elsewhere":
            assert rid in text
    assert sweep["elsewhere"] not in text
    data = json.loads(page.scripts["gitrun-data"])  # the `</` could not close it
    assert {r["run_name"] for r in data["runs"]} == {s[0] for s in SWEEP} | {evil}
    assert len(data["histories"]["loss"]) == 5 and data["charted"] == ["loss"]
    assert [r["metrics"].get("auc", 0) for r in data["runs"]].count(None) == 1
    assert '<td class="num" data-v="">nan</td>' in text
    specs = json.loads(page.scripts["gitrun-specs"])
    assert specs["scatter"]["encoding"]["x"]["title"] == "params.lr"
    assert specs["parallel"]["layer"][1]["encoding"]["color"]["title"] == "metrics.f1"
    assert "alert(1)</script>" not in text.replace("&lt;", "<")[: text.find("<script")]
    assert "Every logged point is drawn." in text


def many_runs(n: int, steps: int) -> list:
    recs = []
    for i in range(n):
        lr = 10 ** (-4 + 3 * i / n)
        loss = [math.exp(-lr * 40 * s / steps) + 0.01 * ((s * 7 + i) % 5) for s in range(steps)]
        recs.append(
            make_record(
                f"{i:032x}"[::-1],
                f"trial-{i:03d}",
                1_700_000_000_000 + i * 1000,
                params={"lr": f"{lr:.4g}", "depth": [2, 4, 8, "None"][i % 4]},
                metrics={"loss": loss, "acc": [1 - v / 2 for v in loss], "f1": [i / n]},
                experiment="big",
            )
        )
    return recs


@pytest.fixture(scope="module")
def big_report(tmp_path_factory):
    """A report of 200 runs with 400-step histories (more than its per-series budget)."""
    d = tmp_path_factory.mktemp("big")
    with pytest.MonkeyPatch.context() as mp:  # the per-test isolation is not up yet
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        for k, v in IDENTITY.items():
            mp.setenv(k, v)
        git(d, "init", "-q", "-b", "main")
        put_records(Repo.discover(str(d)), many_runs(200, 400))
        out = d / "big.html"
        p = run_cli("report", "-e", "big", "-o", str(out), "-q", cwd=d)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return out


def test_report_of_200_runs_is_small_and_downsampled(big_report):
    size = big_report.stat().st_size
    assert size < 4_000_000, size
    page = parse(big_report)
    check_self_contained(page)
    data = json.loads(page.scripts["gitrun-data"])
    assert len(data["runs"]) == 200
    for key in ("loss", "acc"):
        series = data["histories"][key]
        assert len(series) == 200
        for _, steps, values in series:  # first and last points kept, within the budget
            assert len(steps) == len(values) <= data["downsampling"]["points_per_series"]
            assert steps[0] == 0 and steps[-1] == 399 and steps == sorted(steps)
    assert data["downsampling"]["points_per_series"] == 300  # 120,000 points / 400 series
    assert data["downsampling"]["series_cut"] == 400
    assert "downsampled" in big_report.read_text("utf-8")


def test_report_whole_number_axes_single_points_and_few_labels():
    from gitrun.ui import report as R

    recs = [  # epochs 1..12: whole numbers; f1 logged once per run
        make_record(
            f"{i:032x}",
            f"trial-{i}",
            1_700_000_000_000 + i,
            params={"epochs": i, "lr": 0.1 * i},
            metrics={"loss": [1.0, 0.5 / i, 0.2 / i], "f1": [i / 20]},
        )
        for i in range(1, 13)
    ]
    data = R.report_data(recs)
    assert data["charted"] == ["loss"]  # a single point per run: in the table, not a curve
    whole = {"format": "d", "tickMinStep": 1}
    spec = R.specs(data)
    assert spec["histories"][0]["encoding"]["x"]["axis"].items() >= whole.items()  # not 0.2
    axes = {a["key"]: a for a in data["axes"]}
    assert axes["params.epochs"]["integer"] and not axes["params.lr"]["integer"]
    assert R.axis_encoding(axes["params.epochs"], "x")["axis"] == {"tickCount": 10, **whole}
    assert "format" not in R.axis_encoding(axes["params.lr"], "x")["axis"]
    ticks = [t["t"] for t in data["parallel_data"]["ticks"] if t["a"] == 0]  # epochs' axis
    assert data["parallel"][0] == "params.epochs" and ticks and all(t.isdigit() for t in ticks)
    assert P.nice_ticks(1, 3, integer=True) == [1, 2, 3] and P.nice_ticks(1, 3)[1] == 1.5
    # asked for, a metric of single points is drawn as dots on whole-number steps
    single = R.specs(R.report_data(recs, ["f1"]))["histories"][0]
    assert single["mark"]["point"] is True
    assert single["encoding"]["x"]["axis"].items() >= whole.items()
    # the scatter names its points for a handful of runs only (tooltips always)
    x, y = axes["params.epochs"], axes["metrics.f1"]
    assert len(R.scatter_spec(x, y, 12)["layer"]) == 1
    assert len(R.scatter_spec(x, y, R.SCATTER_LABELS_MAX)["layer"]) == 2
    assert R.scatter_spec(x, y, 12)["encoding"]["tooltip"][0]["field"] == "run"


CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and shutil.which(DRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1600"):
        options.add_argument(a)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def rendered(driver, path: Path, timeout: float = 30) -> dict:
    import time

    driver.get(path.as_uri())
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = driver.execute_script("return window.gitrunReport || null")
        if state and state["done"]:
            return state
        time.sleep(0.05)
    raise AssertionError(f"the charts did not finish drawing: {state}")


def canvases(driver) -> dict:
    return driver.execute_script(
        "var o = {}; document.querySelectorAll('.chart').forEach(function (c) {"
        " o[c.id] = c.querySelectorAll('canvas, svg').length; }); return o;"
    )


def test_report_renders_offline_in_chromium(repo, sweep, big_report, browser):
    result = invoke("report", "-e", "sweep", "-o", "report.html")
    assert result.exit_code == 0, result.output
    for path, n_charts in ((repo / "report.html", 3), (big_report, 4)):
        state = rendered(browser, path)
        assert state["errors"] == []
        drawn = canvases(browser)
        assert len(drawn) == n_charts and all(drawn.values()), drawn
        assert browser.find_element("tag name", "body").get_attribute("data-charts") == "ok"
        # nothing was fetched: no script, style, font or image came from anywhere
        assert browser.execute_script("return performance.getEntriesByType('resource')") == []
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []
    # the page keeps working: log scale, another scatter axis, sorting the table
    browser.get((repo / "report.html").as_uri())
    rendered(browser, repo / "report.html")
    browser.find_element("id", "log-y").click()
    browser.execute_script(
        "var s = document.getElementById('scatter-x'); s.value = 'params.optimizer';"
        "s.dispatchEvent(new Event('change'));"
    )
    browser.find_element("css selector", "#runs-table th:nth-child(1)").click()
    import time

    time.sleep(0.5)
    assert browser.execute_script("return window.gitrunReport.errors") == []
    assert all(canvases(browser).values())
    names = browser.execute_script(
        "return Array.from(document.querySelectorAll('#runs-table tbody tr td:first-child'))"
        ".map(function (td) { return td.textContent; })"
    )
    assert names == sorted(s[0] for s in SWEEP)  # sorted by name


def test_running_run_is_drawn_from_its_journal(repo, sweep):
    gitrun.set_experiment("sweep")
    with gitrun.start_run(run_name="in-progress") as run:
        for step in range(5):
            gitrun.log_metric("loss", 2.0 - step * 0.1, step=step)
        result = invoke("report", "-e", "sweep", "-o", "live.html")
        assert result.exit_code == 0, result.output
        result = invoke("plot", "loss", "--runs", "in-progress", "-o", "live.svg")
        assert result.exit_code == 0, result.output
    data = json.loads(parse(repo / "live.html").scripts["gitrun-data"])
    i = [r["run_id"] for r in data["runs"]].index(run.info.run_id)
    assert data["runs"][i]["status"] == "RUNNING"
    series = {s[0]: s for s in data["histories"]["loss"]}[i]
    assert series[1] == [0, 1, 2, 3, 4] and series[2][-1] == pytest.approx(1.6)
    assert "in-progress" in svg_texts(repo / "live.svg")


def test_missing_matplotlib_gives_the_install_hint(repo, sweep, tmp_path):
    fake = tmp_path / "nompl" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = {"PYTHONPATH": f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = run_cli("plot", "metrics.loss", "-o", "x.png", env=env)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "pip install gitrun-ml[plot]" in p.stderr
    assert not (repo / "x.png").exists()
    p = run_cli("report", "-e", "sweep", "-o", "r.html", env=env)  # the report needs none
    assert p.returncode == 0, p.stderr
