"""gitrun's own object and ref writing, checked by git itself."""

from __future__ import annotations

import os

import gitrun
from gitrun._git import PACK_LIMIT, Repo, write_pack
from gitrun.format import store
from tests.conftest import git


def test_pack_written_by_gitrun_is_valid_for_git(repo):
    r = Repo.discover(str(repo))
    objects = {}
    with r.batch():
        blob = r.write_blob(b"hello\n")
        big = r.write_blob(os.urandom(100_000))  # a size needing several header bytes
        tree = r.write_tree([("100644", "a.txt", blob), ("100644", "big.bin", big)])
        commit = r.write_commit(tree, [], "packed\n")
        objects = dict(r._pending or {})
        assert r.read_object(blob) == ("blob", b"hello\n")  # readable before it is written
    assert len(objects) == 4
    packs = [n for n in os.listdir(repo / ".git/objects/pack") if n.endswith(".pack")]
    assert len(packs) == 1
    out = git(repo, "verify-pack", "-v", str(repo / ".git/objects/pack" / packs[0]))
    for sha in (blob, big, tree, commit):
        assert sha in out
    assert git(repo, "cat-file", "-p", f"{commit}:a.txt") == "hello\n"
    assert not os.path.exists(repo / ".git/objects" / blob[:2] / blob[2:])  # not loose
    git(repo, "fsck", "--strict", "--no-dangling")


def test_write_pack_names_pack_by_its_checksum(repo):
    r = Repo.discover(str(repo))
    blobs = {}
    for data in (b"a", b"b", b"c"):
        header = f"blob {len(data)}\0".encode()
        blobs[r.hash_object(header, data)] = ("blob", data)
    packdir = repo / ".git/objects/pack"
    name = write_pack(str(packdir), blobs)
    body = (packdir / f"{name}.pack").read_bytes()
    assert name == "pack-" + body[-20:].hex()
    idx = (packdir / f"{name}.idx").read_bytes()
    assert idx[-40:-20] == body[-20:]  # the index names the pack it describes
    for sha in blobs:
        assert git(repo, "cat-file", "-t", sha).strip() == "blob"


def test_many_runs_keep_few_packs_and_a_sound_repository(repo):
    for i in range(PACK_LIMIT + 10):
        with gitrun.start_run(run_name=f"r{i}"):
            gitrun.log_metric("m", i)
    packs = [n for n in os.listdir(repo / ".git/objects/pack") if n.endswith(".idx")]
    assert len(packs) <= PACK_LIMIT + 1
    git(repo, "fsck", "--strict", "--no-dangling")
    r = Repo.discover(str(repo))
    assert len(store.list_run_trees(r)) == PACK_LIMIT + 10
    chain = git(repo, "log", "--first-parent", "--format=%s", store.RUNS_REF).splitlines()
    assert chain[0].startswith(f"r{PACK_LIMIT + 9} ")
    git(repo, "gc", "-q")  # git's own maintenance keeps every run
    assert len(store.list_run_trees(Repo(r.git_dir, r.common_dir, r.work_tree))) == PACK_LIMIT + 10
