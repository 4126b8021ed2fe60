"""The `git lfs` client (Debian package `git-lfs`): moving large-artifact objects between
this repository's LFS store and a remote's, by object id.

`git lfs push --object-id REMOTE OID...` uploads objects by id.  git-lfs has no download
by id, so `fetch` writes a throwaway commit whose tree holds the wanted pointer blobs
(named by their oid) and runs `git lfs fetch REMOTE <that commit>`: exactly those objects
arrive, verified by git-lfs, whatever the remote is (an https LFS server, or a bare
repository on disk, which git-lfs serves with its standalone transfer agent).  The commit
is never referenced (git gc removes it).  Where objects live, and what a pointer says, is
`format/lfs.py`'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from ..errors import GitError
from .objects import BLOB_MODE
from .repo import Repo
from .run import git_env

INSTALL_HINT = "install it (`apt-get install git-lfs`, or see https://git-lfs.com)"
_version: dict[str, str | None] = {}
# Settings of the user's that would filter or redirect what gitrun asks for by id.
_NEUTRAL = (
    "-c",
    "lfs.fetchinclude=",
    "-c",
    "lfs.fetchexclude=",
    "-c",
    "lfs.fetchrecentalways=false",
)
_MAX_ARGS = 2000  # object ids per `git lfs push` command line


def version() -> str | None:
    """`git lfs version`'s first word (git-lfs/3.3.0), or None when git-lfs is missing."""
    if "v" not in _version:
        try:
            p = subprocess.run(
                ["git", "lfs", "version"], capture_output=True, env=git_env(), timeout=30
            )
            out = p.stdout.decode(errors="replace").split()
            _version["v"] = out[0] if p.returncode == 0 and out else None
        except (OSError, subprocess.TimeoutExpired):
            _version["v"] = None
    return _version["v"]


def _run(cwd: str, args: Sequence[str], quiet: bool) -> tuple[int, str]:
    """Run `git <args>`; git-lfs's progress reaches a terminal unless quiet; (rc, stderr)."""
    proc = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=git_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    shown = not quiet and sys.stderr.isatty()
    err = bytearray()
    fd = proc.stderr.fileno()
    while chunk := os.read(fd, 65536):
        err += chunk
        if shown:
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
    rc = proc.wait()
    return rc, err.decode(errors="replace")


def _message(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.replace("\r", "\n").splitlines()]
    picked = [
        ln
        for ln in lines
        if ln
        and not ln.startswith(("Uploading LFS objects", "Downloading LFS objects", "fetch:"))
        and "git lfs logs last" not in ln
        and not ln.startswith("Errors logged to")
    ]
    return "; ".join(dict.fromkeys(picked))[:500] or "no message"


def push(repo: Repo, remote: str, oids: Sequence[str], quiet: bool = False) -> None:
    """Upload the objects `oids` (all in the local LFS store) to `remote`'s LFS store."""
    cwd = repo.work_tree or repo.git_dir
    for i in range(0, len(oids), _MAX_ARGS):
        batch = list(oids[i : i + _MAX_ARGS])
        rc, err = _run(cwd, [*_NEUTRAL, "lfs", "push", "--object-id", remote, *batch], quiet)
        if rc != 0:
            raise GitError(f"`git lfs push` to remote '{remote}' failed: \"{_message(err)}\"")


def fetch(repo: Repo, remote: str, pointers: dict[str, str], quiet: bool = False) -> str:
    """Download the objects of `pointers` (oid -> pointer blob id in this repository) from
    `remote` into the local LFS store.  Returns git-lfs's complaint ("" when it had none);
    the caller checks which objects arrived."""
    if not pointers:
        return ""
    tree = repo.write_tree((BLOB_MODE, oid, blob) for oid, blob in sorted(pointers.items()))
    commit = repo.write_commit(tree, [], "gitrun: large artifacts to fetch\n", when_ms=0)
    rc, err = _run(
        repo.work_tree or repo.git_dir, [*_NEUTRAL, "lfs", "fetch", remote, commit], quiet
    )
    return "" if rc == 0 else _message(err)
