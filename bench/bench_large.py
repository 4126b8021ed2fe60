"""Benchmark large artifacts (issue 14): a 2 GB artifact logged and restored.

    python bench/bench_large.py               # 2 GB (needs ~9 GB free in the temp dir)
    python bench/bench_large.py --size 200MB  # quicker
    python bench/bench_large.py --dir /data   # another temp location

Figures, on the same file and with the page cache warm for every step:

* `cp FILE COPY && sha256sum FILE` — the reference: copying the bytes once and hashing
  them once;
* `gitrun record -a FILE -- true` — the artifact hashed and streamed into the Git LFS
  store (fsync'd, renamed), a pointer committed;
* `gitrun checkout RUN --artifacts-only DIR` — the object streamed out, verified against
  its sha256, renamed into place.

Peak RSS of each gitrun command (its whole process tree, `getrusage(RUSAGE_CHILDREN)` in
a fresh process) beside that of `gitrun record -- true` with no artifact (the baseline).
Targets: peak RSS above the baseline < 100 MB; throughput >= 70% of cp + sha256sum.
Exits 0 whatever the figures (a benchmark reports); 1 when it could not run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

MB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.perf_counter() - t
if p.returncode:
    sys.stderr.write(p.stderr.decode())
print(p.returncode, dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def parse_size(text: str) -> int:
    t = text.strip().upper().rstrip("B").rstrip("I")
    unit = {"K": 1024, "M": MB, "G": 1024 * MB}.get(t[-1:], 1)
    return int(float(t.rstrip("KMG")) * unit)


def env_for(home: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITRUN_", "MLFLOW_")) and k not in ("GIT_DIR", "GIT_WORK_TREE")
    }
    env.update(
        HOME=home,
        GIT_AUTHOR_NAME="Bench User",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench User",
        GIT_COMMITTER_EMAIL="bench@example.com",
        GIT_CONFIG_NOSYSTEM="1",
        PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def measure(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of `cmd` and its children."""
    p = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    rc, dt, kb = p.stdout.split()
    if rc != "0":
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
    return float(dt), int(kb)


def make_file(path: str, size: int) -> str:
    block = os.urandom(MB)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(0, size, MB):
            chunk = (i.to_bytes(8, "big") + block[8:])[: min(MB, size - i)]
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="2GB", help="artifact size (default 2GB)")
    ap.add_argument("--dir", default=None, help="where to put the temporary files")
    args = ap.parse_args()
    size = parse_size(args.size)
    base = args.dir or tempfile.gettempdir()
    need = 4 * size + 512 * MB  # the file, its cp copy, the LFS object, the restored copy
    free = shutil.disk_usage(base).free
    if free < need:
        print(f"bench_large: {base} has {free / MB:,.0f} MB free, {need / MB:,.0f} MB needed.")
        return 1
    tmp = tempfile.mkdtemp(prefix="gitrun-bench-large-", dir=base)
    try:
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        env = env_for(home)
        repo = os.path.join(tmp, "repo")
        os.makedirs(repo)
        for args_ in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "i"]):
            subprocess.run(["git", *args_], cwd=repo, env=env, check=True)
        with open(os.path.join(repo, ".gitignore"), "w") as f:
            f.write("*.bin\nout/\ncopy\n")
        print(f"bench_large: writing a {size / MB:,.0f} MB artifact in {tmp} ...", flush=True)
        digest = make_file(os.path.join(repo, "model.bin"), size)

        # Each timed step starts with no dirty pages left by the one before (os.sync, not
        # timed), so none pays for another's write-back; the file stays in the page cache.
        os.sync()
        t = time.perf_counter()
        subprocess.run(["cp", "model.bin", "copy"], cwd=repo, check=True)
        t_cp = time.perf_counter() - t
        t = time.perf_counter()
        out = subprocess.run(["sha256sum", "model.bin"], cwd=repo, check=True, capture_output=True)
        t_sum = time.perf_counter() - t
        assert out.stdout.split()[0].decode() == digest
        os.unlink(os.path.join(repo, "copy"))
        t_ref = t_cp + t_sum
        os.sync()

        gitrun = [sys.executable, "-m", "gitrun"]
        _t0, rss0 = measure([*gitrun, "record", "-q", "--", "true"], repo, env)
        os.sync()
        t_log, rss_log = measure(
            [*gitrun, "record", "-q", "-a", "model.bin", "--", "true"], repo, env
        )
        listing = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", "refs/gitrun/runs"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        ).stdout
        run_id = next(
            p.split("/")[2] for p in listing.splitlines() if p.endswith("/artifacts/model.bin")
        )
        os.sync()
        t_get, rss_get = measure(
            [*gitrun, "checkout", run_id[:8], "--artifacts-only", os.path.join(repo, "out")],
            repo,
            env,
        )
        restored = os.path.join(repo, "out", "model.bin")
        ok_bytes = os.path.getsize(restored) == size
        h = hashlib.sha256()
        with open(restored, "rb") as f:
            while chunk := f.read(MB):
                h.update(chunk)
        ok_bytes = ok_bytes and h.hexdigest() == digest

        mbps = lambda secs: size / MB / secs  # noqa: E731
        over = lambda kb: f"+{kb / 1024:.1f} MB {'ok' if kb < 100 * 1024 else 'OVER'}"  # noqa: E731
        rows = [
            ("cp + sha256sum (reference)", f"{t_ref:6.2f} s  {mbps(t_ref):7.0f} MB/s", "", ""),
            (
                "  of which cp / sha256sum",
                f"{t_cp:6.2f} s / {t_sum:.2f} s",
                "",
                "",
            ),
            (
                "gitrun record -a (log)",
                f"{t_log:6.2f} s  {mbps(t_log):7.0f} MB/s",
                ">= 70% of reference",
                f"{t_ref / t_log:.0%} {'ok' if t_ref / t_log >= 0.7 else 'SLOW'}",
            ),
            (
                "gitrun checkout (restore)",
                f"{t_get:6.2f} s  {mbps(t_get):7.0f} MB/s",
                ">= 70% of reference",
                f"{t_ref / t_get:.0%} {'ok' if t_ref / t_get >= 0.7 else 'SLOW'}",
            ),
            ("peak RSS, record with no artifact", f"{rss0 / 1024:6.1f} MB", "(baseline)", ""),
            (
                "peak RSS, record -a",
                f"{rss_log / 1024:6.1f} MB",
                "< baseline + 100 MB",
                over(rss_log - rss0),
            ),
            (
                "peak RSS, checkout",
                f"{rss_get / 1024:6.1f} MB",
                "< baseline + 100 MB",
                over(rss_get - rss0),
            ),
            ("restored file verified", "yes" if ok_bytes else "NO", "", ""),
        ]
        print(f"\nLarge artifact benchmark: {size / MB:,.0f} MB, run {run_id[:8]}")
        w = max(len(r[0]) for r in rows)
        for name, value, target, verdict in rows:
            print(f"  {name.ljust(w)}  {value:<26} {target:<22} {verdict}")
        return 0 if ok_bytes else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
