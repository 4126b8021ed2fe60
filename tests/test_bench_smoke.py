"""The benchmark script keeps working (its timings are not asserted: they are reported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_core.py"


def test_bench_core_quick_runs_and_prints_the_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    p = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    header = next((line for line in lines if line.startswith("figure")), None)
    assert header is not None, p.stdout
    assert header.split() == ["figure", "gitrun", "target", "MLflow", "ok/over"]
    for figure in ("log_metric", "run 5 params + 3 metrics", "record -- true", "import gitrun"):
        assert any(figure in line for line in lines), (figure, p.stdout)
    assert "ERROR" not in p.stdout
    assert list(tmp_path.iterdir()) == []  # the temp repositories are removed
