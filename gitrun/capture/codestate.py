"""The exact code a run ran on: HEAD, branch, dirtiness, and a snapshot commit.

When the work tree is dirty, the snapshot is built with a temporary index that
starts as a copy of the user's index (so unchanged files are not re-hashed);
the user's index, HEAD, branches and work tree are never written.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from .._git import Repo, git_env, sha256_file
from ..format.layout import tmp_dir


def capture(repo: Repo, run_id: str, max_untracked: int, quiet: bool = False) -> dict[str, Any]:
    if not repo.work_tree:
        return {}
    st = repo.status()
    code: dict[str, Any] = {
        "commit": st.head,
        "head": st.head,
        "branch": st.branch,
        "dirty": st.dirty,
        "snapshot": None,
    }
    url = repo.config("remote.origin.url")
    if url:
        code["repo_url"] = url
    if not st.dirty:
        return code
    large: list[dict[str, Any]] = []
    small: list[str] = []
    for rel in st.untracked:
        full = os.path.join(repo.work_tree, rel)
        try:
            info = os.lstat(full)
        except OSError:
            continue
        if os.path.isfile(full) and not os.path.islink(full) and info.st_size > max_untracked:
            large.append({"path": rel, "size": info.st_size, "sha256": sha256_file(full)})
        else:
            small.append(rel)
    if large:
        code["large_untracked"] = large
        if not quiet:
            names = ", ".join(f"{x['path']} ({x['size'] / 1e6:.1f} MB)" for x in large)
            print(
                f"gitrun: not putting {len(large)} large untracked file(s) in the code "
                f"snapshot (over {max_untracked / 1e6:.0f} MB): {names}; their size and "
                "sha256 are recorded. Commit them, ignore them, or raise max-untracked-size.",
                file=sys.stderr,
            )
    tmpdir = tmp_dir(repo)
    os.makedirs(tmpdir, exist_ok=True)
    index = os.path.join(tmpdir, f"index-{run_id}")
    user_index = os.path.join(repo.git_dir, "index")
    try:
        if os.path.exists(user_index):
            shutil.copyfile(user_index, index)
        env = git_env({"GIT_INDEX_FILE": index})
        repo.git("add", "-u", "--", ":/", env=env)
        if small:
            repo.git(
                "add",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                env=env,
                input=b"\0".join(p.encode("utf-8", "surrogateescape") for p in small),
            )
        tree = repo.gitout("write-tree", env=env).strip()
    finally:
        for p in (index, index + ".lock"):
            try:
                os.unlink(p)
            except OSError:
                pass
    where = st.branch or "detached HEAD"
    msg = (
        f"gitrun: work tree of {where} for run {run_id}\n\n"
        f"Uncommitted changes and untracked files as they were when run {run_id} started.\n"
    )
    snap = repo.write_commit(tree, [st.head] if st.head else [], msg)
    code["snapshot"] = snap
    code["commit"] = snap
    return code
