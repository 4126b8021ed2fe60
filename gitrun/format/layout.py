"""Where gitrun keeps things: every ref name and every path (docs/format.md, "Layout").

This module is the one owner of these strings; every other module imports them from
here.  It imports nothing of gitrun's at run time, so any layer may use it.

Refs (shared ones travel with `git push`/`git fetch`):
    refs/gitrun/runs                   RUNS_REF: the runs history (shared)
    refs/remotes/<remote>/gitrun/runs  remote_runs_ref(): a mirror of a remote's runs ref
    refs/gitrun/models                 MODELS_REF: the model registry (shared, format/registry.py)
    refs/remotes/<remote>/gitrun/models remote_models_ref(): a mirror of a remote's registry
    refs/gitrun/live/<run_id>          live_ref(): keeps a live run's objects from `git gc`
    gitrun/<id8>                       checkout_branch(): the branch `gitrun checkout` makes
    refs/gitrun/sweeps/<run_id>        sweep_code_ref(): a Dask sweep's code commit, pushed to
                                       the remote for its workers while the sweep runs

The tree of RUNS_REF (format version 1):
    gitrun.yaml                        FORMAT_FILE
    runs/<id[:2]>/<id>/                run_dir(): RUN_FILE, PARAMS_FILE, TAGS_FILE,
                                       METRICS_FILE, HISTORY_FILE, MANIFEST_FILE,
                                       INPUTS_FILE,
                                       ENV_FILE, OUTPUT_FILE, ARTIFACTS_DIR/...

The tree of MODELS_REF (format version 1):
    gitrun.yaml                        FORMAT_FILE
    models/<name>/model.yaml           MODELS_DIR/<name>/: MODEL_FILE, ALIASES_FILE,
    models/<name>/aliases.yaml                             VERSIONS_DIR/<n>.yaml
    models/<name>/versions/<n>.yaml

Local, unshared state in <git common dir>/gitrun/ (Repo.gitrun_dir, named in _git):
    live/<run_id>/journal, output.log  live_root(): runs in progress (format/journal.py)
    quarantine/                        quarantine_root(): damaged journals, kept
    tmp/                               tmp_dir(): temporary index files of code snapshots
    cache/                             cache_dir(): the environment capture's cache
    cache/inputs.json                  input_cache_path(): stat cache of input hashes
    index.sqlite                       index_path(): the search index (query/index.py)
    last-sweep                         sweep_marker(): when leftovers were last removed
    worktrees/<name>/                  worktrees_root(): `gitrun sweep`'s trial worktrees, one
                                       per worker slot (<name>.lock: held while in use;
                                       <name>.chan/: the pruning channel of its trials)
    crash-<time>-<pid>.log             crash_log_name(): tracebacks of unexpected errors
    ref-lock-break                     REF_LOCK_BREAK: the mutex of stale ref-lock
                                       breakers; _git (below this layer) spells it itself
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._git import Repo

# ---------------------------------------------------------------------------
# refs
# ---------------------------------------------------------------------------
RUNS_REF = "refs/gitrun/runs"
REMOTE_RUNS_REF = "refs/remotes/{remote}/gitrun/runs"
MODELS_REF = "refs/gitrun/models"
REMOTE_MODELS_REF = "refs/remotes/{remote}/gitrun/models"
LIVE_REF_PREFIX = "refs/gitrun/live/"
SWEEP_REF_PREFIX = "refs/gitrun/sweeps/"
BRANCH_PREFIX = "gitrun/"


def remote_runs_ref(remote: str) -> str:
    """Where `gitrun pull` mirrors the runs ref of `remote`."""
    return REMOTE_RUNS_REF.format(remote=remote)


def remote_models_ref(remote: str) -> str:
    """Where `gitrun pull` mirrors the model registry ref of `remote`."""
    return REMOTE_MODELS_REF.format(remote=remote)


def live_ref(run_id: str) -> str:
    return LIVE_REF_PREFIX + run_id


def sweep_code_ref(run_id: str) -> str:
    """Where `gitrun sweep --executor dask` puts its code commit on the remote."""
    return SWEEP_REF_PREFIX + run_id


def checkout_branch(run_id: str) -> str:
    """The branch `gitrun checkout` creates for a run (unless given another name)."""
    return BRANCH_PREFIX + run_id[:8]


# ---------------------------------------------------------------------------
# the tree of RUNS_REF
# ---------------------------------------------------------------------------
FORMAT_FILE = "gitrun.yaml"
RUNS_DIR = "runs"
ARTIFACTS_DIR = "artifacts"
RUN_FILE = "run.yaml"
PARAMS_FILE = "params.yaml"
TAGS_FILE = "tags.yaml"
METRICS_FILE = "metrics.yaml"
HISTORY_FILE = "metrics.tsv"
MANIFEST_FILE = "artifacts.tsv"
INPUTS_FILE = "inputs.tsv"  # written only when the run has inputs
ENV_FILE = "env.yaml"
OUTPUT_FILE = "output.log"


def bucket(run_id: str) -> str:
    return run_id[:2]


def run_dir(run_id: str) -> str:
    """A run's directory in the tree of RUNS_REF ('/'-separated)."""
    return f"{RUNS_DIR}/{bucket(run_id)}/{run_id}"


# ---------------------------------------------------------------------------
# the tree of MODELS_REF (the model registry)
# ---------------------------------------------------------------------------
MODELS_DIR = "models"
MODEL_FILE = "model.yaml"
ALIASES_FILE = "aliases.yaml"
VERSIONS_DIR = "versions"


# ---------------------------------------------------------------------------
# .git/gitrun/
# ---------------------------------------------------------------------------
LIVE_DIR = "live"
JOURNAL = "journal"  # in live/<run_id>/
LIVE_OUTPUT = OUTPUT_FILE  # in live/<run_id>/: what `gitrun record` saw the command print
QUARANTINE_DIR = "quarantine"
TMP_DIR = "tmp"
CACHE_DIR = "cache"
INDEX_FILE = "index.sqlite"
INPUT_CACHE = "inputs.json"  # in cache/
SWEEP_MARKER = "last-sweep"
WORKTREES_DIR = "worktrees"  # gitrun sweep's trial worktrees (workflows/sweep_worker.py)
CRASH_LOG = "crash-{stamp}-{pid}.log"
BISECT_DIR = "bisect"  # bisect/<session>/: gitrun bisect's temporary worktree
REF_LOCK_BREAK = "ref-lock-break"  # used by _git.repo (Repo.update_ref), which cannot import this


def live_root(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, LIVE_DIR)


def quarantine_root(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, QUARANTINE_DIR)


def tmp_dir(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, TMP_DIR)


def cache_dir(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, CACHE_DIR)


def input_cache_path(repo: Repo) -> str:
    """The stat cache of input digests: (path, size, mtime_ns, inode) -> sha256."""
    return os.path.join(repo.gitrun_dir, CACHE_DIR, INPUT_CACHE)


def index_path(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, INDEX_FILE)


def bisect_dir(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, BISECT_DIR)


def sweep_marker(repo: Repo) -> str:
    return os.path.join(repo.gitrun_dir, SWEEP_MARKER)


def worktrees_root(repo: Repo) -> str:
    """Where `gitrun sweep` keeps one git worktree per worker slot while a sweep runs."""
    return os.path.join(repo.gitrun_dir, WORKTREES_DIR)


def crash_log_name(stamp: str, pid: int) -> str:
    """A crash log's file name (in gitrun_dir; prefixed "gitrun-" in the temp directory)."""
    return CRASH_LOG.format(stamp=stamp, pid=pid)
