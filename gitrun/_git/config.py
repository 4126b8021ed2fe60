"""git configuration, read as git reads it.

The fast path reads the config files itself (spawning `git config` costs ~2 ms): the
system file (GIT_CONFIG_SYSTEM, or none with GIT_CONFIG_NOSYSTEM), the global ones
(GIT_CONFIG_GLOBAL, or $XDG_CONFIG_HOME/git/config then ~/.gitconfig) and the
repository's, later values winning as in git.  What that reader does not model —
an `[include]` or `[includeIf]` section in any file read, GIT_CONFIG_COUNT /
GIT_CONFIG_PARAMETERS (`git -c`), extensions.worktreeConfig — is left to git itself:
one `git config -l -z --show-origin`, whose files (the included ones too) are then
watched like the others.  Repo.config (repo.py) keeps the result per repository and
reads again only when `stamp` changes.
"""

from __future__ import annotations

import os

from ..errors import GitError
from .files import mtime_ns, read_text
from .run import git_env, run_git

SYSTEM_CONFIG = "/etc/gitconfig"

# What git reads depends on these too: they are part of the stamp.
_ENV = (
    "HOME",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_PARAMETERS",
)
_FALSE = ("", "0", "false", "no", "off")

# (the variables in _ENV and GIT_CONFIG_KEY_n/VALUE_n, the watched files' mtimes)
Stamp = tuple[tuple[object, ...], tuple[int, ...]]


def normalize_key(key: str) -> str:
    """`section[.subsection].name` as git stores it: section and name are
    case-insensitive, a subsection is not."""
    section, _, rest = key.partition(".")
    sub, dot, name = rest.rpartition(".")
    if not dot:
        return key.lower()
    return f"{section.lower()}.{sub}.{name.lower()}"


def parse_config_file(text: str) -> tuple[dict[str, str], bool]:
    """A small reader for git's config format: (values, whether the file has an include
    or includeIf section)."""
    out: dict[str, str] = {}
    includes = False
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            inner = line[1 : line.find("]")] if "]" in line else line[1:]
            if '"' in inner:
                sec, _, sub = inner.partition('"')
                section = sec.strip().lower() + "." + sub.rstrip('"')
            else:
                section = inner.strip().lower()
            if section == "include" or section.startswith("includeif."):
                includes = True
            continue
        key, eq, value = line.partition("=")
        value = value.strip() if eq else "true"
        for c in ("#", ";"):
            if c in value and not value.startswith('"'):
                value = value.split(c, 1)[0].strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[f"{section}.{key.strip().lower()}"] = value
    return out, includes


def config_files(common_dir: str) -> list[str]:
    """The files git reads, in order (later ones win), for the repository at `common_dir`."""
    env = os.environ
    files = []
    if env.get("GIT_CONFIG_NOSYSTEM", "").strip().lower() in _FALSE:
        files.append(env.get("GIT_CONFIG_SYSTEM") or SYSTEM_CONFIG)
    user = env.get("GIT_CONFIG_GLOBAL")
    if user is not None:
        files.append(user)
    else:
        home = os.path.expanduser("~")
        xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        files += [os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")]
    files.append(os.path.join(common_dir, "config"))
    return files


def stamp(watched: tuple[str, ...]) -> Stamp:
    """Changes when a watched file or a variable that decides what git reads changes."""
    env: tuple[object, ...] = tuple(map(os.environ.get, _ENV))
    count = os.environ.get("GIT_CONFIG_COUNT")
    if count:
        try:
            n = int(count)
        except ValueError:
            n = 0
        env += tuple(
            (os.environ.get(f"GIT_CONFIG_KEY_{i}"), os.environ.get(f"GIT_CONFIG_VALUE_{i}"))
            for i in range(min(n, 1000))
        )
    return env, tuple(mtime_ns(p) for p in watched)


def read_config(common_dir: str, cwd: str) -> tuple[dict[str, str], tuple[str, ...], Stamp]:
    """(every value, keyed as normalize_key makes keys; the files to watch; their stamp).

    `cwd` is where git is run when it must be asked (the work tree or git dir).  The
    stamp is taken before the files are read, so an edit made meanwhile is seen later.
    """
    files = tuple(config_files(common_dir))
    before = stamp(files)
    values: dict[str, str] = {}
    ask_git = bool(os.environ.get("GIT_CONFIG_COUNT") or os.environ.get("GIT_CONFIG_PARAMETERS"))
    for path in files:
        text = read_text(path)
        if text:
            part, includes = parse_config_file(text)
            values.update(part)
            ask_git = ask_git or includes
    if values.get("extensions.worktreeconfig", "false").lower() not in _FALSE:
        ask_git = True
    if ask_git:
        listed = config_from_git(cwd)
        if listed is not None:  # None: git refuses the config; keep what was read
            values, origins = listed
            extra = tuple(p for p in dict.fromkeys(origins) if p not in files)
            env, mtimes = before
            return values, files + extra, (env, mtimes + tuple(mtime_ns(p) for p in extra))
    return values, files, before


def config_from_git(cwd: str) -> tuple[dict[str, str], list[str]] | None:
    """`git config -l -z --show-origin` run in `cwd`: (values, files they came from)."""
    env = git_env()
    env.pop("GIT_CONFIG", None)  # would make `git config` read that one file only
    try:
        proc = run_git(["config", "-l", "-z", "--show-origin"], cwd=cwd, env=env, check=False)
    except GitError:
        return None
    if proc.returncode != 0:
        return None
    return parse_config_list(proc.stdout, cwd)


def parse_config_list(out: bytes, cwd: str) -> tuple[dict[str, str], list[str]]:
    """Parse `git config -l -z --show-origin`: NUL-separated (origin, "key\\nvalue")
    pairs, a key alone being a boolean true.  Last value wins, as in git."""
    items = out.split(b"\0")
    values: dict[str, str] = {}
    origins: list[str] = []
    for i in range(0, len(items) - 1, 2):
        origin = items[i].decode("utf-8", "surrogateescape")
        key, nl, value = items[i + 1].decode("utf-8", "surrogateescape").partition("\n")
        values[key] = value if nl else "true"
        if origin.startswith("file:"):
            path = os.path.join(cwd, origin[len("file:") :])
            if path not in origins:
                origins.append(path)
    return values, origins
