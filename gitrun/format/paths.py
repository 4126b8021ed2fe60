"""THE artifact-path rule, and writes under a directory that never follow a symlink.

An artifact path is stored in a run's manifest (artifacts.tsv), as a tree entry
under the run's ``artifacts/`` directory, and written back by `gitrun checkout`
on any machine the run travels to.  One rule decides which paths a run may hold:

* the writer (`check_artifact_path`, at log time) normalises what the user typed
  and refuses with an `InvalidInputError` whatever the rule refuses;
* readers (`check_history_path`, before anything is written) apply the same rule to
  paths from history, which may come from someone else, and raise `UnsafePathError`.

So every path a run can be logged with can be checked out again, and `git fsck`
(and a remote with ``receive.fsckObjects``) accepts every tree gitrun writes.
The rule: a relative path of at most 1024 UTF-8 bytes, components of at most 255
bytes; no empty, ``.`` or ``..`` component; no control character, line break or
unpaired surrogate; no component git treats as ``.git`` (any case, ``.git.``,
``.git::$DATA``, ``git~1``, ``.g\\u200cit``: what fsck reports as hasDotgit); and,
since the run may be checked out on Windows, no component that starts like a
drive (``C:``) and nothing between backslashes that would be one of the above.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat

from ..errors import GitrunError, InvalidInputError, UnsafePathError

MAX_COMPONENT_BYTES = 255  # NAME_MAX of Linux, macOS and Windows file systems
MAX_PATH_BYTES = 1024

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

# C0 and C1 controls, DEL, the line and paragraph separators (every character
# `str.splitlines` breaks on is among these), and unpaired surrogates.
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# git's is_ntfs_dotgit: `.git` or `git~1`, then only dots and spaces up to the end or
# an alternate data stream (`:`).
_NTFS_DOTGIT = re.compile(r"(?:\.git|git~1)[. ]*(?::|$)", re.IGNORECASE | re.ASCII)
# git's is_hfs_dotgit: HFS+ ignores these code points when it compares names.
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
_DRIVE = re.compile(r"[A-Za-z]:")


# git's fsck checks every tree entry it takes for `.gitmodules` (is_ntfs_dotgitmodules /
# is_hfs_dotgitmodules): a directory of that name is an error (gitmodulesBlob), and a file
# is parsed as submodule config (gitmodulesUrl and friends), so a remote with
# receive.fsckObjects could refuse the runs ref.  Artifacts never take the name.
_NTFS_DOTGITMODULES = re.compile(r"(?:\.gitmodules|gitmod~\d+|gi7eba~\d+)[. ]*(?::|$)", re.I | re.A)


def _is_dotgit(name: str) -> bool:
    if _NTFS_DOTGIT.match(name) or _NTFS_DOTGITMODULES.match(name):
        return True
    folded = _HFS_IGNORED.sub("", name)
    return folded.isascii() and folded.lower() in (".git", ".gitmodules")


def _show(path: object) -> str:
    text = repr(path)
    return text if len(text) <= 120 else text[:100] + "..." + text[-10:]


def path_problem(rel: str) -> str | None:
    """Why `rel` (a path as stored in a run) breaks the rule; None when it is fine."""
    if not rel:
        return "it is empty"
    bad = _BAD_CHAR.search(rel)
    if bad:
        c = bad.group()
        if "\ud800" <= c <= "\udfff":
            return "it is not valid unicode (a file name that was not UTF-8)"
        return f"it contains the control character or line break {c!r}"
    if rel.startswith(("/", "\\")):
        return "it is absolute"
    if len(rel.encode()) > MAX_PATH_BYTES:
        return f"it is longer than {MAX_PATH_BYTES} bytes"
    for part in rel.split("/"):
        if part in ("", "."):
            return "it is not a normalized path (it has an empty or '.' component)"
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            return f"its component {part[:20]!r}... is longer than {MAX_COMPONENT_BYTES} bytes"
        if _DRIVE.match(part):
            return f"its component {part!r} names a drive on Windows"
        for name in part.split("\\"):  # Windows reads a backslash as a separator
            if name == "..":
                return "it contains '..'"
            if name in ("", "."):
                return f"its component {part!r} has an empty or '.' part between backslashes"
            if _is_dotgit(name):
                return (
                    f"its component {part!r} is reserved (git reads it as '.git' or "
                    "'.gitmodules' and checks or refuses it)"
                )
    return None


def check_artifact_path(path: object) -> str:
    """The artifact path `path` as a run stores it (posix, normalised); InvalidInputError
    with one sentence naming the path when the rule refuses it."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidInputError(
            f"Invalid artifact path {path!r}: it must be a non-empty string, like "
            "'models/model.pkl'."
        )
    p = path.replace(os.sep, "/") if os.sep != "/" else path
    if any(part == ".." for part in p.split("/")):
        reason: str | None = "it contains '..'"
    elif p.startswith("/"):
        reason = "it is absolute"
    else:
        p = posixpath.normpath(p)
        reason = "it names no file" if p == "." else path_problem(p)
    if reason:
        raise InvalidInputError(
            f"Invalid artifact path {_show(path)}: {reason}; use a relative path inside the "
            "run such as 'models/model.pkl' (rename the file, or pass another artifact_path)."
        )
    return p


def check_history_path(rel: str, what: str = "artifact path", allow_dot: bool = False) -> list[str]:
    """The components of a relative path read from history; UnsafePathError when the
    rule refuses it (nothing may be written then)."""
    if allow_dot and rel in ("", "."):
        return []
    reason = path_problem(rel) if isinstance(rel, str) else "it is not text"
    if reason:
        raise UnsafePathError(
            f"Refusing {what} {_show(rel)}: {reason}; the run's record may have been crafted "
            "(or written by an older gitrun), and restoring it is not safe, so nothing was "
            "written."
        )
    return rel.split("/")


def safe_join(root: str, rel: str) -> str:
    """`root/rel` for a path from history: refuses unsafe paths and existing symlinks on the way.

    Only the check is done here; writes go through `write_file`, which repeats it with
    O_NOFOLLOW so that nothing changed in between can redirect them.
    """
    parts = check_history_path(rel)
    d = root
    for i, name in enumerate(parts):
        d = os.path.join(d, name)
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(
                f"Refusing artifact path {rel!r}: {'/'.join(parts[: i + 1])} is a symlink in "
                f"{root}, and writing through it could land outside; nothing was written."
            )
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise GitrunError(
                f"Cannot restore artifact {rel!r}: {'/'.join(parts[: i + 1])} in {root} is a "
                "file, not a directory; move it away and try again. Nothing was written."
            )
    return os.path.join(root, *parts)


def write_file(root: str, rel: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` at `root/rel` without following any symlink below `root`."""
    parts = check_history_path(rel)
    if not (_O_NOFOLLOW and _O_DIRECTORY and os.open in os.supports_dir_fd):
        # No dir_fd support (Windows): check each component, then write by path.
        full = safe_join(root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        safe_join(root, rel)
        tmp = full + f".gitrun-tmp-{os.getpid()}"
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, full)
        return
    fd = _open_parent(root, rel, parts, [])
    try:
        tmp = f".gitrun-tmp-{os.getpid()}-{parts[-1][:40]}"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, mode, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os.close(out)
        # rename(2) replaces a symlink at the destination instead of following it.
        os.replace(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)


def _open_parent(root: str, rel: str, parts: list[str], created: list[str]) -> int:
    """A descriptor of the directory holding `root/rel` (`parts` its components), reached
    directory by directory with O_NOFOLLOW; the ones made on the way are added to `created`
    (outermost first).  UnsafePathError when one is a symlink or not a directory."""
    fd = os.open(root, os.O_RDONLY | _O_DIRECTORY)
    where = root
    try:
        for name in parts[:-1]:
            where = os.path.join(where, name)
            try:
                os.mkdir(name, 0o777, dir_fd=fd)
                created.append(where)
            except FileExistsError:
                pass
            try:
                nfd = os.open(name, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=fd)
            except OSError:
                raise UnsafePathError(
                    f"Refusing artifact path {rel!r}: {name} is a symlink or not a directory "
                    f"in {root}; nothing more was written."
                ) from None
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


class StagedFile:
    """A file streamed to a temporary name beside `root/rel` (reached as `write_file`
    reaches it: directory by directory, O_NOFOLLOW), then renamed into place by `commit`
    or removed by `abort`, with the directories it created.  Large artifacts are staged
    and verified first, so a refused one leaves nothing behind."""

    def __init__(self, root: str, rel: str, mode: int = 0o644) -> None:
        parts = check_history_path(rel)
        self.rel = rel
        self.name = parts[-1]
        self.tmp = f".gitrun-tmp-{os.getpid()}-{os.urandom(4).hex()}"
        self.created: list[str] = []  # directories made here, outermost first
        self.dir_fd = -1
        self.fd = -1
        if not (_O_NOFOLLOW and _O_DIRECTORY and os.open in os.supports_dir_fd):
            full = safe_join(root, rel)
            d = os.path.dirname(full)
            missing = []
            while not os.path.isdir(d):
                missing.append(d)
                d = os.path.dirname(d)
            for m in reversed(missing):
                os.mkdir(m)
                self.created.append(m)
            self.dir_path = os.path.dirname(full)
            self.fd = os.open(
                os.path.join(self.dir_path, self.tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode
            )
            return
        fd = -1
        try:
            fd = _open_parent(root, rel, parts, self.created)
            self.fd = os.open(
                self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, mode, dir_fd=fd
            )
        except BaseException:
            if fd >= 0:
                os.close(fd)
            self._remove_dirs()
            raise
        self.dir_fd = fd
        self.dir_path = os.path.join(root, *parts[:-1])

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def commit(self) -> None:
        """Rename into place (rename(2) replaces a symlink there instead of following it)."""
        os.close(self.fd)
        self.fd = -1
        if self.dir_fd >= 0:
            os.replace(self.tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            os.close(self.dir_fd)
            self.dir_fd = -1
        else:
            os.replace(
                os.path.join(self.dir_path, self.tmp), os.path.join(self.dir_path, self.name)
            )

    def abort(self) -> None:
        """Remove the temporary file and the directories made for it (when empty)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            if self.dir_fd >= 0:
                os.unlink(self.tmp, dir_fd=self.dir_fd)
            else:
                os.unlink(os.path.join(self.dir_path, self.tmp))
        except OSError:
            pass
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1
        self._remove_dirs()

    def _remove_dirs(self) -> None:
        for d in reversed(self.created):
            try:
                os.rmdir(d)
            except OSError:
                break


class ArtifactPaths:
    """The artifact paths of one run.  A path cannot be a file and a directory at once: git
    cannot store both in one tree, and no file system could restore them."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def conflict(self, path: str) -> str | None:
        """Why `path` cannot join these paths; None when it can (or is one of them)."""
        if path in self.dirs:
            return f"'{path}' is already a directory of artifacts of this run"
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self.files:
                return f"'{parent}' is already an artifact file of this run"
        return None

    def add(self, path: str) -> None:
        """Add `path`; InvalidInputError naming the conflict when it cannot be added."""
        reason = self.conflict(path)
        if reason:
            raise InvalidInputError(
                f"Cannot log artifact {_show(path)}: {reason}, and a path cannot be both a "
                "file and a directory; pass another artifact_path."
            )
        self.files.add(path)
        parts = path.split("/")
        self.dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
