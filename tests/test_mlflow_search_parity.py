"""Search parity with real MLflow: the same runs recorded through real MLflow (a sqlite
store in a temp dir) and through gitrun, then filters and order_bys taken from MLflow's
own search tests (tests/utils/test_search_utils.py, tests/store/tracking/) asked of both.
Accepted: the same runs in the same order (by run name).  Refused: both raise MLflow's
INVALID_PARAMETER_VALUE kind of error.  The documented leniencies (docs/search.md) are
checked too: MLflow refuses them, gitrun accepts them.  Explicit start/end times and
metric timestamps round-trip exactly, and `user_id` is what MLflow records."""

from __future__ import annotations

import os
import time

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException  # noqa: E402

import gitrun  # noqa: E402
from gitrun.errors import GitrunError  # noqa: E402

EXP = "parity"
# name, start, end (None: still running), status, metrics, params, tags
RUNS = [
    (
        "alpha",
        1000,
        9000,
        "FINISHED",
        {"a": 0.5, "cross-entropy-loss": 0.3},
        {"x": "1", "model": "rf"},
        {"source_name": "nb", "team": "vision"},
    ),
    (
        "beta",
        2000,
        3000,
        "FAILED",
        {"a": 0.05, "cross-entropy-loss": 1.5},
        {"x": "2", "model": "gb"},
        {"source_name": "script"},
    ),
    (
        "gamma",
        3000,
        5000,
        "FINISHED",
        {"a": 0.9, "f1 score": 0.7},
        {"model": "rf"},
        {"team": "Vision"},
    ),
    (
        "delta",
        4000,
        4500,
        "KILLED",
        {"f1 score": 0.2},
        {"x": "3", "model": "lr"},
        {"source_name": "nb"},
    ),
    ("epsilon", 5000, 12000, "FINISHED", {"a": 0.1}, {"x": "4"}, {"team": "nlp"}),
    ("zeta", 6000, None, "RUNNING", {"a": 0.7, "cross-entropy-loss": 0.9}, {"model": "gb"}, {}),
]


def _record(client, exp_id):
    ids = {}
    for name, start, end, status, metrics, params, tags in RUNS:
        run = client.create_run(exp_id, start_time=start, tags=tags, run_name=name)
        rid = run.info.run_id
        ids[name] = rid
        for i, (k, v) in enumerate(metrics.items()):
            client.log_metric(rid, k, v, timestamp=start + 10 + i, step=i)
        for k, v in params.items():
            client.log_param(rid, k, v)
        if end is not None:
            client.set_terminated(rid, status, end_time=end)
    return ids


@pytest.fixture(scope="module")
def systems(tmp_path_factory):
    """(MLflow client, experiment id, MLflow run ids, gitrun repo dir, gitrun run ids)."""
    from tests.conftest import IDENTITY, git

    base = tmp_path_factory.mktemp("parity")
    mclient = mlflow.MlflowClient(tracking_uri=f"sqlite:///{base}/mlflow.db")
    mexp = mclient.create_experiment(EXP)
    mids = _record(mclient, mexp)

    d = base / "repo"
    d.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(base))
        for k, v in IDENTITY.items():
            mp.setenv(k, v)
        for k in list(os.environ):
            if k.startswith(("GITRUN_", "MLFLOW_")):
                mp.delenv(k)
        git(d, "init", "-q", "-b", "main")
        (d / "train.py").write_text("print('x')\n")
        git(d, "add", ".")
        git(d, "commit", "-qm", "initial")
        mp.chdir(d)
        gclient = gitrun.MlflowClient()
        gids = _record(gclient, EXP)
        yield mclient, mexp, mids, d, gids, gclient
        gclient.set_terminated(gids["zeta"], "FINISHED")


@pytest.fixture
def both(systems, monkeypatch):
    mclient, mexp, mids, d, gids, gclient = systems
    monkeypatch.chdir(d)

    def ask(filter_string="", order_by=None):
        """(MLflow's answer, gitrun's answer): a list of run names, or 'refused'."""
        out = []
        try:
            runs = mclient.search_runs([mexp], filter_string, order_by=order_by)
            out.append([r.info.run_name for r in runs])
        except MlflowException as e:
            assert e.error_code == "INVALID_PARAMETER_VALUE", e
            out.append("refused")
        try:
            runs = gitrun.MlflowClient().search_runs([EXP], filter_string, order_by=order_by)
            out.append([r.info.run_name for r in runs])
        except GitrunError as e:
            assert e.error_code == "INVALID_PARAMETER_VALUE", e
            out.append("refused")
        return tuple(out)

    return ask


ACCEPTED_FILTERS = [
    "",
    "metric.a >= 0.1",
    "metrics.a>=0.1",
    "`metric`.a >= 0.1",
    "`metrics`.a >= 0.1",
    "`metrics`.`a` > 0.2",
    '`metric`."a" > 0.2',
    "`metric`.'a' < 0.2",
    "metrics.`cross-entropy-loss` < 1",
    'metrics."cross-entropy-loss" >= 0.9',
    "metrics.`f1 score` > 0.5",
    "params.x != '2'",
    'params."x" != "2"',
    "`params`.model = 'rf'",
    "`param`.model LIKE 'r%'",
    "`parameters`.model ILIKE 'RF'",
    "tags.source_name = 'nb'",
    "`tags`.source_name = 'nb'",
    "`tag`.source_name != 'nb'",
    "tags.team ILIKE 'vision'",
    "tags.team LIKE 'V%'",
    "attribute.status = 'FINISHED'",
    "run.status = 'FAILED'",
    "`attribute`.status = 'FINISHED'",
    "`attributes`.status != 'KILLED'",
    "`attr`.status = 'RUNNING'",
    "`run`.status LIKE 'F%'",
    "`status` = 'FINISHED'",
    "\"status\" = 'FINISHED'",
    "attributes.`Run name` = 'beta'",
    "attributes.`run name` = 'beta'",
    "attributes.`Run Name` LIKE '%a'",
    "`run name` = 'gamma'",
    "`Run Name` != 'gamma'",
    "`Run name` ILIKE 'ALPHA'",
    "\"run name\" = 'alpha'",
    "attr.\"Run Name\" = 'alpha'",
    "attributes.'run name' = 'alpha'",
    "attribute.run_name LIKE '%ta'",
    "attributes.Created > 2500",
    "attributes.created >= 3000",
    "created < 3000",
    "Created > 0",
    "`Created` > 3500",
    'run."Created" < 2000',
    "attributes.`start_time` >= 3000",
    "attribute.start_time >= 1234",
    "attribute.end_time > 4000",
    "end_time < 5000",
    "attributes.end_time = 4500",
    "attributes.user_id = 'unknown'",
    "tags.source_name IS NULL",
    "tags.source_name IS NOT NULL",
    "params.x IS NULL",
    "params.x is not null and metrics.a > 0",
    "tags.a IS NULL AND params.model = 'rf'",
    "metrics.a > 0.1 and params.model = 'rf'",
    "dataset.name = 'my_dataset'",
    "datasets.context = 'train'",
    "run_id IN ('0123')",
    "run_id NOT IN ('0123')",
]

REFUSED_FILTERS = [
    # from MLflow's test_error_filter / test_error_comparison_clauses / test_bad_quotes /
    # test_invalid_clauses
    "metric.acc >= 0.94; metrics.rmse < 1",
    "m.acc >= 0.94",
    "acc >= 0.94",
    "p.model >= 'LR'",
    "attri.x != 1",
    "a.x != 1",
    "model >= 'LR'",
    "`metrics.A > 0.1",
    "param`.A > 0.1",
    "`dummy.A > 0.1",
    "dummy`.A > 0.1",
    "attribute.start != 1",
    "attribute.experiment_id != 1",
    "attribute.lifecycle_stage = 'ACTIVE'",
    "attribute.name != 1",
    "attribute.time != 1",
    "attribute._status != 'RUNNING'",
    "attribute.status = true",
    "dataset.status = 'true'",
    "dataset.profile = 'num_rows: 10'",
    "metrics.acc IS NULL",
    "attribute.status IS NULL",
    "metric.model = 'LR'",
    "metric.model = '5'",
    "tags.acc = 5",
    "metrics.acc != metrics.acc",
    "1.0 > metrics.acc",
    "attribute.status = 1",
    "params.acc = LR",
    "tags.acc = LR",
    "params.acc = `LR`",
    "params.'acc = LR",
    "params.acc = 'LR",
    "params.acc = LR'",
    "params.acc = \"LR'",
    "tags.acc = = 'LR'",
    "attribute.status IS 'RUNNING'",
    "params.acc LR !=",
    "params.acc LR",
    "metric.acc !=",
    "acc != 1.0",
    "foo is null",
    "1=1",
    "1==2",
    "`params`.model >= 'LR'",
    "params.x > '1'",
    # identifier forms
    "'run name' = 'alpha'",
    "attributes.CREATED > 0",
    "attributes.`run Name` = 'alpha'",
    '"metrics".a > 0',
    "`metrics `.a > 0",
    "` metrics`.a > 0",
    "`metrics.a` > 0",
    "metrics . a > 0",
    "created > '0'",
    "end_time IS NULL",
]

# MLflow refuses these; gitrun accepts them on purpose (docs/search.md, "Leniencies").
LENIENT_FILTERS = [
    "metrics.cross-entropy-loss < 1",
    "metrics.train/loss > 0",
    "metrics.a == 0.5",
    "params.x <> '1'",
    "METRICS.a > 0",
    "`Metrics`.a > 0",
    "status IN ('FINISHED')",
    "attributes.run_uuid = 'x'",
    "metrics.a > +0.1",
    "metrics.a != nan",
]

ACCEPTED_ORDERS = [
    ["attributes.start_time"],
    ["attribute.start_time DESC"],
    ["attributes.end_time"],
    ["end_time DESC"],
    ["`attribute`.end_time"],
    ["attributes.Created"],
    ["attributes.created DESC"],
    ["created"],
    ["Created DESC"],
    ["`Created` desc"],
    ['"created"'],
    ["`start_time`"],
    ["metrics.a asc"],
    ['metrics."a"  desc'],
    ["`metric`.a"],
    ["`metrics`.a DESC"],
    ["`metric`.`a` DESC"],
    ["metrics.`cross-entropy-loss`"],
    ["metrics.`f1 score` DESC"],
    ["params.model", "attributes.status DESC"],
    ["params.`model` DESC", "attributes.end_time"],
    ["params.model aSc", "attributes.status  ASC"],
    ["`params`.x"],
    ["tags.source_name"],
    ["`tags`.source_name DESC"],
    ["tags.team    DESC"],
    ["tags.noSuchTag"],
    ["attributes.status"],
    ["run_name DESC"],
    ["metrics.a\tDESC"],
]

REFUSED_ORDERS = [
    # from MLflow's test_invalid_order_by_search_runs
    "m.acc",
    "acc",
    "attri.x",
    "`metrics.A",
    "`metrics.A`",
    "attribute.start",
    "metrics.A != 1",
    "attribute.run_id ACS",
    "attribute.run_id decs",
    # more
    "metrics.a ASC DESC",
    "metrics.a, metrics.b",
    "",
    "lifecycle_stage",
    "attributes.CREATED",
    "dataset.name",
    "timestamp",
]

LENIENT_ORDERS = [
    "params.model ",  # MLflow's test_invalid_order_by_search_runs refuses a trailing space
    " metrics.a DESC",
    "metrics.cross-entropy-loss",
    "attribute.experiment_id",
    "`run name`",
    "attributes.`Run name` DESC",
    "METRICS.a",
]


@pytest.mark.parametrize("flt", ACCEPTED_FILTERS)
def test_accepted_filter_same_runs(both, flt):
    m, g = both(flt)
    assert m != "refused", f"MLflow refuses {flt!r}: move it to REFUSED_FILTERS"
    assert g == m


@pytest.mark.parametrize("flt", REFUSED_FILTERS)
def test_refused_filter_refused_by_both(both, flt):
    assert both(flt) == ("refused", "refused")


@pytest.mark.parametrize("flt", LENIENT_FILTERS)
def test_documented_filter_leniency(both, flt):
    m, g = both(flt)
    assert m == "refused"
    assert g != "refused"


@pytest.mark.parametrize("order", ACCEPTED_ORDERS, ids=str)
def test_accepted_order_same_order(both, order):
    m, g = both("", order)
    assert m != "refused", f"MLflow refuses {order!r}"
    assert g == m


@pytest.mark.parametrize("order", REFUSED_ORDERS)
def test_refused_order_refused_by_both(both, order):
    assert both("", [order]) == ("refused", "refused")


@pytest.mark.parametrize("order", LENIENT_ORDERS)
def test_documented_order_leniency(both, order):
    m, g = both("", [order])
    assert m == "refused"
    assert g != "refused"


def test_lenient_aliases_mean_the_same(both):
    # the leniencies order and filter exactly like their MLflow spellings
    assert both("", ["`run name`"])[1] == both("", ["run_name"])[1]
    assert both("", ["params.model "])[1] == both("", ["params.model"])[0]
    assert both("metrics.cross-entropy-loss < 1")[1] == both("metrics.`cross-entropy-loss` < 1")[0]


def test_explicit_times_round_trip(systems):
    mclient, _mexp, mids, d, gids, gclient = systems
    for name, start, end, _status, metrics, _p, _t in RUNS:
        m = mclient.get_run(mids[name]).info
        g = gclient.get_run(gids[name]).info
        assert (g.start_time, g.end_time, g.status) == (m.start_time, m.end_time, m.status)
        assert (g.start_time, g.end_time) == (start, end)
        for k in metrics:
            mh = [(p.timestamp, p.step, p.value) for p in mclient.get_metric_history(mids[name], k)]
            gh = [(p.timestamp, p.step, p.value) for p in gclient.get_metric_history(gids[name], k)]
            assert gh == mh


def test_client_run_user_id_as_mlflow(systems, monkeypatch):
    mclient, _mexp, _mids, d, _gids, gclient = systems
    monkeypatch.chdir(d)
    mexp = mclient.create_experiment("users")  # the parity experiment stays as it is
    for tags in ({}, {"mlflow.user": "bob"}):
        m = mclient.create_run(mexp, tags=tags)
        g = gclient.create_run("users", tags=tags)
        mclient.set_terminated(m.info.run_id)
        gclient.set_terminated(g.info.run_id)
        m, g = mclient.get_run(m.info.run_id), gclient.get_run(g.info.run_id)
        assert g.info.user_id == m.info.user_id
        assert g.data.tags.get("mlflow.user") == m.data.tags.get("mlflow.user")


def test_fluent_run_user_id_from_tag(repo):
    import getpass

    with gitrun.start_run(tags={"mlflow.user": "bob"}) as run:
        pass
    assert gitrun.get_run(run.info.run_id).info.user_id == "bob"  # as MLflow's start_run
    with gitrun.start_run() as run:
        pass
    r = gitrun.get_run(run.info.run_id)
    assert r.info.user_id == r.data.tags["mlflow.user"] == getpass.getuser()


def test_set_terminated_end_time_on_fluent_and_finished_runs(repo):
    client = gitrun.MlflowClient()
    run = gitrun.start_run()
    client.set_terminated(run.info.run_id, "FAILED", end_time=777)
    assert gitrun.active_run() is None
    info = client.get_run(run.info.run_id).info
    assert (info.status, info.end_time) == ("FAILED", 777)
    client.set_terminated(run.info.run_id, "FINISHED", end_time=888)  # a committed run
    info = client.get_run(run.info.run_id).info
    assert (info.status, info.end_time) == ("FINISHED", 888)


def test_explicit_past_end_time_keeps_updated_time_real(repo):
    """A version of a run ended with an earlier end_time must still be the newest version
    (updated_time decides which version wins when histories are joined)."""
    from gitrun._git import Repo
    from gitrun.format import journal
    from gitrun.query import resolve

    before = int(time.time() * 1000)
    client = gitrun.MlflowClient()
    rid = client.create_run("e", start_time=100).info.run_id
    live = client._owned[rid]
    # the end line as a crashed owner would leave it: read back with its real update time
    live.journal.write(
        journal.json_line(
            "e", {"status": "FINISHED", "end_time": 200, "exit_code": None, "updated_time": before}
        )
    )
    rec = journal.replay(live.journal.path)
    assert (rec.end_time, rec.updated_time) == (200, before)
    client.set_terminated(rid, end_time=300)
    rec = resolve.load(Repo.discover(), rid)
    assert (rec.start_time, rec.end_time) == (100, 300)
    assert rec.updated_time >= before


@pytest.mark.parametrize("bad", [-1, "12", float("nan"), True])
def test_bad_explicit_times_refused(repo, bad):
    client = gitrun.MlflowClient()
    with pytest.raises(GitrunError, match="milliseconds since 1970"):
        client.create_run("e", start_time=bad)
    rid = client.create_run("e").info.run_id
    with pytest.raises(GitrunError, match="milliseconds since 1970"):
        client.set_terminated(rid, end_time=bad)
    client.set_terminated(rid)


def test_user_with_control_characters_refused_before_anything_is_written(repo):
    client = gitrun.MlflowClient()
    with pytest.raises(GitrunError, match="control characters"):
        client.create_run("e", tags={"mlflow.user": "a\nb"})
    with pytest.raises(GitrunError, match="control characters"):
        gitrun.start_run(tags={"mlflow.user": "a\tb"})
    assert gitrun.active_run() is None
    assert client.search_runs(["e"]) == []
