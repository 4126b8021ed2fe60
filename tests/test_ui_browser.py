"""The pages of `gitrun ui` in a real headless Chromium (Debian's chromium + chromedriver).

One repository, one server and one browser for the whole module: three runs of an
experiment (different lr, loss curves, code that changes between them, an image and a
text artifact), served by gitrun.ui.server.running() on 127.0.0.1.  Skipped only when
selenium or the two Debian binaries are missing.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
import urllib.parse
import zlib
from types import SimpleNamespace

import pytest

from tests.conftest import IDENTITY

webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)",
)

# name: (lr, final loss) -- lr differs, optimizer does not; loss orders beta < alpha < gamma
RUNS = {"alpha": ("0.1", 0.5), "beta": ("0.01", 0.2), "gamma": ("0.01", 0.9)}
STEPS = 5
# name: (epochs, depth) -- whole numbers that sort wrongly as text; a category among numbers
SWEPT = {"alpha": ("2", "2"), "beta": ("10", "10"), "gamma": ("11", "None")}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one color (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(row * height)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo repository, served; yields base URL, repo path and {name: run id}."""
    import gitrun
    from gitrun.tracking import state
    from gitrun.ui.server import running

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path_factory.mktemp("ui-home")))
        for k, v in IDENTITY.items():
            mp.setenv(k, v)
        for k in list(os.environ):
            if k.startswith(("GITRUN_", "MLFLOW_")):
                mp.delenv(k)
        repo = tmp_path_factory.mktemp("ui") / "repo"
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main")
        (repo / "train.py").write_text("print('v1')\n")
        (repo / ".gitignore").write_text("*.png\n*.txt\n")
        _git(repo, "add", ".")
        _git(repo, "commit", "-qm", "v1")
        mp.chdir(repo)
        state.reset()
        client = gitrun.MlflowClient()
        ids = {}
        t0 = int(time.time() * 1000) - 3_600_000
        for i, (name, (lr, final)) in enumerate(RUNS.items()):
            if name == "beta":  # the code changes between alpha and beta
                (repo / "train.py").write_text("print('v2')\nlr_schedule = 'cosine'\n")
                _git(repo, "commit", "-qam", "v2")
            start = t0 + i * 600_000
            rid = client.create_run("demo", run_name=name, start_time=start).info.run_id
            client.log_param(rid, "lr", lr)
            client.log_param(rid, "optimizer", "adam")
            client.log_param(rid, "epochs", SWEPT[name][0])
            client.log_param(rid, "depth", SWEPT[name][1])
            for step in range(STEPS):
                loss = final + (STEPS - 1 - step) * 0.3
                client.log_metric(rid, "loss", loss, start + step * 1000, step)
            client.log_metric(rid, "accuracy", 1 - final / 2, start + STEPS * 1000, STEPS)
            if name == "alpha":
                (repo / "sample.png").write_bytes(png(24, 16, (200, 40, 40)))
                client.log_artifact(rid, str(repo / "sample.png"), "plots")
                (repo / "notes.txt").write_text("hello from alpha\n")
                client.log_artifact(rid, str(repo / "notes.txt"))
            client.set_terminated(rid, "FINISHED", end_time=start + 60_000)
            ids[name] = rid
        state.reset()
        with running(str(repo)) as base:
            yield SimpleNamespace(base=base, repo=repo, ids=ids, client=client)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(20)
    driver.get("about:blank")
    driver.get_log("performance")  # the browser's own start-up (its new-tab page), not ours
    driver.seen_urls = []  # every request the pages made, drained from the performance log
    yield driver
    driver.quit()


def drain(d) -> None:
    for entry in d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            d.seen_urls.append(msg["params"]["request"]["url"])


def wait_for(d, script: str, *args, timeout: float = 15.0):
    """Poll a JS expression (`return ...`) until it is truthy; its value."""
    end = time.monotonic() + timeout
    value = None
    while time.monotonic() < end:
        value = d.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.1)
    errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
    raise AssertionError(f"timed out waiting for: {script} (last {value!r}; JS errors {errors})")


def chart_points(name: str) -> str:
    """JS: how many points the chart `name` holds (0 before it is drawn)."""
    return f"const c = window.gitrun.charts['{name}']; return c ? c.view.data('points').length : 0"


def load(d, url: str) -> None:
    d.get(url)
    wait_for(d, "return window.gitrun && window.gitrun.ready")
    drain(d)


def row_names(d) -> list[str]:
    return d.execute_script(
        "return Array.from(document.querySelectorAll('#runs-table tbody tr[data-run-id]'))"
        ".map(tr => tr.querySelector('td.name').textContent)"
    )


def wait_rows(d, names: list[str]) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end and row_names(d) != names:
        time.sleep(0.1)
    assert row_names(d) == names


def submit_filter(d, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = d.find_element(By.ID, "filter")
    box.clear()
    box.send_keys(text + Keys.ENTER)


def test_table_shows_the_runs_with_their_columns(site, browser):
    load(browser, site.base + "/?experiment=demo")
    # newest first (MLflow's default order)
    assert row_names(browser) == ["gamma", "beta", "alpha"]
    headers = browser.execute_script(
        "return Array.from(document.querySelectorAll('#runs-table thead th'))"
        ".map(th => th.dataset.sort || '')"
    )
    for key in ("params.lr", "params.optimizer", "metrics.loss", "metrics.accuracy"):
        assert key in headers
    cell = browser.execute_script(
        "return document.querySelector(`tr[data-run-id='${arguments[0]}'] td.metric"
        "[data-key='loss']`).textContent",
        site.ids["beta"],
    )
    assert cell == "0.2"
    assert browser.execute_script("return document.querySelector('#experiment').value") == "demo"
    # every experiment at 1280 px: the metrics are on the screen, the table scrolls sideways
    # inside its panel with the run's name kept at the left
    load(browser, site.base + "/")
    seen = browser.execute_script(
        "const wrap = document.querySelector('.table-wrap').getBoundingClientRect();"
        "const m = document.querySelector('#runs-table th.metric').getBoundingClientRect();"
        "return {right: m.right <= wrap.right && m.right <= innerWidth, w: innerWidth,"
        " name: getComputedStyle(document.querySelector('#runs-table td.name')).position,"
        " overflow: getComputedStyle(document.querySelector('.table-wrap')).overflowX}"
    )
    assert seen == {"right": True, "w": 1280, "name": "sticky", "overflow": "auto"}


def test_clicking_a_metric_header_sorts_by_it(site, browser):
    from selenium.webdriver.common.by import By

    load(browser, site.base + "/?experiment=demo")
    browser.find_element(By.CSS_SELECTOR, "th[data-sort='metrics.loss']").click()
    wait_rows(browser, ["beta", "alpha", "gamma"])
    assert "order_by=metrics.loss+ASC" in browser.current_url
    browser.find_element(By.CSS_SELECTOR, "th[data-sort='metrics.loss']").click()
    wait_rows(browser, ["gamma", "alpha", "beta"])
    assert "order_by=metrics.loss+DESC" in browser.current_url
    # the URL is the view: loading it again gives the same order
    load(browser, browser.current_url)
    assert row_names(browser) == ["gamma", "alpha", "beta"]


def test_filter_applies_on_enter_and_back_restores(site, browser):
    load(browser, site.base + "/?experiment=demo")
    submit_filter(browser, "metrics.loss < 0.3 OR params.lr = '0.1'")
    wait_rows(browser, ["beta", "alpha"])
    query = urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)
    assert query["filter"] == ["metrics.loss < 0.3 OR params.lr = '0.1'"]
    submit_filter(browser, "params.lr IN ('0.01') AND NOT metrics.loss > 0.5")
    wait_rows(browser, ["beta"])
    browser.back()  # popstate: the previous filter, its rows and its text in the box
    wait_rows(browser, ["beta", "alpha"])
    assert browser.execute_script("return document.querySelector('#filter').value") == (
        "metrics.loss < 0.3 OR params.lr = '0.1'"
    )
    browser.back()
    wait_rows(browser, ["gamma", "beta", "alpha"])
    browser.forward()
    wait_rows(browser, ["beta", "alpha"])


def test_an_invalid_filter_is_shown_inline_and_the_page_keeps_working(site, browser):
    from selenium.webdriver.common.by import By

    load(browser, site.base + "/?experiment=demo")
    url = browser.current_url
    submit_filter(browser, "metrics.loss <<< 1 and")
    message = wait_for(
        browser,
        "const e = document.querySelector('#filter-error');return e && !e.hidden && e.textContent",
    )
    assert message.startswith("Invalid filter")
    assert browser.find_element(By.ID, "filter-error").is_displayed()
    assert row_names(browser) == ["gamma", "beta", "alpha"]  # the table is still there
    assert browser.current_url == url  # a broken filter does not become the view
    browser.find_element(By.CSS_SELECTOR, "th[data-sort='metrics.loss']").click()
    wait_rows(browser, ["beta", "alpha", "gamma"])  # sorting still works
    submit_filter(browser, "params.lr = '0.01'")
    wait_rows(browser, ["beta", "gamma"])
    assert browser.execute_script("return document.querySelector('#filter-error').hidden")


def test_checkboxes_and_compare_button_open_compare(site, browser):
    from selenium.webdriver.common.by import By

    load(browser, site.base + "/?experiment=demo")
    for name in ("alpha", "gamma"):
        rid = site.ids[name]
        browser.find_element(By.CSS_SELECTOR, f"input.select[value='{rid}']").click()
    browser.find_element(By.ID, "compare-btn").click()
    wait_for(browser, "return location.pathname === '/compare' && window.gitrun.ready")
    runs = urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)["runs"][0]
    assert set(runs.split(",")) == {site.ids["alpha"], site.ids["gamma"]}


def test_compare_overlays_three_series_and_marks_the_differing_param(site, browser):
    refs = ["alpha", site.ids["beta"][:8], site.ids["gamma"]]  # a name, a prefix, an id
    load(browser, site.base + "/compare?runs=" + ",".join(refs))
    series = wait_for(
        browser,
        "const c = window.gitrun.charts['history:loss'];"
        "if (!c) return null;"
        "const pts = c.view.data('points');"
        "return {domain: c.view.scale('color').domain(), points: pts.length,"
        "        runs: Array.from(new Set(pts.map(p => p.run)))};",
    )
    assert len(series["domain"]) == 3
    assert len(series["runs"]) == 3
    assert series["points"] == 3 * STEPS
    for name in RUNS:
        assert any(r.startswith(name + " (") for r in series["runs"])
    classes = browser.execute_script(
        "const c = k => document.querySelector(`#compare-table tr[data-key='${k}']`).className;"
        "return {lr: c('lr'), optimizer: c('optimizer'), loss: c('loss')};"
    )
    assert "diff" in classes["lr"].split()
    assert "diff" not in classes["optimizer"].split()
    assert "diff" in classes["loss"].split()
    # the code of alpha and beta differs: gitrun diff's file list and patch
    files = wait_for(
        browser,
        "const f = document.querySelectorAll('#diff-files li'); return f.length && "
        "Array.from(f).map(li => li.textContent);",
    )
    assert any("train.py" in f for f in files)
    patch = browser.execute_script("return document.querySelector('#diff-patch').textContent")
    assert "+lr_schedule = 'cosine'" in patch
    # log scale: the chart is drawn again on a log axis
    browser.execute_script("document.querySelector('#log-scale').click()")
    wait_for(
        browser,
        "const c = window.gitrun.charts['history:loss'];"
        "return c && c.view.scale('y').type === 'log'",
    )
    # the sweep charts exist (parallel coordinates over lr + metrics, and a scatter)
    assert browser.execute_script("return !!window.gitrun.charts['parallel']")
    assert (
        browser.execute_script("return window.gitrun.charts['scatter'].view.data('points').length")
        == 3
    )


def test_run_page_shows_an_image_artifact_and_what_show_has(site, browser):
    from selenium.webdriver.common.by import By

    rid = site.ids["alpha"]
    load(browser, site.base + "/runs/" + rid[:6])
    width = wait_for(
        browser,
        "const i = document.querySelector('#artifact-images img');"
        "return i && i.complete && i.naturalWidth",
    )
    assert width == 24
    assert browser.execute_script("return location.pathname") == "/runs/" + rid
    text = browser.find_element(By.ID, "app").text
    for expected in (
        "alpha",
        "FINISHED",
        "lr",
        "0.1",
        "optimizer",
        "plots/sample.png",
        "notes.txt",
    ):
        assert expected in text
    commit = browser.execute_script("return document.querySelector('#git-show code').textContent")
    assert commit.startswith("git show ") and len(commit.split()[-1]) == 40
    # a text artifact is previewed
    browser.execute_script(
        "document.querySelector(\"details.preview[data-path='notes.txt']\").open = true"
    )
    preview = wait_for(
        browser,
        "const p = document.querySelector(\"details.preview[data-path='notes.txt'] pre\");"
        "return p && p.textContent.includes('hello') && p.textContent",
    )
    assert preview.strip() == "hello from alpha"
    # the download link goes through MLflow's get-artifact endpoint
    href = browser.execute_script(
        "return document.querySelector("
        "\"#artifacts-table tr[data-path='plots/sample.png'] a\").href"
    )
    assert urllib.parse.urlparse(href).path == "/get-artifact"
    # the metric chart of the run
    assert (
        wait_for(
            browser,
            "const c = window.gitrun.charts['run:loss']; return c && c.view.data('points').length",
        )
        == STEPS
    )
    # it takes the panel's width (one chart: the whole row), whole-number step ticks
    width, grid, fmt = browser.execute_script(
        "const c = window.gitrun.charts['run:loss'];"
        "return [c.view.width(), document.querySelector('#run-charts').clientWidth,"
        " c.spec.encoding.x.axis.format]"
    )
    assert width > 0.8 * grid and fmt == "d", (width, grid)


def test_runs_logged_while_the_page_is_open_appear_without_a_reload(site, browser, monkeypatch):
    from selenium.webdriver.common.by import By

    from gitrun.tracking import state

    monkeypatch.chdir(site.repo)
    state.reset()
    load(browser, site.base + "/?experiment=demo")
    browser.execute_script("window.__same_page = 42")
    client = site.client
    rid = client.create_run("demo", run_name="live-run").info.run_id
    try:
        client.log_param(rid, "lr", "0.5")
        t = int(time.time() * 1000)
        client.log_metric(rid, "loss", 3.0, t, 0)
        client.log_metric(rid, "loss", 2.5, t + 1, 1)
        status = wait_for(
            browser,
            "const tr = document.querySelector(`tr[data-run-id='${arguments[0]}']`);"
            "return tr && tr.querySelector('.status').textContent",
            rid,
        )
        assert status == "RUNNING"
        loss = browser.execute_script(
            "return document.querySelector(`tr[data-run-id='${arguments[0]}'] "
            "td.metric[data-key='loss']`).textContent",
            rid,
        )
        assert loss == "2.5"
        # its page (reached without a reload) shows the curve growing as points are logged
        browser.find_element(By.CSS_SELECTOR, f"tr[data-run-id='{rid}'] td.name a").click()
        wait_for(browser, chart_points("run:loss") + " === 2")
        client.log_metric(rid, "loss", 2.0, t + 2, 2)
        client.log_metric(rid, "loss", 1.5, t + 3, 3)
        wait_for(browser, chart_points("run:loss") + " === 4")
    finally:
        client.set_terminated(rid, "FINISHED")
    wait_for(
        browser,
        "const s = document.querySelector('.run-head .status');"
        "return s && s.textContent === 'FINISHED'",
    )
    # a finished run that lands appears in the table, still without a reload
    browser.back()
    wait_for(browser, "return location.pathname === '/'")
    late = client.create_run("demo", run_name="late-run").info.run_id
    client.set_terminated(late, "FINISHED")
    wait_for(
        browser,
        "return !!document.querySelector(`tr[data-run-id='${arguments[0]}']`)",
        late,
    )
    assert browser.execute_script("return window.__same_page") == 42
    drain(browser)


def test_no_request_leaves_127_0_0_1(site, browser):
    load(browser, site.base + "/?experiment=demo")
    load(browser, site.base + "/compare?runs=alpha,beta,gamma")
    load(browser, site.base + "/runs/" + site.ids["alpha"])
    time.sleep(2.5)  # a poll of the tip or two
    drain(browser)
    urls = browser.seen_urls
    assert any(u.endswith("/static/vendor/vega-embed.min.js") for u in urls)
    assert any("/api/gitrun/tip" in u for u in urls)
    assert any("/get-artifact" in u for u in urls)
    outside = []
    for u in urls:
        p = urllib.parse.urlparse(u)
        if p.scheme in ("data", "blob", "about"):
            continue
        if p.scheme not in ("http", "https", "ws", "wss") or p.hostname != "127.0.0.1":
            outside.append(u)
    assert outside == []
    # and the page asks for nothing by the JS Performance API either
    hosts = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).hostname)"
    )
    assert hosts and set(hosts) == {"127.0.0.1"}
    # and no view logged a script error (the invalid filter's 400 answer aside)
    severe = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "status of 400" not in e["message"]
    ]
    assert severe == []


def test_compare_sweep_axes_follow_the_values(site, browser):
    load(browser, site.base + "/compare?runs=alpha,beta,gamma")
    wait_for(
        browser, "return !!(window.gitrun.charts['scatter'] && window.gitrun.charts['parallel'])"
    )
    # parallel coordinates: the params that vary (numbers and a category), then the metrics
    axes = browser.execute_script(
        "return Array.from(document.querySelectorAll('#compare-sweep .picker input:checked'))"
        ".map(i => i.value)"
    )
    assert axes == [
        "params.depth",
        "params.epochs",
        "params.lr",
        "metrics.accuracy",
        "metrics.loss",
    ]
    assert browser.execute_script(
        "return window.gitrun.charts['parallel'].view.data('lines').length"
    ) == 3 * len(axes)

    def scatter_x(key: str):
        browser.execute_script(
            "const s = document.querySelector('#scatter-x'); s.value = arguments[0];"
            "window.gitrun.charts['scatter'] = null; s.dispatchEvent(new Event('change'));",
            key,
        )
        return wait_for(
            browser,
            "const c = window.gitrun.charts['scatter'];"
            "return c && [c.view.scale('x').type, c.view.scale('x').domain(),"
            " c.spec.encoding.x.axis || null]",
        )

    # whole numbers: a numeric axis (2, 10, 11 -- not "10" < "11" < "2") with whole ticks
    kind, domain, axis = scatter_x("params.epochs")
    assert kind == "linear" and domain[0] <= 2 and domain[1] >= 11
    assert axis == {"format": "d", "tickMinStep": 1}
    # a category among numbers: the numbers in numeric order, then the text
    kind, domain, _ = scatter_x("params.depth")
    assert kind != "linear" and domain == ["2", "10", "None"]
    # the curves take the panel's width; accuracy (one point per run) is no curve
    width, grid = browser.execute_script(
        "return [window.gitrun.charts['history:loss'].view.width(),"
        " document.querySelector('#compare-history .chart-grid').clientWidth]"
    )
    assert width > 0.8 * grid, (width, grid)
    assert browser.execute_script("return !window.gitrun.charts['history:accuracy']")
