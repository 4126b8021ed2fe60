"""Team sync: `gitrun push` / `gitrun pull` exchange refs/gitrun/runs through any git remote.

Refs (named in format/layout.py; how they move is this module's):

    refs/gitrun/runs                       the local runs history; only ever moved by
                                           compare-and-swap to a descendant of its value
    refs/remotes/<remote>/gitrun/runs      a mirror of the remote's refs/gitrun/runs; may be
                                           force-updated by fetch (it is only a copy)

Joining follows docs/format.md ("Joining histories"): fast-forward when one side contains
the other, otherwise a merge commit whose parents are both tips and whose tree is
`store.merge_roots`.  Pushing never forces: a rejected push (someone else pushed first)
fetches, joins and tries again, so concurrent pushers all land and nothing is lost.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .._git import Repo, git_env
from .._git import lfs as git_lfs
from ..capture import settings as config
from ..errors import GitError, GitrunError, RemoteError
from ..format import large, lfs, registry, store
from ..format.layout import (
    FORMAT_FILE,
    MODELS_REF,
    RUNS_REF,
    remote_models_ref,
    remote_runs_ref,
)

AUTOPUSH_KEY = "gitrun.autopush"
DEFAULT_PUSH_ATTEMPTS = 20
_TRUE, _FALSE = config.TRUE_WORDS, config.FALSE_WORDS


@dataclass
class SyncResult:
    remote: str
    arrived: int = 0  # runs that were on the remote and not here
    sent: int = 0  # runs that were here and not on the remote
    merged: bool = False  # a merge commit joined diverged histories
    remote_has_runs: bool = True
    attempts: int = 1
    models_arrived: bool = False  # the model registry (refs/gitrun/models) took theirs in
    models_sent: bool = False  # the remote's model registry took ours
    large_sent: int = 0  # large-artifact objects uploaded through Git LFS
    large_fetched: int = 0  # large-artifact objects downloaded through Git LFS
    warnings: list[str] = field(default_factory=list)  # sentences the CLI prints

    def _models(self) -> str:
        what = [
            w for w, b in (("updated here", self.models_arrived), ("sent", self.models_sent)) if b
        ]
        return f" The model registry was {' and '.join(what)}." if what else ""

    def pull_summary(self) -> str:
        if not self.remote_has_runs:
            return f"Remote '{self.remote}' has no gitrun runs yet; nothing to pull."
        how = " (merged with local runs)" if self.merged else ""
        if self.large_fetched:
            how += f", with {_large(self.large_fetched)} through Git LFS"
        return f"Pulled {_runs(self.arrived)} from '{self.remote}'{how}." + self._models()

    def push_summary(self) -> str:
        if self.sent:
            text = f"Pushed {_runs(self.sent)} to '{self.remote}'"
            if self.large_sent:
                text += f", with {_large(self.large_sent)} through Git LFS"
        else:
            text = f"Nothing to push: '{self.remote}' already has every run here"
        if self.arrived:
            text += f"; {_runs(self.arrived)} arrived from it first"
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts, others were pushing too)"
        return text + "." + self._models()


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _large(n: int) -> str:
    return f"{n} large artifact" + ("" if n == 1 else "s")


# ---------------------------------------------------------------------------
# remotes
# ---------------------------------------------------------------------------
def _progress_flag(quiet: bool) -> str:
    # As plain git: progress on a terminal only, not into a log file or a pipe.
    if quiet or not sys.stderr.isatty():
        return "-q"
    return "--progress"


def remotes(repo: Repo) -> list[str]:
    return repo.gitout("remote").split()


def resolve_remote(repo: Repo, remote: str | None) -> str:
    """The named remote, else the current branch's upstream remote, else origin."""
    configured = remotes(repo)
    if remote is None:
        branch = repo.git("symbolic-ref", "-q", "--short", "HEAD", check=False)
        name = branch.stdout.decode().strip()
        upstream = repo.config(f"branch.{name}.remote") if name else None
        # "." means the upstream is a local branch: not a place to push runs to.
        remote = upstream if upstream and upstream != "." else "origin"
        if remote not in configured and not configured:
            raise RemoteError(
                "This repository has no git remote to sync runs with; add one with "
                "`git remote add origin <url>` and try again."
            )
    if remote not in configured:
        listed = ", ".join(f"'{r}'" for r in configured) or "none"
        raise RemoteError(
            f"There is no git remote named '{remote}' (configured remotes: {listed}); "
            f"pass one of them or add it with `git remote add {remote} <url>`."
        )
    return remote


_ERROR_PREFIXES = (b"fatal:", b"error:", b"hint:")
# git's explanation after a failed transfer; gitrun says it in its own sentence instead.
_NOISE = (
    b"",
    b"Please make sure you have the correct access rights",
    b"and the repository exists.",
)


def _transport(repo: Repo, args: list[str], quiet: bool) -> tuple[int, str, str]:
    """Run git fetch/push; git's progress goes to our stderr as it comes, unless quiet."""
    proc = subprocess.Popen(
        ["git", *args],
        cwd=repo.work_tree or repo.git_dir,
        env=git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout and proc.stderr
    err = bytearray()
    out_stream = None if quiet else getattr(sys.stderr, "buffer", None)
    fd = proc.stderr.fileno()
    pending = b""
    while True:
        chunk = os.read(fd, 65536)
        err += chunk
        pending += chunk
        # Forward progress lines (ending in \r or \n) as they come; git's error lines are
        # left out because gitrun reports them in its own sentence.
        *done, pending = re.split(rb"(?<=[\r\n])", pending) if chunk else [pending, b""]
        shown = b"".join(
            s for s in done if not s.startswith(_ERROR_PREFIXES) and s.strip() not in _NOISE
        )
        if out_stream is not None and shown:
            try:
                out_stream.write(shown)
                out_stream.flush()
            except (OSError, ValueError):
                out_stream = None
        if not chunk:
            break
    out = proc.stdout.read()
    rc = proc.wait()
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def _git_message(stderr: str) -> str:
    """git's own error lines, as one sentence-sized string."""
    lines = [ln.strip() for ln in stderr.replace("\r", "\n").splitlines()]
    picked = [
        ln.split(":", 1)[1].strip() if ln.startswith(("fatal:", "error:", "remote: fatal:")) else ln
        for ln in lines
        if ln.startswith(("fatal:", "error:", "remote:", "ssh:", "Permission denied"))
        and "Please make sure you have the correct access rights" not in ln
        and "and the repository exists" not in ln
    ]
    text = "; ".join(dict.fromkeys(p.rstrip(".") for p in picked if p)) or (
        lines[-1] if lines else "no message"
    )
    return text


_AUTH = (
    "authentication failed",
    "permission denied",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "invalid username or password",
    "returned error: 403",
    "returned error: 401",
    "access denied",
)
_UNREACHABLE = (
    "does not appear to be a git repository",
    "could not read from remote repository",
    "unable to connect",
    "connection refused",
    "could not resolve host",
    "unable to access",
    "no such file or directory",
    "connection timed out",
    "network is unreachable",
    "not found",
    "unable to look up",
    "connection reset",
    "the remote end hung up",
)


def _local_path(repo: Repo, url: str) -> str | None:
    """The directory a remote URL names when it is a local path (not host:path or a URL)."""
    if "://" in url and not url.startswith("file://"):
        return None
    path = url[len("file://") :] if url.startswith("file://") else url
    if not path.startswith(("/", ".", "~")) and ":" in path.split("/", 1)[0]:
        return None  # scp-like user@host:path
    base = repo.work_tree or repo.git_dir
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def _remote_error(repo: Repo, remote: str, verb: str, stderr: str) -> RemoteError:
    msg = _git_message(stderr)
    low = stderr.lower()
    url = repo.config(f"remote.{remote}.url") or "?"
    local = _local_path(repo, url) if url != "?" else None
    if local is not None and (
        not os.path.exists(local) or "does not appear to be a git repository" in low
    ):
        what = "does not exist" if not os.path.exists(local) else "is not a git repository"
        return RemoteError(
            f"Remote '{remote}' cannot be reached: it points to {local}, which {what}; check "
            f"the path (`git remote -v`), mount or create it (`git init --bare {local}`), or "
            f"fix it with `git remote set-url {remote} <path>`."
        )
    if any(k in low for k in _AUTH):
        return RemoteError(
            f"Authentication to remote '{remote}' ({url}) failed: git said \"{msg}\"; "
            "check your credentials or access rights and try again."
        )
    if any(k in low for k in _UNREACHABLE):
        return RemoteError(
            f"Remote '{remote}' ({url}) cannot be reached: git said \"{msg}\"; check the URL "
            f"(`git remote -v`), your network and that the server is up, then run gitrun "
            f"{verb} again."
        )
    return RemoteError(
        f"git {verb} to remote '{remote}' ({url}) failed: git said \"{msg}\"; fix that and "
        f"run gitrun {verb} again."
    )


# ---------------------------------------------------------------------------
# fetch and join
# ---------------------------------------------------------------------------
def fetch(repo: Repo, remote: str, quiet: bool = False, verb: str = "pull") -> str | None:
    """Mirror the remote's runs ref into refs/remotes/<remote>/gitrun/runs; its tip or None.

    The model registry (refs/gitrun/models) comes along into its own mirror when the remote
    has one (a pattern refspec, so a remote without it is no error)."""
    ref = remote_runs_ref(remote)
    args = ["fetch", _progress_flag(quiet), "--no-tags", "--no-write-fetch-head"]
    # `+` only on the remote-tracking mirror: the local runs ref is never written by fetch.
    models = f"+{MODELS_REF}*:{remote_models_ref(remote)}*"
    rc, _out, err = _transport(repo, [*args, remote, f"+{RUNS_REF}:{ref}", models], quiet)
    if rc != 0:
        if "couldn't find remote ref" in err.lower():
            return None
        raise _remote_error(repo, remote, verb, err)
    return repo.read_ref(ref)


def check_history(repo: Repo, tip: str, where: str) -> dict[str, str]:
    """The runs of a fetched tip; RemoteError when it is not a gitrun runs history."""
    try:
        tree, _parents, _msg = repo.read_commit(tip)
        top = {name: (mode, sha) for mode, name, sha in repo.read_tree(tree)}
    except GitrunError:
        top = {}
    if FORMAT_FILE not in top:
        raise RemoteError(
            f"{RUNS_REF} on {where} is not a gitrun runs history (it has no "
            f"{FORMAT_FILE}); someone pushed something else there, so gitrun leaves it "
            "alone — ask them to fix that ref."
        )
    try:
        return store.list_run_trees(repo, tip)
    except RemoteError:
        raise
    except GitrunError as e:
        raise RemoteError(f"The runs on {where} cannot be read: {e}") from None


def is_ancestor(repo: Repo, a: str, b: str) -> bool:
    p = repo.git("merge-base", "--is-ancestor", a, b, check=False)
    if p.returncode in (0, 1):
        return p.returncode == 0
    raise GitrunError(
        f"git could not compare runs histories {a[:12]} and {b[:12]} "
        f"({p.stderr.decode(errors='replace').strip()}); run `git fsck` to check the repository."
    )


def join(
    repo: Repo, theirs: str, remote: str, their_runs: dict[str, str] | None = None
) -> SyncResult:
    """Join their runs tip into refs/gitrun/runs (CAS, retried while local runs land)."""
    if their_runs is None:
        their_runs = check_history(repo, theirs, f"remote '{remote}'")
    result = SyncResult(remote=remote)
    for attempt in range(store.MAX_CAS_ATTEMPTS):
        local = repo.read_ref(RUNS_REF)
        ours = store.list_run_trees(repo, local) if local else {}
        result.arrived = len(set(their_runs) - set(ours))
        result.sent = len(set(ours) - set(their_runs))
        result.merged = False
        if local is None:
            new = theirs
        elif local == theirs or is_ancestor(repo, theirs, local):
            return result
        elif is_ancestor(repo, local, theirs):
            new = theirs
        else:
            tree = store.merge_roots(
                repo, store.tip_tree(repo, local), store.tip_tree(repo, theirs)
            )
            message = (
                f"gitrun: merge runs from {remote}\n\n"
                f"{_runs(result.arrived)} arrived, {_runs(result.sent)} only here.\n"
            )
            new = repo.write_commit(tree, [local, theirs], message)
            result.merged = True
        if repo.cas_ref(RUNS_REF, new, local, f"gitrun: pull from {remote}"):
            return result
        # A run was recorded here meanwhile: rebuild on the new tip.
        time.sleep(min(0.002 * (attempt + 1), 0.05))
    raise GitrunError(
        f"Could not update {RUNS_REF} because other gitrun processes kept moving it; "
        "run gitrun pull again."
    )


def join_models(repo: Repo, remote: str) -> bool:
    """Join the fetched registry mirror into refs/gitrun/models, as `join` does runs
    (fast-forward, or a merge commit whose tree is `registry.merge_roots`); True when the
    local registry moved."""
    theirs = repo.read_ref(remote_models_ref(remote))
    if theirs is None:
        return False
    try:
        registry.check_tip(repo, theirs)
    except GitrunError as e:
        raise RemoteError(f"The model registry on remote '{remote}' cannot be used: {e}") from None
    for attempt in range(store.MAX_CAS_ATTEMPTS):
        local = repo.read_ref(MODELS_REF)
        if local is not None and (local == theirs or is_ancestor(repo, theirs, local)):
            return False
        if local is None or is_ancestor(repo, local, theirs):
            new = theirs
        else:
            registry.check_tip(repo, local)
            tree = registry.merge_roots(
                repo, store.tip_tree(repo, local), store.tip_tree(repo, theirs)
            )
            new = repo.write_commit(tree, [local, theirs], f"gitrun: merge models from {remote}\n")
        if repo.cas_ref(MODELS_REF, new, local, f"gitrun: pull models from {remote}"):
            return True
        time.sleep(min(0.002 * (attempt + 1), 0.05))
    raise GitrunError(
        f"Could not update {MODELS_REF} because other gitrun processes kept moving it; "
        "run gitrun pull again."
    )


def pull(
    repo: Repo, remote: str | None = None, quiet: bool = False, fetch_first: bool = True
) -> SyncResult:
    """Fetch the remote's runs and join them with ours.

    With fetch_first=False, join what is already in refs/remotes/<remote>/gitrun/runs
    (e.g. from a plain `git fetch origin refs/gitrun/runs:refs/remotes/origin/gitrun/runs`).
    """
    name = resolve_remote(repo, remote)
    theirs = fetch(repo, name, quiet) if fetch_first else repo.read_ref(remote_runs_ref(name))
    if theirs is None:
        return SyncResult(remote=name, remote_has_runs=False)
    before = store.list_run_trees(repo)
    their_runs = check_history(repo, theirs, f"remote '{name}'")
    result = join(repo, theirs, name, their_runs)
    result.models_arrived = join_models(repo, name)
    if fetch_first:  # --no-fetch stays off the network: checkout fetches on demand
        arrived = {rid: t for rid, t in their_runs.items() if before.get(rid) != t}
        _fetch_large(repo, name, arrived, result, quiet)
    return result


def _fetch_large(
    repo: Repo, remote: str, runs: dict[str, str], result: SyncResult, quiet: bool
) -> None:
    """Bring the Git LFS objects of the runs that arrived; what cannot be had is a warning
    (the runs still show, search and diff; checkout names what is missing)."""
    arts = [a for _rid, a in large.lfs_artifacts(repo, runs)]
    if not arts or all(lfs.has_object(repo, a.sha256, a.size) for a in arts):
        return
    if git_lfs.version() is None:
        result.warnings.append(
            f"The pulled runs keep {_large(len(arts))} in Git LFS, which is not installed, "
            f"so their content was not fetched; {git_lfs.INSTALL_HINT}, then `gitrun "
            "checkout` fetches it."
        )
        return
    got, missing = large.fetch_lfs(repo, remote, arts, quiet)
    result.large_fetched = got
    if missing:
        names = ", ".join(repr(a.path) for a in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        result.warnings.append(
            f"The content of {_large(len(missing))} ({names}{more}) is not on remote "
            f"'{remote}'; those runs show, search and diff, but `gitrun checkout` cannot "
            "restore them until the clone that recorded them runs `gitrun push`."
        )


def _push_large(
    repo: Repo,
    remote: str,
    local: str,
    their_runs: dict[str, str],
    result: SyncResult,
    pushed: set[str],
    quiet: bool,
) -> bool:
    """Upload the Git LFS objects of the runs about to be pushed, before the ref moves, so
    the remote never holds a run whose content it lacks.  RemoteError (nothing pushed)
    when Git LFS is missing or the upload fails.  An object this clone lacks (a
    teammate's run never fetched here) is fetched from the other remotes first; one that
    is nowhere is a warning, and True tells the caller that git-lfs's pre-push hook must
    let the push through without it (the run shows, searches and diffs everywhere, and
    checkout names what is missing)."""
    ours = store.list_run_trees(repo, local)
    sending = {rid: t for rid, t in ours.items() if their_runs.get(rid) != t}
    arts = {a.sha256: a for _rid, a in large.lfs_artifacts(repo, sending) if a.sha256 not in pushed}
    if not arts:
        return False
    if git_lfs.version() is None:
        raise RemoteError(
            f"The runs to push keep {_large(len(arts))} in Git LFS, and Git LFS is not "
            f"installed; {git_lfs.INSTALL_HINT} and run gitrun push again (nothing was pushed)."
        )
    absent = [a for oid, a in arts.items() if not lfs.has_object(repo, oid, a.size)]
    for other in [r for r in remotes(repo) if r != remote] if absent else []:
        absent = large.fetch_lfs(repo, other, absent, quiet)[1]
        if not absent:
            break
    here = sorted(oid for oid, a in arts.items() if lfs.has_object(repo, oid, a.size))
    if absent:
        names = ", ".join(repr(a.path) for a in absent[:3])
        result.warnings.append(
            f"The content of {_large(len(absent))} ({names}) is neither in this clone nor "
            f"on its other remotes, so '{remote}' gets the runs without it (they show, "
            "search and diff; checkout names what is missing)."
        )
    try:
        git_lfs.push(repo, remote, here, quiet)
    except GitError as e:
        raise RemoteError(
            f"{str(e).rstrip('.')}; nothing was pushed, fix that and run gitrun push again."
        ) from None
    pushed.update(arts)
    result.large_sent += len(here)
    return bool(absent)


# ---------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------
# How git says "the remote moved under you": a non-fast-forward rejection, or losing the
# race for the ref lock on the remote between its advertisement and our update.
_RETRYABLE = (
    "non-fast-forward",
    "fetch first",
    "stale info",
    "cannot lock ref",
    "failed to update ref",
    "failed to lock",
    "reference already exists",
    "but expected",
    "is at ",
)


def push(
    repo: Repo,
    remote: str | None = None,
    quiet: bool = False,
    max_attempts: int = DEFAULT_PUSH_ATTEMPTS,
) -> SyncResult:
    """Pull, then push refs/gitrun/runs (never forced); retry when others pushed meanwhile."""
    name = resolve_remote(repo, remote)
    total = SyncResult(remote=name)
    if repo.read_ref(RUNS_REF) is None:
        # Nothing of ours to send; still take what the remote has.
        got = pull(repo, name, quiet)
        got.attempts = 1
        return got
    last_err = ""
    pushed: set[str] = set()  # LFS objects uploaded by an earlier attempt
    incomplete = False  # some run's LFS object is nowhere to be had (warned about)
    for attempt in range(1, max_attempts + 1):
        theirs = fetch(repo, name, quiet, verb="push")
        their_runs: dict[str, str] = {}
        if theirs is not None:
            their_runs = check_history(repo, theirs, f"remote '{name}'")
            joined = join(repo, theirs, name, their_runs)
            total.arrived += joined.arrived
            total.merged = total.merged or joined.merged
            total.models_arrived = join_models(repo, name) or total.models_arrived
        local = repo.read_ref(RUNS_REF)
        assert local is not None
        models = repo.read_ref(MODELS_REF)
        their_models = repo.read_ref(remote_models_ref(name)) if theirs is not None else None
        if theirs == local and models == their_models:
            total.sent, total.attempts = 0, attempt
            return total
        # Large artifacts first, then the ref: nothing on the remote refers to missing content.
        incomplete = _push_large(repo, name, local, their_runs, total, pushed, quiet) or incomplete
        # No --no-verify: a pre-push hook (git-lfs) may need to upload what the code commits use.
        args = ["push", "--porcelain", _progress_flag(quiet), name]
        if incomplete:
            args = ["-c", "lfs.allowincompletepush=true", *args]
        refspecs = [f"{RUNS_REF}:{RUNS_REF}"] + ([f"{MODELS_REF}:{MODELS_REF}"] if models else [])
        rc, out, err = _transport(repo, [*args, *refspecs], quiet)
        status = _push_status(out)
        if rc == 0:  # with -q, --porcelain prints no line for a successful ref
            total.sent = len(set(store.list_run_trees(repo, local)) - set(their_runs))
            total.attempts = attempt
            _set_tracking(repo, name, local)
            if models and models != their_models:
                total.models_sent = True
                _set_tracking(repo, name, models, remote_models_ref(name))
            return total
        text = (out + "\n" + err).lower()
        if status == "rejected" or any(k in text for k in _RETRYABLE):
            last_err = _git_message(out + "\n" + err)
            # Someone else pushed between our fetch and push: back off a little, re-join.
            time.sleep(random.uniform(0.01, 0.05 * min(attempt, 8)))
            continue
        raise _remote_error(repo, name, "push", err or out)
    raise RemoteError(
        f"Could not push runs to remote '{name}' after {max_attempts} attempts because others "
        f"kept pushing at the same time (last: {last_err}); run gitrun push again."
    )


def _push_status(porcelain: str) -> str:
    """ok / up-to-date / rejected / error / unknown, from `git push --porcelain`."""
    for line in porcelain.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].endswith(":" + RUNS_REF):
            flag, summary = parts[0], parts[2]
            if flag == "=":
                return "up-to-date"
            if flag == "!":
                return "rejected" if "[rejected]" in summary else "error"
            return "ok"
    return "unknown"


def _set_tracking(repo: Repo, remote: str, tip: str, ref: str | None = None) -> None:
    ref = ref or remote_runs_ref(remote)
    # Best effort: it is only a mirror, refreshed by the next fetch anyway.
    with contextlib.suppress(GitrunError):
        repo.cas_ref(ref, tip, repo.read_ref(ref), f"gitrun: push to {remote}", wait=0.5)


# ---------------------------------------------------------------------------
# what the remote has that we don't; auto-push
# ---------------------------------------------------------------------------
def remote_only_runs(repo: Repo, remote: str | None = None, quiet: bool = True) -> dict[str, str]:
    """run id -> run tree of the runs on the remote that are not here (after a fetch)."""
    name = resolve_remote(repo, remote)
    theirs = fetch(repo, name, quiet)
    if theirs is None:
        return {}
    their_runs = check_history(repo, theirs, f"remote '{name}'")
    ours = store.list_run_trees(repo)
    return {rid: t for rid, t in their_runs.items() if rid not in ours}


def parse_bool(value: str, key: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise GitrunError(f"{key} must be true or false, not '{value}'.")


def auto_push_enabled(repo: Repo) -> bool:
    value = repo.config(AUTOPUSH_KEY)
    if value is None:
        value = config.load(repo.work_tree).get("auto-push")
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE if value is not None else False


def set_auto_push(repo: Repo, on: bool) -> None:
    repo.git("config", "--local", AUTOPUSH_KEY, "true" if on else "false")
    repo.forget_config()


def maybe_auto_push(repo: Repo, quiet: bool = False) -> None:
    """After a recorded run: push when auto-push is on; on failure warn, keep the run local."""
    try:
        if not auto_push_enabled(repo):
            return
        result = push(repo, None, quiet=True)
    except GitrunError as e:
        print(
            f"gitrun: warning: auto-push failed, the run is kept locally and the next "
            f"gitrun push or pull retries ({e})",
            file=sys.stderr,
        )
        return
    if not quiet:
        print(f"gitrun: {result.push_summary()}", file=sys.stderr)
