"""Bad input, as a hostile new user types it: one sentence, the right exit code, nothing
changed.

Each CLI case is a row run through the real `gitrun` command in a repository shared by the
module (runs recorded once through the API).  Every row asserts the exit code (1, or 2 for
usage), that stderr is one line (or click's Usage block for exit 2) without "Traceback" or
"internal error", that the line says what the row expects, and that the repository is
exactly as before: HEAD, branches, index, stash, work tree, refs/gitrun/runs, and no run
left in .git/gitrun/live.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

import gitrun
from gitrun.errors import AmbiguousRunError, FilterError, GitrunError, InvalidInputError
from tests.conftest import IDENTITY, git, run_cli, snapshot_state


# ---------------------------------------------------------------------------
# the shared repository
# ---------------------------------------------------------------------------
@dataclass
class World:
    repo: Path
    tmp: Path
    ids: dict[str, str]


RECORD_RUNS = """
import json, gitrun
with gitrun.start_run(run_name="alpha", experiment_id="churn") as a:
    gitrun.log_param("depth", 3)
    gitrun.log_metric("acc", 0.9)
    gitrun.set_tag("team", "nlp")
with gitrun.start_run(run_name="beta", experiment_id="fraud") as b:
    gitrun.log_metric("acc", 0.8)
# A run named like the start of alpha's id: resolving that text is ambiguous.
with gitrun.start_run(run_name=a.info.run_id[:6], experiment_id="churn") as c:
    pass
print(json.dumps({"alpha": a.info.run_id, "beta": b.info.run_id, "shadow": c.info.run_id}))
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    d = tmp / "repo"
    d.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITRUN_", "MLFLOW_")) and k not in ("GIT_DIR", "GIT_WORK_TREE")
    }
    env.update(IDENTITY)
    env["HOME"] = str(tmp)
    git(d, "init", "-q", "-b", "main", env=env)
    (d / "train.py").write_text("print('training')\n")
    git(d, "add", ".", env=env)
    git(d, "commit", "-qm", "initial", env=env)
    p = subprocess.run(
        [sys.executable, "-c", RECORD_RUNS], cwd=d, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    ids = json.loads(p.stdout)
    # Warm the search index, so that no row sees a first-use notice.
    assert (
        subprocess.run(
            [sys.executable, "-m", "gitrun", "ls", "-q"], cwd=d, env=env, capture_output=True
        ).returncode
        == 0
    )
    return World(repo=d, tmp=tmp, ids=ids)


def repo_state(d: Path) -> dict[str, Any]:
    state = snapshot_state(d)
    state["runs_ref"] = git(d, "rev-parse", "-q", "--verify", "refs/gitrun/runs", check=False)
    live = d / ".git" / "gitrun" / "live"
    state["live"] = sorted(os.listdir(live)) if live.is_dir() else []
    return state


def assert_one_sentence(p: subprocess.CompletedProcess[str], code: int, fragment: str) -> str:
    """The exit code, and stderr as one line (or click's Usage block) containing `fragment`."""
    err = p.stderr
    assert p.returncode == code, f"exit {p.returncode}, stderr: {err}"
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.rstrip("\n").splitlines()
    if code == 2 and lines and lines[0].startswith("Usage:"):
        assert len(lines) == 4, err
        assert lines[1].startswith("Try ") and not lines[2].strip(), err
        message = lines[3]
    else:
        assert len(lines) == 1, f"expected one line on stderr, got: {err}"
        message = lines[0]
    assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
Argv = Callable[[World], list[str]]


@dataclass
class Case:
    id: str
    argv: list[str] | Argv
    code: int
    fragment: str | Callable[[World], str]
    files: dict[str, str | bytes] = field(default_factory=dict)  # written before, removed after
    remotes: dict[str, str] = field(default_factory=dict)  # added before, removed after
    max_seconds: float = 30.0


DEEP = "(" * 5000 + "metrics.acc > 1" + ")" * 5000
MANY_OR = " or ".join(f"metrics.acc > {i}" for i in range(1000))
MANY_NOT = "not " * 5000 + "metrics.acc > 1"
LONG_IN = "params.depth IN (" + ", ".join(f"'{i}'" for i in range(2000)) + ")"

CASES = [
    # -- a mistyped option of ours is not run as the command ------------------
    Case("record-typo-option", ["record", "--autlog", "--", "true"], 2, "Did you mean --autolog?"),
    Case(
        "sweep-typo-option",
        ["sweep", "--randm", "3", "-p", "x=1", "--", "true"],
        2,
        "Did you mean --random?",
    ),
    Case(
        "bisect-typo-option",
        ["bisect", "--good", "HEAD", "--bad", "HEAD", "--metric", "metrics.x > 1", "--resue"],
        2,
        "Did you mean --reuse?",
    ),
    # -- filters and limits ----------------------------------------------------
    Case("filter-nested-5000", ["search", DEEP], 1, "nested more than 20 deep"),
    Case("filter-1000-or-terms", ["search", MANY_OR], 1, "more than 500 comparisons"),
    Case("filter-5000-nots", ["search", MANY_NOT], 1, "nested more than 20 deep"),
    Case("filter-2000-in-values", ["search", LONG_IN], 1, "more than 1000 values"),
    Case("filter-unfinished", ["search", "metrics.acc >"], 1, "Invalid filter"),
    Case("filter-string-for-metric", ["search", "metrics.acc > 'x'"], 1, "expects a number"),
    Case("filter-odd-character", ["search", "params.depth ~ 3"], 1, "unexpected character"),
    Case("order-by-sideways", ["search", "--order-by", "metrics.acc SIDEWAYS"], 1, "order_by"),
    Case("order-by-empty", ["search", "--order-by", ""], 1, "order_by"),
    Case("search-max-results-huge", ["search", "--max-results", str(10**20)], 2, "--max-results"),
    Case("search-max-results-negative", ["search", "--max-results", "-1"], 2, "--max-results"),
    Case("search-max-results-text", ["search", "--max-results", "ten"], 2, "--max-results"),
    Case("search-max-results-missing", ["search", "--max-results"], 2, "--max-results"),
    Case("ls-n-negative", ["ls", "-n", "-5"], 2, "--max-results"),
    Case("ls-n-huge", ["ls", "-n", str(10**20)], 2, "--max-results"),
    Case("search-format-xml", ["search", "--format", "xml"], 2, "--format"),
    Case("search-view-bogus", ["search", "--view", "bogus"], 2, "--view"),
    Case("search-columns-unknown", ["search", "--columns", "foo"], 2, "Unknown column 'foo'"),
    Case("search-columns-empty-key", ["search", "--columns", "metrics."], 2, "Unknown column"),
    Case("search-columns-commas", ["search", "--columns", ","], 2, "--columns needs"),
    # -- experiments -------------------------------------------------------------
    Case(
        "search-unknown-experiment",
        ["search", "-e", "unknown"],
        1,
        "No experiment named 'unknown'; known experiments: churn, fraud.",
    ),
    Case(
        "ls-unknown-experiment",
        ["ls", "-e", "unknown"],
        1,
        "No experiment named 'unknown'; known experiments: churn, fraud.",
    ),
    Case("search-one-unknown-of-two", ["search", "-e", "churn", "-e", "nope"], 1, "'nope'"),
    Case("search-empty-experiment", ["search", "-e", ""], 2, "needs an experiment name"),
    Case("ls-empty-experiment", ["ls", "-e", ""], 2, "needs an experiment name"),
    # -- naming runs ---------------------------------------------------------------
    Case("show-nonexistent", ["show", "nonexistent"], 1, "No run matches 'nonexistent'"),
    Case("show-no-argument", ["show"], 2, "Missing argument"),
    Case("show-empty", ["show", ""], 1, "Invalid run ''"),
    Case("show-blank", ["show", "   "], 1, "Invalid run"),
    Case("show-short-prefix", ["show", "abc"], 1, "at least 4 characters"),
    Case(
        "show-name-like-another-ids-prefix",
        lambda w: ["show", w.ids["alpha"][:6]],
        1,
        lambda w: f"'{w.ids['alpha'][:6]}' is ambiguous",
    ),
    Case("show-format-xml", ["show", "alpha", "--format", "xml"], 2, "--format"),
    Case("diff-one-run", ["diff", "alpha"], 2, "Missing argument"),
    Case("diff-unknown-run", ["diff", "alpha", "nonexistent"], 1, "No run matches"),
    Case("diff-format-csv", ["diff", "alpha", "beta", "--format", "csv"], 2, "--format"),
    Case("checkout-no-argument", ["checkout"], 2, "Missing argument"),
    Case("checkout-unknown-run", ["checkout", "nonexistent"], 1, "No run matches"),
    Case("rerun-api-only-run", ["rerun", "alpha"], 1, "no command to rerun"),
    Case("rerun-unknown-run", ["rerun", "nonexistent"], 1, "No run matches"),
    Case("rerun-rtol-text", ["rerun", "alpha", "--rtol", "abc"], 2, "--rtol"),
    Case("unknown-command", ["frobnicate"], 2, "No such command"),
    # -- recording: refused before anything is written -------------------------------
    Case("record-no-command", ["record"], 2, "needs a command"),
    Case("record-name-newline", ["record", "-n", "a\nb", "--", "true"], 1, "Invalid run name"),
    Case("record-name-tab", ["record", "-n", "a\tb", "--", "true"], 1, "Invalid run name"),
    Case("record-name-escape", ["record", "-n", "x\x1b[31m", "--", "true"], 1, "Invalid run name"),
    Case(
        "record-experiment-newline",
        ["record", "-e", "a\nb", "--", "true"],
        1,
        "Invalid experiment name",
    ),
    Case("record-param-no-equals", ["record", "-p", "lr", "--", "true"], 2, "KEY=VALUE"),
    Case(
        "config-tags-not-a-map",
        ["record", "--", "true"],
        1,
        "'tags' must be a mapping",
        files={".gitrun.yaml": "tags: notamap\n"},
    ),
    Case(
        "config-artifacts-number",
        ["record", "--", "true"],
        1,
        "'artifacts' must be a list",
        files={".gitrun.yaml": "artifacts: 5\n"},
    ),
    Case(
        "config-experiment-list",
        ["record", "--", "true"],
        1,
        ".gitrun.yaml, 'experiment' must be a non-empty string",
        files={".gitrun.yaml": "experiment: [1]\n"},
    ),
    Case(
        "config-size-garbage",
        ["record", "--", "true"],
        1,
        "'max-untracked-size' must be a size",
        files={".gitrun.yaml": "max-untracked-size: lots\n"},
    ),
    Case(
        "config-auto-push-maybe",
        ["record", "--", "true"],
        1,
        "'auto-push' must be true or false",
        files={".gitrun.yaml": "auto-push: maybe\n"},
    ),
    Case(
        "config-name-newline",
        ["record", "--", "true"],
        1,
        "'name' must be a non-empty string on one line",
        files={".gitrun.yaml": 'name: "a\\nb"\n'},
    ),
    Case(
        "config-not-a-mapping",
        ["record", "--", "true"],
        1,
        "must be a mapping of settings",
        files={".gitrun.yaml": "- a\n- b\n"},
    ),
    Case(
        "config-invalid-yaml",
        ["record", "--", "true"],
        1,
        "is not valid YAML",
        files={".gitrun.yaml": "tags: {a: [\n"},
    ),
    Case(
        "config-binary",
        ["record", "--", "true"],
        1,
        "not UTF-8",
        files={".gitrun.yaml": b"\xff\xfe\x00garbage"},
    ),
    Case(
        "pyproject-tags-string",
        ["record", "--", "true"],
        1,
        "pyproject.toml [tool.gitrun], 'tags' must be a mapping",
        files={"pyproject.toml": '[tool.gitrun]\ntags = "x"\n'},
    ),
    # -- sharing ---------------------------------------------------------------------
    Case("push-no-remote", ["push"], 1, "no git remote"),
    Case("push-unknown-remote", ["push", "nosuch"], 1, "no git remote named 'nosuch'"),
    Case(
        "push-missing-path",
        ["push", "gone"],
        1,
        "points to /nonexistent/gitrun-remote.git, which does not exist",
        remotes={"gone": "/nonexistent/gitrun-remote.git"},
    ),
    Case(
        "pull-missing-path",
        ["pull", "gone"],
        1,
        "which does not exist",
        remotes={"gone": "/nonexistent/gitrun-remote.git"},
    ),
    Case(
        "remote-runs-missing-path",
        ["remote-runs", "gone"],
        1,
        "which does not exist",
        remotes={"gone": "/nonexistent/gitrun-remote.git"},
    ),
    Case("config-unknown-key", ["config", "bogus"], 2, "bogus"),
    Case("config-auto-push-maybe-cli", ["config", "auto-push", "maybe"], 1, "true or false"),
    # -- import-mlflow: never creates a store it was asked to read --------------------
    Case(
        "import-sqlite-typo",
        ["import-mlflow", "-u", "sqlite:///typo/mlflow.db"],
        1,
        "There is no MLflow database at",
    ),
    Case(
        "import-sqlite-memory",
        ["import-mlflow", "-u", "sqlite://"],
        1,
        "names no database file",
    ),
    Case(
        "import-garbage-database",
        lambda w: ["import-mlflow", "-u", f"sqlite:///{w.tmp}/garbage.db"],
        1,
        "is not an SQLite database",
    ),
    Case(
        "import-sqlite-not-mlflow",
        lambda w: ["import-mlflow", "-u", f"sqlite:///{w.tmp}/other.db"],
        1,
        "not an MLflow tracking store",
    ),
    Case("import-missing-mlruns", ["import-mlflow", "-u", "./mlruns"], 1, "does not exist"),
    Case(
        "import-dir-not-mlruns",
        lambda w: ["import-mlflow", "-u", str(w.tmp)],
        1,
        "is not an MLflow mlruns directory",
    ),
    Case("import-ftp", ["import-mlflow", "-u", "ftp://example.com/x"], 1, "Cannot import from"),
    Case(
        "import-closed-port",
        lambda w: ["import-mlflow", "-q", "-u", f"http://127.0.0.1:{closed_port()}"],
        1,
        "cannot be reached",
        max_seconds=15.0,
    ),
]


@pytest.fixture(scope="module")
def stores(world: World) -> None:
    """Files the import rows point at, outside the repository."""
    import sqlite3

    (world.tmp / "garbage.db").write_bytes(os.urandom(4096))
    conn = sqlite3.connect(world.tmp / "other.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world: World, stores: None) -> None:
    if (
        case.argv
        and not callable(case.argv)
        and case.argv[0] == "import-mlflow"
        or (callable(case.argv) and case.id.startswith("import"))
    ):
        # without MLflow, import-mlflow first says how to install it (tested elsewhere)
        pytest.importorskip("mlflow")
    d = world.repo
    for name, content in case.files.items():
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    for name, url in case.remotes.items():
        git(d, "remote", "add", name, url)
    try:
        argv = case.argv(world) if callable(case.argv) else case.argv
        fragment = case.fragment(world) if callable(case.fragment) else case.fragment
        before = repo_state(d)
        start = time.monotonic()
        p = run_cli(*argv, cwd=d)
        took = time.monotonic() - start
        after = repo_state(d)
    finally:
        for name in case.files:
            (d / name).unlink()
        for name in case.remotes:
            git(d, "remote", "remove", name)
    assert_one_sentence(p, case.code, fragment)
    assert after == before, "the repository changed"
    assert after["live"] == [], "a run was left in .git/gitrun/live"
    assert took < case.max_seconds, f"took {took:.1f} s"


def test_ambiguous_sentence_lists_both_runs(world: World) -> None:
    p = run_cli("show", world.ids["alpha"][:6], cwd=world.repo)
    message = assert_one_sentence(p, 1, "ambiguous")
    assert world.ids["alpha"] in message and world.ids["shadow"] in message
    assert "alpha" in message


def test_show_csv_is_key_value_rows(world: World) -> None:
    p = run_cli("show", "alpha", "--format", "csv", cwd=world.repo)
    assert p.returncode == 0, p.stderr
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows[0] == ["key", "value"]
    values = dict(rows[1:])
    assert values["run_id"] == world.ids["alpha"]
    assert values["run_name"] == "alpha" and values["experiment"] == "churn"
    assert values["params.depth"] == "3"
    assert float(values["metrics.acc"]) == 0.9
    assert values["tags.team"] == "nlp"
    assert values["status"] == "FINISHED"
    p = run_cli("show", "alpha", "--format", "markdown", cwd=world.repo)
    assert p.returncode == 0 and "| params.depth | 3 |" in p.stdout


def test_unknown_config_key_warns_and_the_command_runs(repo) -> None:
    (repo / ".gitrun.yaml").write_text("experimnt: churn\ntag: {a: 1}\n")
    p = run_cli("record", "-q", "--", "true", cwd=repo)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2, p.stderr
    assert "unknown key 'experimnt'" in lines[0] and "did you mean 'experiment'?" in lines[0]
    assert "did you mean 'tags'?" in lines[1]
    assert git(repo, "rev-parse", "-q", "--verify", "refs/gitrun/runs", check=False).strip()


def test_unknown_pyproject_key_names_the_section(repo) -> None:
    (repo / "pyproject.toml").write_text('[tool.gitrun]\nexperiment = "x"\nmetric-file = "m"\n')
    p = run_cli("record", "-q", "--", "true", cwd=repo)
    assert p.returncode == 0, p.stderr
    line = p.stderr.strip()
    assert "pyproject.toml [tool.gitrun]" in line and "did you mean 'metrics-file'?" in line


# ---------------------------------------------------------------------------
# config.load itself
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("tags: notamap\n", "tags", "a mapping"),
        ("tags: {a: [1]}\n", "tags", "a mapping"),
        ("artifacts: 5\n", "artifacts", "a list of paths"),
        ("artifacts: [a, {b: 1}]\n", "artifacts", "a list of paths"),
        ("experiment: [1]\n", "experiment", "a non-empty string"),
        ("experiment: ''\n", "experiment", "a non-empty string"),
        ("name: true\n", "name", "a non-empty string"),
        ("params-file: {a: 1}\n", "params-file", "a non-empty string"),
        ("max-untracked-size: -5\n", "max-untracked-size", "a size"),
        ("auto-push: sometimes\n", "auto-push", "true or false"),
    ],
)
def test_config_wrong_types_name_file_key_and_type(tmp_path, text, key, expected) -> None:
    from gitrun.capture import settings as config

    (tmp_path / ".gitrun.yaml").write_text(text)
    with pytest.raises(InvalidInputError) as e:
        config.load(str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path / ".gitrun.yaml") in msg and f"'{key}'" in msg and expected in msg
    assert len(msg.splitlines()) == 1


def test_config_values_are_normalised(tmp_path) -> None:
    from gitrun.capture import settings as config

    (tmp_path / ".gitrun.yaml").write_text(
        "experiment: 2024\nartifacts: model.pkl\ntags: {seed: 1}\nauto_push: yes\n"
        "max-untracked-size: 5MB\nname:\n"
    )
    cfg = config.load(str(tmp_path))
    assert cfg == {
        "experiment": "2024",
        "artifacts": ["model.pkl"],
        "tags": {"seed": "1"},
        "auto-push": True,
        "max-untracked-size": "5MB",
    }
    assert set(cfg) <= set(config.KNOWN_KEYS)


# ---------------------------------------------------------------------------
# filters: limits, never RecursionError, and what is allowed reaches SQLite safely
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", [DEEP, MANY_OR, MANY_NOT, LONG_IN, "not (" * 3000 + "x"])
def test_filter_limits_raise_filter_error(text) -> None:
    from gitrun.query.filter import parse_filter

    with pytest.raises(FilterError) as e:
        parse_filter(text)
    assert len(str(e.value).splitlines()) == 1


def test_filters_at_the_limits_run_in_sqlite(repo) -> None:
    from gitrun.query.filter import MAX_DEPTH, MAX_TERMS, parse_filter

    with gitrun.start_run(run_name="r"):
        gitrun.log_metric("a", 2.0)
        gitrun.log_param("p", "x")
    shapes = {
        "paren": "({})",
        "not": "not {}",
        "not-paren": "not ({})",
        "and": "metrics.a > 1 and ({})",
        "or": "params.p = 'y' or ({})",
    }
    for name, shape in list(shapes.items()) + [("mixed", None)]:
        text, i = "metrics.a != 1", 0
        while True:
            s = shape or list(shapes.values())[i % len(shapes)]
            deeper = s.format(text)
            i += 1
            try:
                parse_filter(deeper)
            except FilterError:
                break
            text = deeper
        assert i >= MAX_DEPTH // 2, name
        wide = text + " and (" + " or ".join(["metrics.a > 1"] * (MAX_TERMS - 40)) + ")"
        for f in (text, wide):
            df = gitrun.search_runs(filter_string=f, search_all_experiments=True)
            assert len(df) in (0, 1), name


# ---------------------------------------------------------------------------
# the API: MLflow's exception type (MlflowException == GitrunError) with a sentence
# ---------------------------------------------------------------------------
def _misuse_in_run(call: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with gitrun.start_run(run_name="host"):
            return call()

    return run


API_CASES = [
    ("log_metric-step-text", _misuse_in_run(lambda: gitrun.log_metric("m", 1, step="x")), "step"),
    (
        "log_metric-step-nan",
        _misuse_in_run(lambda: gitrun.log_metric("m", 1, step=float("nan"))),
        "step",
    ),
    ("log_metric-value-text", _misuse_in_run(lambda: gitrun.log_metric("m", "abc")), "'abc'"),
    (
        "log_metric-negative-timestamp",
        _misuse_in_run(lambda: gitrun.log_metric("m", 1, timestamp=-5)),
        "timestamp",
    ),
    (
        "log_metrics-step-list",
        _misuse_in_run(lambda: gitrun.log_metrics({"m": 1}, step=[1])),
        "step",
    ),
    ("log_metrics-not-dict", _misuse_in_run(lambda: gitrun.log_metrics(["m"])), "dict"),
    ("log_param-none-key", _misuse_in_run(lambda: gitrun.log_param(None, 1)), "param name"),
    (
        "set_tag-run-name-newline",
        _misuse_in_run(lambda: gitrun.set_tag("mlflow.runName", "a\nb")),
        "Invalid run name",
    ),
    ("get_run-none", lambda: gitrun.get_run(None), "Invalid run id None"),
    ("get_run-int", lambda: gitrun.get_run(123), "Invalid run id 123"),
    ("get_run-empty", lambda: gitrun.get_run(""), "Invalid run id"),
    ("get_metric_history-none", lambda: gitrun.get_metric_history(None, "m"), "Invalid run id"),
    (
        "search_runs-order_by-string",
        lambda: gitrun.search_runs(order_by="metrics.m DESC"),
        "list of strings",
    ),
    ("search_runs-order_by-int", lambda: gitrun.search_runs(order_by=[1]), "order_by item"),
    ("search_runs-max_results-zero", lambda: gitrun.search_runs(max_results=0), "max_results"),
    ("search_runs-max_results-neg", lambda: gitrun.search_runs(max_results=-1), "max_results"),
    ("search_runs-max_results-text", lambda: gitrun.search_runs(max_results="5"), "max_results"),
    ("search_runs-max_results-bool", lambda: gitrun.search_runs(max_results=True), "max_results"),
    ("search_runs-filter-int", lambda: gitrun.search_runs(filter_string=5), "filter_string"),
    ("search_runs-deep-filter", lambda: gitrun.search_runs(filter_string=DEEP), "nested"),
    ("set_experiment-none", lambda: gitrun.set_experiment(None), "experiment_name"),
    ("set_experiment-newline", lambda: gitrun.set_experiment("a\nb"), "experiment name"),
    ("set_experiment-empty", lambda: gitrun.set_experiment(""), "experiment name"),
    ("start_run-name-newline", lambda: gitrun.start_run(run_name="a\nb"), "Invalid run name"),
    ("start_run-name-int", lambda: gitrun.start_run(run_name=5), "Invalid run name"),
    (
        "start_run-experiment-newline",
        lambda: gitrun.start_run(experiment_id="a\nb"),
        "Invalid experiment name",
    ),
    ("search_runs-experiment_ids-int", lambda: gitrun.search_runs(experiment_ids=5), "list"),
    ("search_runs-experiment_names-int", lambda: gitrun.search_runs(experiment_names=5), "list"),
    (
        "client-log_metric-step-text",
        lambda: gitrun.MlflowClient().log_metric("host", "m", 1, step="x"),
        "step",
    ),
    (
        "client-run-name-newline",
        lambda: gitrun.MlflowClient().set_tag("host", "mlflow.runName", "x\ny"),
        "Invalid run name",
    ),
    ("client-create_run-none", lambda: gitrun.MlflowClient().create_run(None), "experiment"),
    ("client-get_run-none", lambda: gitrun.MlflowClient().get_run(None), "Invalid run id"),
]


@pytest.mark.parametrize(
    "call, fragment", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_api_misuse_raises_mlflow_exception(repo, call, fragment) -> None:
    with gitrun.start_run(run_name="host"):
        gitrun.log_metric("m", 1.0, step=0)
    before = repo_state(repo)
    runs_before = len(gitrun.search_runs(search_all_experiments=True))
    with pytest.raises(gitrun.MlflowException) as e:
        call()
    assert isinstance(e.value, GitrunError)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert fragment in str(e.value) and len(str(e.value).splitlines()) == 1
    while gitrun.active_run():
        gitrun.end_run()
    # Nothing bad was written: the host run (when the call made one) holds only good data.
    for run in gitrun.search_runs(search_all_experiments=True, output_format="list"):
        assert "\n" not in run.info.run_name
        points = gitrun.get_metric_history(run.info.run_id, "m")
        assert all(p.value == 1.0 and p.step == 0 for p in points)
    after = repo_state(repo)
    assert after["live"] == [] and after["files"] == before["files"]
    assert len(gitrun.search_runs(search_all_experiments=True)) - runs_before in (0, 1)


def test_api_valid_edges_still_work(repo) -> None:
    import numpy as np

    with gitrun.start_run(run_name="edges") as run:
        gitrun.log_metric("m", 1, step=np.int64(3))
        gitrun.log_metric("m", 2, step=4.0, timestamp=1_700_000_000_000)
        gitrun.log_metrics({"n": 1.5}, step=2)
    hist = gitrun.get_metric_history(run.info.run_id, "m")
    assert [(p.step, p.value) for p in hist] == [(3, 1.0), (4, 2.0)]
    df = gitrun.search_runs(max_results=10**20, search_all_experiments=True)
    assert len(df) == 1  # MLflow accepts a huge max_results too


def test_api_unknown_experiment_name_is_empty_with_a_clean_warning(repo) -> None:
    with gitrun.start_run():
        pass
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = gitrun.search_runs(experiment_names=["unknown"])
    assert len(df) == 0
    assert len(w) == 1 and "unknown" in str(w[0].message)
    assert w[0].filename == __file__  # points at the caller, not at gitrun or click


def test_resolve_lists_a_name_and_an_id_prefix(repo) -> None:
    from gitrun._git import Repo
    from gitrun.query import resolve as runs

    with gitrun.start_run(run_name="first") as a:
        pass
    prefix = a.info.run_id[:5]
    with gitrun.start_run(run_name=prefix) as b:
        pass
    with pytest.raises(AmbiguousRunError) as e:
        runs.resolve(Repo.discover(), prefix)
    assert a.info.run_id in str(e.value) and b.info.run_id in str(e.value)
    # The full id and a longer prefix are not ambiguous.
    assert runs.resolve(Repo.discover(), a.info.run_id) == a.info.run_id
    if b.info.run_id[:5] != prefix:
        assert runs.resolve(Repo.discover(), a.info.run_id[:12]) == a.info.run_id


# ---------------------------------------------------------------------------
# main(): the disk is not a bug; a bug leaves its own crash log in the repository
# ---------------------------------------------------------------------------
CRASHING = """
import errno, sqlite3, sys
import click
from gitrun.cli import cli, main

@cli.command(name="boom")
@click.argument("kind")
@click.argument("where", required=False)
def boom(kind, where):
    if kind == "bug":
        raise ZeroDivisionError("a bug")
    if kind == "recursion":
        raise RecursionError("maximum recursion depth exceeded")
    if kind == "memory":
        raise MemoryError()
    if kind == "sqlite-full":
        raise sqlite3.OperationalError("database or disk is full")
    raise OSError(getattr(errno, kind), "simulated", where)

sys.argv = ["gitrun"] + sys.argv[1:]
main()
"""


def _crash(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CRASHING, "boom", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("ENOSPC", "/data/x"), "no space left on device (/data/x)"),
        (("EDQUOT",), "disk quota exceeded"),
        (("EROFS", "/repo/.git/objects"), "the repository is read-only"),
        (("EIO",), "I/O error"),
        (("EACCES", "/somewhere/else"), "permission denied (/somewhere/else)"),
        (("recursion",), "nested too deeply"),
        (("memory",), "too large"),
        (("sqlite-full",), "no space left on device"),
    ],
)
def test_main_maps_disk_errors_to_one_sentence(repo, args, fragment) -> None:
    p = _crash(repo, *args)
    assert_one_sentence(p, 1, fragment)
    assert not list((repo / ".git" / "gitrun").glob("crash-*.log"))


def test_main_permission_denied_in_the_repository_says_read_only(repo) -> None:
    p = _crash(repo, "EACCES", str(repo / ".git" / "gitrun" / "index.sqlite"))
    assert_one_sentence(p, 1, "the repository is read-only for you")


def test_crash_log_goes_under_the_git_dir_one_per_crash(repo) -> None:
    logs = []
    for _ in range(2):
        p = _crash(repo, "bug")
        assert p.returncode == 70
        assert "internal error (ZeroDivisionError: a bug)" in p.stderr
        logs.append(p.stderr.split("the traceback is in ")[1].split(". Please")[0])
    assert logs[0] != logs[1]
    for log in logs:
        path = Path(log)
        assert path.parent == repo / ".git" / "gitrun" and path.name.startswith("crash-")
        assert "ZeroDivisionError: a bug" in path.read_text()


def test_crash_log_outside_a_repository_goes_to_the_temp_dir(tmp_path) -> None:
    import tempfile

    p = _crash(tmp_path, "bug")
    assert p.returncode == 70
    log = Path(p.stderr.split("the traceback is in ")[1].split(". Please")[0])
    assert log.parent == Path(tempfile.gettempdir()) and log.name.startswith("gitrun-crash-")
    log.unlink()


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (needs root, as the tests run in CI); unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True
    )
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_and_a_read_only_disk_get_one_sentence(small_disk) -> None:
    d = small_disk / "repo"
    d.mkdir()
    git(d, "init", "-q", "-b", "main")
    git(d, "commit", "-q", "--allow-empty", "-m", "initial")
    script = (
        "import gitrun\nwith gitrun.start_run(run_name='kept'):\n    gitrun.log_metric('m', 1)\n"
    )
    assert subprocess.run([sys.executable, "-c", script], cwd=d).returncode == 0
    runs_ref = git(d, "rev-parse", "refs/gitrun/runs")
    with open(small_disk / "filler", "wb", buffering=0) as f:  # no flush left for close
        with pytest.raises(OSError):
            while True:
                f.write(b"\0" * 65536)
    p = run_cli("record", "-q", "--", "true", cwd=d)
    assert p.returncode != 0 and p.returncode != 70, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert "no space left on" in p.stderr.lower(), p.stderr
    assert git(d, "rev-parse", "refs/gitrun/runs") == runs_ref
    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    p = run_cli("record", "-q", "--", "true", cwd=d)
    assert p.returncode != 0 and p.returncode != 70, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert "read-only" in p.stderr, p.stderr


def test_metric_points_stay_finite_or_nan(repo) -> None:
    """NaN and infinity are metric values (MLflow allows them); a string is not."""
    with gitrun.start_run() as run:
        gitrun.log_metric("m", float("nan"))
        gitrun.log_metric("m", float("inf"), step=1)
        with pytest.raises(InvalidInputError):
            gitrun.log_metric("m", "nan-ish")
    values = [p.value for p in gitrun.get_metric_history(run.info.run_id, "m")]
    assert math.isnan(values[0]) and values[1] == math.inf and len(values) == 2
