"""Benchmark `gitrun ui`'s server against the targets of issue 11.

    python bench/bench_ui.py                       # 10,000 runs; RSS with 100,000 runs
    python bench/bench_ui.py --rss-runs 30000      # RSS with fewer runs (extrapolated)
    python bench/bench_ui.py --rss-runs 0          # skip the RSS figure

Runs are generated straight into throw-away repositories (one run tree each, one
`put_run_dirs`, one commit): 5 params, 3 metrics with 10-step histories; 10 of the runs
have 3 metrics x 1,000 steps (the compare figure).  The server is the real thing:
`python -m gitrun ui --port 0 -q` in a child process, asked over HTTP on 127.0.0.1.

Figures:
  - runs/search, top 100 with a filter and an order: the HTTP round trip (median), and
    the handler alone in this process (rest.search_runs: the server-side time);
  - compare: metrics/get-history for 10 runs x 3 metrics x 1,000 steps, 30 requests in a
    row on one keep-alive connection, total (the first time: runs read from git; then
    the median, runs cached by the server);
  - first response of the table's data: from starting `gitrun ui` to the first answer of
    runs/search (100 runs, newest first), with the search index already built (as any
    gitrun command leaves it) and without it (the server builds it);
  - RSS of the server (VmRSS after serving the table, compare and experiments; VmHWM, the
    peak) with --rss-runs runs, the index built beforehand by `gitrun ls`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
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
FILTER = "metrics.f1 > 0.5 and params.model = 'rf'"
ORDER = "metrics.f1 DESC"
LONG_RUNS = 10
LONG_STEPS = 1000
METRICS = ("f1", "accuracy", "loss")


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    e.update(IDENTITY)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "gitrun-bench-pycache")
    return e


def generate(repo_dir: str, n: int, long_runs: int = LONG_RUNS) -> tuple[float, list[str]]:
    """n runs in one commit; the first `long_runs` have LONG_STEPS-step histories."""
    from gitrun._git import Repo
    from gitrun.format import store
    from gitrun.format.entities import Metric, RunRecord

    t0 = time.perf_counter()
    subprocess.run(["git", "init", "-q", repo_dir], check=True, env=env())
    repo = Repo.discover(repo_dir)
    rnd = random.Random(42)
    trees = {}
    long_ids = []
    base = 1_700_000_000_000
    for i in range(n):
        rid = f"{rnd.getrandbits(128):032x}"
        start = base + i * 1000
        steps = LONG_STEPS if i < long_runs else 10
        hist = {k: [Metric(k, rnd.random(), start + s, s) for s in range(steps)] for k in METRICS}
        rec = RunRecord(
            run_id=rid,
            run_name=f"run-{i}",
            experiment="sweep" if i % 2 else "Default",
            status="FINISHED",
            start_time=start,
            end_time=start + 500,
            updated_time=start + 500,
            params={
                "model": rnd.choice(["rf", "gb", "lr", "svm"]),
                "max_depth": str(rnd.randint(2, 20)),
                "lr": str(rnd.choice([0.001, 0.01, 0.1])),
                "n_estimators": str(rnd.choice([50, 100, 200])),
                "seed": str(i),
            },
            tags={"team": rnd.choice(["a", "b"])},
            history=hist,
        )
        rec.metrics = rec.latest_metrics()
        trees[rid] = store.write_run_tree(repo, rec)
        if i < long_runs:
            long_ids.append(rid)
    root = store.put_run_dirs(repo, None, trees)
    commit = repo.write_commit(root, [], f"bench: {n} runs\n")
    assert repo.update_ref(store.RUNS_REF, commit, None)
    subprocess.run(["git", "repack", "-adq"], cwd=repo_dir, check=True, env=env())
    return time.perf_counter() - t0, long_ids


class Server:
    """`gitrun ui --port 0 -q` in a child process."""

    def __init__(self, repo_dir: str) -> None:
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gitrun", "ui", "--port", "0", "-q"],
            cwd=repo_dir,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(self.url + self.proc.stderr.read())  # type: ignore[union-attr]
        # One keep-alive connection, as a browser keeps one.
        host, port = self.url[len("http://") :].rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def _ask(self, method: str, path: str, body: bytes | None = None) -> dict:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data)

    def post(self, path: str, body: dict) -> dict:
        return self._ask("POST", path, json.dumps(body).encode())

    def get(self, path: str) -> dict:
        return self._ask("GET", path)

    def rss_mb(self) -> tuple[float, float]:
        vals = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    vals[line.split(":")[0]] = int(line.split()[1]) / 1024
        return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))

    def stop(self) -> None:
        self.conn.close()
        self.proc.send_signal(2)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


TABLE = {"experiment_ids": [], "max_results": 100, "order_by": []}
SEARCH = {"experiment_ids": [], "filter": FILTER, "order_by": [ORDER], "max_results": 100}


def first_response(repo_dir: str, n: int) -> float:
    """From starting the server process to the first answer of the table's data."""
    s = Server(repo_dir)
    try:
        out = s.post("/api/2.0/mlflow/runs/search", TABLE)
        dt = time.perf_counter() - s.t0
        assert len(out["runs"]) == min(100, n)
        return dt
    finally:
        s.stop()


def bench_server(repo_dir: str, n: int, long_ids: list[str], reps: int) -> dict[str, float]:
    out: dict[str, float] = {}
    index = os.path.join(repo_dir, ".git", "gitrun", "index.sqlite")
    if os.path.exists(index):
        os.unlink(index)
    out["first, no index"] = first_response(repo_dir, n)
    out["first, index built"] = statistics.median(first_response(repo_dir, n) for _ in range(3))
    s = Server(repo_dir)
    try:
        s.post("/api/2.0/mlflow/runs/search", SEARCH)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            res = s.post("/api/2.0/mlflow/runs/search", SEARCH)
            times.append(time.perf_counter() - t0)
        assert 0 < len(res["runs"]) <= 100
        f1 = [
            next(m["value"] for m in r["data"]["metrics"] if m["key"] == "f1") for r in res["runs"]
        ]
        assert f1 == sorted(f1, reverse=True) and min(f1) > 0.5
        out["search http"] = statistics.median(times)
        times = []
        for _ in range(max(3, reps // 3)):
            t0 = time.perf_counter()
            points = 0
            for rid in long_ids:
                for key in METRICS:
                    h = s.get(f"/api/2.0/mlflow/metrics/get-history?run_id={rid}&metric_key={key}")
                    points += len(h["metrics"])
            times.append(time.perf_counter() - t0)
            assert points == len(long_ids) * len(METRICS) * LONG_STEPS, points
        out["compare"] = statistics.median(times)
        out["compare cold"] = times[0]
    finally:
        s.stop()
    # The handler alone, in this process: the server-side time of runs/search.
    from gitrun._git import Repo
    from gitrun.ui import rest

    repo = Repo.discover(repo_dir)
    rest.search_runs(repo, dict(SEARCH))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        rest.search_runs(repo, dict(SEARCH))
        times.append(time.perf_counter() - t0)
    out["search handler"] = statistics.median(times)
    return out


def bench_rss(repo_dir: str, long_ids: list[str]) -> tuple[float, float, float]:
    subprocess.run(
        [sys.executable, "-m", "gitrun", "ls", "-q"],
        cwd=repo_dir,
        env=env(),
        check=True,
        capture_output=True,
    )  # builds the index, as any gitrun command would have
    s = Server(repo_dir)
    try:
        s.post("/api/2.0/mlflow/runs/search", TABLE)
        s.post("/api/2.0/mlflow/runs/search", SEARCH)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            s.post("/api/2.0/mlflow/runs/search", SEARCH)
            times.append(time.perf_counter() - t0)
        s.post("/api/2.0/mlflow/runs/search", dict(TABLE, max_results=1000))
        s.get("/api/2.0/mlflow/experiments/search")
        for rid in long_ids:
            for key in METRICS:
                s.get(f"/api/2.0/mlflow/metrics/get-history?run_id={rid}&metric_key={key}")
        return (*s.rss_mb(), statistics.median(times))
    finally:
        s.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--rss-runs", type=int, default=100_000, help="0: skip the RSS figure")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--dir", help="where the throw-away repositories go (default: a temp dir)")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="bench-ui-", dir=args.dir)
    try:
        repo_dir = os.path.join(d, "repo")
        print(f"generating {args.runs} runs...", file=sys.stderr)
        gen, long_ids = generate(repo_dir, args.runs)
        print(f"  generated in {gen:.1f} s", file=sys.stderr)
        g = bench_server(repo_dir, args.runs, long_ids, args.reps)
        rss = None
        if args.rss_runs:
            shutil.rmtree(repo_dir)
            big = os.path.join(d, "big")
            print(f"generating {args.rss_runs} runs...", file=sys.stderr)
            gen, long_ids = generate(big, args.rss_runs)
            print(f"  generated in {gen:.1f} s", file=sys.stderr)
            rss = bench_rss(big, long_ids)
        n = args.runs
        rows = [
            (f"runs/search top 100 + filter, server-side ({n} runs)", g["search handler"], 0.1),
            (f"runs/search top 100 + filter, HTTP round trip ({n} runs)", g["search http"], 0.1),
            (
                f"compare: 10 runs x 3 metrics x {LONG_STEPS} steps, 30 get-history",
                g["compare"],
                0.5,
            ),
            ("compare, first time (runs read from git)", g["compare cold"], 0.5),
            (
                f"first table data from `gitrun ui` start, index built ({n})",
                g["first, index built"],
                None,
            ),
            (
                f"first table data from `gitrun ui` start, no index ({n})",
                g["first, no index"],
                None,
            ),
        ]
        print()
        print(f"{'figure':<66} {'gitrun':>9} {'target':>8}")
        for name, val, target in rows:
            t = f"{target:.2f}s" if target else "-"
            ok = "" if not target else ("ok" if val <= target else "OVER")
            print(f"{name:<66} {val:>8.3f}s {t:>8} {ok}")
        if rss is not None:
            label = f"server RSS after serving ({args.rss_runs} runs)"
            print(f"{label:<66} {rss[0]:>7.0f}MB {'300MB':>8} {'ok' if rss[0] <= 300 else 'OVER'}")
            label = f"server peak RSS, VmHWM ({args.rss_runs} runs)"
            print(f"{label:<66} {rss[1]:>7.0f}MB {'300MB':>8} {'ok' if rss[1] <= 300 else 'OVER'}")
            label = f"runs/search top 100 + filter, HTTP round trip ({args.rss_runs} runs)"
            print(f"{label:<66} {rss[2]:>8.3f}s {'-':>8}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
