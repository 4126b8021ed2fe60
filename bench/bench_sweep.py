"""Benchmark `gitrun sweep` against the targets of issue 15.

    python bench/bench_sweep.py            # 200 trials of `true` with -j 2, memory at 50/400
    python bench/bench_sweep.py --quick    # smoke run: small counts

Figures (printed as one table: figure, value, target, ok/over):
  - wall time of a 200-trial grid sweep of `true` with -j 2 (target: well under a minute);
  - overhead per trial beyond the command: wall x jobs / trials, minus the command's own
    time (target <= 150 ms);
  - for comparison, one `gitrun record -- true` started from a shell (what a bash loop of
    trials pays per trial, sequentially);
  - the driver's peak memory (VmHWM, sampled from /proc) for a small and a large sweep:
    flat when the two are about the same.
Everything runs in a throw-away repository under a temp dir with a fixed git identity.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench User",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench User",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    env.update(IDENTITY, HOME=home)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _repo(base: str, env: dict[str, str]) -> str:
    d = tempfile.mkdtemp(dir=base)
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "i"]):
        subprocess.run(["git", *args], cwd=d, env=env, check=True)
    with open(os.path.join(d, "train.py"), "w") as f:
        f.write("print('x')\n")
    subprocess.run(["git", "add", "."], cwd=d, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "code"], cwd=d, env=env, check=True)
    return d


def _sweep(repo: str, env: dict[str, str], n: int, jobs: int) -> tuple[float, int]:
    """(wall seconds, peak driver memory in kB) of a grid sweep of n trials of `true`."""
    cmd = [sys.executable, "-m", "gitrun", "sweep", "-q", "-p", f"i=1..{n}", "-j", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "--", "true"], cwd=repo, env=env, stdout=subprocess.DEVNULL)
    peak = [0]

    def sample() -> None:
        path = f"/proc/{proc.pid}/status"
        while proc.poll() is None:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                break
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    t.join()
    if rc != 0:
        raise SystemExit(f"gitrun sweep exited {rc}")
    return wall, peak[0]


def _command_time(n: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(["true"])
    return (time.perf_counter() - t0) / n


def _record_time(repo: str, env: dict[str, str], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(
            [sys.executable, "-m", "gitrun", "record", "-q", "--", "true"], cwd=repo, env=env
        )
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dir", help="where the temp repositories go (default: the temp dir)")
    a = ap.parse_args()
    n = 20 if a.quick else a.trials
    small, large = (10, 40) if a.quick else (50, 400)
    base = tempfile.mkdtemp(prefix="gitrun-bench-sweep-", dir=a.dir)
    try:
        home = os.path.join(base, "home")
        os.makedirs(home)
        env = _env(home)
        repo = _repo(base, env)
        cmd_t = _command_time()
        wall, _ = _sweep(repo, env, n, a.jobs)
        per = wall * a.jobs / n - cmd_t
        rec = _record_time(repo, env, 5 if a.quick else 20)
        _, mem_small = _sweep(repo, env, small, a.jobs)
        _, mem_large = _sweep(repo, env, large, a.jobs)
        rows = [
            (f"sweep of {n} x `true`, -j {a.jobs}: wall", f"{wall:.1f} s", "< 60 s", wall < 60),
            (
                "overhead per trial beyond the command",
                f"{per * 1000:.0f} ms",
                "<= 150 ms",
                per <= 0.150,
            ),
            ("trials per second", f"{n / wall:.1f}", "", True),
            ("`gitrun record -- true` from a shell, each", f"{rec * 1000:.0f} ms", "", True),
            (f"driver peak memory, {small} trials", f"{mem_small / 1024:.1f} MB", "", True),
            (
                f"driver peak memory, {large} trials",
                f"{mem_large / 1024:.1f} MB",
                "flat",
                mem_large <= mem_small * 1.15 + 2048,
            ),
        ]
        w = max(len(r[0]) for r in rows)
        print(f"{'figure':<{w}}  {'value':>10}  {'target':>9}  ok/over")
        for name, value, target, ok in rows:
            print(f"{name:<{w}}  {value:>10}  {target:>9}  {'ok' if ok else 'over'}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
