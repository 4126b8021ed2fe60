"""The filter grammar: accepted filters with the runs they match, rejected ones with
the token and position named, order_by; every case indexed and index-free."""

from __future__ import annotations

import pytest

from gitrun._git import Repo
from gitrun.errors import FilterError
from gitrun.query import filter as F
from gitrun.query.index import search
from tests.query_helpers import make_record, put_records

R1, R2, R3, R4 = ("a1" + "0" * 30, "b2" + "0" * 30, "c3" + "0" * 30, "d4" + "0" * 30)
NAME = {R1: "r1", R2: "r2", R3: "r3", R4: "r4"}


@pytest.fixture(scope="module")
def runs_repo(tmp_path_factory):
    from tests.conftest import git

    d = tmp_path_factory.mktemp("filter") / "repo"
    d.mkdir()
    git(d, "init", "-q")
    repo = Repo.discover(str(d))
    put_records(
        repo,
        [
            make_record(
                R1,
                "rf-small",
                1000,
                params={"model": "rf", "depth": 3, "lr": 0.01},
                metrics={"f1": [0.9], "loss": [0.5, 0.3, 0.4]},
                tags={"team": "Vision", "my tag": "x y"},
            ),
            make_record(
                R2,
                "gb-big",
                2000,
                status="FAILED",
                params={"model": "gb", "depth": 10, "lr": "0.1"},
                metrics={"f1": [0.8], "loss": [0.6, 0.2]},
                tags={"team": "vision"},
            ),
            make_record(
                R3,
                "rf-nan",
                3000,
                params={"model": "rf", "depth": "abc", "lr": 0.05},
                metrics={"f1": [float("nan")], "loss": [float("nan")]},
            ),
            make_record(
                R4,
                "no-metrics",
                4000,
                status="KILLED",
                params={"model": "RF", "odd-key": 1},
            ),
        ],
    )
    return repo


def names(repo, flt, order=None, use_index=True):
    rows = search(repo, flt, order_by=order, lifecycles=None, use_index=use_index)
    return [NAME[r.run_id] for r in rows]


ACCEPTED = [
    ("", {"r1", "r2", "r3", "r4"}),
    ("metrics.f1 > 0.85", {"r1"}),
    ("metrics.f1 = 0.9", {"r1"}),
    ("metric.f1 <= 0.8", {"r2"}),
    ("metrics.f1 != 0.9", {"r2", "r3"}),  # NaN != matches; r4 lacks f1: never
    ("metrics.missing != 1", set()),
    ("metrics.loss < 0.35", {"r2"}),  # latest value: r1's is 0.4
    ("metrics.loss.min < 0.25", {"r2"}),
    ("metrics.loss.max >= 0.5", {"r1", "r2"}),
    ("metrics.f1 > 0.5 and params.model = 'rf'", {"r1"}),
    ("METRICS.f1 > 0.5 AND PARAMS.model = 'rf'", {"r1"}),
    ("params.model = 'rf'", {"r1", "r3"}),
    ('params.model = "rf"', {"r1", "r3"}),
    ("parameter.model != 'rf'", {"r2", "r4"}),
    ("params.model LIKE 'r%'", {"r1", "r3"}),
    ("params.model LIKE 'r_'", {"r1", "r3"}),
    ("params.model ILIKE 'r%'", {"r1", "r3", "r4"}),
    ("params.model NOT LIKE 'r%'", {"r2", "r4"}),
    ("params.model IN ('gb', 'RF')", {"r2", "r4"}),
    ("params.model NOT IN ('gb')", {"r1", "r3", "r4"}),
    ("params.depth > 5", {"r2"}),
    ("params.depth < 5", {"r1"}),  # 'abc' is not a number: no match
    ("params.lr = 0.1", {"r2"}),
    ("params.lr IN (0.01, 0.05)", {"r1", "r3"}),
    ("params.`odd-key` = '1'", {"r4"}),
    ("tags.team = 'vision'", {"r2"}),
    ("tags.team ILIKE 'VISION'", {"r1", "r2"}),
    ("tag.`my tag` = 'x y'", {"r1"}),
    ('tags."my tag" = "x y"', {"r1"}),
    ("tags.mlflow.runName = 'gb-big'", {"r2"}),
    ("attributes.status = 'FAILED'", {"r2"}),
    ("status != 'FINISHED'", {"r2", "r4"}),
    ("run_name = 'gb-big'", {"r2"}),
    ("attr.run_name LIKE 'rf-%'", {"r1", "r3"}),
    ("run.run_name ILIKE 'RF-%'", {"r1", "r3"}),
    ("created >= 2000 and start_time < 4000", {"r2", "r3"}),
    ("attributes.end_time > 0", {"r1", "r2", "r3", "r4"}),
    (f"run_id IN ('{R1}', '{R4}')", {"r1", "r4"}),
    (f"attributes.run_id NOT IN ('{R1}')", {"r2", "r3", "r4"}),
    ("NOT params.model = 'rf'", {"r2", "r4"}),
    ("not (metrics.f1 > 0.85 or params.model = 'gb')", {"r3", "r4"}),
    ("(params.model = 'rf' and metrics.f1 > 0.5) or status = 'KILLED'", {"r1", "r4"}),
    ("metrics.f1 > 0.85 or metrics.f1 < 0.85", {"r1", "r2"}),
    ("datasets.name = 'train'", set()),
    ("params.model = 'it''s'", set()),
]


@pytest.mark.parametrize("flt, expected", ACCEPTED)
@pytest.mark.parametrize("use_index", [True, False], ids=["indexed", "index-free"])
def test_accepted_filters(runs_repo, flt, expected, use_index):
    assert set(names(runs_repo, flt, use_index=use_index)) == expected


REJECTED = [
    ("metrics.f1 >", "end of the filter", 12),
    ("foo.bar = 1", "'foo'", 0),
    ("metrics.f1 = 'x'", "'='", 11),
    ("params.model > 'a'", "'>'", 13),
    ("metrics.f1 > 1 and", "end of the filter", 18),
    ("metrics.f1 > 1 params.a = 'b'", "'params.a'", 15),
    ("(metrics.f1 > 1", "end of the filter", 15),
    ("metrics.f1 ~ 1", "'~'", 11),
    ("params.a = 'unterminated", "'unterminate", 11),
    ("bogus = 'x'", "'bogus'", 0),
    ("metrics.f1 LIKE 'x'", "'LIKE'", 11),
    ("metrics. = 1", "'metrics.'", 0),
    ("tags.t IN 'a'", "''a''", 10),
    ("status IN ('a' 'b')", "''b''", 15),
    ("metrics.f1 > 1 )", "')'", 15),
    ("and metrics.f1 > 1", "'and'", 0),
    ("tags.t = x", "'x'", 9),
]


@pytest.mark.parametrize("flt, token, pos", REJECTED)
def test_rejected_filters_name_token_and_position(flt, token, pos):
    with pytest.raises(FilterError) as e:
        F.parse_filter(flt)
    msg = str(e.value)
    assert token in msg and f"position {pos}" in msg, msg
    assert msg.endswith(".") and "\n" not in msg


ORDERS = [
    ([], ["r4", "r3", "r2", "r1"]),  # start_time DESC
    (["metrics.f1 DESC"], ["r1", "r2", "r3", "r4"]),  # then NaN, then missing
    (["metrics.f1 ASC"], ["r2", "r1", "r3", "r4"]),
    (["metrics.f1"], ["r2", "r1", "r3", "r4"]),
    (["metrics.loss.min asc"], ["r2", "r1", "r3", "r4"]),
    (["params.depth"], ["r2", "r1", "r3", "r4"]),  # not all numeric: as strings
    (["params.lr DESC"], ["r2", "r3", "r1", "r4"]),  # all numeric: as numbers
    (["params.model", "start_time ASC"], ["r4", "r2", "r1", "r3"]),
    (["attributes.run_name DESC"], ["r1", "r3", "r4", "r2"]),
    (["tags.team"], ["r1", "r2", "r4", "r3"]),  # missing last, ties by start_time DESC
]


@pytest.mark.parametrize("order, expected", ORDERS)
@pytest.mark.parametrize("use_index", [True, False], ids=["indexed", "index-free"])
def test_order_by(runs_repo, order, expected, use_index):
    assert names(runs_repo, "", order, use_index) == expected


@pytest.mark.parametrize(
    "item, token, pos",
    [("metrics.f1 SIDEWAYS", "'SIDEWAYS'", 11), ("nope", "'nope'", 0), ("= 1", "'='", 0)],
)
def test_bad_order_by(item, token, pos):
    with pytest.raises(FilterError) as e:
        F.parse_order_by([item])
    assert token in str(e.value) and f"position {pos}" in str(e.value)


def test_literal_metric_named_min_wins_over_aggregate(tmp_path):
    from tests.conftest import git

    git(tmp_path, "init", "-q")
    repo = Repo.discover(str(tmp_path))
    a, b = "e5" + "0" * 30, "f6" + "0" * 30
    put_records(
        repo,
        [
            make_record(a, "agg", 1, metrics={"loss": [0.1, 0.9]}),
            make_record(b, "literal", 2, metrics={"loss": [0.9], "loss.min": [7.0]}),
        ],
    )
    assert [r.run_name for r in search(repo, "metrics.loss.min > 5")] == ["literal"]
    assert [r.run_name for r in search(repo, "metrics.loss.min < 0.5")] == []


def test_no_eval_and_no_sql_from_user_text(runs_repo):
    # Keys and values that look like SQL are only ever data.
    assert names(runs_repo, "params.`x' OR 1=1 --` = 'a'") == []
    assert names(runs_repo, "tags.team = 'x'' OR ''1''=''1'") == []
    assert names(runs_repo, "params.model = '__import__(\"os\")'") == []
