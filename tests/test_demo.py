"""README command 1: `gitrun demo` tells the whole story and ends reproduced."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_demo_runs_the_whole_story(tmp_path):
    target = tmp_path / "demo"
    p = run_cli("demo", str(target), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout + p.stderr
    for step in (
        "gitrun record",
        "gitrun ls",
        "gitrun show",
        "gitrun search",
        "gitrun checkout",
        "gitrun rerun",
    ):
        assert f"$ {step}" in out
    assert "Reproduced:" in out
    assert (tmp_path / "demo-best" / "train.py").exists()  # the worktree of the best run
    rows = json.loads(run_cli("ls", "--format", "json", cwd=target).stdout)
    names = {r["run_name"] for r in rows}
    assert {"lr-0.01", "lr-0.1", "lr-0.5", "lr-0.3-long"} <= names
    assert any(n.endswith("-rerun") for n in names)
    assert all(r["status"] == "FINISHED" for r in rows)


def test_demo_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "x").write_text("mine")
    p = run_cli("demo", str(tmp_path))
    assert p.returncode != 0
    assert "not empty" in p.stderr
    assert (tmp_path / "x").read_text() == "mine"
