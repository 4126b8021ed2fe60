"""All of gitrun's git plumbing: the only package that speaks git.

Nothing here touches the user's index, work tree, HEAD, branches, stash or tags.
Objects are written as loose objects directly (git's documented format), which costs
~0.1 ms instead of ~2 ms for spawning `git hash-object`; refs are updated with git's
own lock-file protocol so that git and gitrun exclude each other.  Anything unusual
(reftable, GIT_DIR in the environment, packed objects, config includes) falls back to
real git commands.

    run.py      run_git, git_env: starting git
    repo.py     Repo: discovery, object read/write, refs, config, status
    objects.py  loose objects and packs on disk, tree parsing and order, file modes
    refs.py     the files ref backend: read, compare-and-swap under git's lock, delete
    catfile.py  CatFile: the long-lived `git cat-file --batch`
    config.py   reading git's config (fast reader, or `git config -l` when needed)
    status.py   `git status --porcelain=v2` parsed

This module re-exports the names other packages use.
"""

from .objects import (
    BLOB_MODE,
    EXEC_MODE,
    GITLINK_MODE,
    LINK_MODE,
    PACK_LIMIT,
    TREE_MODE,
    parse_tree,
    sha256_file,
    write_pack,
)
from .repo import Repo
from .run import git_env

__all__ = [
    "BLOB_MODE",
    "EXEC_MODE",
    "GITLINK_MODE",
    "LINK_MODE",
    "PACK_LIMIT",
    "TREE_MODE",
    "Repo",
    "git_env",
    "parse_tree",
    "sha256_file",
    "write_pack",
]
