"""Benchmark gitrun's query layer against the targets of issue 3 (and MLflow, when installed).

    python bench/bench_search.py                  # 10,000 runs
    python bench/bench_search.py --runs 100000    # the 100k figure (takes a few minutes)
    python bench/bench_search.py --mlflow-runs 0  # skip MLflow

Runs are generated straight into a throw-away repository (one run tree each, one
`put_run_dirs`, one commit): 5 params, 3 metrics with 10-step histories.  Fresh-process
figures run `python -m gitrun search ...` as a child process.  Prints one table.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
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


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    e.update(IDENTITY)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    # An installed package has compiled bytecode; without it every fresh process
    # recompiles gitrun (~80 ms), which is not what a user's `gitrun search` pays.
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "gitrun-bench-pycache")
    return e


def generate(repo_dir: str, n: int) -> float:
    from gitrun._git import Repo
    from gitrun.format import store
    from gitrun.format.entities import Metric, RunRecord

    t0 = time.perf_counter()
    subprocess.run(["git", "init", "-q", repo_dir], check=True, env=env())
    repo = Repo.discover(repo_dir)
    rnd = random.Random(42)
    trees = {}
    base = 1_700_000_000_000
    for i in range(n):
        rid = f"{rnd.getrandbits(128):032x}"
        start = base + i * 1000
        hist = {
            k: [Metric(k, rnd.random(), start + s, s) for s in range(10)]
            for k in ("f1", "accuracy", "loss")
        }
        rec = RunRecord(
            run_id=rid,
            run_name=f"run-{i}",
            experiment="Default",
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
            tags={"mlflow.runName": f"run-{i}", "team": rnd.choice(["a", "b"])},
            history=hist,
        )
        rec.metrics = rec.latest_metrics()
        trees[rid] = store.write_run_tree(repo, rec)
    root = store.put_run_dirs(repo, None, trees)
    commit = repo.write_commit(root, [], f"bench: {n} runs\n")
    assert repo.update_ref(store.RUNS_REF, commit, None)
    # What `git gc --auto` does to a repository with this many loose objects.
    subprocess.run(["git", "repack", "-adq"], cwd=repo_dir, check=True, env=env())
    return time.perf_counter() - t0


def fresh_search(repo_dir: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "gitrun",
        "search",
        FILTER,
        "--order-by",
        ORDER,
        "--max-results",
        "5",
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=repo_dir, env=env(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return dt


def max_rss_mb(repo_dir: str) -> float:
    code = (
        "import resource, subprocess, sys\n"
        f"subprocess.run([sys.executable, '-m', 'gitrun', 'search', {FILTER!r}, '--order-by',"
        f" {ORDER!r}, '--max-results', '5'], capture_output=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_dir, env=env(), capture_output=True, text=True
    )
    return int(p.stdout.strip()) / 1024


def index_file(repo_dir: str) -> str:
    return os.path.join(repo_dir, ".git", "gitrun", "index.sqlite")


def bench_gitrun(repo_dir: str, n: int, reps: int) -> dict[str, float]:
    out: dict[str, float] = {}
    cold = []
    for _ in range(2):
        if os.path.exists(index_file(repo_dir)):
            os.unlink(index_file(repo_dir))
        cold.append(fresh_search(repo_dir))
    out["no index"] = min(cold)
    out["warm"] = statistics.median(fresh_search(repo_dir) for _ in range(reps))
    out["rss"] = max_rss_mb(repo_dir)
    os.chdir(repo_dir)
    os.environ.update(IDENTITY)
    import gitrun

    gitrun.search_runs(max_results=n + 1)
    t0 = time.perf_counter()
    df = gitrun.search_runs(max_results=n + 1)
    out["dataframe"] = time.perf_counter() - t0
    assert len(df) == n, len(df)
    return out


def bench_mlflow(n: int) -> dict[str, float] | None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None
    d = tempfile.mkdtemp(prefix="bench-mlflow-")
    uri = f"sqlite:///{d}/mlflow.db"
    gen = f"""
import random, time, mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
mlflow.set_tracking_uri({uri!r})
c = MlflowClient()
exp = c.create_experiment("bench", artifact_location={d!r} + "/art")
rnd = random.Random(42)
for i in range({n}):
    r = c.create_run(exp, run_name=f"run-{{i}}")
    ts = int(time.time() * 1000)
    ms = [Metric(k, rnd.random(), ts + s, s) for k in ("f1", "accuracy", "loss") for s in range(10)]
    ps = [Param("model", rnd.choice(["rf", "gb", "lr", "svm"])), Param("max_depth", "3"),
          Param("lr", "0.1"), Param("n_estimators", "100"), Param("seed", str(i))]
    c.log_batch(r.info.run_id, metrics=ms, params=ps, tags=[RunTag("team", "a")])
    c.set_terminated(r.info.run_id)
"""
    e = env()
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", gen], env=e, capture_output=True, text=True)
    if p.returncode != 0:
        print("MLflow generation failed:", p.stderr[-500:], file=sys.stderr)
        return None
    print(f"  mlflow: generated {n} runs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    query = f"""
import time, mlflow
mlflow.set_tracking_uri({uri!r})
e = mlflow.get_experiment_by_name("bench").experiment_id
mlflow.search_runs([e], {FILTER!r}, order_by=[{ORDER!r}], max_results=5)
t0 = time.perf_counter()
df = mlflow.search_runs([e], max_results={n + 1})
print(time.perf_counter() - t0)
"""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", query], env=e, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if p.returncode != 0:
        print("MLflow query failed:", p.stderr[-500:], file=sys.stderr)
        return None
    df_time = float(p.stdout.strip().splitlines()[-1])
    return {"fresh": total - df_time, "dataframe": df_time}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument(
        "--mlflow-runs",
        type=int,
        default=300,
        help="runs for the MLflow comparison (0: skip); MLflow logs slowly",
    )
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="bench-search-")
    repo_dir = os.path.join(d, "repo")
    print(f"generating {args.runs} runs...", file=sys.stderr)
    gen = generate(repo_dir, args.runs)
    print(f"  gitrun: generated in {gen:.1f} s", file=sys.stderr)
    g = bench_gitrun(repo_dir, args.runs, args.reps)
    m = bench_mlflow(args.mlflow_runs) if args.mlflow_runs else None
    big = args.runs >= 100_000
    rows = [
        (
            f"fresh `gitrun search` top-5, warm index ({args.runs} runs)",
            g["warm"],
            0.5 if big else 0.15,
            m and m["fresh"],
        ),
        (
            f"fresh `gitrun search` top-5, no index ({args.runs} runs)",
            g["no index"],
            None if big else 3.0,
            None,
        ),
        (
            f"search_runs -> DataFrame, all runs, warm ({args.runs} runs)",
            g["dataframe"],
            None if big else 0.2,
            m and m["dataframe"],
        ),
    ]
    print()
    mcol = f"MLflow ({args.mlflow_runs} runs)" if m else "MLflow"
    print(f"{'figure':<62} {'gitrun':>9} {'target':>8} {mcol:>20}")
    for name, val, target, mv in rows:
        t = f"{target:.2f}s" if target else "-"
        mtxt = f"{mv:.3f}s" if mv else ("-" if m else "not installed" if m is None else "-")
        ok = "" if not target else ("ok" if val <= target else "OVER")
        print(f"{name:<62} {val:>8.3f}s {t:>8} {mtxt:>20} {ok}")
    rss_target = 300 if big else None
    print(
        f"{'max RSS of the fresh search process':<62} {g['rss']:>7.0f}MB "
        f"{(str(rss_target) + 'MB') if rss_target else '-':>8}"
    )
    print(
        f"\n(resource usage: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        "in this process)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
