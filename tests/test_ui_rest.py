"""MLflow's REST API served by `gitrun ui`, read by the real MLflow client and by plain HTTP.

One repository with real runs (made with gitrun's fluent API) and one server on
127.0.0.1 (gitrun.ui.server.running, uvicorn in a thread) serve the whole module.
"""

from __future__ import annotations

import base64
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import IDENTITY, git

mlflow = pytest.importorskip("mlflow")


def _make_runs(d) -> dict:
    """sweep: 4 finished runs + 1 deleted; Default: 1 run.  Returns what was logged."""
    import gitrun
    from gitrun.tracking import state

    made: dict = {"sweep": {}, "Default": {}}
    gitrun.set_experiment("sweep")
    for i, (lr, f1) in enumerate([(0.1, 0.80), (0.2, 0.93), (0.3, 0.97), (0.4, float("nan"))]):
        with gitrun.start_run(run_name=f"trial-{i}") as run:
            gitrun.log_params({"lr": lr, "depth": 3 + i})
            for step in range(6):
                gitrun.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            gitrun.log_metric("f1", f1)
            gitrun.set_tag("team", "a" if i % 2 else "b")
            gitrun.log_text(f"notes of trial {i}\n", "notes/readme.txt")
            gitrun.log_dict({"trial": i}, "config/params.json")
            made["sweep"][run.info.run_id] = {"lr": lr, "f1": f1, "name": f"trial-{i}"}
    with gitrun.start_run(run_name="thrown-away") as run:
        gitrun.log_metric("f1", 0.99)
    gitrun.MlflowClient().delete_run(run.info.run_id)
    made["deleted"] = run.info.run_id
    gitrun.set_experiment("Default")
    with gitrun.start_run(run_name="baseline") as run:
        gitrun.log_metric("f1", 0.5)
        made["Default"][run.info.run_id] = {"f1": 0.5, "name": "baseline"}
    state.reset()
    return made


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from gitrun.ui.server import running

    d = tmp_path_factory.mktemp("ui-rest") / "repo"
    d.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(d.parent))
        for k, v in IDENTITY.items():
            mp.setenv(k, v)
        for k in list(os.environ):
            if k.startswith(("GITRUN_", "MLFLOW_")):
                mp.delenv(k)
        git(d, "init", "-q", "-b", "main")
        (d / "train.py").write_text("print('training')\n")
        git(d, "add", ".")
        git(d, "commit", "-qm", "initial")
        mp.chdir(d)
        made = _make_runs(d)
        with running(str(d)) as url:
            yield {"url": url, "dir": d, "made": made}


def get(url: str, **params):
    q = urllib.parse.urlencode(params, doseq=True)
    return _open(urllib.request.Request(url + ("?" + q if q else "")))


def post(url: str, body: dict):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    return _open(req)


def _open(req):
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api(served, path: str) -> str:
    return served["url"] + "/api/2.0/mlflow/" + path


def client(served):
    return mlflow.MlflowClient(served["url"])


# ---------------------------------------------------------------------------
# the real MLflow client
# ---------------------------------------------------------------------------
def test_client_search_runs_with_a_filter_returns_gitruns_runs(served):
    made = served["made"]["sweep"]
    runs = client(served).search_runs(["sweep"], "metrics.f1 > 0.9", order_by=["metrics.f1 DESC"])
    expected = sorted(
        (v["f1"], k) for k, v in made.items() if not math.isnan(v["f1"]) and v["f1"] > 0.9
    )
    assert [r.info.run_id for r in runs] == [k for _, k in reversed(expected)]
    for r in runs:
        logged = made[r.info.run_id]
        assert r.data.metrics["f1"] == logged["f1"]
        assert float(r.data.params["lr"]) == logged["lr"]
        assert r.info.run_name == logged["name"]
        assert r.info.experiment_id == "sweep"
        assert r.info.status == "FINISHED"
        assert r.data.tags["team"] in ("a", "b")


def test_client_search_runs_agrees_with_gitrun_search_runs(served, monkeypatch):
    import gitrun

    monkeypatch.chdir(served["dir"])
    ours = gitrun.search_runs(["sweep"], "params.depth >= 4", output_format="list")
    theirs = client(served).search_runs(["sweep"], "params.depth >= 4")
    assert [r.info.run_id for r in theirs] == [r.info.run_id for r in ours]
    assert len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert b.data.params == a.data.params
        for k, v in a.data.metrics.items():
            assert b.data.metrics[k] == v or (math.isnan(v) and math.isnan(b.data.metrics[k]))
        assert b.info.start_time == a.info.start_time and b.info.end_time == a.info.end_time


def test_client_get_run_and_metric_history(served):
    c = client(served)
    rid, logged = next((k, v) for k, v in served["made"]["sweep"].items() if v["lr"] == 0.3)
    run = c.get_run(rid)
    assert run.info.run_id == rid and run.info.run_name == logged["name"]
    assert run.data.metrics["f1"] == logged["f1"]
    assert run.data.params == {"lr": "0.3", "depth": "5"}
    assert run.info.artifact_uri == f"mlflow-artifacts:/{rid}/artifacts"
    hist = c.get_metric_history(rid, "loss")
    assert [m.step for m in hist] == list(range(6))
    assert [m.value for m in hist] == [1.0 / (s + 3) for s in range(6)]
    assert all(m.timestamp > 1_600_000_000_000 for m in hist)
    assert c.get_metric_history(rid, "no-such-metric") == []


def test_client_nan_metric_survives_json(served):
    rid = next(k for k, v in served["made"]["sweep"].items() if math.isnan(v["f1"]))
    assert math.isnan(client(served).get_run(rid).data.metrics["f1"])
    status, _, body = get(api(served, "runs/get"), run_id=rid)
    assert status == 200
    f1 = [m for m in json.loads(body)["run"]["data"]["metrics"] if m["key"] == "f1"]
    assert f1[0]["value"] == "NaN"  # as protobuf's JSON (and MLflow's server) writes it


def test_client_lists_and_downloads_artifacts(served, tmp_path):
    c = client(served)
    rid = next(k for k, v in served["made"]["sweep"].items() if v["lr"] == 0.2)
    top = c.list_artifacts(rid)
    assert [(f.path, f.is_dir) for f in top] == [("config", True), ("notes", True)]
    inner = c.list_artifacts(rid, "notes")
    assert [(f.path, f.is_dir, f.file_size) for f in inner] == [
        ("notes/readme.txt", False, len("notes of trial 1\n"))
    ]
    one = c.download_artifacts(rid, "notes/readme.txt", str(tmp_path / "one"))
    assert open(one).read() == "notes of trial 1\n"
    whole = c.download_artifacts(rid, "", str(tmp_path / "all"))
    assert sorted(os.listdir(whole)) == ["config", "notes"]
    assert json.load(open(os.path.join(whole, "config", "params.json"))) == {"trial": 1}
    via_uri = mlflow.artifacts.download_artifacts(
        f"runs:/{rid}/notes/readme.txt", tracking_uri=served["url"], dst_path=str(tmp_path / "u")
    )
    assert open(via_uri).read() == "notes of trial 1\n"


def test_client_experiments(served):
    c = client(served)
    names = sorted(e.name for e in c.search_experiments())
    assert names == ["Default", "sweep"]
    exp = c.get_experiment_by_name("sweep")
    assert exp.experiment_id == "sweep" and exp.name == "sweep"
    assert exp.creation_time and exp.last_update_time >= exp.creation_time
    assert c.get_experiment_by_name("no-such-experiment") is None
    assert c.get_experiment("sweep").name == "sweep"
    # MLflow's id of its Default experiment answers for gitrun's Default experiment
    assert c.get_experiment("0").name == "Default"
    liked = c.search_experiments(filter_string="name LIKE 'sw%'")
    assert [e.name for e in liked] == ["sweep"]


def test_fluent_search_runs_with_the_tracking_uri(served, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served["url"])
    df = mlflow.search_runs(experiment_names=["sweep"], filter_string="metrics.f1 > 0.9")
    assert sorted(df["run_id"]) == sorted(
        k for k, v in served["made"]["sweep"].items() if v["f1"] > 0.9
    )
    assert set(df["params.lr"]) == {"0.2", "0.3"}
    # no experiment given: MLflow asks for experiment "0", its Default
    default = mlflow.search_runs()
    assert list(default["run_id"]) == list(served["made"]["Default"])
    every = mlflow.search_runs(search_all_experiments=True)
    assert len(every) == 5  # the deleted run is not active


def test_client_paging_walks_every_run_once(served):
    c = client(served)
    seen = []
    page = c.search_runs(["sweep"], max_results=3, order_by=["params.lr ASC"])
    seen += [r.info.run_id for r in page]
    assert page.token
    page = c.search_runs(
        ["sweep"], max_results=3, order_by=["params.lr ASC"], page_token=page.token
    )
    seen += [r.info.run_id for r in page]
    assert not page.token
    lrs = {k: v["lr"] for k, v in served["made"]["sweep"].items()}
    assert seen == sorted(lrs, key=lrs.get)


def test_client_write_calls_fail_as_read_only(served):
    from mlflow.exceptions import MlflowException

    c = client(served)
    rid = next(iter(served["made"]["sweep"]))
    for call in (
        lambda: c.create_run("sweep"),
        lambda: c.log_metric(rid, "x", 1.0),
        lambda: c.set_tag(rid, "k", "v"),
        lambda: c.delete_run(rid),
        lambda: c.create_experiment("new-one"),
    ):
        with pytest.raises(MlflowException) as e:
            call()
        assert "gitrun ui is read-only" in str(e.value)
        assert e.value.error_code == "PERMISSION_DENIED"
    assert c.get_run(rid).info.lifecycle_stage == "active"


def test_client_gets_the_parsers_error_for_a_bad_filter(served):
    from mlflow.exceptions import MlflowException

    from gitrun.errors import FilterError
    from gitrun.query.filter import parse_filter

    bad = "metrics.f1 > 0.9 and (params.lr = '0.1'"
    with pytest.raises(FilterError) as ours:
        parse_filter(bad)
    with pytest.raises(MlflowException) as e:
        client(served).search_runs(["sweep"], bad)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert str(ours.value) in str(e.value)


# ---------------------------------------------------------------------------
# plain HTTP: MLflow's shapes and errors
# ---------------------------------------------------------------------------
def test_runs_search_shape_over_get_and_post(served):
    status, headers, body = post(
        api(served, "runs/search"),
        {"experiment_ids": ["sweep"], "filter": "params.lr = '0.1'", "max_results": 10},
    )
    assert status == 200 and headers["content-type"] == "application/json"
    out = json.loads(body)
    assert set(out) == {"runs"}  # no next_page_token: nothing more
    (run,) = out["runs"]
    info = run["info"]
    assert set(info) >= {"run_id", "run_uuid", "run_name", "experiment_id", "status"}
    assert info["run_id"] == info["run_uuid"] and info["status"] == "FINISHED"
    assert isinstance(info["start_time"], int) and info["lifecycle_stage"] == "active"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params == {"lr": "0.1", "depth": "3"}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.runName"] == info["run_name"] == "trial-0"
    # the same over GET with repeated query parameters, and under /ajax-api/
    status, _, body2 = get(
        served["url"] + "/ajax-api/2.0/mlflow/runs/search",
        experiment_ids=["sweep"],
        filter="params.lr = '0.1'",
        max_results=10,
    )
    assert status == 200 and json.loads(body2) == out


def test_runs_search_page_tokens_are_mlflows(served):
    status, _, body = post(
        api(served, "runs/search"),
        {"experiment_ids": [], "max_results": 2, "order_by": ["attributes.start_time ASC"]},
    )
    out = json.loads(body)
    assert len(out["runs"]) == 2
    assert json.loads(base64.b64decode(out["next_page_token"])) == {"offset": 2}
    status, _, body = post(
        api(served, "runs/search"),
        {"max_results": 2, "order_by": ["attributes.start_time ASC"], "page_token": "zz!"},
    )
    assert status == 400 and json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"


def test_runs_search_view_types(served):
    _, _, body = post(
        api(served, "runs/search"), {"experiment_ids": ["sweep"], "run_view_type": "DELETED_ONLY"}
    )
    assert [r["info"]["run_id"] for r in json.loads(body)["runs"]] == [served["made"]["deleted"]]
    _, _, body = post(api(served, "runs/search"), {"experiment_ids": ["sweep"], "run_view_type": 3})
    assert len(json.loads(body)["runs"]) == 5


def test_bad_requests_answer_mlflows_error_shape(served):
    cases = [
        (get(api(served, "runs/get"), run_id="f" * 32), 404, "RESOURCE_DOES_NOT_EXIST"),
        (get(api(served, "runs/get")), 400, "INVALID_PARAMETER_VALUE"),
        (post(api(served, "runs/search"), {"max_results": 50001}), 400, "INVALID_PARAMETER_VALUE"),
        (post(api(served, "runs/search"), {"max_results": "many"}), 400, "INVALID_PARAMETER_VALUE"),
        (
            post(api(served, "runs/search"), {"filter": "metrics.f1 >"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            post(api(served, "runs/search"), {"order_by": ["nope.x"]}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            get(api(served, "experiments/get-by-name"), experiment_name="x"),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (get(api(served, "experiments/get"), experiment_id="x"), 404, "RESOURCE_DOES_NOT_EXIST"),
        (get(api(served, "runs/nothing-here")), 404, "ENDPOINT_NOT_FOUND"),
        (get(served["url"] + "/api/2.0/elsewhere"), 404, "ENDPOINT_NOT_FOUND"),
        (get(served["url"] + "/api/gitrun/no-such-view"), 404, "ENDPOINT_NOT_FOUND"),
    ]
    for (status, headers, body), want_status, want_code in cases:
        assert status == want_status, body
        assert headers["content-type"] == "application/json"
        out = json.loads(body)
        assert out["error_code"] == want_code and out["message"].endswith((".", ")", "'")), out


def test_metric_history_pages(served):
    rid = next(iter(served["made"]["sweep"]))
    seen, token = [], None
    for _ in range(4):
        params = {"run_id": rid, "metric_key": "loss", "max_results": 4}
        if token:
            params["page_token"] = token
        out = json.loads(get(api(served, "metrics/get-history"), **params)[2])
        seen += [m["step"] for m in out["metrics"]]
        token = out.get("next_page_token")
        if not token:
            break
    assert seen == list(range(6))
    status, _, body = get(
        api(served, "metrics/get-history"), run_id=rid, metric_key="loss", max_results=0
    )
    assert status == 400


def test_artifact_download_is_an_attachment_and_refuses_escapes(served):
    rid = next(iter(served["made"]["sweep"]))
    status, headers, body = get(
        served["url"] + "/get-artifact", run_id=rid, path="notes/readme.txt"
    )
    assert status == 200 and body.startswith(b"notes of trial")
    assert headers["content-disposition"].startswith("attachment")
    assert headers["x-content-type-options"] == "nosniff"
    status, _, body = get(
        served["url"] + "/api/2.0/mlflow-artifacts/artifacts", path=f"{rid}/artifacts/config"
    )
    data = get(
        served["url"] + f"/api/2.0/mlflow-artifacts/artifacts/{rid}/artifacts/config/params.json"
    )[2]
    assert json.loads(data) == {"trial": 0}
    assert json.loads(body) == {
        "files": [{"path": "params.json", "is_dir": False, "file_size": len(data)}]
    }
    for path in ("../../../etc/passwd", "notes/../../x", "/etc/passwd/.."):
        status, _, body = get(served["url"] + "/get-artifact", run_id=rid, path=path)
        assert status in (400, 404) and json.loads(body)["error_code"], path
    status, _, body = get(served["url"] + "/get-artifact", run_id=rid, path="notes")
    assert status == 400 and "directory" in json.loads(body)["message"]


def test_a_run_in_progress_is_running_with_its_metrics(tmp_path, monkeypatch):
    """A live run (its journal) shows as RUNNING; its history grows as it logs."""
    import gitrun
    from gitrun.ui.server import running

    d = tmp_path / "live"
    d.mkdir()
    git(d, "init", "-q", "-b", "main")
    monkeypatch.chdir(d)
    gitrun.set_experiment("live")
    run = gitrun.start_run(run_name="in-progress")
    try:
        gitrun.log_metric("loss", 3.0, step=0)
        with running(str(d)) as url:
            c = mlflow.MlflowClient(url)
            (found,) = c.search_runs(["live"], "attributes.status = 'RUNNING'")
            assert found.info.run_id == run.info.run_id and found.data.metrics == {"loss": 3.0}
            gitrun.log_metric("loss", 2.0, step=1)
            hist = c.get_metric_history(run.info.run_id, "loss")
            assert [(m.step, m.value) for m in hist] == [(0, 3.0), (1, 2.0)]
            assert c.get_run(run.info.run_id).info.status == "RUNNING"
    finally:
        gitrun.end_run()
