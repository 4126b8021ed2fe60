"""Large artifacts: Git LFS pointers and objects, push/pull through the real `git lfs`
against a bare remote on disk (with GitHub's 100 MB blob limit as a pre-receive hook),
checkout fetching and verifying, constant memory, and the fsspec object store (a local
directory, and S3 through moto's real server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import git, run_cli

MB = 1024 * 1024


def _has_lfs() -> bool:
    try:
        return subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0
    except OSError:
        return False


needs_lfs = pytest.mark.skipif(not _has_lfs(), reason="git-lfs is not installed")

HOOK = """#!/bin/sh
# GitHub's rule: no blob over 100 MB (GH_TEST_BLOB_LIMIT lowers it to check the hook).
limit=${GH_TEST_BLOB_LIMIT:-104857600}
zero=0000000000000000000000000000000000000000
while read old new ref; do
  [ "$new" = "$zero" ] && continue
  if [ "$old" = "$zero" ]; then set -- "$new" --not --all; else set -- "$old..$new"; fi
  big=$(git rev-list --objects "$@" |
        git cat-file --batch-check='%(objecttype) %(objectsize) %(objectname) %(rest)' |
        awk -v l="$limit" '$1 == "blob" && $2 > l {print $3; exit}')
  if [ -n "$big" ]; then
    echo "error: GH001: Large files detected: blob $big is over $limit bytes" >&2
    exit 1
  fi
done
exit 0
"""


def big_file(path: Path, size: int) -> str:
    """Write `size` bytes fast (a random 1 MiB block, numbered per MiB); its sha256."""
    block = os.urandom(MB)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(0, size, MB):
            chunk = (i.to_bytes(8, "big") + block[8:])[: min(MB, size - i)]
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MB):
            h.update(chunk)
    return h.hexdigest()


def runs_tree(d: Path) -> dict[str, str]:
    """path -> blob id of every file on refs/gitrun/runs."""
    out = git(d, "ls-tree", "-r", "refs/gitrun/runs")
    return {line.split("\t")[1]: line.split()[2] for line in out.splitlines()}


def manifest(d: Path, run_id: str) -> list[list[str]]:
    text = git(d, "show", f"refs/gitrun/runs:runs/{run_id[:2]}/{run_id}/artifacts.tsv")
    return [row.split("\t") for row in text.splitlines()]


def last_run(d: Path) -> str:
    """The run the newest commit on refs/gitrun/runs recorded (its Gitrun-Run trailer)."""
    body = git(d, "log", "-1", "--format=%B", "refs/gitrun/runs")
    return next(ln.split()[1] for ln in body.splitlines() if ln.startswith("Gitrun-Run:"))


def api_run(d: Path, files: list[str], params: dict[str, str] | None = None) -> str:
    """A finished run logging `files` (paths under d) as artifacts, through the API."""
    import gitrun

    with gitrun.start_run() as run:
        for k, v in (params or {}).items():
            gitrun.log_param(k, v)
        for f in files:
            gitrun.log_artifact(str(d / f))
    return run.info.run_id


@pytest.fixture
def remote_repo(repo, bare_remote):
    git(repo, "remote", "add", "origin", str(bare_remote))
    (repo / ".gitignore").write_text("*.log\n*.bin\nout/\n")
    git(repo, "commit", "-qam", "ignore artifacts")
    return repo


def clone(tmp_path: Path, remote: Path, name: str = "clone") -> Path:
    d = tmp_path / name
    git(tmp_path, "clone", "-q", str(remote), str(d))
    return d


# ---------------------------------------------------------------------------
# logging: which artifacts go where
# ---------------------------------------------------------------------------
@needs_lfs
def test_large_artifact_is_an_lfs_pointer_and_small_ones_stay_blobs(remote_repo):
    import gitrun

    r = remote_repo
    git(r, "config", "gitrun.largeFileThreshold", "1MB")
    digest = big_file(r / "model.bin", 3 * MB)
    (r / "small.txt").write_text("tiny\n")
    with gitrun.start_run() as run:
        gitrun.log_artifact(str(r / "model.bin"))
        gitrun.log_artifact(str(r / "small.txt"))
    rid = run.info.run_id
    rows = {row[0]: row for row in manifest(r, rid)[1:]}
    assert manifest(r, rid)[0] == ["path", "size", "sha256", "storage"]  # no location column
    assert rows["model.bin"] == ["model.bin", str(3 * MB), digest, "lfs"]
    assert rows["small.txt"][3] == "git"
    tree = runs_tree(r)
    base = f"runs/{rid[:2]}/{rid}/artifacts/"
    ptr = git(r, "cat-file", "blob", tree[base + "model.bin"])
    assert ptr == (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {3 * MB}\n"
    )
    from gitrun.format import lfs

    assert lfs.parse_pointer(ptr.encode()) == (digest, 3 * MB)
    assert lfs.parse_pointer(ptr.encode() + b"ext-0-foo sha256:00\n") is None
    # git-lfs itself accepts it as a pointer, and the object is where git-lfs keeps it.
    check = subprocess.run(
        ["git", "lfs", "pointer", "--check", "--stdin"], input=ptr.encode(), cwd=r
    )
    assert check.returncode == 0
    obj = r / ".git" / "lfs" / "objects" / digest[:2] / digest[2:4] / digest
    assert sha256(obj) == digest
    assert git(r, "cat-file", "blob", tree[base + "small.txt"]) == "tiny\n"
    assert not list((r / ".git" / "lfs" / "tmp").iterdir())  # nothing left half-written


def test_threshold_and_store_settings_are_checked(remote_repo):
    r = remote_repo
    out = run_cli("config", "large-file-threshold", cwd=r)
    assert out.stdout.strip() == "50MB"
    bad = run_cli("config", "large-file-threshold", "lots", cwd=r)
    assert bad.returncode == 1 and "is not a size" in bad.stderr
    assert "Traceback" not in bad.stderr
    for url, words in (
        ("s3://AKIA:secret@bucket/x", "holds credentials"),
        ("ftp://host/x", "not an artifact store gitrun knows"),
        ("s3:///nobucket", "names no bucket"),
    ):
        res = run_cli("config", "artifact-store", url, cwd=r)
        assert res.returncode == 1 and words in res.stderr, res.stderr
    assert git(r, "config", "--get-regexp", "gitrun", check=False) == ""  # nothing written
    small = run_cli("config", "large-file-threshold", "100k", cwd=r)
    assert small.returncode == 1 and "at least 1MB" in small.stderr
    assert run_cli("config", "large-file-threshold", "2MB", cwd=r).returncode == 0
    assert run_cli("config", "large-file-threshold", cwd=r).stdout.strip() == "2MB"


# ---------------------------------------------------------------------------
# push / pull / checkout through git lfs, past GitHub's 100 MB limit
# ---------------------------------------------------------------------------
@needs_lfs
def test_200mb_artifact_pushes_past_the_100mb_limit_pulls_and_checks_out(
    remote_repo, bare_remote, tmp_path
):
    r = remote_repo
    hook = bare_remote / "hooks" / "pre-receive"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    # The hook is real: a blob over its limit is refused.
    probe = tmp_path / "probe"
    git(tmp_path, "init", "-q", str(probe))
    (probe / "f").write_bytes(b"x" * 2000)
    git(probe, "add", "f")
    git(probe, "commit", "-qm", "probe")
    refused = subprocess.run(
        ["git", "push", str(bare_remote), "HEAD:refs/heads/probe"],
        cwd=probe,
        capture_output=True,
        text=True,
        env={**os.environ, "GH_TEST_BLOB_LIMIT": "1000"},
    )
    assert refused.returncode != 0 and "GH001" in refused.stderr

    digest = big_file(r / "model.bin", 200 * MB)  # over 100 MB; default threshold 50 MB
    rec = run_cli("record", "-a", "model.bin", "--", sys.executable, "-c", "print('ok')", cwd=r)
    assert rec.returncode == 0, rec.stderr
    rid = last_run(r)
    assert manifest(r, rid)[1][3] == "lfs"
    push = run_cli("push", cwd=r)
    assert push.returncode == 0, push.stderr
    assert "with 1 large artifact through Git LFS" in push.stderr
    remote_obj = bare_remote / "lfs" / "objects" / digest[:2] / digest[2:4] / digest
    assert remote_obj.stat().st_size == 200 * MB
    assert git(bare_remote, "rev-parse", "refs/gitrun/runs").strip()

    c = clone(tmp_path, bare_remote)
    pull = run_cli("pull", cwd=c)
    assert pull.returncode == 0, pull.stderr
    assert "with 1 large artifact through Git LFS" in pull.stderr
    out = run_cli("checkout", rid[:8], "--worktree", str(tmp_path / "wt"), cwd=c)
    assert out.returncode == 0, out.stderr
    assert sha256(tmp_path / "wt" / "model.bin") == digest
    assert "verified against their sha256" in out.stdout + out.stderr


@needs_lfs
def test_checkout_fetches_on_demand_and_names_what_is_missing(remote_repo, bare_remote, tmp_path):
    r = remote_repo
    git(r, "config", "gitrun.largeFileThreshold", "1MB")
    d1 = big_file(r / "a.bin", 2 * MB)
    first = api_run(r, ["a.bin"], {"lr": "0.1"})
    assert run_cli("push", cwd=r).returncode == 0
    # A second run whose LFS object never reaches the remote: its runs ref goes by plain git.
    big_file(r / "b.bin", 2 * MB)
    second = api_run(r, ["b.bin"], {"lr": "0.2"})
    git(r, "push", "-q", "origin", "refs/gitrun/runs:refs/gitrun/runs")

    c = clone(tmp_path, bare_remote)
    git(c, "fetch", "-q", "origin", "refs/gitrun/runs:refs/remotes/origin/gitrun/runs")
    assert run_cli("pull", "--no-fetch", cwd=c).returncode == 0  # no LFS fetch on this path
    assert not (c / ".git" / "lfs" / "objects").exists()
    # On demand: checkout fetches the first run's object from origin and verifies it.
    out = run_cli("checkout", first[:8], "--artifacts-only", str(tmp_path / "one"), cwd=c)
    assert out.returncode == 0, out.stderr
    assert sha256(tmp_path / "one" / "a.bin") == d1
    # The second run's content is nowhere: it still shows, searches and diffs ...
    show = run_cli("show", second[:8], cwd=c)
    assert show.returncode == 0 and "b.bin" in show.stdout
    found = run_cli("search", "params.lr = '0.2'", "--format", "json", cwd=c)
    assert [x["run_id"] for x in json.loads(found.stdout)] == [second]
    diff = run_cli("diff", first[:8], second[:8], cwd=c)
    assert diff.returncode == 0 and "lr" in diff.stdout
    # ... and checkout names the artifact and every place it looked, writing nothing.
    target = tmp_path / "two"
    out = run_cli("checkout", second[:8], "--artifacts-only", str(target), cwd=c)
    assert out.returncode == 1
    err = out.stderr
    assert "'b.bin'" in err and "could not be found" in err
    assert str(c / ".git" / "lfs" / "objects") in err and "remote 'origin'" in err
    assert str(bare_remote) in err
    assert "Traceback" not in err and not target.exists()
    # A pull of a run whose object the remote lacks warns, and the pull still lands.
    c2 = clone(tmp_path, bare_remote, "clone2")
    pull = run_cli("pull", cwd=c2)
    assert pull.returncode == 0
    assert "is not on remote 'origin'" in pull.stderr and "'b.bin'" in pull.stderr


@needs_lfs
def test_a_corrupted_lfs_object_is_refused(remote_repo, tmp_path):
    import gitrun

    r = remote_repo
    git(r, "config", "gitrun.largeFileThreshold", "1MB")
    digest = big_file(r / "model.bin", 2 * MB)
    with gitrun.start_run() as run:
        gitrun.log_artifact(str(r / "model.bin"))
    obj = r / ".git" / "lfs" / "objects" / digest[:2] / digest[2:4] / digest
    obj.chmod(0o644)
    with open(obj, "r+b") as f:  # same size, other bytes
        f.seek(MB)
        f.write(b"\0" * 16)
    target = tmp_path / "out"
    out = run_cli("checkout", run.info.run_id[:8], "--artifacts-only", str(target), cwd=r)
    assert out.returncode == 1
    assert "does not match its record" in out.stderr and "model.bin" in out.stderr
    assert not target.exists()
    # The API's download refuses too, leaving no file (and no temporary file) behind.
    dst = tmp_path / "dl"
    dst.mkdir()
    with pytest.raises(gitrun.exceptions.MlflowException, match="does not match"):
        gitrun.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(dst))
    assert list(dst.iterdir()) == []


@needs_lfs
def test_push_without_git_lfs_says_how_to_install_it_and_pushes_nothing(
    remote_repo, bare_remote, tmp_path
):
    r = remote_repo
    git(r, "config", "gitrun.largeFileThreshold", "1MB")
    big_file(r / "model.bin", 2 * MB)
    assert run_cli("record", "-a", "model.bin", "--", "true", cwd=r).returncode == 0
    bin_dir = tmp_path / "bin"  # a PATH with git but without git-lfs
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    out = run_cli("push", cwd=r, env={"PATH": str(bin_dir)})
    assert out.returncode == 1
    assert "Git LFS is not installed" in out.stderr and "apt-get install git-lfs" in out.stderr
    assert "https://git-lfs.com" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert git(bare_remote, "for-each-ref") == ""  # nothing half-pushed
    assert not (bare_remote / "lfs").exists()


@needs_lfs
def test_push_brings_content_missing_here_from_another_remote(remote_repo, bare_remote, tmp_path):
    r = remote_repo
    git(r, "config", "gitrun.largeFileThreshold", "1MB")
    git(r, "lfs", "install", "--local")  # git-lfs's pre-push hook checks every push too
    digest = big_file(r / "model.bin", 2 * MB)
    api_run(r, ["model.bin"])
    assert run_cli("push", "-q", cwd=r).returncode == 0
    shutil.rmtree(r / ".git" / "lfs" / "objects")  # e.g. `git lfs prune`
    for name in ("other", "third"):
        git(tmp_path, "init", "-q", "--bare", str(tmp_path / f"{name}.git"))
        git(r, "remote", "add", name, str(tmp_path / f"{name}.git"))
    out = run_cli("push", "other", cwd=r)  # fetched from origin, then sent
    assert out.returncode == 0, out.stderr
    assert "with 1 large artifact through Git LFS" in out.stderr
    assert (tmp_path / "other.git" / "lfs" / "objects" / digest[:2] / digest[2:4] / digest).exists()
    # Content nowhere at all: the run still goes (hook or not), with one warning.
    for d in (r / ".git", bare_remote, tmp_path / "other.git"):
        shutil.rmtree(d / "lfs", ignore_errors=True)
    out = run_cli("push", "third", cwd=r)
    assert out.returncode == 0, out.stderr
    assert "'model.bin') is neither in this clone nor on its other remotes" in out.stderr
    assert git(tmp_path / "third.git", "for-each-ref").strip()


# ---------------------------------------------------------------------------
# constant memory
# ---------------------------------------------------------------------------
_MEASURE = """
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True)
sys.stderr.write(p.stderr.decode())
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_rss_kb(cmd: list[str], cwd: Path) -> int:
    """Peak RSS (KiB) of `cmd` and its children, measured in a fresh process so nothing
    this test process ran before counts."""
    p = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], cwd=cwd, capture_output=True, text=True
    )
    rc, kb = p.stdout.split()
    assert rc == "0", p.stderr
    return int(kb)


@needs_lfs
def test_logging_and_restoring_300mb_stays_under_100mb_of_memory(remote_repo, tmp_path):
    r = remote_repo
    (r / "tiny.bin").write_bytes(b"x")
    gitrun_cmd = [sys.executable, "-m", "gitrun"]
    baseline = _peak_rss_kb([*gitrun_cmd, "record", "-a", "tiny.bin", "--", "true"], r)
    digest = big_file(r / "model.bin", 300 * MB)
    logged = _peak_rss_kb([*gitrun_cmd, "record", "-a", "model.bin", "--", "true"], r)
    rid = last_run(r)
    restored = _peak_rss_kb(
        [*gitrun_cmd, "checkout", rid[:8], "--artifacts-only", str(tmp_path / "out")], r
    )
    assert sha256(tmp_path / "out" / "model.bin") == digest
    assert manifest(r, rid)[1][3] == "lfs"
    for what, kb in (("record", logged), ("checkout", restored)):
        assert (kb - baseline) < 100 * 1024, f"{what} peak RSS {kb} KiB vs baseline {baseline}"


# ---------------------------------------------------------------------------
# the object-store backend (fsspec)
# ---------------------------------------------------------------------------
def _store_round_trip(
    r: Path, url: str, location: str, tmp_path: Path, bare_remote: Path
) -> tuple[str, str]:
    """Log a large artifact to the store `url`, push the run (no LFS), check it out in a
    fresh clone; (run id, sha256)."""
    git(r, "config", "gitrun.largeFileThreshold", "1MB")
    assert run_cli("config", "artifact-store", url, cwd=r).returncode == 0
    digest = big_file(r / "model.bin", 2 * MB)
    rid = api_run(r, ["model.bin"])
    assert manifest(r, rid) == [
        ["path", "size", "sha256", "storage", "location"],
        ["model.bin", str(2 * MB), digest, "store", location],
    ]
    assert not any("/artifacts/" in p for p in runs_tree(r))  # no blob, no pointer
    assert run_cli("push", cwd=r).returncode == 0
    c = clone(tmp_path, bare_remote)
    assert run_cli("pull", cwd=c).returncode == 0
    out = run_cli("checkout", rid[:8], "--artifacts-only", str(tmp_path / "out"), cwd=c)
    assert out.returncode == 0, out.stderr
    assert sha256(tmp_path / "out" / "model.bin") == digest
    return rid, digest


def test_file_store_round_trip_and_verification(remote_repo, bare_remote, tmp_path):
    pytest.importorskip("fsspec")
    store = tmp_path / "shared store"
    store.mkdir()
    url = store.as_uri() + "/"
    location = f"file://{store}"  # as recorded: the directory, %20 decoded
    rid, digest = _store_round_trip(remote_repo, url, location, tmp_path, bare_remote)
    obj = store / digest[:2] / digest[2:4] / digest
    assert sha256(obj) == digest
    obj.write_bytes(b"\0" * (2 * MB))  # damaged in the store
    target = tmp_path / "again"
    out = run_cli("checkout", rid[:8], "--artifacts-only", str(target), cwd=remote_repo)
    assert out.returncode == 1 and "does not match its record" in out.stderr
    assert not target.exists()
    obj.unlink()
    out = run_cli("checkout", rid[:8], "--artifacts-only", str(target), cwd=remote_repo)
    assert out.returncode == 1 and "could not be found" in out.stderr
    assert str(obj.relative_to(store)) in out.stderr and not target.exists()


@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_s3_store_against_a_local_s3_server(
    remote_repo, bare_remote, tmp_path, s3_server, monkeypatch
):
    import boto3

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server,
    }.items():
        monkeypatch.setenv(k, v)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="gitrun-artifacts")
    url = "s3://gitrun-artifacts/team"
    rid, digest = _store_round_trip(remote_repo, url, url, tmp_path, bare_remote)
    key = f"team/{digest[:2]}/{digest[2:4]}/{digest}"
    body = s3.get_object(Bucket="gitrun-artifacts", Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest
    # Wrong content under the object's name is refused.
    s3.put_object(Bucket="gitrun-artifacts", Key=key, Body=b"\1" * len(body))
    target = tmp_path / "again"
    out = run_cli("checkout", rid[:8], "--artifacts-only", str(target), cwd=remote_repo)
    assert out.returncode == 1 and "does not match its record" in out.stderr
    assert not target.exists()
