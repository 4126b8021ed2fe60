"""Benchmark gitrun's core against the targets of issue 2 (and MLflow, when installed).

    python bench/bench_core.py            # full run (~1 min with MLflow)
    python bench/bench_core.py --quick    # smoke run: small counts, no MLflow

Every figure is measured in throw-away git repositories under a temp dir, with a fixed
git identity and HOME pointed at an empty temp dir, so no user configuration leaks in.
The script prints one table: figure, gitrun, target, MLflow, ok/over.  It exits 0 whatever
the timings are (a benchmark reports, it does not fail); it exits 1 only when a section
could not run at all (an exception), so that a smoke test notices when it rots.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench User",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench User",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}
# Variables that would change what gitrun or MLflow does (attach to a run, another repo...).
_DROP_PREFIXES = ("GITRUN_", "MLFLOW_")
_DROP = (
    "GIT_DIR",
    "GIT_INDEX_FILE",
    "GIT_WORK_TREE",
    "GIT_PREFIX",
    "GIT_COMMON_DIR",
    "XDG_CONFIG_HOME",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONPYCACHEPREFIX",
)
HEAVY_MODULES = ("pandas", "git", "yaml", "sklearn", "numpy", "click")
FORBIDDEN_ON_IMPORT = ("pandas", "git", "yaml", "sklearn")

N_PARAMS, N_METRICS = 5, 3
CALLER_NO_BYTECODE = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))


@dataclass
class Sizes:
    points: int
    runs: int
    warmup: int
    record_reps: int
    import_reps: int
    mlflow: bool
    mlflow_points: int
    mlflow_runs: int
    mlflow_import_reps: int


FULL = Sizes(200_000, 200, 5, 20, 10, True, 2_000, 30, 5)
QUICK = Sizes(20_000, 30, 3, 5, 3, False, 0, 0, 0)


# ---------------------------------------------------------------------------
# environment and repositories
# ---------------------------------------------------------------------------
def clean_env(home: str) -> dict[str, str]:
    """The environment of every process the benchmark starts.

    Python processes get a bytecode cache (under the bench's temp dir, so nothing is
    written into the source tree), as an installed package has; a first untimed run of
    each measured command fills it.  PYTHONDONTWRITEBYTECODE from the caller is dropped
    (the import figures show its cost separately).
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES) and k not in _DROP
    }
    env.update(IDENTITY)
    env["HOME"] = home
    env["PYTHONPYCACHEPREFIX"] = os.path.join(os.path.dirname(home), "pycache")
    return env


def isolate(home: str) -> None:
    """Make this process's environment the clean one (for in-process figures)."""
    env = clean_env(home)
    for k in list(os.environ):
        if k not in env:
            del os.environ[k]
    os.environ.update(env)


def _git(cwd: str, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(path: str) -> str:
    """A small clean repository: one commit, clean work tree."""
    os.makedirs(path)
    _git(path, "init", "-q", "-b", "main")
    with open(os.path.join(path, "train.py"), "w") as f:
        f.write("print('training')\n")
    with open(os.path.join(path, ".gitignore"), "w") as f:
        f.write("*.log\nmlruns/\n*.db\n")
    _git(path, "add", ".")
    _git(path, "commit", "-qm", "initial")
    return path


# ---------------------------------------------------------------------------
# counting git processes spawned in-process
# ---------------------------------------------------------------------------
class GitSpawnCounter:
    """Counts subprocess.Popen calls whose argv[0] is git (subprocess.run goes through it)."""

    def __init__(self) -> None:
        self.count = 0
        self.commands: list[str] = []
        self._orig: Any = None

    def __enter__(self) -> GitSpawnCounter:
        self._orig = orig = subprocess.Popen.__init__
        counter = self

        def init(popen: Any, args: Any, *a: Any, **kw: Any) -> None:
            argv = [args] if isinstance(args, (str, bytes)) else list(args)
            if argv and os.path.basename(str(argv[0])) == "git":
                counter.count += 1
                counter.commands.append(" ".join(str(x) for x in argv[1:3]))
            orig(popen, args, *a, **kw)

        subprocess.Popen.__init__ = init  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        subprocess.Popen.__init__ = self._orig  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    gitrun: str
    target: str = ""
    mlflow: str = ""
    verdict: str = ""


def verdict(value: float, limit: float, higher_is_better: bool) -> str:
    good = value >= limit if higher_is_better else value <= limit
    return "ok" if good else "over"


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}/s"


def fmt_ms(x: float) -> str:
    return f"{x:.2f} ms" if x < 10 else f"{x:.0f} ms" if x >= 100 else f"{x:.1f} ms"


def print_table(rows: list[Row], mlflow_note: str) -> None:
    header = Row("figure", "gitrun", "target", "MLflow", "ok/over")
    cols = ["figure", "gitrun", "target", "mlflow", "verdict"]
    cells = []
    for r in [header, *rows]:
        c = [getattr(r, k) for k in cols]
        if r is not header and not c[3] and mlflow_note:
            c[3] = mlflow_note
        cells.append(c)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    right = {1, 2, 3}

    def line(c: list[str]) -> str:
        parts = [
            c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i]) for i in range(len(cols))
        ]
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for c in cells[1:]:
        print(line(c))


# ---------------------------------------------------------------------------
# 1. log_metric throughput (in-process)
# ---------------------------------------------------------------------------
def bench_log_metric(base: str, n: int) -> list[Row]:
    import gitrun

    repo = make_repo(os.path.join(base, "metric-repo"))
    os.chdir(repo)
    run = gitrun.start_run(run_name="metric-throughput")
    run_id = run.info.run_id
    log_metric = gitrun.log_metric
    t0 = time.perf_counter()
    for i in range(n):
        log_metric("loss", 1.0 / (i + 1), step=i)
    elapsed = time.perf_counter() - t0
    # Every point must be in the journal (the OS) before the call returned: count them
    # now, with the run still live and nothing flushed by end_run.
    journal = os.path.join(repo, ".git", "gitrun", "live", run_id, "journal")
    with open(journal, "rb") as f:
        in_journal = sum(1 for line in f if line.startswith(b"m\t"))
    t1 = time.perf_counter()
    gitrun.end_run()
    end_ms = (time.perf_counter() - t1) * 1000
    rate = n / elapsed
    return [
        Row(
            f"log_metric, {n:,} points, in-process",
            fmt_rate(rate),
            ">= 100,000/s",
            verdict=verdict(rate, 100_000, True),
        ),
        Row(
            "  points in the live journal before end_run",
            f"{in_journal:,}/{n:,}",
            f"{n:,}",
            verdict="ok" if in_journal == n else "LOST",
        ),
        Row(f"  end_run committing {n:,} points", fmt_ms(end_ms), "-"),
    ]


# ---------------------------------------------------------------------------
# 2. a run of 5 params + 3 metrics, start to committed (in-process)
# ---------------------------------------------------------------------------
def _one_run(gitrun: Any, i: int, phases: list[tuple[float, float, float]]) -> None:
    t0 = time.perf_counter()
    gitrun.start_run(run_name=f"run-{i}")
    t1 = time.perf_counter()
    for p in range(N_PARAMS):
        gitrun.log_param(f"param_{p}", p * 10 + i % 7)
    for m in range(N_METRICS):
        gitrun.log_metric(f"metric_{m}", 0.5 + m / 10 + i / 1e4)
    t2 = time.perf_counter()
    gitrun.end_run()
    t3 = time.perf_counter()
    phases.append((t1 - t0, t2 - t1, t3 - t2))


def bench_runs(base: str, n: int, warmup: int) -> list[Row]:
    import gitrun

    repo = make_repo(os.path.join(base, "runs-repo"))
    os.chdir(repo)
    scratch: list[tuple[float, float, float]] = []
    for i in range(warmup):
        _one_run(gitrun, -1 - i, scratch)
    phases: list[tuple[float, float, float]] = []
    with GitSpawnCounter() as spawns:
        for i in range(n):
            _one_run(gitrun, i, phases)
    totals = [sum(p) * 1000 for p in phases]
    med, mean = statistics.median(totals), statistics.fmean(totals)
    per_run = spawns.count / n
    kinds = sorted(set(spawns.commands))
    return [
        Row(
            f"run 5 params + 3 metrics, median of {n}",
            fmt_ms(med),
            "<= 5 ms",
            verdict=verdict(med, 5, False),
        ),
        Row(
            f"run 5 params + 3 metrics, mean of {n}",
            fmt_ms(mean),
            "<= 5 ms",
            verdict=verdict(mean, 5, False),
        ),
        Row("  start_run, median", fmt_ms(statistics.median(p[0] * 1000 for p in phases)), "-"),
        Row(
            "  5 log_param + 3 log_metric, median",
            fmt_ms(statistics.median(p[1] * 1000 for p in phases)),
            "-",
        ),
        Row(
            "  end_run (commit), median",
            fmt_ms(statistics.median(p[2] * 1000 for p in phases)),
            "-",
        ),
        Row(
            "  git processes spawned per run",
            f"{per_run:g}" + (f" ({', '.join(kinds)})" if kinds else ""),
            "-",
        ),
    ]


# ---------------------------------------------------------------------------
# 3. `gitrun record -- true` against `true`
# ---------------------------------------------------------------------------
def _wall(argv: list[str], cwd: str, env: dict[str, str], reps: int) -> float:
    """Median wall time in ms of running argv (after one untimed warm-up run)."""
    times = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        p = subprocess.run(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        dt = (time.perf_counter() - t0) * 1000
        if p.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {p.returncode}: {p.stderr.decode(errors='replace')}"
            )
        if i:
            times.append(dt)
    return statistics.median(times)


def bench_record(base: str, home: str, reps: int) -> list[Row]:
    repo = make_repo(os.path.join(base, "record-repo"))
    env = clean_env(home)
    true = shutil.which("true") or "/bin/true"
    base_ms = _wall([true], repo, env, reps)
    rows = [Row(f"`true` alone, median of {reps}", fmt_ms(base_ms), "-")]
    script = shutil.which("gitrun", path=env.get("PATH"))
    own = os.path.join(os.path.dirname(sys.executable), "gitrun")
    variants = []
    if script:
        variants.append(("gitrun record -- true", [script]))
    else:
        rows.append(Row("gitrun console script", "not on PATH", "-"))
    if os.path.isfile(own) and (not script or os.path.realpath(own) != os.path.realpath(script)):
        # e.g. PATH's gitrun is a pyenv shim (a bash script that execs pyenv, ~100 ms).
        variants.append((f"{own} record -- true", [own]))
    variants.append(("python -m gitrun record -- true", [sys.executable, "-m", "gitrun"]))
    for label, prefix in variants:
        ms = _wall([*prefix, "record", "--", true], repo, env, reps)
        over = ms - base_ms
        rows.append(
            Row(
                f"{label}: overhead, median of {reps}",
                fmt_ms(over),
                "<= 150 ms",
                verdict=verdict(over, 150, False),
            )
        )
    # Where the overhead goes: interpreter start-up (site, .pth files) and CLI imports.
    py = _wall([sys.executable, "-c", "pass"], repo, env, reps) - base_ms
    rows.append(Row("  of which Python start-up (`python -c pass`)", fmt_ms(py), "-"))
    cli = _wall([sys.executable, "-m", "gitrun", "--version"], repo, env, reps) - base_ms
    rows.append(Row("  of which `python -m gitrun --version` (CLI start-up)", fmt_ms(cli), "-"))
    return rows


# ---------------------------------------------------------------------------
# 4. import time
# ---------------------------------------------------------------------------
_IMPORT_CHECK = r"""
import json, os, subprocess, sys
spawned = []
orig = subprocess.Popen.__init__
def init(self, args, *a, **kw):
    spawned.append(args if isinstance(args, str) else list(map(str, args)))
    orig(self, args, *a, **kw)
subprocess.Popen.__init__ = init
import {module}
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"heavy": heavy, "spawned": spawned, "modules": len(sys.modules)}}))
"""


def import_ms(module: str, env: dict[str, str], reps: int) -> float:
    """Median of `python -c "import module"` minus median of `python -c pass`, in ms."""

    def med(code: str) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    med("pass")  # warm the OS caches
    med(f"import {module}")
    return med(f"import {module}") - med("pass")


def importtime_ms(module: str, env: dict[str, str], cwd: str) -> float:
    """`python -X importtime -c "import module"`: the module's cumulative time, in ms."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == " " + module:  # top level, not nested
            return int(parts[1]) / 1000
    raise RuntimeError(f"no -X importtime line for {module}")


def bench_import(base: str, home: str, reps: int) -> list[Row]:
    env = clean_env(home)
    cwd = base  # not inside any repository
    # `import gitrun` loads the fluent API lazily, so also time what the first
    # gitrun.start_run / log_metric access loads (the gitrun.tracking module).
    ms = import_ms("gitrun", env, reps)
    total = importtime_ms("gitrun", env, cwd)
    api_ms = import_ms("gitrun.tracking", env, reps)
    api_total = importtime_ms("gitrun.tracking", env, cwd)
    check = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK.format(module="gitrun.tracking", heavy=HEAVY_MODULES)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(check.stdout.strip().splitlines()[-1])
    heavy = info["heavy"]
    forbidden = [m for m in heavy if m in FORBIDDEN_ON_IMPORT]
    extra = []
    if CALLER_NO_BYTECODE:
        # The caller's setting: an editable install then compiles gitrun on every start.
        cold = dict(env)
        del cold["PYTHONPYCACHEPREFIX"]
        cold["PYTHONDONTWRITEBYTECODE"] = "1"
        extra.append(
            Row(
                "  same with PYTHONDONTWRITEBYTECODE=1 (as set by the caller)",
                fmt_ms(import_ms("gitrun", cold, reps)),
                "-",
            )
        )
    return [
        Row(
            f"import gitrun, fresh process, median of {reps}",
            fmt_ms(ms),
            "<= 100 ms",
            verdict=verdict(ms, 100, False),
        ),
        *extra,
        Row(
            "import gitrun, -X importtime cumulative",
            fmt_ms(total),
            "<= 100 ms",
            verdict=verdict(total, 100, False),
        ),
        Row(
            f"import gitrun.tracking (the API's first use), fresh, median of {reps}",
            fmt_ms(api_ms),
            "<= 100 ms",
            verdict=verdict(api_ms, 100, False),
        ),
        Row(
            "import gitrun.tracking, -X importtime cumulative",
            fmt_ms(api_total),
            "<= 100 ms",
            verdict=verdict(api_total, 100, False),
        ),
        Row(
            "  pandas/git/yaml/sklearn imported by gitrun.tracking",
            ", ".join(forbidden) or "none",
            "none",
            verdict="ok" if not forbidden else "over",
        ),
        Row(
            "  other heavy modules (numpy, click)",
            ", ".join(m for m in heavy if m not in FORBIDDEN_ON_IMPORT) or "none",
            "-",
        ),
        Row(
            "  processes spawned by importing it",
            str(len(info["spawned"])),
            "0",
            verdict="ok" if not info["spawned"] else "over",
        ),
    ]


# ---------------------------------------------------------------------------
# 5. MLflow, side by side (in its own process, so neither library sees the other)
# ---------------------------------------------------------------------------
def mlflow_available(env: dict[str, str]) -> bool:
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u, sys; sys.exit(0 if u.find_spec('mlflow') else 1)",
        ],
        env=env,
    )
    return p.returncode == 0


def mlflow_worker(workdir: str, points: int, runs: int) -> None:
    """Runs in a child process; prints one JSON line of figures."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    import mlflow

    import_in_process = (time.perf_counter() - t0) * 1000
    os.chdir(workdir)
    mlflow.set_tracking_uri("sqlite:///" + os.path.join(workdir, "mlflow.db"))
    mlflow.set_experiment("bench")
    # Warm-up: the first run creates the database (schema migrations).
    for i in range(3):
        with mlflow.start_run(run_name=f"warmup-{i}"):
            mlflow.log_param("p", i)
            mlflow.log_metric("m", i)
    with mlflow.start_run(run_name="metric-throughput"):
        t0 = time.perf_counter()
        for i in range(points):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        elapsed = time.perf_counter() - t0
    totals = []
    for i in range(runs):
        t0 = time.perf_counter()
        mlflow.start_run(run_name=f"run-{i}")
        for p in range(N_PARAMS):
            mlflow.log_param(f"param_{p}", p * 10 + i % 7)
        for m in range(N_METRICS):
            mlflow.log_metric(f"metric_{m}", 0.5 + m / 10 + i / 1e4)
        mlflow.end_run()
        totals.append((time.perf_counter() - t0) * 1000)
    print(
        json.dumps(
            {
                "version": mlflow.__version__,
                "rate": points / elapsed,
                "run_median": statistics.median(totals),
                "run_mean": statistics.fmean(totals),
                "import_in_process": import_in_process,
            }
        )
    )


def bench_mlflow(base: str, home: str, sizes: Sizes) -> dict[str, Any]:
    env = clean_env(home)
    work = os.path.join(base, "mlflow-work")
    os.makedirs(work)
    p = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--mlflow-worker",
            work,
            str(sizes.mlflow_points),
            str(sizes.mlflow_runs),
        ],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if p.returncode != 0:
        raise RuntimeError(f"MLflow worker failed: {p.stderr.strip()[-2000:]}")
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    out["import_ms"] = import_ms("mlflow", env, sizes.mlflow_import_reps)
    out["importtime_ms"] = importtime_ms("mlflow", env, work)
    return out


def fill_mlflow(rows: list[Row], ml: dict[str, Any], sizes: Sizes) -> None:
    def put(prefix: str, text: str) -> None:
        for r in rows:
            if r.figure.startswith(prefix):
                r.mlflow = text
                return

    put("log_metric,", f"{fmt_rate(ml['rate'])} ({sizes.mlflow_points:,} pts)")
    put("run 5 params + 3 metrics, median", f"{fmt_ms(ml['run_median'])} (of {sizes.mlflow_runs})")
    put("run 5 params + 3 metrics, mean", f"{fmt_ms(ml['run_mean'])} (of {sizes.mlflow_runs})")
    put("import gitrun, fresh", f"{fmt_ms(ml['import_ms'])} (import mlflow)")
    put("import gitrun, -X", fmt_ms(ml["importtime_ms"]))


# ---------------------------------------------------------------------------
def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, no MLflow (smoke run)")
    ap.add_argument("--no-mlflow", action="store_true", help="skip the MLflow column")
    ap.add_argument("--dir", help="where to make the temp repositories (default: $TMPDIR)")
    ap.add_argument(
        "--mlflow-worker", nargs=3, metavar=("DIR", "POINTS", "RUNS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.mlflow_worker:
        d, pts, runs = args.mlflow_worker
        mlflow_worker(d, int(pts), int(runs))
        return 0

    sizes = QUICK if args.quick else FULL
    base = tempfile.mkdtemp(prefix="gitrun-bench-", dir=args.dir)
    load_before = _load()
    home = os.path.join(base, "home")
    os.makedirs(home)
    old_cwd = os.getcwd()
    isolate(home)
    rows: list[Row] = []
    errors = []
    sections: list[tuple[str, Callable[[], list[Row]]]] = [
        ("log_metric", lambda: bench_log_metric(base, sizes.points)),
        ("runs", lambda: bench_runs(base, sizes.runs, sizes.warmup)),
        ("record", lambda: bench_record(base, home, sizes.record_reps)),
        ("import", lambda: bench_import(base, home, sizes.import_reps)),
    ]
    try:
        for name, fn in sections:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                rows.extend(fn())
            except Exception as e:
                traceback.print_exc()
                errors.append(name)
                rows.append(
                    Row(f"{name}: ERROR", f"{type(e).__name__}: {e}"[:60], "-", verdict="error")
                )
            finally:
                os.chdir(old_cwd)
        mlflow_note = ""
        if args.quick or args.no_mlflow or not sizes.mlflow:
            mlflow_note = "skipped"
        elif not mlflow_available(clean_env(home)):
            mlflow_note = "mlflow not installed"
        else:
            print("bench: mlflow ...", file=sys.stderr, flush=True)
            try:
                ml = bench_mlflow(base, home, sizes)
                fill_mlflow(rows, ml, sizes)
                mlflow_note = "-"
                print(f"bench: MLflow {ml['version']}, sqlite store", file=sys.stderr)
            except Exception as e:
                traceback.print_exc()
                mlflow_note = f"error: {type(e).__name__}"
    finally:
        os.chdir(old_cwd)
        shutil.rmtree(base, ignore_errors=True)
    import platform

    print()
    print(
        f"gitrun core benchmark ({'quick' if args.quick else 'full'}): Python "
        f"{platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load_before} at start, {_load()} at end"
    )
    print(f"temp repositories in {os.path.dirname(base)}; Python processes use a bytecode cache;")
    print(f"console script: {shutil.which('gitrun') or 'not on PATH'}")
    print()
    print_table(rows, mlflow_note)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
