"""Inputs (data a run read): record -i, log_input, show same/changed, the stat cache,
search by digest, lineage across runs, rerun refusal on changed inputs."""

from __future__ import annotations

import hashlib
import json
import os
import sys

from conftest import run_cli

from gitrun._git import Repo
from gitrun.capture import inputs as hashing
from gitrun.format.layout import input_cache_path


def _ok(*args):
    p = run_cli(*args)
    assert p.returncode == 0, p.stderr
    return p


def _show(ref):
    return json.loads(_ok("show", ref, "--format", "json").stdout)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_record_inputs_file_and_directory_show_same_changed_missing(repo):
    (repo / ".gitignore").write_text("*.log\ndata/\n")
    (repo / "data" / "img").mkdir(parents=True)
    (repo / "data" / "train.csv").write_bytes(b"a,b\n1,2\n")
    (repo / "data" / "img" / "1.png").write_bytes(b"one")
    (repo / "data" / "img" / "2.png").write_bytes(b"two")
    _ok("record", "-q", "-n", "r1", "-i", "data/train.csv", "-i", "data/img/", "--", "true")
    got = {i["path"]: i for i in _show("r1")["inputs"]}
    assert got["data/train.csv"]["digest"] == _sha(b"a,b\n1,2\n")
    assert got["data/train.csv"]["kind"] == "file" and got["data/train.csv"]["size"] == 8
    listing = f"1.png\t{_sha(b'one')[7:]}\t3\n2.png\t{_sha(b'two')[7:]}\t3\n".encode()
    assert got["data/img"]["kind"] == "dir" and got["data/img"]["digest"] == _sha(listing)
    assert got["data/img"]["files_listed"] == 2
    assert {i["now"] for i in got.values()} == {"same"}
    # the run directory holds inputs.tsv; a run without inputs has none
    _ok("record", "-q", "-n", "plain", "--", "true")
    files = Repo.discover(str(repo)).git("ls-tree", "-r", "--name-only", "refs/gitrun/runs")
    names = files.stdout.decode().split()
    assert sum(n.endswith("/inputs.tsv") for n in names) == 1
    assert _show("plain")["inputs"] == []

    (repo / "data" / "train.csv").write_bytes(b"a,b\n1,3\n")
    (repo / "data" / "img" / "2.png").unlink()
    table = _ok("show", "r1").stdout
    assert "inputs" in table
    got = {i["path"]: i for i in _show("r1")["inputs"]}
    assert got["data/train.csv"]["now"] == "changed"
    assert got["data/train.csv"]["digest_now"] == _sha(b"a,b\n1,3\n")
    assert got["data/img"]["now"] == "changed"
    (repo / "data" / "train.csv").unlink()
    assert _show("r1")["inputs"][0]["now"] == "missing"


def test_record_refuses_a_missing_input_before_the_command_runs(repo):
    p = run_cli("record", "-q", "-i", "nope.csv", "--", "sh", "-c", "touch ran")
    assert p.returncode == 2 and "nope.csv" in p.stderr
    assert not (repo / "ran").exists()
    assert run_cli("ls").stdout.count("FINISHED") == 0


def test_stat_cache_hashes_an_unchanged_file_once(repo):
    r = Repo.discover(str(repo))
    f = repo / "big.bin"
    f.write_bytes(os.urandom(100_000))
    hashing.stats.update(hits=0, reads=0)
    first = hashing.hash_paths(r, [str(f)])[0]
    assert hashing.stats == {"hits": 0, "reads": 1}
    assert os.path.exists(input_cache_path(r))
    again = hashing.hash_paths(r, [str(f)])[0]  # a new cache object: read from disk
    assert again.digest == first.digest and hashing.stats == {"hits": 1, "reads": 1}
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: read again
    assert hashing.hash_paths(r, [str(f)])[0].digest == first.digest
    assert hashing.stats["reads"] == 2
    # a damaged cache is ignored, never fatal
    with open(input_cache_path(r), "w") as out:
        out.write("{not json")
    assert hashing.hash_paths(r, [str(f)])[0].digest == first.digest
    assert hashing.stats["reads"] == 3


def test_search_by_input_digest_and_path(repo):
    (repo / "a.csv").write_bytes(b"1\n")
    (repo / "b.csv").write_bytes(b"2\n")
    _ok("record", "-q", "-n", "ra", "-i", "a.csv", "--", "true")
    _ok("record", "-q", "-n", "rb", "-i", "b.csv", "--", "true")
    digest = _sha(b"1\n")

    def names(q):
        out = _ok("search", q, "--format", "json").stdout
        return sorted(r["tags.mlflow.runName"] for r in json.loads(out))

    assert names(f"inputs.digest = '{digest}'") == ["ra"]
    assert names(f"inputs.digest = '{digest[7:]}'") == ["ra"]  # bare hex
    assert names("inputs.path = 'b.csv'") == ["rb"]
    assert names("inputs.path LIKE '%.csv'") == ["ra", "rb"]
    assert names("inputs.path = 'c.csv'") == []
    bad = run_cli("search", "inputs.size = '1'")
    assert bad.returncode != 0 and "inputs.path" in bad.stderr


def test_lineage_across_three_runs(repo):
    (repo / ".gitignore").write_text("*.log\n*.bin\n")
    _ok("record", "-q", "-n", "A", "-a", "x.bin", "--", "sh", "-c", "echo one > x.bin")
    _ok("record", "-q", "-n", "B", "-i", "x.bin", "-a", "y.bin", "--", "sh", "-c",
        "cat x.bin x.bin > y.bin")  # fmt: skip
    _ok("record", "-q", "-n", "C", "-i", "y.bin", "--", "true")
    chain = json.loads(_ok("lineage", "C", "--format", "json").stdout)["run"]
    assert chain["run_name"] == "C"
    (y,) = chain["inputs"]
    assert y["path"] == "y.bin" and y["produced_by"][0]["artifact"] == "y.bin"
    b = y["produced_by"][0]["run"]
    assert b["run_name"] == "B"
    a = b["inputs"][0]["produced_by"][0]["run"]
    assert a["run_name"] == "A" and a["inputs"] == []
    table = _ok("lineage", "C").stdout
    assert table.index("(C)") < table.index("(B)") < table.index("(A)")

    path = json.loads(_ok("lineage", "x.bin", "--format", "json").stdout)["path"]
    (v,) = path["versions"]
    assert v["current"] and [r["run_name"] for r in v["produced_by"]] == ["A"]
    assert [r["run_name"] for r in v["read_by"]] == ["B"]
    (repo / "x.bin").write_text("two\n")  # a new version nobody read
    path = json.loads(_ok("lineage", "x.bin", "--format", "json").stdout)["path"]
    assert [v["current"] for v in path["versions"]] == [True, False]
    assert "read by run" in _ok("lineage", "x.bin").stdout


def test_rerun_refuses_changed_inputs_unless_allowed(repo):
    (repo / "data.csv").write_text("1\n")  # tracked: the rerun's worktree has it too
    os.system("git add data.csv && git commit -qm data")
    _ok("record", "-q", "-n", "r", "-i", "data.csv", "--", sys.executable, "train.py")
    old = _sha(b"1\n")
    (repo / "data.csv").write_text("2\n")
    p = run_cli("rerun", "r")
    assert p.returncode == 1
    assert "data.csv" in p.stderr and old[7:19] in p.stderr and _sha(b"2\n")[7:19] in p.stderr
    assert "--allow-changed-inputs" in p.stderr
    assert "r-rerun" not in run_cli("ls").stdout  # nothing ran
    run_cli("rerun", "r", "--allow-changed-inputs", "-q")
    rerun = _show("r-rerun")
    assert "data.csv" in rerun["tags"]["gitrun.rerun.changed_inputs"]
    assert rerun["inputs"][0]["digest"] == old  # the rerun read the committed data again
    (repo / "data.csv").write_text("1\n")
    assert run_cli("rerun", "r", "-q").returncode == 0


def test_log_input_path_and_pandas_dataset(repo):
    (repo / "train.csv").write_text("x,y\n1,2\n")
    (repo / "train.py").write_text(
        "import gitrun, pandas as pd\n"
        "import gitrun.data\n"
        "gitrun.log_input('train.csv', context='training')\n"
        "df = pd.DataFrame({'x': [1, 2], 'y': [3.0, 4.0]})\n"
        "ds = gitrun.data.from_pandas(df, source='train.csv', name='frame')\n"
        "gitrun.log_input(ds, context='eval', tags={'k': 'v'})\n"
        "import numpy as np\n"
        "gitrun.log_input(gitrun.data.from_numpy(np.arange(4), name='arr'))\n"
    )
    _ok("record", "-q", "-n", "api", "--", sys.executable, "train.py")
    got = {i["path"]: i for i in _show("api")["inputs"]}
    assert got["train.csv"]["context"] == "training" and got["train.csv"]["now"] == "same"
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({"x": [1, 2], "y": [3.0, 4.0]})
    assert got["frame"] == {
        "path": "frame",
        "kind": "dataset",
        "size": len(df.to_csv().encode()),
        "digest": _sha(df.to_csv().encode()),
        "context": "eval",
    }
    assert got["arr"]["kind"] == "dataset" and got["arr"]["digest"].startswith("sha256:")
    from gitrun.tracking.datasets import from_numpy

    assert from_numpy(np.arange(4)).digest == got["arr"]["digest"]
    assert from_numpy(np.arange(4).astype("int32")).digest != got["arr"]["digest"]
    hits = json.loads(_ok("search", "datasets.name = 'frame'", "--format", "json").stdout)
    assert [r["tags.mlflow.runName"] for r in hits] == ["api"]
