"""Collecting artifact files from disk without surprises.

One walk for every directory artifact (`gitrun record -a DIR`, `log_artifacts`,
`log_artifact` of a directory, the client's `log_artifacts`):

* a symlink is followed only while its target stays inside the directory the user
  named; one leaving it, dangling, or looping is skipped with a problem sentence, so
  a link can never pull content from elsewhere on the machine into the runs ref;
* FIFOs, sockets and devices are skipped and never opened (a FIFO would block);
  files are opened with O_NOFOLLOW | O_NONBLOCK and checked to be regular first;
* `.git` entries are never collected;
* at most `max-artifact-files` files and `max-artifact-size` bytes per directory
  artifact, counted before anything is stored and stopping at the limit, so naming
  a huge directory (`/tmp`) fails fast.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
import threading
from typing import Any

from ..errors import GitError, InvalidInputError

DEFAULT_MAX_FILES = 10_000
DEFAULT_MAX_SIZE = 2 * 1024**3
ENV_MAX_FILES = "GITRUN_MAX_ARTIFACT_FILES"
ENV_MAX_SIZE = "GITRUN_MAX_ARTIFACT_SIZE"
MAX_TEXT_FILE = 64 * 1024 * 1024  # params/metrics files
_SMALL = 32 * 1024 * 1024  # larger files stream through `git hash-object`
# Characters an artifact path or file name may not hold (tab, newline, CR, NUL).
CONTROL_CHARS = "\t\n\r\0"


class ArtifactLimitError(InvalidInputError):
    """A directory artifact has more files or bytes than the configured limit."""


class Limits:
    """Per-directory-artifact limits; 0 means no limit."""

    def __init__(self, files: int = DEFAULT_MAX_FILES, size: int = DEFAULT_MAX_SIZE) -> None:
        self.files = files
        self.size = size


class Walk:
    """The result of walking one directory artifact."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str, int]] = []  # (path to open, posix rel path, size)
        self.problems: list[str] = []


def limits(cfg: dict[str, Any] | None, max_files: Any = None, max_size: Any = None) -> Limits:
    """Limits from, in order: the explicit values, the environment, the config, defaults."""
    from .settings import parse_size

    cfg = cfg or {}
    files = _first(max_files, os.environ.get(ENV_MAX_FILES), cfg.get("max-artifact-files"))
    size = _first(max_size, os.environ.get(ENV_MAX_SIZE), cfg.get("max-artifact-size"))
    out = Limits()
    if files is not None:
        try:
            out.files = int(str(files).strip().replace("_", "").replace(",", ""))
            if out.files < 0:
                raise ValueError
        except ValueError:
            raise InvalidInputError(
                f"'{files}' is not a number of files; give max-artifact-files as a whole "
                "number (0: no limit)."
            ) from None
    if size is not None:
        out.size = parse_size(size)
        if out.size < 0:
            raise InvalidInputError(f"'{size}' is not a size; write it like 2GB (0: no limit).")
    return out


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None and v != "":
            return v
    return None


_cfg_cache: dict[str, dict[str, Any]] = {}
_cfg_lock = threading.Lock()


def api_limits(work_tree: str | None, max_files: Any, max_size: Any) -> Limits:
    """Limits for the API: the project config is read once per process."""
    if max_files is not None and max_size is not None:
        return limits(None, max_files, max_size)
    from . import settings as config

    key = work_tree or ""
    with _cfg_lock:
        if key not in _cfg_cache:
            _cfg_cache[key] = config.load(work_tree)
    return limits(_cfg_cache[key], max_files, max_size)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.3g} {unit}"
        size /= 1024
    return f"{n} bytes"


def show(top: str, rel: str) -> str:
    """How to name `rel` under the directory the user typed as `top`."""
    if top in ("", ".", "./") or not rel:
        return rel or top
    return top.rstrip("/" + os.sep) + "/" + rel


def inside(path: str, top: str) -> bool:
    """Whether the (resolved) path is top or below it."""
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def file_kind(mode: int) -> str:
    """What a file that is not regular is, in words: "a FIFO (named pipe)", ..."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _why(e: OSError) -> str:
    if isinstance(e, PermissionError):
        return "permission denied"
    return (e.strerror or str(e)).lower()


def _limit_error(shown: str, what: str, key: str, how: str) -> str:
    value = "N" if key.endswith("files") else "SIZE"
    override = f"`--{key} {value}`" if how == "cli" else f"{key.replace('-', '_')}={value}"
    env = ENV_MAX_FILES if key.endswith("files") else ENV_MAX_SIZE
    return (
        f"Artifact directory '{shown}' {what}, the limit for one directory artifact, so "
        f"nothing from it was stored; name a smaller directory or raise the limit with "
        f"{override}, the environment variable {env} or `{key}` in .gitrun.yaml or "
        "[tool.gitrun] of pyproject.toml (0 means no limit)."
    )


def walk(top: str, lim: Limits, shown: str | None = None, how: str = "api") -> Walk:
    """Every regular file under the directory `top`, within the rules of this module.

    Raises ArtifactLimitError (naming `shown`, the path as the user typed it) as soon as
    a limit is passed, before anything is stored; everything else that cannot be
    collected is a problem sentence in the result.
    """
    shown = top if shown is None else shown
    real_top = os.path.realpath(top)
    out = Walk()
    n_files = n_dirs = total = 0
    # Depth first, sorted; every path on the stack is resolved (no symlink in it).
    stack: list[tuple[str, str, tuple[str, ...]]] = [(real_top, "", (real_top,))]
    while stack:
        d, prefix, ancestors = stack.pop()
        try:
            with os.scandir(d) as it:
                names = sorted(e.name for e in it)
        except OSError as e:
            out.problems.append(
                f"Skipped directory '{show(shown, prefix.rstrip('/'))}': it cannot be read "
                f"({_why(e)})."
            )
            continue
        subdirs = []
        for name in names:
            if name == ".git":
                continue  # git's own data is never an artifact
            rel = prefix + name
            where = show(shown, rel)
            if any(c in name for c in CONTROL_CHARS):
                out.problems.append(
                    f"Skipped {where!r}: its name contains control characters, which "
                    "artifact paths may not."
                )
                continue
            path = os.path.join(d, name)
            try:
                st = os.lstat(path)
            except OSError as e:
                out.problems.append(f"Skipped '{where}': it cannot be read ({_why(e)}).")
                continue
            if stat.S_ISLNK(st.st_mode):
                problem, path, st2 = _follow(path, real_top, where)
                if problem or st2 is None:
                    out.problems.append(problem)
                    continue
                st = st2
                if stat.S_ISDIR(st.st_mode) and path in ancestors:
                    out.problems.append(
                        f"Skipped '{where}': it is a symlink to a directory that contains "
                        "it (a loop)."
                    )
                    continue
            if stat.S_ISDIR(st.st_mode):
                n_dirs += 1
                if lim.files and n_dirs > lim.files:
                    raise ArtifactLimitError(
                        _limit_error(
                            shown,
                            f"has more than {lim.files:,} subdirectories",
                            "max-artifact-files",
                            how,
                        )
                    )
                subdirs.append((path, rel + "/", (*ancestors, path)))
            elif stat.S_ISREG(st.st_mode):
                n_files += 1
                total += st.st_size
                if lim.files and n_files > lim.files:
                    raise ArtifactLimitError(
                        _limit_error(
                            shown,
                            f"has more than {lim.files:,} files",
                            "max-artifact-files",
                            how,
                        )
                    )
                if lim.size and total > lim.size:
                    raise ArtifactLimitError(
                        _limit_error(
                            shown,
                            f"holds more than {human_size(lim.size)}",
                            "max-artifact-size",
                            how,
                        )
                    )
                out.files.append((path, rel, st.st_size))
            else:
                out.problems.append(
                    f"Skipped '{where}': it is {file_kind(st.st_mode)}, not a regular file."
                )
        stack.extend(reversed(subdirs))
    out.files.sort(key=lambda f: f[1])
    return out


def _follow(path: str, real_top: str, where: str) -> tuple[str, str, os.stat_result | None]:
    """Resolve a symlink found in an artifact directory: (problem, target, its stat)."""
    try:
        text = os.readlink(path)
    except OSError:
        text = "?"
    try:
        target = os.path.realpath(path, strict=True)
    except FileNotFoundError:
        return f"Skipped '{where}': it is a symlink to '{text}', which does not exist.", "", None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"Skipped '{where}': it is a symlink loop.", "", None
        return f"Skipped '{where}': its symlink cannot be resolved ({_why(e)}).", "", None
    if not inside(target, real_top):
        return (
            f"Skipped '{where}': it is a symlink to '{text}', outside the artifact directory; "
            "gitrun does not follow links out of it (copy the file in to keep it).",
            "",
            None,
        )
    try:
        return "", target, os.stat(target)
    except OSError as e:
        return f"Skipped '{where}': it cannot be read ({_why(e)}).", "", None


def open_regular(path: str, shown: str | None = None, what: str = "Artifact") -> int:
    """Open a regular file for reading, never a FIFO, device, socket or (last) symlink."""
    shown = path if shown is None else shown
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(
                f"{what} '{shown}' is {file_kind(st.st_mode)}, not a regular file."
            )
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InvalidInputError(f"{what} '{shown}' does not exist.") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidInputError(
                f"{what} '{shown}' was replaced by a symlink while gitrun read it."
            ) from None
        raise InvalidInputError(f"{what} '{shown}' cannot be read ({_why(e)}).") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped between stat and open
        os.close(fd)
        raise InvalidInputError(f"{what} '{shown}' is {file_kind(st.st_mode)}, not a regular file.")
    return fd


def _read_all(fd: int, limit: int | None = None) -> bytes:
    chunks: list[bytes] = []
    n = 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        n += len(chunk)
        if limit is not None and n > limit:
            raise OverflowError


def store_artifact(repo: Any, path: str, shown: str | None = None) -> Any:
    """Store a regular file as an artifact: a git blob, or, at or above the large-file
    threshold, in Git LFS or the artifact store (capture/largefiles.py).  Returns a
    format.entities.Artifact whose path the caller sets."""
    from ..format.entities import Artifact
    from . import largefiles

    fd = open_regular(path, shown)
    try:
        if largefiles.is_large(repo, os.fstat(fd).st_size):
            return largefiles.store(repo, fd, path if shown is None else shown)
        blob, sha256, size = _store_fd(repo, fd, path, shown)
        return Artifact("", size, sha256, "git", blob)
    finally:
        os.close(fd)


def _store_fd(repo: Any, fd: int, path: str, shown: str | None) -> tuple[str, str, int]:
    try:
        if os.fstat(fd).st_size <= _SMALL:
            data = _read_all(fd)
            return repo.write_blob(data), hashlib.sha256(data).hexdigest(), len(data)
        h = hashlib.sha256()
        size = 0
        while chunk := os.pread(fd, 1 << 20, size):
            h.update(chunk)
            size += len(chunk)
    except OSError as e:
        raise InvalidInputError(
            f"Artifact '{path if shown is None else shown}' cannot be read ({_why(e)})."
        ) from None
    os.lseek(fd, 0, os.SEEK_SET)
    return _hash_object(repo, fd), h.hexdigest(), size


def _hash_object(repo: Any, fd: int) -> str:
    """Write a large file's blob through git, streaming it from the open descriptor."""
    import subprocess

    from .._git import git_env

    try:
        p = subprocess.run(
            ["git", "hash-object", "-w", "--no-filters", "--stdin"],
            stdin=fd,
            capture_output=True,
            cwd=repo.work_tree or repo.git_dir,
            env=git_env(),
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH; install git and try again.") from None
    if p.returncode != 0:
        lines = p.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"`git hash-object` failed: {lines[-1] if lines else p.returncode}")
    return p.stdout.decode().strip()


def read_text(path: str, what: str) -> str:
    """A params/metrics file's text, as one InvalidInputError sentence when it cannot be."""
    label = f"The {what} file '{path}'"
    if not os.path.lexists(path):
        raise InvalidInputError(f"{label} does not exist.")
    if os.path.isdir(path):
        raise InvalidInputError(f"{label} is a directory; give a JSON or YAML file.")
    if not os.path.exists(path):
        raise InvalidInputError(f"{label} is a symlink to a file that does not exist.")
    fd = open_regular(os.path.realpath(path), path, f"The {what} file")
    try:
        data = _read_all(fd, MAX_TEXT_FILE)
    except OverflowError:
        raise InvalidInputError(
            f"{label} is larger than {human_size(MAX_TEXT_FILE)}; it does not look like a "
            f"{what} file."
        ) from None
    except OSError as e:
        raise InvalidInputError(f"{label} cannot be read ({_why(e)}).") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f"{label} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "write it as UTF-8 JSON or YAML."
        ) from None


def dir_files(local_dir: str, artifact_path: str | None, lim: Limits) -> list[tuple[str, str, str]]:
    """The API's `log_artifacts`: (path to open, destination, shown name) of each file.

    What is skipped gets one warning line on stderr; a limit raises before anything is
    stored.
    """
    if not os.path.isdir(local_dir):
        raise InvalidInputError(
            f"Artifact directory '{local_dir}' does not exist or is not a directory."
        )
    w = walk(local_dir, lim, local_dir, "api")
    for p in w.problems:
        print(f"gitrun: {p}", file=sys.stderr)
    prefix = artifact_path.strip("/") if artifact_path else ""
    return [
        (full, f"{prefix}/{rel}" if prefix else rel, show(local_dir, rel))
        for full, rel, _ in w.files
    ]
