"""The model registry on refs/gitrun/models: API, URIs, CLI, sync, and real MLflow alongside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

import gitrun
from gitrun._git import Repo
from gitrun.format import registry as reg
from tests.conftest import git, run_cli

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

X = [[0.0], [1.0], [2.0], [3.0]]
Y = [0, 0, 1, 1]


def _train(c: float, name: str | None = "churn") -> tuple[str, object]:
    from sklearn.linear_model import LogisticRegression

    import gitrun.sklearn as gsk

    est = LogisticRegression(C=c).fit(X, Y)
    with gitrun.start_run(run_name=f"lr-{c}") as run:
        gitrun.log_param("C", c)
        info = gsk.log_model(est, name="model", registered_model_name=name)
    if name:
        assert info.registered_model_version is not None
    return run.info.run_id, est


def test_register_alias_load_through_api_and_cli(repo):
    import gitrun.pyfunc as pyfunc
    import gitrun.sklearn as gsk

    rid1, _ = _train(1.0)
    rid2, est2 = _train(0.01)
    rid3, _ = _train(5.0, name=None)
    mv = gitrun.register_model(f"runs:/{rid3[:8]}/model", "churn", tags={"stage": "try"})
    assert (mv.name, mv.version, mv.run_id, mv.status) == ("churn", 3, rid3, "READY")
    assert mv.source == f"runs:/{rid3}/model" and mv.tags == {"stage": "try"}

    c = gitrun.MlflowClient()
    c.set_registered_model_alias("churn", "champion", "1")
    c.set_registered_model_alias("churn", "champion", 2)
    c.set_model_version_tag("churn", "2", "validated", "yes")
    c.set_registered_model_tag("churn", "team", "growth")
    champ = c.get_model_version_by_alias("churn", "champion")
    assert (champ.version, champ.run_id, champ.aliases) == (2, rid2, ["champion"])
    assert champ.tags == {"validated": "yes"}
    rm = c.get_registered_model("churn")
    assert rm.aliases == {"champion": 2} and rm.tags == {"team": "growth"}
    assert [v.version for v in rm.latest_versions] == [3]
    assert [m.name for m in c.search_registered_models("name LIKE 'ch%'")] == ["churn"]
    found = c.search_model_versions(f"name = 'churn' AND run_id = '{rid1}'")
    assert [v.version for v in found] == [1]
    assert [v.version for v in gitrun.search_model_versions("name='churn'")] == [2, 3, 1]  # tagged
    in_order = c.search_model_versions("name='churn'", order_by=["version_number ASC"])
    assert [v.version for v in in_order] == [1, 2, 3]
    assert c.get_model_version("churn", 1).source == f"runs:/{rid1}/model"

    # models:/ URIs load the very model of the runs:/ URI they name
    data = [[0.5], [1.6], [2.4]]
    by_alias = pyfunc.load_model("models:/churn@champion")
    by_run = pyfunc.load_model(f"runs:/{rid2}/model")
    assert list(by_alias.predict(data)) == list(by_run.predict(data)) == list(est2.predict(data))
    assert gsk.load_model("models:/churn/2").get_params()["C"] == 0.01
    assert gsk.load_model("models:/churn/latest").get_params()["C"] == 5.0

    # the CLI, as a user: move the alias back, list, show, diff
    p = run_cli("models", "alias", "churn", "champion", "1")
    assert p.returncode == 0 and "champion 2 -> 1" in p.stdout, p.stderr
    listed = json.loads(run_cli("models", "ls", "--format", "json").stdout)
    assert listed[0]["name"] == "churn" and listed[0]["aliases"] == {"champion": 1}
    shown = run_cli("models", "show", "churn")
    assert shown.returncode == 0 and "champion -> 1" in shown.stdout
    d = json.loads(run_cli("models", "diff", "churn", "1", "champion", "--format", "json").stdout)
    assert d["a"]["run_id"] == d["b"]["run_id"] == rid1
    d = run_cli("models", "diff", "churn", "1", "2")
    assert d.returncode == 0 and "1.0" in d.stdout and "0.01" in d.stdout
    for args in (("models", "--help"), ("models", "alias", "--help"), ("models", "ls", "--help")):
        assert "Example:" in run_cli(*args).stdout

    # the history of the alias is git log
    log = git(repo, "log", "--format=%s", "refs/gitrun/models")
    assert log.splitlines()[:2] == ["churn: alias champion 2 -> 1", "churn: tag team=growth"]
    assert "churn: alias champion 1 -> 2" in log and "churn: version 2 from run " + rid2[:8] in log
    files = git(repo, "ls-tree", "-r", "--name-only", "refs/gitrun/models").split()
    assert "models/churn/versions/3.yaml" in files and "models/churn/aliases.yaml" in files
    c.delete_registered_model_alias("churn", "champion")
    assert c.get_registered_model("churn").aliases == {}


def test_bad_input_is_one_sentence(repo):
    rid, _ = _train(1.0)
    for args in (
        ("models", "show", "nope"),
        ("models", "alias", "churn", "champion", "9"),
        ("models", "alias", "churn", "latest", "1"),
        ("models", "alias", "churn", "bad alias", "1"),
        ("models", "diff", "churn", "1", "nope"),
        ("models", "show", "../x"),
        ("models", "register", rid, "a/b"),
        ("models", "register", rid, "churn", "--path", "nothing"),
    ):
        p = run_cli(*args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, args
    c = gitrun.MlflowClient()
    for call in (
        lambda: c.get_model_version_by_alias("churn", "nope"),
        lambda: c.get_model_version("churn", 7),
        lambda: c.get_registered_model("nope"),
        lambda: c.create_registered_model("churn"),
        lambda: c.create_registered_model("bad\nname"),
        lambda: gitrun.register_model("runs:/ffffffff/model", "churn"),
        lambda: gitrun.pyfunc.load_model("models:/churn@nope"),
        lambda: gitrun.pyfunc.load_model("models:/churn"),
    ):
        with pytest.raises(gitrun.GitrunError):
            call()
    assert [v.version for v in c.search_model_versions("name='churn'")] == [1]


_REGISTER = """
import sys, gitrun
with gitrun.start_run(run_name=sys.argv[1]) as run:
    gitrun.log_text(sys.argv[1], "model/MLmodel")
mv = gitrun.register_model(f"runs:/{run.info.run_id}/model", "churn")
gitrun.MlflowClient().set_registered_model_alias("churn", "champion", mv.version)
print(run.info.run_id, mv.version)
"""


def test_two_clones_create_the_same_version_number_and_both_survive(tmp_path, bare_remote):
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare_remote), str(seed))
    (seed / "f.txt").write_text("x\n")
    git(seed, "add", ".")
    git(seed, "commit", "-qm", "start")
    git(seed, "push", "-q", "origin", "HEAD")
    clones = [tmp_path / "a", tmp_path / "b"]
    made = {}
    for c in clones:
        git(tmp_path, "clone", "-q", str(bare_remote), str(c))
        p = subprocess.run(
            [sys.executable, "-c", _REGISTER, c.name], cwd=c, capture_output=True, text=True
        )
        assert p.returncode == 0, p.stderr
        rid, version = p.stdout.split()
        assert version == "1"  # each clone made version 1 of churn
        made[c.name] = rid
    results = {}

    def push(c):
        results[c.name] = run_cli("push", cwd=c)

    threads = [threading.Thread(target=push, args=(c,)) for c in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clones:
        assert results[c.name].returncode == 0, results[c.name].stderr
        assert run_cli("pull", cwd=c).returncode == 0
    tips = {git(c, "rev-parse", "refs/gitrun/models").strip() for c in clones}
    assert len(tips) == 1  # identical on both clones (and the remote)
    assert git(bare_remote, "rev-parse", "refs/gitrun/models").strip() in tips
    model = reg.read(Repo.discover(str(clones[0])))["churn"]
    assert sorted(model.versions) == [1, 2]
    assert {v.run_id for v in model.versions.values()} == set(made.values())
    assert model.versions[2].tags[reg.ORIGINAL_VERSION_TAG] == "1"
    # the later alias move wins, and follows its version to its new number
    alias = model.aliases["champion"]
    champ = model.versions[model.live_aliases()["champion"]]
    assert champ.id == alias.version_id and champ.run_id in made.values()
    shown = run_cli("models", "show", "churn", "--format", "json", cwd=clones[1])
    assert [v["version"] for v in json.loads(shown.stdout)["versions"]] == [1, 2]


def test_real_mlflow_loads_the_registered_model(repo, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from gitrun.query.artifacts import resolve_uri

    _rid, est = _train(0.5)
    gitrun.MlflowClient().set_registered_model_alias("churn", "champion", 1)
    local = resolve_uri("models:/churn@champion", str(tmp_path / "dl"))
    data = np.array([[0.2], [1.5], [2.9]])
    theirs = mlflow.sklearn.load_model(local)
    assert list(theirs.predict(data)) == list(est.predict(data))
    assert list(gitrun.sklearn.load_model("models:/churn@champion").predict(data)) == list(
        theirs.predict(data)
    )

    # the same calls against real MLflow's own registry give the same shapes
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}")
    code = (
        "import json, mlflow\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "with mlflow.start_run() as r:\n"
        "    i = mlflow.sklearn.log_model(LogisticRegression().fit([[0],[1]],[0,1]), "
        "name='model', registered_model_name='churn')\n"
        "c = mlflow.MlflowClient()\n"
        "c.set_registered_model_alias('churn', 'champion', 1)\n"
        "v = c.get_model_version_by_alias('churn', 'champion')\n"
        "print(json.dumps([i.registered_model_version, v.version, v.aliases, v.status, "
        "v.current_stage, sorted(dict(v)), c.get_registered_model('churn').aliases]))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr[-2000:]
    real = json.loads(p.stdout.strip().splitlines()[-1])
    ours = gitrun.MlflowClient().get_model_version_by_alias("churn", "champion")
    assert real[:5] == [1, ours.version, ours.aliases, ours.status, ours.current_stage]
    assert set(dict(ours)) <= set(real[5])
    assert real[6] == gitrun.MlflowClient().get_registered_model("churn").aliases


def test_autolog_registers_each_logged_model(repo):
    """sklearn.autolog(registered_model_name=...) as MLflow: each fit's model a new version."""
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    import gitrun

    gitrun.sklearn.autolog(registered_model_name="auto-churn")
    try:
        for c in (0.5, 1.0):
            LogisticRegression(C=c).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    finally:
        gitrun.sklearn.autolog(disable=True)
    versions = gitrun.MlflowClient().search_model_versions("name = 'auto-churn'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    model = gitrun.sklearn.load_model("models:/auto-churn/2")
    assert model.C == 1.0


def test_mlflow_style_imports_of_the_client_and_view_type():
    from gitrun.entities import ViewType
    from gitrun.tracking import MlflowClient

    assert MlflowClient is gitrun_client()
    assert ViewType.to_string(ViewType.ACTIVE_ONLY) == "active_only"  # MLflow's spelling


def gitrun_client():
    from gitrun.tracking.client import MlflowClient

    return MlflowClient


def test_loading_a_model_leaves_no_copy_behind(repo, tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    import tempfile

    from sklearn.linear_model import LogisticRegression

    with gitrun.start_run() as run:
        gitrun.sklearn.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="model")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    gitrun.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    gitrun.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert list(scratch.iterdir()) == []


def test_models_show_lists_the_versions_of_a_name_with_a_quote(repo):
    """`gitrun models show` reads the versions with the model (a filter built from a name
    with a quote in it used to be refused)."""
    from tests.conftest import run_cli

    with gitrun.start_run() as run:
        gitrun.log_text("x", "model/MLmodel")
    for _ in range(2):
        gitrun.register_model(f"runs:/{run.info.run_id}/model", "bob's model")
    p = run_cli("models", "show", "bob's model", "--format", "json", cwd=repo)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [v["version"] for v in out["versions"]] == [1, 2]
    assert out["name"] == "bob's model"
