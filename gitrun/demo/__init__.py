"""`gitrun demo`: the whole story on a bundled example, through the real CLI."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

DEMO_ENV = {
    "GIT_AUTHOR_NAME": "gitrun demo",
    "GIT_AUTHOR_EMAIL": "demo@gitrun.invalid",
    "GIT_COMMITTER_NAME": "gitrun demo",
    "GIT_COMMITTER_EMAIL": "demo@gitrun.invalid",
}


class Demo:
    def __init__(self, root: str, quiet: bool) -> None:
        self.root = root
        self.quiet = quiet
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("GITRUN_") or k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
                del self.env[k]
        for k, v in DEMO_ENV.items():
            self.env.setdefault(k, v)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"\n# {text}", flush=True)

    def run(self, *args: str, ok: tuple[int, ...] = (0,), cwd: str | None = None) -> int:
        argv = list(args)
        shown = shlex.join(argv)
        if argv[0] == "gitrun":
            argv = [sys.executable, "-m", "gitrun", *argv[1:]]
        if not self.quiet:
            print(f"$ {shown}", flush=True)
        out = subprocess.DEVNULL if self.quiet else None
        rc = subprocess.run(
            argv, cwd=cwd or self.root, env=self.env, stdout=out, stderr=out
        ).returncode
        if rc not in ok:
            raise SystemExit(f"gitrun demo: `{shown}` exited with {rc}; stopping the demo.")
        return rc

    def record(self, name: str, *train_args: str) -> None:
        """`gitrun record` one training run of the demo experiment."""
        self.run(
            "gitrun",
            "record",
            "-n",
            name,
            "-e",
            "demo",
            "--",
            sys.executable,
            "train.py",
            *train_args,
        )

    def best_run_id(self) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "gitrun",
                "search",
                "--order-by",
                "metrics.f1_score DESC",
                "--max-results",
                "1",
                "--columns",
                "run_id",
                "--format",
                "csv",
                "-e",
                "demo",
            ],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return out[1]


def run_demo(directory: str | None, quiet: bool = False) -> int:
    root = os.path.abspath(directory) if directory else tempfile.mkdtemp(prefix="gitrun-demo-")
    if os.path.exists(os.path.join(root, ".git")) or (os.path.isdir(root) and os.listdir(root)):
        raise SystemExit(
            f"gitrun demo: {root} is not empty; give a new or empty directory for the demo."
        )
    os.makedirs(root, exist_ok=True)
    d = Demo(root, quiet)
    d.say(f"A scratch git repository with a small training script, in {root}")
    for name in ("train.py", "params.yaml"):
        shutil.copy(os.path.join(HERE, name), os.path.join(root, name))
    with open(os.path.join(root, ".gitignore"), "w") as f:
        f.write("model.npy\nreport.json\n")
    d.run("git", "init", "-q", "-b", "main")
    d.run("git", "add", ".")
    d.run("git", "commit", "-q", "-m", "Add training script")

    d.say("Record a few runs: each is a commit on refs/gitrun/runs; the branch is untouched")
    for lr, l2 in (("0.01", "0.0"), ("0.1", "0.0"), ("0.5", "0.01")):
        d.record(f"lr-{lr}", "--lr", lr, "--l2", l2)

    d.say("An uncommitted edit: gitrun snapshots the exact work tree, the branch stays as it is")
    with open(os.path.join(root, "train.py"), "a") as f:
        f.write("# tried more epochs\n")
    d.record("lr-0.3-long", "--lr", "0.3", "--epochs", "60")
    d.run("git", "status", "--short")

    d.say("What was run")
    d.run("gitrun", "ls")
    d.run("gitrun", "show", "lr-0.3-long")
    d.run("git", "log", "--oneline", "--first-parent", "refs/gitrun/runs")

    d.say("Search history by metric (MLflow's filter syntax, plus OR and min/max)")
    d.run(
        "gitrun",
        "search",
        "metrics.f1_score > 0.5 and (params.lr >= 0.1 or params.l2 > 0) and metrics.loss.min < 0.6",
        "--order-by",
        "metrics.f1_score DESC",
    )
    best = d.best_run_id()

    d.say("Check the best run out into its own worktree; this work tree is not touched")
    wt = os.path.join(root + "-best")
    d.run("gitrun", "checkout", best, "--worktree", wt)

    d.say("Rerun it on its recorded code and verify metrics and artifacts come out the same")
    d.run("gitrun", "rerun", best)

    if not quiet:
        print(
            f"\nDone. The demo repository is {root}; try `cd {root} && gitrun ls`, "
            "or `gitrun ui` there to look at the runs in a browser."
        )
    return 0
