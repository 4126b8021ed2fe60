"""One worker slot of `gitrun sweep`: a long-lived process that runs trials one after the
other in its own git worktree, each as `gitrun record` would record it.

The driver starts it (in a session of its own, so a Ctrl-C typed in the terminal reaches
the driver alone) with one JSON argument:

    {"repo": <work tree>, "worktree": <path under .git/gitrun/worktrees/>,
     "commit": <code commit>, "lock": <path>.lock}

and then writes one trial per line on its stdin (JSON, see `Trial.to_dict`); for each it
answers one JSON line on its stdout: {"index", "run_id", "status", "exit_code",
"metrics", "error"}.  Between trials the worktree is reset to the code commit and
cleaned (`reset --hard`, `clean -ffdx`: inside that worktree only).  When its stdin
ends (the sweep is over, or its driver died) it finishes the trial at hand, removes
the worktree and exits; while it lives it holds an flock on the .lock file, which is how
a later sweep tells a leftover worktree from one in use.

SIGTERM: passed on to the trial's command (record's own handling: the run is recorded
KILLED); between trials it ends the worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
from typing import IO, Any

from .._git import Repo

# `git worktree add` would run the user's post-checkout hook: not for a trial's worktree.
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")


class _Stop(Exception):
    pass


_busy = False
_stopping = False


def _on_term(signum: int, frame: Any) -> None:
    global _stopping
    _stopping = True
    if not _busy:
        raise _Stop()


class _AdminLock:
    """Serializes `git worktree add/remove/prune` of parallel workers: git reads every
    worktree's admin files while adding one, and fails on one being written."""

    def __init__(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        self.path = os.path.join(root, ADMIN_LOCK)
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        os.close(self.fd)


ADMIN_LOCK = ".admin.lock"  # in .git/gitrun/worktrees/


def add_worktree(repo: Repo, path: str, commit: str) -> None:
    """A detached worktree of `commit` at `path` (the user's HEAD and branches untouched)."""
    with _AdminLock(os.path.dirname(path)):
        repo.git(*_NO_HOOKS, "worktree", "add", "-q", "--detach", "--force", path, commit)


def remove_worktree(repo: Repo, path: str) -> None:
    with _AdminLock(os.path.dirname(path)):
        repo.git("worktree", "remove", "--force", "--force", path, check=False)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            repo.git("worktree", "prune", check=False)


def reset_worktree(path: str, commit: str) -> None:
    """Back to the code commit, everything the last trial wrote removed (this worktree only)."""
    wt = Repo.discover(path)
    wt.git(*_NO_HOOKS, "reset", "-q", "--hard", commit, cwd=path)
    wt.git("clean", "-q", "-ffdx", cwd=path)


def write_params_file(path: str, params: dict[str, str]) -> None:
    """DVC's `exp run -S`: the trial's params set in a YAML/JSON file (dotted names nest),
    keeping what else the file holds."""
    from ..format import yamlio
    from .sweep_space import typed

    data: Any = {}
    is_json = path.endswith(".json")
    if os.path.isfile(path) and not os.path.islink(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        data = (json.loads(text) if is_json else yamlio.load(text)) if text.strip() else {}
        if not isinstance(data, dict):
            data = {}
    for name, value in params.items():
        node = data
        parts = name.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = typed(value)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.islink(path):
        os.unlink(path)  # never write through a symlink out of the worktree
    with open(path, "w", encoding="utf-8") as f:
        if is_json:
            json.dump(data, f, indent=2)
            f.write("\n")
        else:
            import yaml

            yaml.safe_dump(data, f, sort_keys=False, default_flow_style=False)


def _last_output_line(cwd: str, rec: Any) -> str:
    """The last line the failed command printed (its error, usually), for the driver's
    report: the whole output stays in the run (its output.log)."""
    if not getattr(rec, "output_blob", None):
        return ""
    try:
        kind, data = Repo.discover(cwd).read_object(rec.output_blob)
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    lines = [x.strip() for x in data[-4096:].decode(errors="replace").splitlines() if x.strip()]
    return lines[-1][:300] if lines and kind == "blob" else ""


def run_trial(trial: dict[str, Any], worktree: str, first: bool, commit: str) -> dict[str, Any]:
    """Reset the worktree, write the params file, record the command; the result line."""
    global _busy
    from ..errors import GitrunError
    from .record import RecordOptions, record

    out: dict[str, Any] = {"index": trial["index"], "run_id": None, "status": "FAILED"}
    out.update(exit_code=None, metrics={}, error=None)
    try:
        if not first:
            reset_worktree(worktree, commit)
        cwd = os.path.join(worktree, trial.get("cwd") or ".")
        if trial.get("params_file"):
            write_params_file(os.path.join(cwd, trial["params_file"]), trial["params"])
        opts = RecordOptions(
            command=trial["command"],
            name=trial.get("name"),
            experiment=trial.get("experiment"),
            params=trial["params"],
            tags=trial["tags"],
            artifacts=trial.get("artifacts") or [],
            params_file=trial.get("params_file"),
            metrics_file=trial.get("metrics_file"),
            quiet=True,
            extra_env=trial["env"],
            cwd=cwd,
        )
        if _stopping:
            out["status"], out["error"] = "KILLED", "stopped before it started"
            return out
        _busy = True
        try:
            code, rec = record(opts)
        finally:
            _busy = False
        out["exit_code"] = code
        if rec is not None:
            out.update(run_id=rec.run_id, status=rec.status, metrics=dict(rec.metrics))
            if rec.status == "FAILED":
                out["reason"] = _last_output_line(cwd, rec)
    except GitrunError as e:
        out["error"] = str(e)
    except (OSError, ValueError) as e:  # a params file that cannot be written or parsed
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def main(argv: list[str] | None = None) -> None:
    cfg = json.loads((argv or sys.argv[1:])[0])
    # The protocol keeps fd 1; what record pumps to sys.stdout (the command's output, also
    # in its output.log) goes nowhere.
    proto: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; it sends SIGTERM
    signal.signal(signal.SIGTERM, _on_term)
    # In place (a Dask worker's own clone, already at the commit): no worktree, no lock.
    in_place = bool(cfg.get("in_place"))
    lock = -1 if in_place else os.open(cfg["lock"], os.O_RDWR | os.O_CREAT, 0o644)
    if lock >= 0:
        fcntl.flock(lock, fcntl.LOCK_EX)
    repo = Repo.discover(cfg["repo"])
    worktree, commit = cfg.get("worktree") or cfg["repo"], cfg["commit"]
    made = False
    try:
        if not in_place:
            add_worktree(repo, worktree, commit)
            made = True
        proto.write(json.dumps({"ready": True}) + "\n")
        first = True
        while not _stopping:
            line = sys.stdin.readline()
            if not line:
                break
            result = run_trial(json.loads(line), worktree, first, commit)
            first = False
            try:
                proto.write(json.dumps(result) + "\n")
            except OSError:
                pass  # the driver is gone: the run is committed all the same
    except _Stop:
        pass
    except Exception as e:  # the worktree could not be made: tell the driver, once
        try:
            proto.write(json.dumps({"fatal": f"{type(e).__name__}: {e}"}) + "\n")
        except OSError:
            pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if made:
            remove_worktree(repo, worktree)
        if lock >= 0:
            try:
                os.unlink(cfg["lock"])
            except OSError:
                pass
            os.close(lock)


if __name__ == "__main__":
    main()
