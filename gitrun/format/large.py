"""Where the content of a large artifact comes from, for checkout and download.

Storage kinds (artifacts.tsv `storage`): `git` (a blob in the run tree, store.py), `lfs`
(lfs.py: the local Git LFS store, fetched on demand from the remotes through `git lfs`),
`store` (objstore.py: an fsspec URL recorded in the row's `location`).  `locate` finds
every wanted large artifact before anything is written — fetching what is missing — and
names, per artifact, each place it looked when one cannot be found;
`Source.chunks` streams the content, verified against the recorded size and sha256.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from .._git import Repo
from .._git import lfs as git_lfs
from ..errors import ArtifactUnavailableError, GitError, GitrunError
from . import lfs, objstore
from .entities import Artifact
from .paths import StagedFile

KINDS = (lfs.STORAGE, objstore.STORAGE)


class Source:
    """Where one large artifact's content was found."""

    def __init__(self, artifact: Artifact, run_id: str, path: str = "", url: str = "") -> None:
        self.artifact = artifact
        self.run_id = run_id
        self.path = path  # a local LFS object
        self.url = url  # an object store prefix

    def chunks(self) -> Iterator[memoryview | bytes]:
        a = self.artifact
        what = f"Artifact {a.path!r} of run {self.run_id[:8]} ({self.path or self.url})"
        if self.path:
            return lfs.read_verified(self.path, a.sha256, a.size, what)
        return lfs.verified_chunks(objstore.read_chunks(self.url, a.sha256), a.sha256, a.size, what)


def stage(root: str, wanted: Iterable[tuple[str, int, Source]]) -> list[StagedFile]:
    """Stream each (path under `root`, mode, source) to a temporary file beside its target,
    verified; the caller commits them once everything else is written.  When one cannot be
    read or does not match its record, every file staged so far is removed first."""
    staged: list[StagedFile] = []
    try:
        for rel, mode, src in wanted:
            f = StagedFile(root, rel, mode)
            staged.append(f)
            for chunk in src.chunks():
                f.write(chunk)
    except BaseException:
        for f in staged:
            f.abort()
        raise
    return staged


def configured_store(repo: Repo) -> str | None:
    """The artifact store this clone is configured with (gitrun.artifactStore), if any."""
    value = os.environ.get("GITRUN_ARTIFACT_STORE") or repo.config("gitrun.artifactstore")
    return value.strip().rstrip("/") if value and value.strip() else None


def remote_order(repo: Repo, run_id: str) -> list[str]:
    """The remotes to ask for a run's LFS objects: those whose runs mirror holds the run
    (it came from there), then origin, then the others."""
    from . import store
    from .layout import remote_runs_ref

    try:
        names = repo.gitout("remote").split()
    except GitError:
        return []
    had = []
    for name in names:
        tip = repo.read_ref(remote_runs_ref(name))
        try:
            if tip and run_id in store.list_run_trees(repo, tip):
                had.append(name)
        except GitrunError:
            continue
    rest = sorted(n for n in names if n not in had)
    if "origin" in rest:
        rest.remove("origin")
        rest.insert(0, "origin")
    return had + rest


def locate(
    repo: Repo, run_id: str, arts: Sequence[Artifact], quiet: bool = True
) -> dict[str, Source]:
    """artifact path -> Source for each large artifact of `arts` (storage lfs or store);
    missing LFS objects are fetched first.  ArtifactUnavailableError names each artifact
    that is nowhere to be found and every place it was looked for."""
    out: dict[str, Source] = {}
    looked: dict[str, list[str]] = {}
    want_lfs: list[Artifact] = []
    for a in arts:
        if a.storage == lfs.STORAGE:
            path = lfs.object_path(repo, a.sha256)
            if lfs.has_object(repo, a.sha256, a.size):
                out[a.path] = Source(a, run_id, path=path)
            else:
                want_lfs.append(a)
                looked[a.path] = [path]
        elif a.storage == objstore.STORAGE:
            src, where = _in_stores(repo, run_id, a)
            if src is not None:
                out[a.path] = src
            else:
                looked[a.path] = where
    if want_lfs:
        _fetch_lfs(repo, run_id, want_lfs, looked, out, quiet)
    missing = [p for p in looked if p not in out]
    if missing:
        parts = [f"{p!r} (looked in {', '.join(looked[p])})" for p in sorted(missing)]
        raise ArtifactUnavailableError(
            f"The content of run {run_id[:8]}'s large artifact{'s' if len(parts) > 1 else ''} "
            f"{'; '.join(parts)} could not be found, so nothing was written; push it from the "
            "clone that recorded the run (`gitrun push` there), or pull from a remote that "
            "has it."
        )
    return out


def _in_stores(repo: Repo, run_id: str, a: Artifact) -> tuple[Source | None, list[str]]:
    where: list[str] = []
    prefixes = [a.location or ""]
    mine = configured_store(repo)
    if mine and mine not in prefixes:
        prefixes.append(mine)
    for prefix in prefixes:
        if not prefix:
            continue
        try:
            prefix = objstore.check_url(prefix)
            url = objstore.object_url(prefix, a.sha256)
        except GitrunError as e:
            where.append(f"{prefix} ({str(e).rstrip('.')})")
            continue
        where.append(url)
        try:
            if objstore.exists(prefix, a.sha256, a.size):
                return Source(a, run_id, url=prefix), where
        except GitrunError as e:
            where[-1] = f"{url} ({str(e).rstrip('.')})"
    if not where:
        where.append("no artifact store URL is recorded or configured")
    return None, where


def _fetch_lfs(
    repo: Repo,
    run_id: str,
    arts: list[Artifact],
    looked: dict[str, list[str]],
    out: dict[str, Source],
    quiet: bool,
) -> None:
    remotes = remote_order(repo, run_id)
    if not remotes:
        for a in arts:
            looked[a.path].append("no git remote to fetch it from is configured")
        return
    if git_lfs.version() is None:
        for a in arts:
            looked[a.path].append(
                f"remote(s) {', '.join(remotes)} not asked: Git LFS is not installed; "
                f"{git_lfs.INSTALL_HINT}"
            )
        return
    todo = list(arts)
    for remote in remotes:
        # Pointers written from the manifest (never the tree's blob, which could say more).
        pointers = {a.sha256: repo.write_blob(lfs.pointer(a.sha256, a.size)) for a in todo}
        complaint = git_lfs.fetch(repo, remote, pointers, quiet)
        url = repo.config(f"remote.{remote}.url") or "?"
        left = []
        for a in todo:
            if lfs.has_object(repo, a.sha256, a.size):
                out[a.path] = Source(a, run_id, path=lfs.object_path(repo, a.sha256))
            else:
                why = f": {complaint}" if complaint and len(complaint) < 200 else ""
                looked[a.path].append(f"remote '{remote}' ({url}){why}")
                left.append(a)
        todo = left
        if not todo:
            return


def local_source(repo: Repo, run_id: str, a: Artifact) -> Source:
    """Where a large artifact's content is, without fetching anything (what a read-only
    reader such as `gitrun ui` may do): a local LFS object, or the object store."""
    where = repr(a.path[:200])
    if unreadable_kind(a.storage):
        raise ArtifactUnavailableError(
            f"Artifact {where} is kept in storage '{a.storage[:40]}', which this gitrun "
            "cannot read."
        )
    if a.storage == lfs.STORAGE and not lfs.has_object(repo, a.sha256, a.size):
        raise ArtifactUnavailableError(
            f"Artifact {where} is kept in Git LFS and its content is not in this clone; "
            f"`gitrun checkout {run_id[:8]}` (or `gitrun pull`) fetches it."
        )
    return locate(repo, run_id, [a])[a.path]  # LFS: here; the object store: looked up there


def unreadable_kind(storage: str) -> bool:
    """Whether this gitrun cannot read content kept in `storage`."""
    return storage != "git" and storage not in KINDS


def lfs_artifacts(repo: Repo, run_trees: dict[str, str]) -> list[tuple[str, Artifact]]:
    """(run id, artifact) of every artifact kept in Git LFS by the runs `run_trees` (run id
    -> run directory tree), read from their manifests in one batch."""
    from . import store
    from .layout import MANIFEST_FILE, RUN_FILE

    if not run_trees:
        return []
    recs = store.read_records(repo, run_trees, (RUN_FILE, MANIFEST_FILE))
    return [
        (rid, a)
        for rid, rec in sorted(recs.items())
        for a in sorted(rec.artifacts.values(), key=lambda a: a.path)
        if a.storage == lfs.STORAGE and lfs.is_oid(a.sha256)
    ]


def fetch_lfs(
    repo: Repo, remote: str, arts: Sequence[Artifact], quiet: bool = True
) -> tuple[int, list[Artifact]]:
    """Download the LFS objects of `arts` missing here from `remote`: (how many arrived,
    the artifacts still missing).  Git LFS must be installed (git_lfs.version())."""
    want = {a.sha256: a for a in arts if not lfs.has_object(repo, a.sha256, a.size)}
    if not want:
        return 0, []
    pointers = {oid: repo.write_blob(lfs.pointer(oid, a.size)) for oid, a in want.items()}
    git_lfs.fetch(repo, remote, pointers, quiet)
    missing = [a for a in want.values() if not lfs.has_object(repo, a.sha256, a.size)]
    return len(want) - len(missing), missing
