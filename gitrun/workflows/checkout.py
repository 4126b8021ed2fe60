"""`gitrun checkout RUN`: restore the exact code and the artifacts a run was recorded with.

Three targets:

* in place (default): a branch `gitrun/<short id>` at the run's code commit, switched to,
  artifacts restored in the work tree.  Refuses on a dirty work tree (``--stash`` stashes
  first, with ``git stash push --include-untracked``), so no work is ever lost.
* ``worktree=DIR``: ``git worktree add`` at the code commit; the current work tree, index
  and HEAD are not touched.
* ``artifacts_only=DIR``: only the artifacts, verified.

Where artifacts go: `gitrun record -a PATH` stores an artifact under its path relative
to the directory the command ran in (the run's ``cwd``), so checkout restores artifacts
under ``<work tree>/<cwd>/``: a rerun of ``python train.py`` from that directory finds
``model.pkl`` where it wrote it.  API-only runs have no ``cwd``; theirs go under the
work tree root.  ``artifacts_only=DIR`` puts them directly under DIR.  Stored copies of
inputs (``-i PATH --store``: artifacts under ``gitrun.inputs/``) go back to the input's
own path from the work tree root (``target_of``); with ``artifacts_only`` they stay under
``DIR/gitrun.inputs/``.

The manifest comes from history that may have been fetched from someone else, so every
artifact path is checked before anything is written (by the rule in gitrun/paths.py, the
one the writer applies at log time; no symlink or gitlink tree entry, no symlink on the
way in the target tree, content matching its sha256); then files are written through
directory file descriptors opened with ``O_NOFOLLOW``, so a symlink that appears in the
meantime cannot redirect a write outside the target tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field

from .._git import BLOB_MODE, EXEC_MODE, GITLINK_MODE, LINK_MODE, TREE_MODE, Repo, sha256_file
from ..errors import (
    CorruptRecordError,
    DirtyWorkTreeError,
    GitError,
    GitrunError,
    InvalidInputError,
    UnsafePathError,
)
from ..format import large, paths
from ..format.entities import RunRecord
from ..format.layout import checkout_branch
from ..query import resolve as runs

safe_join = paths.safe_join
write_file = paths.write_file


# ---------------------------------------------------------------------------
# paths from history
# ---------------------------------------------------------------------------
def check_rel_path(rel: str, what: str = "artifact path", allow_dot: bool = False) -> list[str]:
    """The components of a relative path from history; UnsafePathError when it is unsafe."""
    return paths.check_history_path(rel, what, allow_dot)


# ---------------------------------------------------------------------------
# planning and restoring artifacts
# ---------------------------------------------------------------------------
@dataclass
class PlannedArtifact:
    path: str  # artifact path, as in the manifest
    target: str  # path relative to the target root
    data: bytes  # the content (storage "git"); b"" for a large artifact
    mode: int
    exists: bool = False  # an identical file is already there
    sha256: str = ""
    size: int = 0
    source: large.Source | None = None  # a large artifact: streamed, verified, staged


def base_dir(rec: RunRecord) -> list[str]:
    """Components of the directory artifacts are restored under (the run's cwd)."""
    return check_rel_path(rec.cwd or ".", "working directory", allow_dot=True)


def target_of(path: str, base: list[str], in_tree: bool = True) -> str:
    """Where artifact `path` is restored, relative to the target root: under the run's cwd
    (`base`); a stored copy of an input (store.STORED_INPUTS/<input path>) at the input's
    own path from the work tree root when restoring into a work tree (`in_tree`)."""
    from ..format.store import STORED_INPUTS, is_stored_input

    if in_tree and is_stored_input(path):
        return path[len(STORED_INPUTS) + 1 :]
    return "/".join(base + path.split("/"))


def load_artifacts(
    repo: Repo,
    rec: RunRecord,
    base: list[str],
    in_tree: bool = True,
    only: Collection[str] | None = None,
) -> list[PlannedArtifact]:
    """Every artifact's content (or those named in `only`), checked: safe path, plain
    blob, size and sha256 as recorded.  Targets: `target_of` (`in_tree`: False for
    --artifacts-only, where stored inputs stay under their artifact path).

    Raises before returning anything, so a caller that writes only afterwards writes nothing
    when one artifact is bad.
    """
    from ..format import store

    for path in rec.artifacts:
        check_rel_path(path)
    wanted = {p: a for p, a in rec.artifacts.items() if only is None or p in only}
    modes = store.artifact_blobs(repo, rec.tree) if rec.tree else {}
    for path, (mode, _sha) in modes.items():
        if path in rec.artifacts and mode not in (BLOB_MODE, EXEC_MODE):
            kind = {LINK_MODE: "a symlink", GITLINK_MODE: "a submodule link"}.get(mode, mode)
            raise UnsafePathError(
                f"Refusing artifact {path!r} of run {rec.run_id[:8]}: it is stored as {kind}, "
                "not a file; the run's record may have been crafted, so nothing was written."
            )
    out = []
    # Large artifacts first: each found (fetched when missing) before anything is written.
    found = large.locate(repo, rec.run_id, [a for a in wanted.values() if a.storage in large.KINDS])
    for path, src in sorted(found.items()):
        a = src.artifact
        perm = 0o755 if modes.get(path, (BLOB_MODE, ""))[0] == EXEC_MODE else 0o644
        target = target_of(path, base, in_tree)
        out.append(
            PlannedArtifact(path, target, b"", perm, sha256=a.sha256, size=a.size, source=src)
        )
    for path, a in sorted(wanted.items()):
        if a.storage != "git":
            continue  # large (above) or unknown: left out, named by unreadable()
        if not a.blob:
            raise CorruptRecordError(
                f"Artifact {path!r} of run {rec.run_id[:8]} has no content in git (storage "
                f"{a.storage!r}); it cannot be restored, and nothing was written."
            )
        kind, data = repo.read_object(a.blob)
        digest = hashlib.sha256(data).hexdigest()
        if kind != "blob" or digest != a.sha256 or len(data) != a.size:
            raise CorruptRecordError(
                f"Artifact {path!r} of run {rec.run_id[:8]} does not match its manifest "
                f"(sha256 {digest[:12]}, recorded {a.sha256[:12]}); nothing was written."
            )
        perm = 0o755 if modes.get(path, (BLOB_MODE, ""))[0] == EXEC_MODE else 0o644
        target = target_of(path, base, in_tree)
        out.append(PlannedArtifact(path, target, data, perm, sha256=digest, size=len(data)))
    return out


def restore_inputs(repo: Repo, rec: RunRecord, root: str, inputs: Collection[str]) -> int:
    """Put the stored copies of `inputs` (input paths with a complete copy,
    store.stored_copies) back at their paths under `root`, a work tree of the run's code
    that gitrun made (a rerun's): what is there with other content is replaced.  Every
    file is checked before any is written; returns how many were written."""
    from ..format import store

    copies = store.stored_copies(rec)
    want = {a.path for i in inputs for a in copies.get(i, [])}
    if not want:
        return 0
    planned = load_artifacts(repo, rec, [], only=want)
    plan_in(root, planned, {p.target for p in planned})
    return write_planned(root, planned)


def unreadable(rec: RunRecord) -> list[str]:
    """One sentence per artifact kept in a storage kind this gitrun cannot read.

    docs/format.md: a reader that meets an unknown storage kind reports it and leaves the
    file out; `load_artifacts` leaves them out, this names them.
    """
    return [
        f"Artifact {path!r} of run {rec.run_id[:8]} is kept in storage {a.storage!r}, which "
        "this gitrun cannot read, so it was not restored."
        for path, a in sorted(rec.artifacts.items())
        if large.unreadable_kind(a.storage)
    ]


def check_code_tree(repo: Repo, commit: str, planned: list[PlannedArtifact]) -> set[str]:
    """Refuse artifacts that would pass through a symlink or a file of the run's code.

    Returns the targets that are files of the code with other content: the artifact (the
    run's output) replaces them, which loses nothing since the code commit keeps them.
    """
    root = repo.read_commit(commit)[0]
    replaced = set()
    for p in planned:
        tree: str | None = root
        parts = p.target.split("/")
        for i, name in enumerate(parts):
            assert tree is not None
            entry = next((e for e in repo.read_tree(tree) if e[1] == name), None)
            if entry is None:
                break
            mode, _n, sha = entry
            last = i == len(parts) - 1
            if mode == LINK_MODE:
                raise UnsafePathError(
                    f"Refusing artifact {p.path!r}: {'/'.join(parts[: i + 1])} is a symlink "
                    "in the run's code, and writing through it could land outside the work "
                    "tree; nothing was written."
                )
            if mode == TREE_MODE and not last:
                tree = sha
                continue
            if last and mode in (BLOB_MODE, EXEC_MODE):
                replaced.add(p.target)
                break
            raise GitrunError(
                f"Artifact {p.path!r} cannot be restored in the run's code: "
                f"{'/'.join(parts[: i + 1])} is a {'directory' if last else 'file'} there; "
                "restore the artifacts with --artifacts-only DIR instead. Nothing was written."
            )
    return replaced


def plan_in(root: str, planned: list[PlannedArtifact], replaceable: Collection[str] = ()) -> None:
    """Check every target against the file system under `root` (symlinks, existing files).

    An existing different file is refused unless its target is in `replaceable` (a file of
    the freshly checked-out code, which git keeps).
    """
    for p in planned:
        full = safe_join(root, p.target)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise GitrunError(
                f"Cannot restore artifact {p.path!r}: {full} exists and is not a regular "
                "file; move it away and try again. Nothing was written."
            )
        if st.st_size == p.size and sha256_file(full) == p.sha256:
            p.exists = True
        elif p.target not in replaceable:
            raise GitrunError(
                f"Refusing to overwrite {full}: it differs from artifact {p.path!r} of the "
                "run; move it away (or use --artifacts-only DIR) and try again. Nothing was "
                "written."
            )


def write_planned(root: str, planned: list[PlannedArtifact]) -> int:
    """Write what is not there yet.  Large artifacts are streamed to temporary files and
    verified first; one that does not match its record removes them all, before any
    file is written."""
    big = [(p.target, p.mode, p.source) for p in planned if not p.exists and p.source is not None]
    staged = large.stage(root, big)
    n = 0
    for p in planned:
        if not p.exists and p.source is None:
            write_file(root, p.target, p.data, p.mode)
            n += 1
    for f in staged:
        f.commit()
    return n + len(staged)


# ---------------------------------------------------------------------------
# work tree state
# ---------------------------------------------------------------------------
def restored_copies(repo: Repo, rec: RunRecord, among: Collection[str]) -> set[str]:
    """The paths of `among` (in the work tree) whose content is exactly one of this run's
    artifacts; only those are hashed."""
    if not repo.work_tree:
        return set()
    try:
        base = base_dir(rec)
    except UnsafePathError:
        return set()
    out = set()
    for path, a in rec.artifacts.items():
        try:
            check_rel_path(path)
            target = target_of(path, base)
            if target not in among:
                continue
            full = safe_join(repo.work_tree, target)
            if (
                os.path.isfile(full)
                and not os.path.islink(full)
                and os.path.getsize(full) == a.size
                and sha256_file(full) == a.sha256
            ):
                out.add(target)
        except (GitrunError, OSError):
            continue
    return out


def dirty_paths(repo: Repo, rec: RunRecord | None = None) -> list[str]:
    """Changed tracked files and untracked, non-ignored files.

    With `rec`, files identical to that run's restored artifacts do not count: they are
    what `gitrun checkout` put there, and git keeps their content.
    """
    st = repo.status()
    dirty = st.changed + st.untracked
    skip = restored_copies(repo, rec, set(dirty)) if rec and dirty else set()
    return [p for p in dirty if p not in skip]


def code_commit(rec: RunRecord, repo: Repo) -> str:
    commit = (rec.code or {}).get("commit")
    if not commit:
        raise GitrunError(
            f"Run {rec.run_id[:8]} ({rec.run_name}) has no code commit: it was recorded "
            "outside a git repository with commits and a dirty tree to snapshot. Only its "
            f"artifacts can be restored: gitrun checkout {rec.run_id[:8]} --artifacts-only DIR."
        )
    if not repo.has_object(commit):
        raise GitrunError(
            f"The code commit {commit[:12]} of run {rec.run_id[:8]} is not in this "
            "repository; fetch it (gitrun pull brings runs with their code) and try again."
        )
    return commit


def large_artifact_warnings(rec: RunRecord) -> list[str]:
    return [
        f"{x.get('path')} ({x.get('size')} bytes, sha256 {str(x.get('sha256'))[:12]})"
        for x in (rec.code or {}).get("large_untracked") or []
    ]


# ---------------------------------------------------------------------------
# checkout
# ---------------------------------------------------------------------------
@dataclass
class CheckoutResult:
    run: RunRecord
    mode: str  # "in-place", "worktree" or "artifacts-only"
    target: str  # directory the code and/or artifacts are in
    commit: str | None = None
    branch: str | None = None
    stash: str | None = None  # message of the stash entry made by --stash
    written: int = 0  # artifacts written
    unchanged: int = 0  # artifacts already there, identical
    not_captured: list[str] = field(default_factory=list)  # large untracked files
    unavailable: list[str] = field(default_factory=list)  # artifacts in unknown storage

    def render(self) -> str:
        rid = self.run.run_id[:8]
        name = self.run.run_name
        lines = []
        if self.stash:
            lines.append(
                f"Stashed your uncommitted changes and untracked files as "
                f'"{self.stash}"; `git stash pop` brings them back.'
            )
        if self.mode == "in-place":
            lines.append(
                f"Switched to branch {self.branch} at {str(self.commit)[:12]}, the code of "
                f"run {rid} ({name})."
            )
        elif self.mode == "worktree":
            where = f"on branch {self.branch}" if self.branch else "detached"
            lines.append(
                f"Created worktree {self.target} ({where}) at {str(self.commit)[:12]}, the "
                f"code of run {rid} ({name})."
            )
        total = self.written + self.unchanged
        if total or self.mode == "artifacts-only":
            extra = f" ({self.unchanged} already there)" if self.unchanged else ""
            lines.append(
                f"Restored {total} artifact(s) of run {rid}, verified against their sha256, "
                f"in {self.target}{extra}."
            )
        for big in self.not_captured:
            lines.append(f"Not in the code snapshot (too large when recorded): {big}.")
        return "\n".join(lines)


def _run_ok(repo: Repo, *args: str) -> bool:
    return repo.git(*args, check=False).returncode == 0


def checkout(
    repo: Repo,
    run_ref: str,
    branch: str | None = None,
    stash: bool = False,
    worktree: str | None = None,
    artifacts_only: str | None = None,
    force_branch: bool = False,
) -> CheckoutResult:
    """Restore a run's code and artifacts; see the module docstring for the three targets."""
    if worktree and artifacts_only:
        raise InvalidInputError("Give either --worktree or --artifacts-only, not both.")
    rec = runs.load(repo, run_ref, history=False)
    if rec.status == "RUNNING":
        raise GitrunError(
            f"Run {rec.run_id[:8]} is still running; check it out once it has finished."
        )
    if artifacts_only:
        return _artifacts_only(repo, rec, artifacts_only)
    commit = code_commit(rec, repo)
    planned = load_artifacts(repo, rec, base_dir(rec))
    replaced = check_code_tree(repo, commit, planned)
    if branch is not None:
        _check_branch_name(repo, branch)
    if worktree:
        return _worktree(repo, rec, commit, planned, replaced, worktree, branch, force_branch)
    return _in_place(repo, rec, commit, planned, replaced, branch, stash, force_branch)


def _check_branch_name(repo: Repo, branch: str) -> None:
    if not branch or not _run_ok(repo, "check-ref-format", "--branch", branch):
        raise InvalidInputError(f"'{branch}' is not a valid branch name.")


def _branch_state(repo: Repo, branch: str, commit: str, force: bool) -> bool:
    """True when `branch` must be created (or moved); refuses when it points elsewhere."""
    existing = repo.read_ref(f"refs/heads/{branch}")
    if existing is None:
        return True
    if existing == commit:
        return False
    if force:
        return True
    raise GitrunError(
        f"Branch {branch} already exists at {existing[:12]}, not at the run's code "
        f"{commit[:12]}; pass another --branch NAME (or --force-branch to move it, its old "
        "tip stays in the reflog)."
    )


def _artifacts_only(repo: Repo, rec: RunRecord, directory: str) -> CheckoutResult:
    planned = load_artifacts(repo, rec, [], in_tree=False)
    root = os.path.abspath(directory)
    if os.path.exists(root) and not os.path.isdir(root):
        raise GitrunError(f"{directory} exists and is not a directory; choose another one.")
    made = not os.path.isdir(root)
    if made:
        os.makedirs(root)
    else:
        plan_in(root, planned)
    try:
        written = write_planned(root, planned)
    except BaseException:
        if made:  # nothing was written: not even the directory stays
            with contextlib.suppress(OSError):
                os.rmdir(root)
        raise
    return CheckoutResult(
        rec,
        "artifacts-only",
        root,
        written=written,
        unchanged=len(planned) - written,
        unavailable=unreadable(rec),
    )


def add_worktree(repo: Repo, *args: str) -> None:
    """`git worktree add ARGS` (e.g. ``--detach DIR COMMIT``); a GitError with git's reason
    when it fails."""
    proc = repo.git("worktree", "add", *args, check=False)
    if proc.returncode != 0:
        raise GitError(f"git worktree add failed: {proc.stderr.decode(errors='replace').strip()}")


def remove_worktree(repo: Repo, root: str) -> None:
    """The worktree at `root` removed, uncommitted changes and all, and git's admin data of
    worktrees gone missing pruned (failures ignored: this is cleanup)."""
    repo.git("worktree", "remove", "--force", root, check=False)
    repo.git("worktree", "prune", check=False)


def _worktree(
    repo: Repo,
    rec: RunRecord,
    commit: str,
    planned: list[PlannedArtifact],
    replaced: set[str],
    directory: str,
    branch: str | None,
    force_branch: bool,
) -> CheckoutResult:
    root = os.path.abspath(directory)
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise GitrunError(
            f"{directory} already exists and is not an empty directory; choose a new one."
        )
    if branch:
        create = _branch_state(repo, branch, commit, force_branch)
        if create:
            add_worktree(repo, "-B" if force_branch else "-b", branch, root, commit)
        else:
            add_worktree(repo, root, branch)
    else:
        add_worktree(repo, "--detach", root, commit)
    try:
        plan_in(root, planned, replaced)
        written = write_planned(root, planned)
    except BaseException:
        remove_worktree(repo, root)
        raise
    return CheckoutResult(
        rec,
        "worktree",
        root,
        commit=commit,
        branch=branch,
        written=written,
        unchanged=len(planned) - written,
        not_captured=large_artifact_warnings(rec),
        unavailable=unreadable(rec),
    )


def _in_place(
    repo: Repo,
    rec: RunRecord,
    commit: str,
    planned: list[PlannedArtifact],
    replaced: set[str],
    branch: str | None,
    stash: bool,
    force_branch: bool,
) -> CheckoutResult:
    if not repo.work_tree:
        raise GitrunError(
            "This repository has no work tree; use --worktree DIR or --artifacts-only DIR."
        )
    root = repo.work_tree
    name = branch or checkout_branch(rec.run_id)
    if branch is None:
        _check_branch_name(repo, name)
    create = _branch_state(repo, name, commit, force_branch)
    st = repo.status()
    if create and force_branch and st.branch == name:
        raise GitrunError(f"Branch {name} is checked out here; it cannot be moved.")
    dirty = dirty_paths(repo, rec)
    stashed = None
    if dirty:
        if not stash:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            raise DirtyWorkTreeError(
                f"Your work tree has uncommitted changes or untracked files ({shown}); "
                "commit them, or pass --stash to put them in `git stash` "
                "(--include-untracked) first. Nothing was changed."
            )
        stashed = f"gitrun: before checkout of run {rec.run_id}"
        repo.git("stash", "push", "--include-untracked", "-m", stashed)
    before = st.branch or st.head
    if create:
        args = ["switch", "-C" if force_branch else "-c", name, commit]
    else:
        args = ["switch", name]
    proc = repo.git(*args, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        raise GitError(
            f"`git {' '.join(args[:3])}` failed: {detail}"
            + (" Your changes are in the stash (`git stash pop`)." if stashed else "")
        )
    try:
        plan_in(root, planned, replaced)
        written = write_planned(root, planned)
    except BaseException:
        # Something in the work tree (e.g. an ignored symlink) makes an artifact unsafe,
        # or a large artifact does not match its record: go back to where the user was,
        # so the refusal changes nothing.
        if before:
            switch_back = ["switch", before] if st.branch else ["switch", "--detach", before]
            repo.git(*switch_back, check=False)
            if create and repo.read_ref(f"refs/heads/{name}") == commit:
                repo.git("branch", "-D", name, check=False)
        raise
    return CheckoutResult(
        rec,
        "in-place",
        root,
        commit=commit,
        branch=name,
        stash=stashed,
        written=written,
        unchanged=len(planned) - written,
        not_captured=large_artifact_warnings(rec),
        unavailable=unreadable(rec),
    )
