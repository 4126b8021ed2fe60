"""search_runs, the index (rebuild, incremental update, merges, live runs) and the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import warnings

import pytest
from click.testing import CliRunner

import gitrun
from gitrun._git import Repo
from gitrun.cli import cli
from gitrun.errors import InvalidInputError
from gitrun.format import store
from gitrun.query import ViewType, index
from gitrun.query.index import search
from tests.conftest import git, run_cli
from tests.query_helpers import make_record, put_records

SIX = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]


def rid(i: int) -> str:
    return f"{i:032x}"[::-1]  # spread over buckets


def many(n: int, seed: int = 0, start: int = 0) -> list:
    rnd = random.Random(seed)
    recs = []
    for i in range(start, start + n):
        metrics = {"f1": [rnd.random()], "loss": [rnd.random() for _ in range(3)]}
        if i % 7 == 0:
            metrics["f1"] = [float("nan")]
        if i % 11 == 0:
            del metrics["loss"]
        params = {"model": rnd.choice(["rf", "gb", "RF", "lr"]), "depth": rnd.randint(1, 20)}
        if i % 5 == 0:
            params["depth"] = "auto"
        recs.append(
            make_record(
                rid(i),
                f"run-{i}",
                1000 + i * 10,
                params=params,
                metrics=metrics,
                tags={"team": rnd.choice(["a", "b"])},
                experiment=rnd.choice(["exp1", "exp2"]),
                status=rnd.choice(["FINISHED", "FAILED"]),
                lifecycle="deleted" if i % 13 == 0 else "active",
            )
        )
    return recs


FILTERS = [
    "",
    "metrics.f1 > 0.5",
    "metrics.f1 != 0.5",
    "metrics.loss.min < 0.2 or metrics.loss.max > 0.9",
    "params.model = 'rf' and metrics.f1 > 0.3",
    "params.model ILIKE 'r%'",
    "params.depth >= 10",
    "params.model IN ('gb', 'lr') and not tags.team = 'a'",
    "status = 'FAILED' or (metrics.loss < 0.5 and created > 1500)",
]
ORDERS = [[], ["metrics.f1 DESC"], ["params.depth", "metrics.loss ASC"], ["tags.team DESC"]]


def test_indexed_and_index_free_answers_are_equal(repo):
    r = Repo.discover()
    put_records(r, many(150))
    put_records(r, many(50, seed=1, start=150))
    for i, flt in enumerate(FILTERS):
        order = ORDERS[i % len(ORDERS)]
        lc = (("active",), None)[i % 2]
        a = search(r, flt, order, lifecycles=lc, use_index=True)
        b = search(r, flt, order, lifecycles=lc, use_index=False)
        assert [x.run_id for x in a] == [x.run_id for x in b], (flt, order)
        assert a == b
        # The same filter under every order, indexed (the SQL is shared with index-free).
        for order in ORDERS:
            assert len(search(r, flt, order, lifecycles=lc)) == len(a)
    assert os.path.exists(index.index_path(r))


def test_index_rebuilt_when_missing_or_corrupt(repo):
    r = Repo.discover()
    put_records(r, many(20))
    expected = [x.run_id for x in search(r, "metrics.f1 > 0.2")]
    path = index.index_path(r)
    os.unlink(path)
    assert [x.run_id for x in search(r, "metrics.f1 > 0.2")] == expected
    with open(path, "wb") as f:
        f.write(b"garbage, not a database" * 100)
    assert [x.run_id for x in search(r, "metrics.f1 > 0.2")] == expected
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    assert [x.run_id for x in search(r, "metrics.f1 > 0.2")] == expected
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(
        index.SCHEMA_VERSION
    )


def test_incremental_update_reads_only_new_runs(repo, monkeypatch):
    r = Repo.discover()
    put_records(r, many(40))
    assert len(search(r, "", lifecycles=None)) == 40
    seen = []
    real = store.read_records

    def spy(repo_, trees, files=store.DEFAULT_FILES):
        seen.append(set(trees))
        return real(repo_, trees, files)

    monkeypatch.setattr(store, "read_records", spy)
    new = many(3, seed=9, start=40)
    put_records(r, new)
    rows = search(r, "", lifecycles=None)
    assert len(rows) == 43
    assert seen == [{x.run_id for x in new}]
    # Tip unchanged: answered from SQLite without any git process.
    seen.clear()

    def no_git(*a, **k):
        raise AssertionError("a git process was started")

    monkeypatch.setattr(subprocess, "Popen", no_git)
    r2 = Repo.discover()
    assert len(search(r2, "metrics.f1 > 0", lifecycles=None)) > 0
    assert seen == []


def test_runs_joined_by_a_merge_appear_once(repo):
    r = Repo.discover()
    base = put_records(r, many(5))
    ours = put_records(r, many(3, seed=2, start=5))
    theirs_recs = many(4, seed=3, start=8)
    theirs_recs.append(make_record(rid(0), "run-0-later", 1000, metrics={"f1": [0.99]}))
    theirs_recs[-1].updated_time = 10**13
    theirs = put_records(r, theirs_recs, parent=base)
    assert search(r, "", lifecycles=None)  # index built at `theirs`
    root = store.merge_roots(r, store.tip_tree(r, ours), store.tip_tree(r, theirs))
    merge = r.write_commit(root, [ours, theirs], "gitrun: merge\n")
    assert r.update_ref(store.RUNS_REF, merge, theirs)
    for use_index in (True, False):
        rows = search(r, "", lifecycles=None, use_index=use_index)
        ids = [x.run_id for x in rows]
        assert len(ids) == len(set(ids)) == 12
        assert next(x for x in rows if x.run_id == rid(0)).run_name == "run-0-later"


def test_search_runs_dataframe(repo):
    gitrun.set_experiment("churn")
    for i, model in enumerate(["rf", "gb", "rf"]):
        with gitrun.start_run(run_name=f"r{i}"):
            gitrun.log_params({"model": model, "depth": i})
            gitrun.log_metric("f1", 0.5 + i / 10)
            if i == 1:
                gitrun.log_metric("extra", 1.0)
            gitrun.set_tag("team", "x")
    df = gitrun.search_runs(filter_string="params.model = 'rf'", order_by=["metrics.f1 DESC"])
    assert list(df.columns[:6]) == SIX
    cols = list(df.columns)
    assert cols.index("metrics.f1") < cols.index("params.model") < cols.index("tags.team")
    assert "metrics.extra" not in cols
    assert list(df["tags.mlflow.runName"]) == ["r2", "r0"]
    assert str(df["start_time"].dtype) == "datetime64[ns, UTC]"
    assert str(df["end_time"].dtype) == "datetime64[ns, UTC]"
    assert df["metrics.f1"].dtype == "float64"
    assert df["params.depth"].dtype == object
    all_df = gitrun.search_runs(experiment_names=["churn"])
    assert list(all_df["tags.mlflow.runName"]) == ["r2", "r1", "r0"]
    assert all_df["metrics.extra"].isna().sum() == 2
    assert all_df["experiment_id"].tolist() == ["churn"] * 3
    top = gitrun.search_runs(experiment_ids=["churn"], order_by=["metrics.f1 ASC"], max_results=1)
    assert top["tags.mlflow.runName"].tolist() == ["r0"]
    empty = gitrun.search_runs(filter_string="metrics.f1 > 5")
    assert list(empty.columns) == SIX and len(empty) == 0
    runs = gitrun.search_runs(output_format="list", filter_string="metrics.extra = 1")
    assert runs[0].info.run_name == "r1" and runs[0].data.params["model"] == "gb"
    assert runs[0].data.metrics["f1"] == pytest.approx(0.6)
    # The default experiment is the active one: nothing in Default.
    gitrun.set_experiment("Default")
    assert len(gitrun.search_runs()) == 0
    assert len(gitrun.search_runs(search_all_experiments=True)) == 3


def test_search_runs_arguments(repo):
    with gitrun.start_run():
        gitrun.log_metric("a", 1)
    with pytest.raises(InvalidInputError):
        gitrun.search_runs(experiment_ids=["x"], experiment_names=["y"])
    with pytest.raises(ValueError):
        gitrun.search_runs(output_format="numpy")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = gitrun.search_runs(experiment_names=["nope", "Default"])
    assert len(df) == 1 and "nope" in str(w[0].message)
    with pytest.raises(gitrun.GitrunError):
        gitrun.search_runs(filter_string="metrics.a >")


def test_view_types(repo):
    r = Repo.discover()
    put_records(
        r, [make_record(rid(1), "alive", 1), make_record(rid(2), "gone", 2, lifecycle="deleted")]
    )

    def seen(view):
        df = gitrun.search_runs(run_view_type=view)
        return sorted(df["tags.mlflow.runName"])

    assert seen(None) == seen(ViewType.ACTIVE_ONLY) == seen("ACTIVE_ONLY") == ["alive"]
    assert seen(2) == seen("deleted_only") == ["gone"]
    assert seen(ViewType.ALL) == ["alive", "gone"]


def test_live_runs_show_as_running_and_are_not_cached(repo):
    with gitrun.start_run(run_name="done"):
        gitrun.log_metric("m", 1)
    run = gitrun.start_run(run_name="live")
    gitrun.log_metric("m", 2)
    df = gitrun.search_runs(order_by=["metrics.m DESC"])
    assert df["tags.mlflow.runName"].tolist() == ["live", "done"]
    assert df["status"].tolist() == ["RUNNING", "FINISHED"]
    assert df["end_time"].isna().tolist() == [True, False]
    gitrun.end_run()
    df = gitrun.search_runs(filter_string="status = 'RUNNING'")
    assert len(df) == 0
    assert gitrun.search_runs(output_format="list")[0].info.run_id == run.info.run_id


def test_names_and_experiments_from_the_index(repo):
    r = Repo.discover()
    put_records(r, many(10))
    from gitrun import query
    from gitrun.query import resolve as runs

    assert query.names(r)[rid(3)] == "run-3"
    assert query.experiment_names(r) == ["exp1", "exp2"]
    assert runs.resolve(r, "run-4") == rid(4)


def test_cli_search_formats_and_errors(repo):
    r = Repo.discover()
    put_records(r, many(30))
    inv = CliRunner().invoke
    res = inv(
        cli,
        [
            "search",
            "metrics.f1 > 0.5",
            "-e",
            "exp1",
            "--format",
            "json",
            "--order-by",
            "metrics.f1 DESC",
            "--max-results",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    expected = search(r, "metrics.f1 > 0.5", ["metrics.f1 DESC"], ["exp1"], max_results=3)
    assert [d["run_id"] for d in data] == [x.run_id for x in expected]
    assert list(data[0])[:6] == SIX
    res = inv(
        cli,
        [
            "search",
            "--all-experiments",
            "--columns",
            "run_id,params.depth,metrics.loss.min",
            "--format",
            "csv",
            "--max-results",
            "0",
        ],
    )
    lines = res.output.splitlines()
    assert lines[0] == "run_id,params.depth,metrics.loss.min" and len(lines) == 28
    res = inv(cli, ["search", "--all-experiments"])
    header = res.output.splitlines()[0].split()
    assert header[:4] == ["run", "name", "status", "started"]
    assert "params.model" in header and "metrics.f1" in header
    res = inv(cli, ["search", "metrics.f1 >> 1", "--all-experiments"])
    assert res.exit_code == 1 and "position" in res.output
    res = inv(cli, ["search", "metrics.f1 > 0", "-e", "exp1", "--format", "markdown"])
    assert res.output.startswith("| run_id | experiment_id |")


def test_cli_search_subprocess_and_ls(repo):
    gitrun.set_experiment("churn")
    for i in range(3):
        with gitrun.start_run(run_name=f"r{i}"):
            gitrun.log_metric("acc", i / 10)
            gitrun.log_param("depth", i)
    p = run_cli(
        "search",
        "-e",
        "churn",
        "params.depth >= 1",
        "--order-by",
        "metrics.acc DESC",
        "--format",
        "json",
    )
    assert p.returncode == 0, p.stderr
    assert [d["tags.mlflow.runName"] for d in json.loads(p.stdout)] == ["r2", "r1"]
    p = run_cli("search", "-e", "churn", "params.depth = ")
    assert p.returncode == 1 and "position" in p.stderr and "Traceback" not in p.stderr
    res = CliRunner().invoke(cli, ["ls", "--format", "json"])
    assert [x["run_name"] for x in json.loads(res.output)] == ["r2", "r1", "r0"]


def test_cli_search_does_not_import_pandas(repo):
    with gitrun.start_run():
        gitrun.log_metric("a", 1)
    code = (
        "import sys\nfrom gitrun.cli import cli\n"
        "try:\n    cli(['search', 'metrics.a = 1', '--format', 'json'])\n"
        "except SystemExit:\n    pass\n"
        "print('pandas' in sys.modules, file=sys.stderr)"
    )
    import sys

    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stderr.strip().endswith("False"), p.stderr
    assert json.loads(p.stdout)[0]["metrics.a"] == 1.0


def test_concurrent_index_updates(repo):
    r = Repo.discover()
    put_records(r, many(60))
    import sys

    code = (
        "from gitrun._git import Repo\nfrom gitrun.query.index import search\n"
        "print(len(search(Repo.discover(), '', lifecycles=None)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate()[0].strip() for p in procs]
    assert outs == ["60"] * 4
    git(repo, "status")  # the repository is untouched and fine


def test_a_misspelled_key_is_named_with_the_key_meant(repo):
    """A typo matches nothing and sorts nothing, silently, unless gitrun says so."""
    import gitrun

    with gitrun.start_run():
        gitrun.log_metric("f1_score", 0.9)
        gitrun.log_param("lr", 0.1)
    p = run_cli("search", "metrics.f1_scor > 0.5", "--order-by", "params.lrr DESC", cwd=repo)
    assert p.returncode == 0
    assert "no run has metric 'f1_scor' (did you mean metrics.f1_score?)" in p.stderr
    assert "no run has param 'lrr' (did you mean params.lr?)" in p.stderr
    p = run_cli("search", "metrics.f1_score.min > 0.5 and params.lr > 0", cwd=repo)
    assert p.returncode == 0 and p.stderr == "", p.stderr
