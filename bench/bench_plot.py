"""Figures for `gitrun plot` and `gitrun report` (issue 11): a sweep of 200 runs.

    python bench/bench_plot.py            # 200 runs x 3 metrics x 2,000 steps
    python bench/bench_plot.py --quick    # 40 runs x 3 metrics x 300 steps

Runs are written straight into a throw-away repository (the format's own writer), then
each command runs in a fresh process, as a user would run it.  The report is opened in
headless Chromium (Debian's /usr/bin/chromium + chromedriver, through selenium) when it is
installed, to time how long its charts take to draw.  Prints one table; exits 0 whatever
the timings are, 1 only when a step could not run.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench User",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench User",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def make_runs(repo_dir: str, n: int, steps: int) -> None:
    from gitrun._git import Repo
    from gitrun.format import store
    from gitrun.format.entities import Metric, RunRecord

    rnd = random.Random(0)
    recs = []
    for i in range(n):
        lr = 10 ** rnd.uniform(-4, -1)
        depth = rnd.choice([2, 4, 8, 16, "None"])
        start = 1_700_000_000_000 + i * 60_000
        loss = [math.exp(-lr * 60 * s / steps) + rnd.random() * 0.02 for s in range(steps)]
        hist = {
            "loss": loss,
            "acc": [1 - v / 2 for v in loss],
            "lr_now": [lr * (1 - s / steps) for s in range(steps)],
            "f1": [0.5 + 0.5 * (1 - loss[-1]) + rnd.random() * 0.02],
        }
        history = {
            k: [Metric(k, v, start + j * 100, j) for j, v in enumerate(vals)]
            for k, vals in hist.items()
        }
        rec = RunRecord(
            run_id=f"{i:032x}"[::-1],
            run_name=f"trial-{i:03d}",
            experiment="sweep",
            status="FINISHED",
            start_time=start,
            end_time=start + steps * 100,
            updated_time=start + steps * 100,
            params={"lr": f"{lr:.4g}", "max_depth": str(depth), "opt": rnd.choice(["adam", "sgd"])},
            tags={"mlflow.runName": f"trial-{i:03d}"},
            history=history,
        )
        rec.metrics = rec.latest_metrics()
        recs.append(rec)
    repo = Repo.discover(repo_dir)
    trees = {r.run_id: store.write_run_tree(repo, r) for r in recs}
    old = repo.read_ref(store.RUNS_REF)
    root = store.put_run_dirs(repo, store.tip_tree(repo, old), trees)
    commit = repo.write_commit(root, [old] if old else [], f"bench: {n} runs\n")
    repo.update_ref(store.RUNS_REF, commit, old)


def timed(args: list[str], cwd: str, env: dict[str, str]) -> str:
    """Wall time and the CPU time of the process (and its git children): on a busy
    machine the CPU time is the steadier figure."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "gitrun", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"gitrun {' '.join(args)} failed: {p.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return f"{wall:.2f} s wall, {cpu:.2f} s CPU"


def render_seconds(path: str) -> float | None:
    if not (os.path.exists("/usr/bin/chromium") and shutil.which("/usr/bin/chromedriver")):
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1600"):
        options.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        t = time.perf_counter()
        driver.get("file://" + path)
        while time.perf_counter() - t < 120:
            state = driver.execute_script("return window.gitrunReport || null")
            if state and state["done"]:
                if state["errors"]:
                    raise RuntimeError(f"chart errors: {state['errors']}")
                return time.perf_counter() - t
            time.sleep(0.02)
        raise RuntimeError("the report's charts did not finish in 120 s")
    finally:
        driver.quit()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, steps = (40, 300) if args.quick else (200, 2000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    env.update(IDENTITY)
    rows: list[tuple[str, str]] = []
    failed = False
    with tempfile.TemporaryDirectory() as d:
        env["HOME"] = d
        os.environ.update(IDENTITY, HOME=d)
        subprocess.run(["git", "init", "-q", d], check=True, env=env)
        make_runs(d, n, steps)
        timed(["ls", "-q"], d, env)  # build the index once, as any first command would
        size = f"{n} runs x 4 metrics x {steps:,} steps"
        steps_ = [
            (f"plot metrics.loss (history, {size})", ["plot", "metrics.loss", "-o", "l.png"]),
            (
                "plot --parallel (4 axes) .png",
                [
                    "plot",
                    "--parallel",
                    "params.lr",
                    "params.max_depth",
                    "params.opt",
                    "metrics.f1",
                    "-o",
                    "p.png",
                ],
            ),
            (
                "plot --x --y (scatter) .svg",
                ["plot", "--x", "params.lr", "--y", "metrics.f1", "-o", "s.svg"],
            ),
            ("report -o report.html", ["report", "-e", "sweep", "-o", "report.html", "-q"]),
        ]
        for label, cmd in steps_:
            try:
                rows.append((label, timed(cmd, d, env)))
            except Exception as e:  # noqa: BLE001 - reported, not raised
                rows.append((label, f"ERROR {e}"))
                failed = True
        report = os.path.join(d, "report.html")
        if os.path.exists(report):
            rows.append(("report size", f"{os.path.getsize(report) / 1e6:.2f} MB"))
            try:
                secs = render_seconds(report)
                shown = "skipped (no chromium)" if secs is None else f"{secs:.2f} s"
                rows.append(("report: charts drawn in headless Chromium", shown))
            except Exception as e:  # noqa: BLE001
                rows.append(("report: charts drawn in headless Chromium", f"ERROR {e}"))
                failed = True
    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)}  gitrun")
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
