"""Screenshots of `gitrun ui` for docs/screenshots/, taken with Debian's headless Chromium.

    python bench/ui_screenshots.py                 # writes docs/screenshots/ui-*.png
    python bench/ui_screenshots.py --serve         # builds the demo repo and serves it
                                                   # until Ctrl-C (to look at it yourself)
    python bench/ui_screenshots.py --out DIR       # somewhere else

It builds a small demo repository in a temp dir (a fixed git identity, HOME pointed at
an empty dir): an image-classification experiment of a few runs with loss curves, code
that changes between them and an image artifact, one run recorded with `gitrun record`
(command, output log), and a sweep of 20 gradient-boosting runs; then serves it with
gitrun.ui.server.running() and screenshots the table, compare and run views at 1280x800.
Needs selenium and /usr/bin/chromium + /usr/bin/chromedriver (Debian's chromium and
chromium-driver packages).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IDENTITY = {
    "GIT_AUTHOR_NAME": "Kai Demo",
    "GIT_AUTHOR_EMAIL": "kai@example.com",
    "GIT_COMMITTER_NAME": "Kai Demo",
    "GIT_COMMITTER_EMAIL": "kai@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}

TRAIN_V1 = '''"""Train a small CNN on digits."""
import argparse

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--width", type=int, default=64)
    args = p.parse_args()
    model = build(width=args.width)
    fit(model, lr=args.lr, epochs=30)

def build(width):
    return [("conv", width), ("conv", width), ("dense", 10)]
'''

TRAIN_V2 = TRAIN_V1.replace(
    '    return [("conv", width), ("conv", width), ("dense", 10)]\n',
    '    layers = [("conv", width), ("conv", 2 * width), ("pool", 2)]\n'
    '    layers += [("dropout", 0.25), ("dense", 128), ("dense", 10)]\n'
    "    return layers\n",
).replace("epochs=30", "epochs=40, schedule='cosine'")

RECORDED = '''"""Train the final CNN (run under `gitrun record`)."""
import math, random, sys
import gitrun as mlflow

lr = float(sys.argv[sys.argv.index("--lr") + 1])
mlflow.log_params({"lr": lr, "width": 96, "optimizer": "adamw", "epochs": 40})
random.seed(7)
for epoch in range(40):
    loss = 2.3 * math.exp(-epoch / 7) + 0.06 + random.uniform(-0.02, 0.02)
    val = loss * 1.08 + 0.03 + random.uniform(-0.015, 0.015)
    acc = 1 - 0.9 * math.exp(-epoch / 6) - 0.015
    mlflow.log_metrics({"loss": loss, "val_loss": val, "accuracy": acc,
                        "val_accuracy": acc - 0.012}, step=epoch)
    print(f"epoch {epoch:2d}  loss {loss:.4f}  val_loss {val:.4f}  acc {acc:.4f}")
mlflow.log_artifact("confusion_matrix.png", "plots")
mlflow.log_dict({"classes": 10, "val_accuracy": round(acc - 0.012, 4)}, "summary.json")
print("saved plots/confusion_matrix.png")
'''


def _git(cwd: str, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def confusion_png(path: str, seed: int = 0) -> None:
    """A confusion-matrix heatmap (matplotlib), the image artifact of the demo runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = random.Random(seed)
    m = [[0] * 10 for _ in range(10)]
    for i in range(10):
        for j in range(10):
            m[i][j] = rng.randint(85, 99) if i == j else max(0, rng.randint(-6, 4))
    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=100)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (val)")
    for i in range(10):
        for j in range(10):
            if m[i][j]:
                color = "white" if m[i][j] > 50 else "#333"
                ax.text(j, i, m[i][j], ha="center", va="center", fontsize=6, color=color)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_demo(root: str) -> dict[str, str]:
    """The demo repository under root/demo; returns {name: run id} of the notable runs."""
    repo = os.path.join(root, "demo")
    os.makedirs(repo)
    _git(repo, "init", "-q", "-b", "main")
    with open(os.path.join(repo, "train.py"), "w") as f:
        f.write(TRAIN_V1)
    with open(os.path.join(repo, ".gitignore"), "w") as f:
        f.write("*.png\n__pycache__/\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "Small CNN baseline")
    old = os.getcwd()
    os.chdir(repo)
    try:
        return _log_runs(repo)
    finally:
        os.chdir(old)


def _curve(n: int, start: float, floor: float, tau: float, noise: float, rng: random.Random):
    return [start * math.exp(-i / tau) + floor + rng.uniform(-noise, noise) for i in range(n)]


def _log_runs(repo: str) -> dict[str, str]:
    import gitrun

    client = gitrun.MlflowClient()
    rng = random.Random(42)
    ids: dict[str, str] = {}
    now = int(time.time() * 1000)
    t = now - 3 * 86400_000
    confusion_png(os.path.join(repo, "confusion_matrix.png"))

    def cnn(name: str, lr: float, width: int, epochs: int, tau: float, floor: float) -> str:
        nonlocal t
        run = client.create_run("mnist-cnn", run_name=name, start_time=t)
        rid = run.info.run_id
        for k, v in {"lr": lr, "width": width, "optimizer": "adamw", "epochs": epochs}.items():
            client.log_param(rid, k, v)
        client.set_tag(rid, "dataset", "mnist-v2")
        loss = _curve(epochs, 2.3, floor, tau, 0.02, rng)
        for i, v in enumerate(loss):
            ts = t + (i + 1) * 41_000
            client.log_metric(rid, "loss", v, ts, i)
            client.log_metric(rid, "val_loss", v * 1.1 + 0.04, ts, i)
            client.log_metric(rid, "accuracy", 1 - 0.4 * v, ts, i)
        client.log_artifact(rid, os.path.join(repo, "confusion_matrix.png"), "plots")
        client.log_dict(rid, {"lr": lr, "width": width, "layers": 3}, "config.json")
        client.set_terminated(rid, "FINISHED", end_time=t + (epochs + 1) * 41_000)
        t += 3 * 3600_000
        return rid

    ids["baseline"] = cnn("baseline", 0.01, 64, 30, 9.0, 0.18)
    ids["wider"] = cnn("wider", 0.01, 128, 30, 8.0, 0.14)
    with open(os.path.join(repo, "train.py"), "w") as f:
        f.write(TRAIN_V2)  # not committed yet: the run's code is a snapshot (dirty)
    ids["deeper-dropout"] = cnn("deeper-dropout", 0.003, 96, 40, 7.0, 0.07)
    with open(os.path.join(repo, "train_final.py"), "w") as f:
        f.write(RECORDED)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "Deeper CNN with dropout and a cosine schedule")

    # One run recorded from the command line: command, exit status, output log.
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "gitrun", "record", "-q", "-e", "mnist-cnn", "-n", "cnn-final"]
    python = "python" if shutil.which("python") else sys.executable
    cmd += ["--", python, "train_final.py", "--lr", "0.003"]
    subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    from gitrun import query
    from gitrun._git import Repo

    r = Repo.discover(repo)
    ids["cnn-final"] = next(i for i, n in query.names(r).items() if n == "cnn-final")

    # A sweep of 20 gradient-boosting runs.
    t = now - 86400_000
    for i in range(20):
        depth = rng.choice([2, 3, 4, 6, 8, 10])
        lr = rng.choice([0.03, 0.1, 0.3])
        n_est = rng.choice([100, 200, 400])
        sub = rng.choice([0.6, 0.8, 1.0])
        quality = 0.93 - 0.004 * abs(depth - 6) - 0.05 * abs(math.log10(lr / 0.1)) ** 2
        quality += 0.0001 * n_est / 4 - 0.02 * abs(sub - 0.8) + rng.uniform(-0.008, 0.008)
        run = client.create_run("xgb-sweep", run_name=f"sweep-{i:02d}", start_time=t)
        rid = run.info.run_id
        for k, v in {"max_depth": depth, "learning_rate": lr, "n_estimators": n_est}.items():
            client.log_param(rid, k, v)
        client.log_param(rid, "subsample", sub)
        rounds = 30
        for s in range(rounds):
            ll = 0.69 * math.exp(-s * lr * 0.6) + (1 - quality) * 0.9 + rng.uniform(0, 0.004)
            client.log_metric(rid, "logloss", ll, t + s * 2000, s)
        client.log_metric(rid, "auc", min(0.999, quality + 0.04), t + rounds * 2000, rounds)
        client.log_metric(rid, "f1", quality - 0.05, t + rounds * 2000, rounds)
        client.set_terminated(rid, "FINISHED", end_time=t + rounds * 2000 + 500)
        ids.setdefault("sweep", rid)
        t += 20 * 60_000
    json.dumps(ids)
    return ids


def chrome(width: int = 1280, height: int = 800, user_data: str | None = None):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
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
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
        f"--user-data-dir={user_data or tempfile.mkdtemp(prefix='gitrun-chrome-')}",
    ):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait_ready(driver, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if driver.execute_script("return !!(window.gitrun && window.gitrun.ready)"):
            time.sleep(0.6)  # charts finish drawing
            return
        time.sleep(0.1)
    raise RuntimeError(f"the page {driver.current_url} did not finish loading")


def screenshots(base: str, ids: dict[str, str], out: str) -> list[str]:
    os.makedirs(out, exist_ok=True)
    d = chrome()
    try:
        d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
        )
        shots = []

        def shot(url: str, name: str, scroll_to: str | None = None) -> None:
            d.get(base + url)
            wait_ready(d)
            if scroll_to:
                d.execute_script(
                    "const e = document.querySelector(arguments[0]);"
                    "if (e) window.scrollTo(0, e.getBoundingClientRect().top + scrollY - 60);",
                    scroll_to,
                )
                time.sleep(0.3)
            path = os.path.join(out, name)
            d.save_screenshot(path)
            shots.append(path)

        q = {"experiment": "xgb-sweep", "filter": "metrics.auc > 0.95"}
        q["order_by"] = "metrics.auc DESC"
        d.get(base + "/?" + urllib.parse.urlencode(q))
        wait_ready(d)
        for box in d.find_elements("css selector", "#runs-table input.select")[:3]:
            box.click()  # three runs selected: the Compare button says so
        time.sleep(0.2)
        d.save_screenshot(os.path.join(out, "ui-table.png"))
        shots.append(os.path.join(out, "ui-table.png"))
        compare = ",".join([ids["baseline"][:8], ids["wider"][:8], ids["deeper-dropout"][:8]])
        shot(f"/compare?runs={compare}", "ui-compare.png")
        shot("/compare?experiment=xgb-sweep", "ui-sweep.png", "#compare-sweep")
        shot(f"/runs/{ids['cnn-final']}", "ui-run.png")
        return shots
    finally:
        d.quit()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshots"))
    ap.add_argument("--serve", action="store_true", help="serve the demo until Ctrl-C")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    tmp = tempfile.mkdtemp(prefix="gitrun-ui-demo-")
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    os.environ.update(IDENTITY, HOME=home)
    for k in list(os.environ):
        if k.startswith(("GITRUN_", "MLFLOW_")) or k in ("GIT_DIR", "GIT_WORK_TREE"):
            del os.environ[k]
    ids = build_demo(tmp)
    from gitrun.ui.server import running

    with running(os.path.join(tmp, "demo"), port=args.port) as base:
        if args.serve:
            print(f"serving the demo repository {tmp}/demo at {base} (Ctrl-C stops)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        for p in screenshots(base, ids, args.out):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
