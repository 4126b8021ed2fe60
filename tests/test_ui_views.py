"""The page's own JSON endpoints (gitrun/ui/views.py) over real HTTP, without a browser:
what they answer, what they refuse, and that nothing they do writes to the repository."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace

import pytest

from tests.conftest import IDENTITY


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    import gitrun
    from gitrun._git import Repo
    from gitrun.format import store
    from gitrun.format.entities import RunRecord
    from gitrun.tracking import state
    from gitrun.ui.server import running

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path_factory.mktemp("views-home")))
        for k, v in IDENTITY.items():
            mp.setenv(k, v)
        for k in list(os.environ):
            if k.startswith(("GITRUN_", "MLFLOW_")):
                mp.delenv(k)
        repo = tmp_path_factory.mktemp("views") / "repo"
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main")
        (repo / "train.py").write_text("print(1)\n")
        _git(repo, "add", ".")
        _git(repo, "commit", "-qm", "one")
        mp.chdir(repo)
        state.reset()
        client = gitrun.MlflowClient()
        ids = {}
        for name, final in (("first", 0.5), ("second", 0.25)):
            rid = client.create_run("exp", run_name=name).info.run_id
            client.log_param(rid, "lr", "0.1")
            for step in range(10):
                client.log_metric(rid, "loss", final + 9 - step, 1_000 + step, step)
            client.log_text(rid, "x" * 200_000, "big.txt")
            client.set_terminated(rid, "FINISHED")
            ids[name] = rid
        # A run from someone else's history whose code commit is an option, not an id.
        r = Repo.discover(str(repo))
        evil = RunRecord(
            run_id="e" * 32,
            run_name="crafted",
            experiment="exp",
            status="FINISHED",
            start_time=1,
            end_time=2,
            code={"commit": f"--output={repo}/pwned"},
        )
        old = r.read_ref(store.RUNS_REF)
        root = store.put_run_dirs(
            r, store.tip_tree(r, old), {evil.run_id: store.write_run_tree(r, evil)}
        )
        assert r.cas_ref(store.RUNS_REF, r.write_commit(root, [old], "crafted\n"), old, "test")
        ids["crafted"] = evil.run_id
        state.reset()
        refs = _git(repo, "for-each-ref").stdout
        with running(str(repo)) as base:
            yield SimpleNamespace(base=base, repo=repo, ids=ids, refs=refs)


def get(site, endpoint: str, **params) -> tuple[int, dict]:
    url = site.base + endpoint + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_run_by_prefix_or_name_with_show_fields(site):
    status, run = get(site, "/api/gitrun/run/" + site.ids["first"][:6])
    assert status == 200
    assert run["run_id"] == site.ids["first"] and run["run_name"] == "first"
    assert run["params"] == {"lr": "0.1"}
    assert run["metrics"]["loss"] == {"value": 0.5, "points": 10, "min": 0.5, "max": 9.5, "step": 9}
    assert run["git_show"].startswith("git show ") and len(run["git_show"]) == 9 + 40
    assert [a["path"] for a in run["artifacts"]] == ["big.txt"]
    assert run["artifacts"][0]["kind"] == "text"
    assert run["live"] is False
    status, by_name = get(site, "/api/gitrun/run/second")
    assert status == 200 and by_name["run_id"] == site.ids["second"]


def test_unknown_and_ambiguous_refs_answer_mlflow_errors(site):
    status, err = get(site, "/api/gitrun/run/nope")
    assert status == 404
    assert err["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert err["message"].startswith("No run matches 'nope'")
    status, answer = get(site, "/api/gitrun/resolve", refs="first,nope," + site.ids["second"][:5])
    assert status == 200
    got = answer["runs"]
    assert got[0] == {"ref": "first", "run_id": site.ids["first"]}
    assert got[1]["ref"] == "nope" and "No run matches" in got[1]["message"]
    assert got[2]["run_id"] == site.ids["second"]
    status, cmp = get(site, "/api/gitrun/compare", runs="first,second,nope")
    assert [r["run_name"] for r in cmp["runs"]] == ["first", "second"]
    assert [e["ref"] for e in cmp["errors"]] == ["nope"]


def test_compare_by_filter_and_its_parse_error(site):
    status, cmp = get(
        site, "/api/gitrun/compare", experiment="exp", filter="metrics.loss < 0.4", order_by=""
    )
    assert status == 200 and [r["run_name"] for r in cmp["runs"]] == ["second"]
    status, err = get(site, "/api/gitrun/compare", experiment="exp", filter="metrics.loss <")
    assert status == 400 and err["error_code"] == "INVALID_PARAMETER_VALUE"
    assert err["message"].startswith("Invalid filter")


def test_history_is_thinned_keeping_first_and_last(site):
    status, h = get(site, "/api/gitrun/history", runs=site.ids["first"], keys="loss", max_points=4)
    assert status == 200
    pts = h["runs"][site.ids["first"]]["loss"]
    assert [p[0] for p in pts] == [0, 3, 6, 9]
    assert pts[-1][2] == 0.5
    assert h["names"] == {site.ids["first"]: "first"}


def test_preview_applies_the_path_rule_and_the_manifest(site):
    rid = site.ids["first"]
    status, p = get(site, "/api/gitrun/preview", run_id=rid, path="big.txt")
    assert status == 200 and p["truncated"] is True and p["size"] == 200_000
    assert len(p["text"]) == 128 * 1024
    for bad in ("../../etc/passwd", "/etc/passwd", ".git/config", "a/../../b"):
        status, err = get(site, "/api/gitrun/preview", run_id=rid, path=bad)
        assert status == 400, bad
        assert err["error_code"] == "INVALID_PARAMETER_VALUE"
        assert err["message"].startswith("No artifact ") and "relative" in err["message"]
        assert "rename" not in err["message"] and "artifact_path" not in err["message"]
    status, err = get(site, "/api/gitrun/preview", run_id=rid, path="other.txt")
    assert status == 404 and "has no artifact 'other.txt'" in err["message"]


def test_diff_never_hands_a_crafted_commit_to_git(site):
    status, d = get(site, "/api/gitrun/diff", a="first", b=site.ids["crafted"])
    assert status == 200
    assert d["code"]["b"] is None and d["code"]["patch"] == ""
    assert not (site.repo / "pwned").exists()
    status, run = get(site, "/api/gitrun/run/crafted")
    assert status == 200 and run["git_show"] is None


def test_diff_of_two_runs_and_tip(site):
    status, d = get(site, "/api/gitrun/diff", a="first", b="second")
    assert status == 200
    assert d["metrics"]["loss"]["a"] == 0.5 and d["metrics"]["loss"]["b"] == 0.25
    assert d["code"]["same"] is True and d["code"]["files"] == []
    status, t = get(site, "/api/gitrun/tip")
    assert status == 200 and t["live"] == [] and t["tip"] and t["version"].startswith(t["tip"])
    status, c = get(site, "/api/gitrun/columns", experiment="exp")
    assert c["runs"] == 3 and c["params"] == [["lr", 2]] and c["metrics"] == [["loss", 2]]
    assert c["experiments"] == [{"name": "exp", "runs": 3}]


def test_nothing_was_written(site):
    time.sleep(0.1)
    assert _git(site.repo, "for-each-ref").stdout == site.refs
    assert _git(site.repo, "status", "--porcelain").stdout == ""
