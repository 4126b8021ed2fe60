"""Stored inputs (`record -i PATH --store`, `log_input(path, store=True)`): copies kept as
artifacts under gitrun.inputs/, large ones in Git LFS, put back by checkout and rerun (a
rerun on changed data runs on the stored copy); directory inputs over the listing cap;
directory lineage; the sweep of stale LFS temporary files; `show` and the web preview of
artifacts kept outside git."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import git, run_cli

from gitrun._git import Repo
from gitrun.format import journal, lfs, store

MB = 1024 * 1024


def _ok(*args, **kw):
    p = run_cli(*args, **kw)
    assert p.returncode == 0, p.stderr
    return p


def _show(ref):
    return json.loads(_ok("show", ref, "--format", "json").stdout)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _listing_digest(files: dict[str, bytes]) -> str:
    lines = "".join(f"{k}\t{_sha(v)[7:]}\t{len(v)}\n" for k, v in sorted(files.items()))
    return _sha(lines.encode())


def test_stored_inputs_are_restored_by_checkout_and_rerun(repo, tmp_path):
    (repo / ".gitignore").write_text("*.log\ndata/\nout.txt\n")
    git(repo, "commit", "-qam", "ignore data")
    (repo / "data" / "img").mkdir(parents=True)
    (repo / "data" / "train.csv").write_bytes(b"a,b\n1,2\n")
    (repo / "data" / "img" / "1.png").write_bytes(b"one")
    (repo / "data" / "img" / "2.png").write_bytes(b"two")
    cmd = ["sh", "-c", "cat data/train.csv data/img/1.png data/img/2.png > out.txt"]
    _ok("record", "-q", "-n", "r", "-i", "data/train.csv", "-i", "data/img", "--store",
        "-a", "out.txt", "--", *cmd)  # fmt: skip
    run = _show("r")
    got = {i["path"]: i for i in run["inputs"]}
    assert got["data/train.csv"]["stored"] and got["data/img"]["stored"]
    assert got["data/img"]["digest"] == _listing_digest({"1.png": b"one", "2.png": b"two"})
    arts = {a["path"]: a for a in run["artifacts"]}
    assert set(arts) == {
        "out.txt",
        "gitrun.inputs/data/train.csv",
        "gitrun.inputs/data/img/1.png",
        "gitrun.inputs/data/img/2.png",
    }
    assert "sha256:" + arts["gitrun.inputs/data/train.csv"]["sha256"] == _sha(b"a,b\n1,2\n")
    assert "stored" in _ok("show", "r").stdout
    assert json.loads(run["tags"]["gitrun.record.options"])["store_inputs"] is True

    # The data changes on disk: a rerun in a temporary worktree runs on the stored copy
    # (ignored data is not in a worktree at all), so it needs no --allow-changed-inputs.
    (repo / "data" / "train.csv").write_bytes(b"a,b\n9,9\n")
    (repo / "data" / "img" / "2.png").unlink()
    p = run_cli("rerun", "r")
    assert p.returncode == 0, p.stderr
    assert "restored the run's stored copy" in p.stdout + p.stderr
    again = _show("r-rerun")
    assert "gitrun.rerun.changed_inputs" not in again["tags"]
    assert {i["path"]: i["digest"] for i in again["inputs"]} == {
        i["path"]: i["digest"] for i in run["inputs"]
    }
    assert {a["path"]: a["sha256"] for a in again["artifacts"]}["out.txt"] == arts["out.txt"][
        "sha256"
    ]
    # In place the work tree is used as it is: refused, and the message says what helps.
    p = run_cli("rerun", "r", "--in-place")
    assert p.returncode == 1 and "--allow-changed-inputs" in p.stderr
    assert "without --in-place" in p.stderr and "data/train.csv" in p.stderr
    # An input without a stored copy still refuses.
    (repo / "data" / "other.csv").write_text("x\n")
    _ok("record", "-q", "-n", "plain", "-i", "data/other.csv", "--", "true")
    (repo / "data" / "other.csv").write_text("y\n")
    assert run_cli("rerun", "plain").returncode == 1

    # checkout into a worktree puts the copies back at their paths, verified
    wt = tmp_path / "wt"
    _ok("checkout", "r", "--worktree", str(wt))
    assert (wt / "data" / "train.csv").read_bytes() == b"a,b\n1,2\n"
    assert (wt / "data" / "img" / "2.png").read_bytes() == b"two"
    assert not (wt / "gitrun.inputs").exists()
    # --artifacts-only keeps them under their artifact path, apart from the results
    only = tmp_path / "only"
    _ok("checkout", "r", "--artifacts-only", str(only))
    assert (only / "gitrun.inputs" / "data" / "img" / "1.png").read_bytes() == b"one"
    assert not (only / "data").exists()
    # the main work tree was not touched
    assert (repo / "data" / "train.csv").read_bytes() == b"a,b\n9,9\n"


def test_a_large_stored_input_goes_to_lfs_through_log_input(repo, tmp_path):
    _ok("config", "large-file-threshold", "1MB")
    (repo / ".gitignore").write_text("*.log\n*.bin\n")
    data = os.urandom(MB + 1000)
    (repo / "big.bin").write_bytes(data)
    (repo / "small.bin").write_bytes(b"tiny")
    (repo / "train.py").write_text(
        "import gitrun\n"
        "gitrun.log_input('big.bin', context='training', store=True)\n"
        "gitrun.log_input('small.bin', store=True)\n"
    )
    _ok("record", "-q", "-n", "api", "--", sys.executable, "train.py")
    run = _show("api")
    arts = {a["path"]: a for a in run["artifacts"]}
    assert arts["gitrun.inputs/big.bin"]["storage"] == "lfs"
    assert arts["gitrun.inputs/small.bin"]["storage"] == "git"
    oid = hashlib.sha256(data).hexdigest()
    r = Repo.discover(str(repo))
    assert open(lfs.object_path(r, oid), "rb").read() == data
    got = {i["path"]: i for i in run["inputs"]}
    assert got["big.bin"]["stored"] and got["big.bin"]["context"] == "training"
    assert got["big.bin"]["digest"] == "sha256:" + oid
    # the table marks what is not a git blob
    table = _ok("show", "api").stdout
    line = next(x for x in table.splitlines() if "gitrun.inputs/big.bin" in x)
    assert "(lfs)" in line
    assert "(lfs)" not in next(x for x in table.splitlines() if "gitrun.inputs/small.bin" in x)
    out = tmp_path / "out"
    _ok("checkout", "api", "--artifacts-only", str(out))
    assert (out / "gitrun.inputs" / "big.bin").read_bytes() == data
    # a dataset has no content to store; a reserved artifact path is refused
    (repo / "bad.py").write_text(
        "import gitrun, gitrun.data, numpy as np\n"
        "gitrun.log_input(gitrun.data.from_numpy(np.arange(3)), store=True)\n"
    )
    p = run_cli("record", "-q", "--", sys.executable, "bad.py")
    assert p.returncode != 0 and "store=True keeps a copy of a file or directory" in p.stderr
    (repo / "res.py").write_text("import gitrun\ngitrun.log_text('x', 'gitrun.inputs/x.txt')\n")
    p = run_cli("record", "-q", "--", sys.executable, "res.py")
    assert p.returncode != 0 and "is reserved" in p.stderr


def test_store_refusals_happen_before_the_command_runs(repo, tmp_path):
    (repo / "d").mkdir()
    for n in "abc":
        (repo / "d" / n).write_text(n)
    outside = tmp_path / "outside.csv"
    outside.write_text("1\n")
    cases = [
        (["--store"], "name them with -i"),
        (["-i", str(outside), "--store"], "outside the repository work tree"),
        (["-i", "d", "--store", "--max-artifact-files", "2"], "more than 2 files"),
        (["-a", "gitrun.inputs/x"], "is reserved"),
    ]
    for args, said in cases:
        p = run_cli("record", "-q", *args, "--", "sh", "-c", "touch ran")
        assert p.returncode == 2, (args, p.stderr)
        assert said in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert not (repo / "ran").exists()
    assert "FINISHED" not in run_cli("ls").stdout


def test_directory_input_over_the_listing_cap_keeps_an_exact_digest(repo):
    (repo / ".gitignore").write_text("*.log\nmany/\n")
    d = repo / "many"
    d.mkdir()
    files = {f"f{n:04d}.txt": str(n).encode() for n in range(1001)}
    for name, data in files.items():
        (d / name).write_bytes(data)
    _ok("record", "-q", "-n", "cap", "-i", "many", "--", "true")
    (inp,) = _show("cap")["inputs"]
    assert inp["files"] == 1001 and inp["files_listed"] == 1000
    assert inp["digest"] == _listing_digest(files)  # over all 1001, not the listed ones
    assert inp["size"] == sum(len(v) for v in files.values()) and inp["now"] == "same"
    assert "1,001 files, 1,000 listed" in _ok("show", "cap").stdout
    rid = _show("cap")["run_id"]
    text = git(repo, "show", f"refs/gitrun/runs:runs/{rid[:2]}/{rid}/inputs.tsv")
    rows = [r.split("\t") for r in text.splitlines()]
    assert rows[0] == ["path", "kind", "size", "digest", "context", "files"]
    assert rows[1][1] == "dir" and rows[1][5] == "1001"
    assert len(rows) == 1 + 1 + 1000  # header, the directory, its first 1,000 files
    assert all(r[1] == "member" for r in rows[2:])
    # the one file not listed still changes the digest
    (d / "f1000.txt").write_bytes(b"changed")
    assert _show("cap")["inputs"][0]["now"] == "changed"


def test_directory_lineage_links_an_artifact_directory_to_a_directory_input(repo):
    (repo / ".gitignore").write_text("*.log\nout/\n")
    make = "mkdir -p out/sub && echo 1 > out/a && echo 2 > out/sub/b"
    _ok("record", "-q", "-n", "A", "-a", "out", "--", "sh", "-c", make)
    _ok("record", "-q", "-n", "B", "-i", "out", "--store", "--", "true")
    _ok("record", "-q", "-n", "C", "-i", "out/", "--", "true")
    chain = json.loads(_ok("lineage", "C", "--format", "json").stdout)["run"]
    (inp,) = chain["inputs"]
    assert inp["kind"] == "dir"
    # A produced the directory; B only stored a copy of it, which produces nothing
    assert [(m["run"]["run_name"], m["artifact"]) for m in inp["produced_by"]] == [("A", "out/")]
    path = json.loads(_ok("lineage", "out", "--format", "json").stdout)["path"]
    (v,) = path["versions"]
    assert v["current"] and [r["run_name"] for r in v["produced_by"]] == ["A"]
    assert sorted(r["run_name"] for r in v["read_by"]) == ["B", "C"]
    # a subdirectory is a directory of A's artifacts as well
    _ok("record", "-q", "-n", "D", "-i", "out/sub", "--", "true")
    sub = json.loads(_ok("lineage", "D", "--format", "json").stdout)["run"]["inputs"][0]
    assert [m["artifact"] for m in sub["produced_by"]] == ["out/sub/"]
    (repo / "out" / "a").write_text("3\n")  # another version: produced by nobody
    _ok("record", "-q", "-n", "E", "-i", "out", "--", "true")
    e = json.loads(_ok("lineage", "E", "--format", "json").stdout)["run"]["inputs"][0]
    assert e["produced_by"] == []


def test_sweep_removes_stale_gitrun_files_in_lfs_tmp_only(repo):
    r = Repo.discover(str(repo))
    tmp = os.path.join(lfs.lfs_dir(r), "tmp")
    os.makedirs(tmp)
    day_ago = time.time() - 25 * 3600
    names = {"gitrun-1-2-old": day_ago, "gitrun-3-4-fresh": time.time(), "lfs-own": day_ago}
    for name, when in names.items():
        path = os.path.join(tmp, name)
        open(path, "wb").close()
        os.utime(path, (when, when))
    journal.sweep(r)
    assert sorted(os.listdir(tmp)) == ["gitrun-3-4-fresh", "lfs-own"]
    # a fresh one survives even a sweep of every other leftover at age 0
    journal.sweep(r, age=0)
    assert sorted(os.listdir(tmp)) == ["gitrun-3-4-fresh", "lfs-own"]


def test_preview_streams_a_large_artifact_verified_or_says_it_is_not_here(repo):
    from gitrun.ui.server import running

    _ok("config", "large-file-threshold", "1MB")
    (repo / ".gitignore").write_text("*.log\n*.txt\n")
    text = ("line of text\n" * 90_000).encode()  # over 1 MB
    (repo / "big.txt").write_bytes(text)
    _ok("record", "-q", "-n", "p", "-a", "big.txt", "--", "true")
    rid = _show("p")["run_id"]
    r = Repo.discover(str(repo))
    obj = lfs.object_path(r, hashlib.sha256(text).hexdigest())

    def get(base):
        q = urllib.parse.urlencode({"run_id": rid, "path": "big.txt"})
        try:
            with urllib.request.urlopen(f"{base}/api/gitrun/preview?{q}", timeout=30) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    with running(str(repo)) as base:
        status, got = get(base)
        assert status == 200 and got["storage"] == "lfs" and got["truncated"]
        assert got["size"] == len(text) and text.decode().startswith(got["text"])
        assert len(got["text"]) == 128 * 1024
        with open(obj, "r+b") as f:  # damaged: the verified read refuses it
            f.write(b"X")
        status, got = get(base)
        assert status >= 400 and "sha256" in got["message"]
        os.unlink(obj)
        status, got = get(base)
        assert status == 400 and got["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert "not in this clone" in got["message"]


def test_stored_copies_need_the_whole_content(repo):
    """stored_copies trusts no partial copy: a directory whose copy misses a file (history
    written by someone else) is not restorable."""
    from gitrun.format.entities import Artifact, Input, RunRecord

    listing = {"a": b"1", "b": b"2"}
    inp = Input("d", "dir", 2, _listing_digest(listing), "", [], 2)
    arts = {
        f"gitrun.inputs/d/{k}": Artifact(f"gitrun.inputs/d/{k}", 1, _sha(v)[7:], "git", None)
        for k, v in listing.items()
    }
    rec = RunRecord(run_id="a" * 32, run_name="x", experiment="e", status="FINISHED")
    rec.inputs = {"d": inp}
    rec.artifacts = dict(arts)
    assert [a.path for a in store.stored_copies(rec)["d"]] == sorted(arts)
    del rec.artifacts["gitrun.inputs/d/b"]
    assert store.stored_copies(rec) == {}


def test_a_stored_input_is_not_read_again_to_be_checked(repo):
    import gitrun
    from gitrun.capture import inputs as hashing

    (repo / "d.csv").write_bytes(b"1,2\n")
    with gitrun.start_run(run_name="s"):
        gitrun.log_input("d.csv", store=True)
    hashing.stats.update(hits=0, reads=0)
    (now,) = hashing.hash_paths(Repo.discover(str(repo)), ["d.csv"])
    assert now.digest == _sha(b"1,2\n") and hashing.stats == {"hits": 1, "reads": 0}
    assert _show("s")["inputs"][0]["stored"] is True


def _has_lfs() -> bool:
    import subprocess

    try:
        return subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _has_lfs(), reason="git-lfs is not installed")
def test_a_fresh_clone_reruns_on_the_stored_copy_from_lfs(repo, bare_remote, tmp_path):
    git(repo, "remote", "add", "origin", str(bare_remote))
    (repo / ".gitignore").write_text("*.log\ndata/\n")
    git(repo, "commit", "-qam", "ignore data")
    git(repo, "push", "-q", "origin", "main")
    _ok("config", "large-file-threshold", "1MB")
    (repo / "data").mkdir()
    data = os.urandom(MB + 10)
    (repo / "data" / "big.bin").write_bytes(data)
    (repo / "count.py").write_text(
        "import gitrun\ngitrun.log_metric('n', len(open('data/big.bin', 'rb').read()))\n"
    )
    git(repo, "add", "count.py")
    git(repo, "commit", "-qm", "count")
    _ok("record", "-q", "-n", "r", "-i", "data/big.bin", "--store", "--", sys.executable,
        "count.py")  # fmt: skip
    _ok("push")
    c = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(c))
    _ok("pull", cwd=c)
    assert not (c / "data").exists()  # ignored: only the stored copy has it
    p = run_cli("rerun", "r", cwd=c)
    assert p.returncode == 0, p.stderr
    assert "Reproduced" in p.stdout
    rerun = json.loads(_ok("show", "r-rerun", "--format", "json", cwd=c).stdout)
    assert rerun["metrics"]["n"] == len(data)
    assert rerun["inputs"][0]["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
