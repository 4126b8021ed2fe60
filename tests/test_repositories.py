"""Repositories as people really have them: sha256 objects, reftable refs, GIT_DIR set,
large artifacts, config-file defaults, resumed runs, figures and images, and a manifest
naming a storage kind this gitrun cannot read.  Real git, real `gitrun` processes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, run_cli

import gitrun
from gitrun.errors import ParamChangedError

REF = "refs/gitrun/runs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TRAIN = """\
import json, sys
lr = float(sys.argv[1])
open("model.bin", "w").write(f"weights lr={lr}\\n")
json.dump({"acc": 1 - lr}, open("metrics.json", "w"))
"""


def git_version() -> tuple[int, ...]:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    assert m, out
    return tuple(int(x or 0) for x in m.groups())


def show_json(run, cwd=None) -> dict:
    p = run_cli("show", run, "--format", "json", cwd=cwd)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    return p


def fsck_clean(d: Path) -> None:
    p = subprocess.run(["git", "fsck", "--strict"], cwd=d, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "error" not in p.stderr.lower() and "warning" not in p.stderr.lower(), p.stderr


# ---------------------------------------------------------------------------
# sha256 objects and reftable refs: the whole round between two clones
# ---------------------------------------------------------------------------
def _clone(remote: Path, d: Path, init_flags: list[str], first: bool) -> Path:
    git(d.parent, "init", "-q", "-b", "main", *init_flags, str(d))
    git(d, "remote", "add", "origin", str(remote))
    if first:
        (d / "train.py").write_text(TRAIN)
        (d / ".gitignore").write_text("model.bin\nmetrics.json\n")
        git(d, "add", ".")
        git(d, "commit", "-qm", "train")
        git(d, "push", "-q", "origin", "main")
    else:
        git(d, "fetch", "-q", "origin")
        git(d, "reset", "-q", "--hard", "origin/main")
    return d


def _record(d: Path, name: str, lr: str) -> str:
    p = ok(
        run_cli(
            "record", "-q", "-n", name, "-e", "fmt", "-a", "model.bin",
            "--metrics-file", "metrics.json", "-p", f"lr={lr}",
            "--", sys.executable, "train.py", lr,
            cwd=d,
        )
    )  # fmt: skip
    assert p.stdout == ""
    return show_json(name, cwd=d)["run_id"]


def _api_run(d: Path, name: str, acc: float) -> str:
    script = (
        "import gitrun\n"
        f"with gitrun.start_run(run_name={name!r}) as r:\n"
        "    gitrun.log_param('lr', '0.5')\n"
        f"    gitrun.log_metric('acc', {acc}, step=0)\n"
        f"    gitrun.log_text('api artifact {name}', 'notes/api.txt')\n"
        "    print(r.info.run_id)\n"
    )
    env = {"GITRUN_EXPERIMENT_NAME": "fmt"}
    p = subprocess.run(
        [sys.executable, "-c", script],
        cwd=d,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def _search_names(d: Path, filt: str) -> list[str]:
    p = ok(run_cli("search", filt, "--columns", "tags.mlflow.runName", "--format", "csv", cwd=d))
    return sorted(p.stdout.splitlines()[1:])


def _whole_round(tmp_path: Path, init_flags: list[str], check_repo) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", *init_flags, str(remote))
    a = _clone(remote, tmp_path / "a", init_flags, first=True)
    check_repo(a)
    check_repo(remote)

    rid_cli = _record(a, "cli-a", "0.1")
    rid_api = _api_run(a, "api-a", 0.75)
    for rid in (rid_cli, rid_api):
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
    tip = git(a, "rev-parse", REF).strip()
    if "--object-format=sha256" in init_flags:
        assert len(tip) == 64
    # The run's second parent is the code commit, as git sees it.
    head = git(a, "rev-parse", "HEAD").strip()
    assert show_json("cli-a", cwd=a)["code"]["commit"] == head

    assert _search_names(a, "metrics.acc > 0.8") == ["cli-a"]
    assert _search_names(a, "params.lr = '0.5'") == ["api-a"]
    s = show_json("cli-a", cwd=a)
    assert s["params"] == {"lr": "0.1"} and s["metrics"] == {"acc": 0.9}
    assert [x["path"] for x in s["artifacts"]] == ["model.bin"]
    p = ok(run_cli("show", "api-a", cwd=a))
    assert "notes/api.txt" in p.stdout and "acc" in p.stdout

    # checkout: artifacts only, into a new worktree, and in place.
    ok(run_cli("checkout", "api-a", "--artifacts-only", str(tmp_path / "arts"), cwd=a))
    assert (tmp_path / "arts" / "notes" / "api.txt").read_text() == "api artifact api-a"
    ok(run_cli("checkout", "cli-a", "--worktree", str(tmp_path / "wt"), cwd=a))
    assert (tmp_path / "wt" / "model.bin").read_text() == "weights lr=0.1\n"
    assert (tmp_path / "wt" / "train.py").read_text() == TRAIN
    ok(run_cli("checkout", "cli-a", cwd=a))
    assert git(a, "branch", "--show-current").strip() == "gitrun/" + rid_cli[:8]
    assert (a / "model.bin").read_text() == "weights lr=0.1\n"
    git(a, "switch", "-q", "main")

    # push; a second clone pulls, both record, and the histories join.
    ok(run_cli("push", cwd=a))
    assert git(remote, "rev-parse", REF).strip() == git(a, "rev-parse", REF).strip()
    b = _clone(remote, tmp_path / "b", init_flags, first=False)
    check_repo(b)
    ok(run_cli("pull", cwd=b))
    assert _search_names(b, "metrics.acc > 0") == ["api-a", "cli-a"]
    _record(b, "cli-b", "0.3")
    _record(a, "cli-a2", "0.2")  # a and b have diverged
    ok(run_cli("push", cwd=b))
    ok(run_cli("pull", cwd=a))
    parents = git(a, "rev-list", "--parents", "-n", "1", REF).split()
    assert len(parents) == 3, "diverged histories are joined by a merge commit"
    ok(run_cli("push", cwd=a))
    ok(run_cli("pull", cwd=b))
    for d in (a, b):
        assert _search_names(d, "metrics.acc > 0") == ["api-a", "cli-a", "cli-a2", "cli-b"]
    # b has a's code (it travelled with the runs) and can check a's run out.
    ok(run_cli("checkout", "cli-a2", "--artifacts-only", str(tmp_path / "arts-b"), cwd=b))
    assert (tmp_path / "arts-b" / "model.bin").read_text() == "weights lr=0.2\n"
    for d in (a, b, remote):
        check_repo(d)
        fsck_clean(d)


def test_sha256_repositories_whole_round(tmp_path):
    def check(d):
        assert git(d, "rev-parse", "--show-object-format").strip() == "sha256"

    _whole_round(tmp_path, ["--object-format=sha256"], check)


def test_sha256_api_record_in_process(tmp_path, monkeypatch):
    d = tmp_path / "s"
    git(tmp_path, "init", "-q", "-b", "main", "--object-format=sha256", str(d))
    (d / "f.txt").write_text("x\n")
    git(d, "add", ".")
    git(d, "commit", "-qm", "c")
    monkeypatch.chdir(d)
    with gitrun.start_run(run_name="inproc") as r:
        gitrun.log_metric("m", 2.5, step=1)
        gitrun.log_artifact(str(d / "f.txt"))
    run = gitrun.get_run(r.info.run_id)
    assert run.data.metrics == {"m": 2.5}
    df = gitrun.search_runs(filter_string="metrics.m > 2")
    assert list(df["run_id"]) == [r.info.run_id]
    assert len(git(d, "rev-parse", f"{REF}^2").strip()) == 64
    fsck_clean(d)


REFTABLE_GIT = (2, 45)


@pytest.mark.skipif(
    git_version() < REFTABLE_GIT,
    reason=f"reftable needs git >= 2.45; this machine has git {'.'.join(map(str, git_version()))}",
)
def test_reftable_repositories_whole_round(tmp_path):
    def check(d):
        p = subprocess.run(
            ["git", "rev-parse", "--show-ref-format"], cwd=d, capture_output=True, text=True
        )
        assert p.stdout.strip() == "reftable", p.stderr
        gd = git(d, "rev-parse", "--absolute-git-dir").strip()
        assert os.path.isdir(os.path.join(gd, "reftable"))
        # gitrun never wrote a loose ref file beside the reftable stack.
        assert not os.path.exists(os.path.join(gd, "refs", "gitrun", "runs"))

    _whole_round(tmp_path, ["--ref-format=reftable"], check)


# ---------------------------------------------------------------------------
# GIT_DIR in the environment (hooks, `git rebase -x`)
# ---------------------------------------------------------------------------
def _children(pid: int) -> list[str]:
    """Command lines of the live children of `pid`: every thread's /proc children list,
    and (since the kernel documents that list as racy) every process whose parent is pid."""
    kids = set()
    for t in Path(f"/proc/{pid}/task").iterdir():
        kids.update((t / "children").read_text().split())
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = st.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):  # state, ppid, ...
            kids.add(st.parent.name)
    out = []
    for c in sorted(kids):
        try:
            out.append(Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return out


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_git_dir_in_environment(repo):
    sub = repo / "sub"
    sub.mkdir()
    env = {"GIT_DIR": str(repo / ".git")}
    # As a hook runs: GIT_DIR absolute, cwd the work tree root.
    p = ok(run_cli("record", "-q", "-n", "hooked", "-p", "k=v", "--", "true", cwd=repo, env=env))
    p = ok(run_cli("search", "params.k = 'v'", "--format", "csv", cwd=repo, env=env))
    assert "hooked" in p.stdout
    # Relative GIT_DIR, as git gives hooks (".git").
    ok(run_cli("record", "-q", "-n", "rel", "--", "true", cwd=repo, env={"GIT_DIR": ".git"}))
    p = ok(run_cli("ls", cwd=repo, env={"GIT_DIR": ".git"}))
    assert "hooked" in p.stdout and "rel" in p.stdout

    script = (
        "import os, sys, gitrun\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_repositories import _children\n"
        "with gitrun.start_run(run_name='api-gitdir'):\n"
        "    gitrun.log_metric('m', 1.5)\n"
        "for _ in range(30):\n"
        "    assert gitrun.get_run('api-gitdir').data.metrics == {'m': 1.5}\n"
        "    assert gitrun.get_run('hooked').data.params == {'k': 'v'}\n"
        "kids = _children(os.getpid())\n"
        "print(sum('cat-file' in k for k in kids))\n"
        "print(len(gitrun.search_runs(search_all_experiments=True)))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        cwd=repo,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    cat_files, n_runs = map(int, p.stdout.split())
    assert cat_files <= 1
    assert n_runs == 3
    # The counter itself works: a process that starts `git cat-file` children sees them.
    procs = [
        subprocess.Popen(["git", "cat-file", "--batch"], cwd=repo, stdin=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        kids = _children(os.getpid())
        assert sum("cat-file" in k for k in kids) >= 2, kids
    finally:
        for pr in procs:
            pr.communicate(timeout=10)


# ---------------------------------------------------------------------------
# artifacts over 32 MiB (streamed through `git hash-object`)
# ---------------------------------------------------------------------------
BIG = (33 << 20) + 7


def _big_file(path: Path) -> str:
    """A sparse 33 MiB file with some data at both ends; returns its sha256."""
    with open(path, "wb") as f:
        f.write(b"head of a big model\n" * 100)
        f.seek(BIG - 20)
        f.write(b"tail of a big model\n")
    assert path.stat().st_size == BIG
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_large_artifact_api_and_record(repo, tmp_path):
    big = tmp_path / "big.bin"
    digest = _big_file(big)
    with gitrun.start_run(run_name="big-api") as r:
        gitrun.log_artifact(str(big), artifact_path="models")
    (art,) = show_json("big-api")["artifacts"]
    assert art == {"path": "models/big.bin", "size": BIG, "sha256": digest, "storage": "git"}
    blob = git(repo, "rev-parse", f"{REF}:runs/{r.info.run_id[:2]}/{r.info.run_id}"
               "/artifacts/models/big.bin").strip()  # fmt: skip
    assert git(repo, "cat-file", "-s", blob).strip() == str(BIG)
    out = tmp_path / "restored"
    ok(run_cli("checkout", "big-api", "--artifacts-only", str(out)))
    assert hashlib.sha256((out / "models" / "big.bin").read_bytes()).hexdigest() == digest

    # Through `gitrun record -a`: the command writes the file, gitrun collects it.
    (repo / ".gitignore").write_text("*.log\nbig.bin\n")
    git(repo, "commit", "-qam", "ignore big")
    os.replace(big, repo / "staged.bin")
    code = "import os; os.replace('staged.bin', 'big.bin')"
    ok(run_cli("record", "-q", "-n", "big-cli", "-a", "big.bin", "--", sys.executable, "-c", code))
    (art,) = show_json("big-cli")["artifacts"]
    assert (art["size"], art["sha256"]) == (BIG, digest)
    os.unlink(repo / "big.bin")
    ok(run_cli("checkout", "big-cli", "--artifacts-only", str(tmp_path / "r2")))
    assert hashlib.sha256((tmp_path / "r2" / "big.bin").read_bytes()).hexdigest() == digest
    fsck_clean(repo)


# ---------------------------------------------------------------------------
# defaults from .gitrun.yaml and [tool.gitrun], overridden on the command line
# ---------------------------------------------------------------------------
WRITER = """\
import json
json.dump({"acc": 0.5}, open("m1.json", "w"))
json.dump({"acc": 0.75, "f1": 0.25}, open("m2.json", "w"))
open("a1.txt", "w").write("one")
open("a2.txt", "w").write("two")
"""

YAML_CFG = """\
experiment: from-yaml
name: yaml-run
params-file: p1.yaml
metrics-file: m1.json
artifacts: [a1.txt]
tags: {team: vision, stage: dev}
"""

TOML_CFG = """\
[project]
name = "x"

[tool.gitrun]
experiment = "from-toml"
name = "toml-run"
params-file = "p1.yaml"
metrics-file = "m1.json"
artifacts = ["a1.txt"]
tags = {team = "vision", stage = "dev"}
"""


@pytest.mark.parametrize(
    "cfg_file,cfg_text,prefix",
    [(".gitrun.yaml", YAML_CFG, "yaml"), ("pyproject.toml", TOML_CFG, "toml")],
    ids=["gitrun.yaml", "pyproject.toml"],
)
def test_config_file_defaults_and_overrides(repo, cfg_file, cfg_text, prefix):
    (repo / "write.py").write_text(WRITER)
    (repo / "p1.yaml").write_text("lr: 0.1\nmodel: {depth: 3}\n")
    (repo / "p2.yaml").write_text("lr: 0.2\n")
    (repo / cfg_file).write_text(cfg_text)
    (repo / ".gitignore").write_text("*.log\n*.json\na*.txt\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "config")

    p = ok(run_cli("record", "-q", "--", sys.executable, "write.py"))
    assert "warning" not in p.stderr.lower(), p.stderr
    s = show_json(f"{prefix}-run")
    assert s["experiment"] == f"from-{prefix}"
    assert s["params"] == {"lr": "0.1", "model.depth": "3"}
    assert s["metrics"] == {"acc": 0.5}
    assert [a["path"] for a in s["artifacts"]] == ["a1.txt"]
    assert s["tags"]["team"] == "vision" and s["tags"]["stage"] == "dev"

    p = ok(
        run_cli(
            "record", "-q", "-e", "cli-exp", "-n", "cli-run", "--params-file", "p2.yaml",
            "--metrics-file", "m2.json", "-a", "a2.txt", "-t", "team=nlp",
            "--", sys.executable, "write.py",
        )
    )  # fmt: skip
    s = show_json("cli-run")
    assert s["experiment"] == "cli-exp"
    assert s["params"] == {"lr": "0.2"}
    assert s["metrics"] == {"acc": 0.75, "f1": 0.25}
    # -a adds to the configured artifacts; -t overrides one configured tag, keeps the rest.
    assert [a["path"] for a in s["artifacts"]] == ["a1.txt", "a2.txt"]
    assert s["tags"]["team"] == "nlp" and s["tags"]["stage"] == "dev"
    p = ok(run_cli("ls"))
    assert f"{prefix}-run" in p.stdout and "cli-run" in p.stdout


# ---------------------------------------------------------------------------
# start_run(run_id=...) resumes a finished run
# ---------------------------------------------------------------------------
def test_resume_finished_run(repo):
    with gitrun.start_run(run_name="resumable") as r:
        rid = r.info.run_id
        gitrun.log_param("lr", 0.1)
        gitrun.log_metric("loss", 1.0, step=0)
        gitrun.log_metric("loss", 0.8, step=1)
    assert gitrun.get_run(rid).info.status == "FINISHED"

    with gitrun.start_run(run_id=rid) as r2:
        assert r2.info.run_id == rid
        gitrun.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(ParamChangedError, match="lr"):
            gitrun.log_param("lr", 0.2)
        gitrun.log_metric("loss", 0.5, step=2)
        gitrun.log_metric("acc", 0.9, step=2)
    run = gitrun.get_run(rid)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1"}
    assert run.data.metrics == {"loss": 0.5, "acc": 0.9}
    hist = [(m.step, m.value) for m in gitrun.get_metric_history(rid, "loss")]
    assert hist == [(0, 1.0), (1, 0.8), (2, 0.5)]
    # One run, not two; the CLI agrees.
    df = gitrun.search_runs(search_all_experiments=True)
    assert list(df["run_id"]) == [rid]
    s = show_json(rid[:8])
    assert [p["value"] for p in s["metric_history"]["loss"]] == [1.0, 0.8, 0.5]
    assert s["params"] == {"lr": "0.1"}
    assert len(git(repo, "rev-list", "--first-parent", REF).split()) == 3  # root + 2 commits
    fsck_clean(repo)


# ---------------------------------------------------------------------------
# log_figure and log_image
# ---------------------------------------------------------------------------
def _have(module: str) -> bool:
    p = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return p.returncode == 0


@pytest.mark.skipif(not _have("matplotlib"), reason="matplotlib is not installed")
def test_log_figure_png_round_trip(repo, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [2, 1, 3])
    with gitrun.start_run(run_name="fig") as r:
        gitrun.log_figure(fig, "plots/curve.png")
    plt.close(fig)
    _check_png(repo, tmp_path, r.info.run_id, ["plots/curve.png"])


@pytest.mark.skipif(not _have("numpy"), reason="numpy is not installed")
def test_log_image_png_round_trip(repo, tmp_path):
    pytest.importorskip("PIL")  # log_image encodes PNGs with Pillow
    import numpy as np

    arr = np.linspace(0, 1, 8 * 8 * 3).reshape(8, 8, 3)
    paths = ["img/array.png"]
    with gitrun.start_run(run_name="img") as r:
        gitrun.log_image(arr, "img/array.png")
        if _have("PIL"):
            from PIL import Image

            gitrun.log_image(Image.new("RGB", (5, 4), (10, 200, 30)), "img/pil.png")
            paths.append("img/pil.png")
    _check_png(repo, tmp_path, r.info.run_id, paths)
    if _have("PIL"):
        from PIL import Image

        out = tmp_path / "restored"
        with Image.open(out / "img" / "array.png") as im:
            assert im.size == (8, 8)
            got = np.asarray(im)
        assert (got == (arr * 255).round().astype("uint8")).all()
        with Image.open(out / "img" / "pil.png") as im:
            assert im.size == (5, 4) and im.getpixel((0, 0)) == (10, 200, 30)


def _check_png(repo, tmp_path, rid, paths):
    s = show_json(rid[:8])
    arts = {a["path"]: a for a in s["artifacts"]}
    assert sorted(arts) == sorted(paths)
    out = tmp_path / "restored"
    ok(run_cli("checkout", rid[:8], "--artifacts-only", str(out)))
    for path in paths:
        data = (out / path).read_bytes()
        assert data.startswith(PNG_MAGIC), path
        assert hashlib.sha256(data).hexdigest() == arts[path]["sha256"]
        assert len(data) == arts[path]["size"]


# ---------------------------------------------------------------------------
# an artifact kept in a storage kind this gitrun does not know
# ---------------------------------------------------------------------------
def _mktree(d: Path, entries: list[tuple[str, str, str, str]]) -> str:
    text = "".join(f"{mode} {kind} {sha}\t{name}\n" for mode, kind, sha, name in entries)
    return git_in(d, ["mktree"], text).strip()


def git_in(d: Path, args: list[str], text: str) -> str:
    p = subprocess.run(["git", *args], cwd=d, input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _ls_tree(d: Path, treeish: str) -> list[tuple[str, str, str, str]]:
    out = []
    for line in git(d, "ls-tree", treeish).splitlines():
        meta, name = line.split("\t", 1)
        mode, kind, sha = meta.split()
        out.append((mode, kind, sha, name))
    return out


def _replace(entries, name, new):
    return [e for e in entries if e[3] != name] + ([new] if new else [])


def test_unknown_artifact_storage_kind(repo, tmp_path):
    (repo / "good.txt").write_text("kept in git\n")
    with gitrun.start_run(run_name="mixed") as r:
        gitrun.log_artifact(str(repo / "good.txt"))
    rid = r.info.run_id
    ok(run_cli("ls"))  # the query index has seen the run before it is replaced

    # Rewrite the run's manifest with plumbing: one more row, stored in "s3".
    old_tip = git(repo, "rev-parse", REF).strip()
    run_dir = f"runs/{rid[:2]}/{rid}"
    manifest = git(repo, "show", f"{REF}:{run_dir}/artifacts.tsv")
    remote_data = b"weights kept in a bucket\n"
    row = f"remote.bin\t{len(remote_data)}\t{hashlib.sha256(remote_data).hexdigest()}\ts3\n"
    header, *rows = manifest.splitlines(keepends=True)
    new_manifest = header + "".join(sorted(rows + [row]))
    blob = git_in(repo, ["hash-object", "-w", "--stdin"], new_manifest).strip()
    entries = _replace(
        _ls_tree(repo, f"{REF}:{run_dir}"),
        "artifacts.tsv",
        ("100644", "blob", blob, "artifacts.tsv"),
    )
    run_tree = _mktree(repo, entries)
    bucket = _mktree(
        repo,
        _replace(_ls_tree(repo, f"{REF}:runs/{rid[:2]}"), rid, ("040000", "tree", run_tree, rid)),
    )
    runs = _mktree(
        repo,
        _replace(_ls_tree(repo, f"{REF}:runs"), rid[:2], ("040000", "tree", bucket, rid[:2])),
    )
    root = _mktree(
        repo, _replace(_ls_tree(repo, f"{REF}^{{tree}}"), "runs", ("040000", "tree", runs, "runs"))
    )
    head = git(repo, "rev-parse", "HEAD").strip()
    commit = git(
        repo, "commit-tree", root, "-p", old_tip, "-p", head, "-m", "mixed: remote artifact"
    ).strip()
    git(repo, "update-ref", REF, commit, old_tip)
    fsck_clean(repo)

    p = ok(run_cli("show", "mixed"))
    assert "good.txt" in p.stdout and "remote.bin" in p.stdout
    arts = {a["path"]: a["storage"] for a in show_json("mixed")["artifacts"]}
    assert arts == {"good.txt": "git", "remote.bin": "s3"}

    out = tmp_path / "restored"
    p = run_cli("checkout", "mixed", "--artifacts-only", str(out))
    assert "Traceback" not in p.stderr
    assert p.returncode == 1, p.stdout + p.stderr  # not everything could be restored
    assert (out / "good.txt").read_text() == "kept in git\n"
    assert not (out / "remote.bin").exists()
    problem = [line for line in p.stderr.splitlines() if "remote.bin" in line]
    assert len(problem) == 1, p.stderr
    assert "'s3'" in problem[0] and "not restored" in problem[0]
    assert "Restored 1 artifact(s)" in p.stdout
    # The same rule in a new worktree: code and the readable artifact, then exit 1.
    p = run_cli("checkout", "mixed", "--worktree", str(tmp_path / "wt"))
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "wt" / "good.txt").read_text() == "kept in git\n"
    assert (tmp_path / "wt" / "train.py").exists()
    assert sum("remote.bin" in line for line in p.stderr.splitlines()) == 1
