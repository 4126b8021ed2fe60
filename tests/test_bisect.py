"""gitrun bisect: a real 16-commit history, a trainer whose f1 drops at one commit, real
`git bisect` in a temporary worktree, every step a real `gitrun record` run."""

from __future__ import annotations

import json

import pytest
from conftest import git, run_cli, snapshot_state

TRAIN = "import gitrun\nq = float(open('quality.txt').read())\ngitrun.log_metric('f1', q)\n"


def _history(d, n=16, regress_at=11, broken_at=None):
    """Commits 1..n; quality 0.97 before `regress_at`, 0.80 from it on; at `broken_at` the
    trainer does not even run. Returns the commit ids, oldest first."""
    commits = []
    for i in range(1, n + 1):
        (d / "quality.txt").write_text("0.97\n" if i < regress_at else "0.80\n")
        (d / "train.py").write_text(TRAIN if i != broken_at else "this is not python\n")
        (d / "step.txt").write_text(f"{i}\n")
        git(d, "add", ".")
        git(d, "commit", "-qm", f"change {i}" + (" (the regression)" if i == regress_at else ""))
        commits.append(git(d, "rev-parse", "HEAD").strip())
    return commits


def _runs_with_tag(d, session):
    p = run_cli("search", f"tags.gitrun.bisect = '{session}'", "--format", "json", cwd=d)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _bisect_json(repo, good, bad, *rest, metric="metrics.f1 >= 0.95"):
    """`gitrun bisect --good G --bad B --metric M --format json [REST]`, which must succeed."""
    args = ["--good", good, "--bad", bad, "--metric", metric, "--format", "json", *rest]
    p = run_cli("bisect", *args, cwd=repo)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_bisect_finds_the_regressing_commit_in_few_steps(repo):
    commits = _history(repo)
    before = snapshot_state(repo)
    out = _bisect_json(repo, commits[0], commits[-1], "--", "python", "train.py")
    assert out["first_bad_commit"] == commits[10]
    assert out["subject"] == "change 11 (the regression)"
    assert "quality.txt" in out["stat"]
    assert 1 <= len(out["steps"]) <= 5
    # every step is a real run, tagged with the session, at the commit it judged
    made = _runs_with_tag(repo, out["session"])
    assert len(made) == len(out["steps"])
    judged = {s["commit"]: s["verdict"] for s in out["steps"]}
    for c, verdict in judged.items():
        assert verdict == ("good" if commits.index(c) < 10 else "bad")
    # the user's HEAD, branch, index, work tree, refs and bisect state are untouched
    assert snapshot_state(repo) == before
    assert not (repo / ".git" / "BISECT_LOG").exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_bisect_skips_a_commit_that_does_not_run(repo):
    commits = _history(repo, broken_at=8)
    out = _bisect_json(repo, commits[0], commits[-1], "--", "python", "train.py")
    assert out["first_bad_commit"] == commits[10]
    skipped = [s for s in out["steps"] if s["verdict"] == "skip"]
    assert all(s["commit"] == commits[7] for s in skipped)


def test_bisect_defaults_to_the_bad_runs_command_and_reuses_runs(repo):
    commits = _history(repo, n=8, regress_at=5)
    # runs recorded by the user at the two ends (HEAD moves only through the user's git)
    git(repo, "checkout", "-q", commits[0])
    assert run_cli("record", "-n", "v1", "-q", "--", "python", "train.py", cwd=repo).returncode == 0
    git(repo, "checkout", "-q", "main")
    assert run_cli("record", "-n", "v8", "-q", "--", "python", "train.py", cwd=repo).returncode == 0
    p = run_cli("bisect", "--good", "v1", "--bad", "v8", "--metric", "metrics.f1 >= 0.95", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert f"First bad commit: {commits[4]} change 5 (the regression)" in p.stdout
    assert "bisect step" in p.stderr  # progress on stderr
    # a second bisect with --reuse judges every commit from the runs the first one made
    out = _bisect_json(repo, "v1", "v8", "--reuse")
    assert out["first_bad_commit"] == commits[4]
    assert out["steps"] and all(s["reused"] for s in out["steps"])
    assert _runs_with_tag(repo, out["session"]) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric", "metrics.f1 >="], "metrics.f1"),
        (["--metric", "params.lr = '1'"], "names no metric"),
        (["--good", "nosuchthing"], "neither a run"),
        (["--good", "HEAD", "--bad", "HEAD~3"], "not an ancestor"),
        (["--good", "HEAD"], "same commit"),
    ],
)
def test_bad_input_is_one_sentence_and_writes_nothing(repo, args, message):
    _history(repo, n=4, regress_at=3)
    opts = {"--good": "HEAD~3", "--bad": "HEAD", "--metric": "metrics.f1 >= 0.95"}
    for k, v in zip(args[::2], args[1::2]):
        opts[k] = v
    before = snapshot_state(repo)
    runs_before = git(repo, "for-each-ref", "refs/gitrun/")
    flat = [x for kv in opts.items() for x in kv]
    p = run_cli("bisect", *flat, "--", "python", "train.py", cwd=repo)
    assert p.returncode in (1, 2)
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert snapshot_state(repo) == before
    assert git(repo, "for-each-ref", "refs/gitrun/") == runs_before


def test_good_run_where_the_predicate_fails_is_refused(repo):
    commits = _history(repo, n=4, regress_at=2)
    git(repo, "checkout", "-q", commits[2])
    assert (
        run_cli("record", "-n", "low", "-q", "--", "python", "train.py", cwd=repo).returncode == 0
    )
    git(repo, "checkout", "-q", "main")
    p = run_cli(
        "bisect",
        "--good",
        "low",
        "--bad",
        "HEAD",
        "--metric",
        "metrics.f1 >= 0.95",
        "--",
        "python",
        "train.py",
        cwd=repo,
    )
    assert p.returncode == 1
    assert "does not hold for the good run" in p.stderr


def test_data_git_ignores_comes_from_the_bad_runs_stored_copy(repo):
    """The trainer reads data/ (ignored by git, so in no worktree); the bad run kept it with
    -i data/scale.txt --store, and every bisect step gets that copy back."""
    reader = (
        "import gitrun\n"
        "s = float(open('data/scale.txt').read())\n"
        "gitrun.log_metric('f1', s * float(open('quality.txt').read()))\n"
    )
    (repo / ".gitignore").write_text("*.log\ndata/\n")
    commits = []
    for i in range(1, 9):
        (repo / "quality.txt").write_text("0.97\n" if i < 6 else "0.80\n")
        (repo / "train.py").write_text(reader)
        (repo / "step.txt").write_text(f"{i}\n")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", f"change {i}")
        commits.append(git(repo, "rev-parse", "HEAD").strip())
    (repo / "data").mkdir()
    (repo / "data" / "scale.txt").write_text("1.0\n")
    p = run_cli(
        "record",
        "-q",
        "-n",
        "bad",
        "-i",
        "data/scale.txt",
        "--store",
        "--",
        "python",
        "train.py",
        cwd=repo,
    )
    assert p.returncode == 0, p.stderr
    out = _bisect_json(repo, commits[0], "bad")
    assert out["first_bad_commit"] == commits[5]
    assert all(s["verdict"] != "skip" for s in out["steps"])


def test_the_bad_runs_autolog_is_repeated_at_every_step(repo):
    """A script with no gitrun in it, recorded with --autolog: every bisect step autologs
    too, so the predicate's metric is there (it was left out, and every step skipped)."""
    pytest.importorskip("sklearn")
    fit = (
        "from sklearn.linear_model import LinearRegression\n"
        "noise = float(open('noise.txt').read())\n"
        "X = [[float(i)] for i in range(20)]\n"
        "y = [2.0 * i + (noise if i % 2 else -noise) for i in range(20)]\n"
        "LinearRegression().fit(X, y)\n"
    )
    commits = []
    for i in range(1, 6):
        (repo / "noise.txt").write_text("0\n" if i < 4 else "9\n")
        (repo / "train.py").write_text(fit)
        (repo / "step.txt").write_text(f"{i}\n")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", f"change {i}")
        commits.append(git(repo, "rev-parse", "HEAD").strip())
    p = run_cli("record", "-q", "-n", "bad", "--autolog", "--", "python", "train.py", cwd=repo)
    assert p.returncode == 0, p.stderr
    out = _bisect_json(repo, commits[0], "bad", metric="metrics.training_score >= 0.99")
    assert out["first_bad_commit"] == commits[3]
    assert out["steps"] and all(s["verdict"] != "skip" for s in out["steps"])
