"""The pages of `gitrun ui` timed in headless Chromium (issue 11's first-paint figures).

    python bench/bench_ui_page.py              # 10,000 runs
    python bench/bench_ui_page.py --runs 2000  # fewer

Runs are generated as bench/bench_ui.py does (one commit; 5 params, 3 metrics; 10 runs
with 3 metrics x 1,000 steps), the search index is built beforehand (as any gitrun command
leaves it), the app is served by gitrun.ui.server.running() and Debian's chromium loads:
  - the runs table (/): from navigation start to the first 100 rows in the page
    (performance mark "gitrun:table") and the browser's first contentful paint;
  - compare of the 10 long runs (/compare?runs=...): values table and the 3 overlaid
    history charts drawn (mark "gitrun:compare").
Each page is loaded --reps times (a fresh navigation each); the median is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import bench_ui
    from ui_screenshots import chrome

    tmp = tempfile.mkdtemp(prefix="gitrun-ui-page-")
    os.environ.update(bench_ui.IDENTITY, HOME=tmp)
    repo = os.path.join(tmp, "repo")
    took, long_ids = bench_ui.generate(repo, args.runs)
    print(f"generated {args.runs} runs in {took:.1f} s")
    from gitrun import query
    from gitrun._git import Repo

    query.names(Repo.discover(repo))  # builds the search index
    from gitrun.ui.server import running

    def timed(d, url: str, mark: str) -> tuple[float, float]:
        d.get(url)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            got = d.execute_script(
                "const m = performance.getEntriesByName(arguments[0])[0];"
                "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                "return m ? [m.startTime, p ? p.startTime : -1] : null",
                mark,
            )
            if got:
                return got[0], got[1]
            time.sleep(0.05)
        raise RuntimeError(f"{url} did not finish")

    with running(repo) as base:
        d = chrome()
        try:
            timed(d, base + "/", "gitrun:table")  # warm: the server's first index read
            table = [timed(d, base + "/", "gitrun:table") for _ in range(args.reps)]
            url = base + "/compare?runs=" + ",".join(long_ids)
            timed(d, url, "gitrun:compare")
            compare = [timed(d, url, "gitrun:compare")[0] for _ in range(args.reps)]
        finally:
            d.quit()
    rows = [
        (
            f"table, {args.runs:,} runs: first 100 rows in the page",
            statistics.median(t for t, _ in table),
            1000,
        ),
        ("table: first contentful paint", statistics.median(p for _, p in table), 1000),
        (
            f"compare {len(long_ids)} runs x 3 metrics x 1,000 steps: drawn",
            statistics.median(compare),
            None,
        ),
    ]
    print(f"{'figure':<62} {'ms':>8} {'target':>8}")
    for name, ms, target in rows:
        t = f"< {target}" if target else ""
        print(f"{name:<62} {ms:>8.0f} {t:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
