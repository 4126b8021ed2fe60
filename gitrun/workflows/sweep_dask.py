"""`gitrun sweep --executor dask`: trials on a Dask distributed cluster.

A worker needs gitrun and git access to the repository's remote, nothing else: the
driver pushes the sweep's code commit to the remote (refs/gitrun/sweeps/<sweep id>); each
trial task fetches it into a clone of its own (slot-<n> under the temp directory's
gitrun-dask/: one per concurrent task, kept and reused between trials), checks it out,
records the trial there with the same worker as local sweeps (workflows/sweep_worker.py,
in place), and pushes the run with `gitrun push`'s race-safe path (workflows/sync.py).
The driver pulls as results arrive, so every trial ends up in its repository once.

Ctrl-C: a Dask Event tells running tasks to stop their command (recorded KILLED, then
pushed) and tasks starting after it to return at once (their trials count as killed,
with no run: --resume runs them).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .._git import Repo
from ..errors import RemoteError, UsageError, require
from ..format.layout import sweep_code_ref
from .sweep import result_without_run, worker_command


def clone_root(url: str) -> str:
    """Where a Dask worker machine keeps its clones of the remote at `url`."""
    h = hashlib.sha1(url.encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), "gitrun-dask", h)


def _take_clone(url: str) -> tuple[str, int]:
    """A clone directory no other task on this machine uses now (slot-<n>, kept between
    trials and reused by later tasks and worker processes), with its flock held."""
    import fcntl

    root = clone_root(url)
    os.makedirs(root, exist_ok=True)
    n = 0
    while True:
        fd = os.open(os.path.join(root, f"slot-{n}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return os.path.join(root, f"slot-{n}"), fd
        except OSError:
            os.close(fd)
            n += 1


def _git(cwd: str, *args: str) -> None:
    from .._git import git_env

    p = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args],
        cwd=cwd,
        env=git_env(),
        capture_output=True,
    )
    if p.returncode != 0:
        msg = p.stderr.decode(errors="replace").strip().splitlines()
        raise RemoteError(f"git {args[0]} failed on a Dask worker: {msg[-1] if msg else ''}")


def run_remote_trial(
    url: str, ref: str, commit: str, trial: dict[str, Any], stop_event: str | None = None
) -> dict[str, Any]:
    """The task a Dask worker runs: fetch, check out, record the trial, push the run."""
    if stop_event and _stopped(stop_event):  # Ctrl-C came before this task started
        return result_without_run(trial["index"], "KILLED")
    d, lock = _take_clone(url)
    try:
        return _run_in_clone(d, url, ref, commit, trial, stop_event)
    finally:
        os.close(lock)


def _run_in_clone(
    d: str, url: str, ref: str, commit: str, trial: dict[str, Any], stop_event: str | None
) -> dict[str, Any]:
    from . import sync

    if not os.path.isdir(os.path.join(d, ".git")):
        import shutil

        shutil.rmtree(d, ignore_errors=True)  # a clone that never finished
        _git(os.path.dirname(d), "clone", "-q", "--no-checkout", url, d)
    _git(d, "fetch", "-q", "origin", f"+{ref}:{ref}")
    _git(d, "checkout", "-q", "--detach", "--force", commit)
    _git(d, "clean", "-q", "-ffdx")
    cfg = {"repo": d, "commit": commit, "in_place": True}
    proc = subprocess.Popen(
        [*worker_command(), json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=d,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(trial) + "\n").encode())
    proc.stdin.close()
    watcher = None
    if stop_event:
        watcher = threading.Thread(target=_watch, args=(stop_event, proc), daemon=True)
        watcher.start()
    result: dict[str, Any] = {}
    for line in proc.stdout:
        msg = json.loads(line)
        if "index" in msg:
            result = msg
    proc.wait()
    if not result:
        error = "the trial's worker process ended unexpectedly"
        return result_without_run(trial["index"], "FAILED", error)
    if result.get("run_id"):
        sync.push(Repo.discover(d), "origin", quiet=True)
    return result


def _stopped(name: str) -> bool:
    from distributed import Event

    try:
        return bool(Event(name).is_set())
    except Exception:
        return False


def _watch(name: str, proc: subprocess.Popen[bytes]) -> None:
    from distributed import Event

    try:
        ev = Event(name)
    except Exception:
        return
    while proc.poll() is None:
        try:
            if ev.wait(timeout=0.5):
                os.kill(proc.pid, signal.SIGTERM)
                return
        except Exception:
            time.sleep(0.5)


class DaskExecutor:
    """Trials as tasks of a Dask cluster (the scheduler at `scheduler`)."""

    def __init__(
        self,
        repo: Repo,
        jobs: int | None,
        scheduler: str | None,
        remote: str | None,
        quiet: bool,
    ) -> None:
        require("dask", "gitrun-ml[dask]")
        require("distributed", "gitrun-ml[dask]")  # dask[distributed]: the cluster client
        if not scheduler:
            raise UsageError(
                "--executor dask needs --scheduler ADDRESS, e.g. tcp://127.0.0.1:8786."
            )
        from . import sync

        self.repo = repo
        self.remote = sync.resolve_remote(repo, remote)
        self.url = repo.config(f"remote.{self.remote}.url") or ""
        if not self.url:
            raise UsageError(f"Remote '{self.remote}' has no url; the Dask workers need one.")
        if "://" not in self.url and ":" not in self.url.split("/")[0]:
            # a path on disk (not scp-like host:path): as seen from the work tree
            self.url = os.path.abspath(os.path.join(repo.work_tree or "", self.url))
        self.scheduler = scheduler
        self.quiet = quiet
        self.jobs = jobs
        self.slots = jobs or 1
        self.futures: dict[Any, dict[str, Any]] = {}
        self.client: Any = None
        self.ref = ""
        self.commit = ""
        self.event_name = ""

    def open(self, st: Any, n: int) -> None:
        from distributed import Client, Event

        try:
            self.client = Client(self.scheduler, timeout=30)
        except Exception as e:
            raise RemoteError(
                f"Could not reach the Dask scheduler at {self.scheduler} ({e}); is it running?"
            ) from None
        if not self.jobs:
            self.slots = max(1, sum(self.client.nthreads().values()))
        self.commit = st.commit
        self.ref = sweep_code_ref(st.parent.run_id)
        p = self.repo.git("push", "-q", self.remote, f"{self.commit}:{self.ref}", check=False)
        if p.returncode != 0:
            raise RemoteError(
                f"Could not push the sweep's code to remote '{self.remote}' "
                f"({p.stderr.decode(errors='replace').strip()})."
            )
        self.event_name = f"gitrun-sweep-stop-{st.parent.run_id}-{os.urandom(3).hex()}"
        Event(self.event_name, client=self.client)

    def free(self) -> bool:
        return len(self.futures) < self.slots

    def busy(self) -> int:
        return len(self.futures)

    def submit(self, trial: dict[str, Any]) -> None:
        fut = self.client.submit(
            run_remote_trial,
            self.url,
            self.ref,
            self.commit,
            trial,
            self.event_name,
            pure=False,
            key=f"gitrun-trial-{self.event_name}-{trial['index']}",
        )
        self.futures[fut] = trial

    def poll(self, timeout: float, on_report: Callable[[int, int, float], bool]) -> list[Any]:
        from distributed import wait

        if not self.futures:
            return []
        try:
            done, _ = wait(list(self.futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        except Exception:  # distributed's own TimeoutError on older versions
            return []
        out = []
        for fut in done:
            trial = self.futures.pop(fut)
            try:
                res = fut.result()
            except Exception as e:
                res = result_without_run(trial["index"], "FAILED", f"the Dask task failed ({e})")
            res["params"] = trial["params"]
            out.append(res)
        if out:
            self._pull()
        return out

    def _pull(self) -> None:
        from . import sync

        try:
            sync.pull(self.repo, self.remote, quiet=True)
        except Exception:
            pass  # the next pull (or the last one, in close) brings them

    def stop(self) -> list[Any]:
        from distributed import Event

        Event(self.event_name, client=self.client).set()
        # Running tasks SIGTERM their command (recorded KILLED, pushed); tasks that start
        # now return at once.  Cancelling would lose a running trial's run.
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while self.futures and time.monotonic() < deadline:
            out.extend(self.poll(0.2, lambda *a: True))
        for fut, trial in list(self.futures.items()):
            fut.cancel()
            self.futures.pop(fut)
            out.append({**result_without_run(trial["index"], "KILLED"), "params": trial["params"]})
        return out

    def kill(self) -> None:
        for fut in list(self.futures):
            fut.cancel()

    def close(self) -> None:
        if self.client is None:
            return
        self._pull()
        self.repo.git("push", "-q", self.remote, f":{self.ref}", check=False)
        try:
            self.client.close()
        except Exception:
            pass
