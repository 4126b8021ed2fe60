"""The `gitrun` command: a thin click layer over the library.

Each command module registers its commands on `cli`; library errors become one
sentence on stderr with exit code 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from ..errors import GitrunError

# Which module defines each command.  A module is imported only when one of its
# commands runs (or help lists them all), so `gitrun record` does not pay for the rest.
COMMANDS = {
    "record": "core",
    "ls": "core",
    "show": "core",
    "demo": "core",
    "search": "search",
    "diff": "search",
    "checkout": "checkout",
    "rerun": "checkout",
    "push": "sync",
    "pull": "sync",
    "remote-runs": "sync",
    "config": "sync",
    "import-mlflow": "mlflow_import",
    "models": "models",
    "lineage": "lineage",
    "ui": "ui",
    "plot": "plot",
    "report": "plot",
    "sweep": "sweep",
    "bisect": "bisect",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


class GitrunGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__name__}.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            import difflib

            name = args[0] if args else ""
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            if close and name and self.get_command(ctx, name) is None:
                raise click.UsageError(
                    f"No such command '{name}'. Did you mean '{close[0]}'?", ctx
                ) from None
            raise e

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GitrunError as e:
            err = (
                click.ClickException(e.message) if e.exit_code != 2 else click.UsageError(e.message)
            )
            err.exit_code = e.exit_code  # type: ignore[misc]  # a ClassVar in click >= 8.5
            raise err from None


@click.group(cls=GitrunGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gitrun-ml", prog_name="gitrun")
def cli() -> None:
    """gitrun: reproducible ML runs kept in git (refs/gitrun/runs).

    \b
    Example:
      gitrun record -n baseline -e churn -- python train.py --depth 8
      gitrun ls
      gitrun show baseline
    """


def load_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def main() -> None:
    try:
        cli.main(prog_name="gitrun")
    except KeyboardInterrupt:
        click.echo("gitrun: interrupted.", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except (RecursionError, MemoryError) as e:  # from input too large to process
        what = "nested too deeply" if isinstance(e, RecursionError) else "too large"
        click.echo(
            f"gitrun: the input is {what} to process ({type(e).__name__}); make it simpler "
            "or smaller and try again.",
            err=True,
        )
        sys.exit(1)
    except Exception as e:
        sentence = environment_error(e)
        if sentence:  # the disk or the filesystem, not a bug: one sentence
            click.echo(f"gitrun: {sentence}", err=True)
            sys.exit(1)
        # A bug in gitrun: say so, keep the traceback in a file.
        path = write_crash_log()
        click.echo(
            f"gitrun: internal error ({type(e).__name__}: {e}); the traceback is in "
            f"{path}. Please report it.",
            err=True,
        )
        sys.exit(70)


def environment_error(e: BaseException) -> str | None:
    """One sentence for an error of the disk or filesystem (full, quota, read-only,
    permissions), or None when `e` is something else (a bug)."""
    import errno

    if type(e).__module__ == "sqlite3":  # the search index: a cache under .git/gitrun
        text = str(e).lower()
        if "disk is full" in text:  # "database or disk is full"
            return "no space left on device for the search index; free some disk space."
        if "readonly" in text or "read-only" in text or "unable to open database" in text:
            return (
                "the repository is read-only (the search index under .git/gitrun cannot be "
                "written); run this command in a writable clone."
            )
        if "disk i/o error" in text:
            return "the disk reported an I/O error; check the disk and try again."
        return None
    if not isinstance(e, OSError):
        return None
    where = f" ({e.filename})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"no space left on device{where}; free some disk space and run the command again."
    if e.errno == getattr(errno, "EDQUOT", -1):
        return f"disk quota exceeded{where}; free some space or raise the quota, then try again."
    if e.errno == errno.EROFS:
        return (
            f"the repository is read-only{where}; commands that only read runs (ls, search, "
            "show, diff) work there, run this one in a writable clone."
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        if e.filename and _in_repository(str(e.filename)):
            return (
                f"the repository is read-only for you (permission denied{where}); run this "
                "command as its owner or in a writable clone."
            )
        return f"permission denied{where}; check the file's permissions and try again."
    if e.errno == errno.EIO:
        return f"the disk reported an I/O error{where}; check the disk and try again."
    return None


def _in_repository(path: str) -> bool:
    try:
        from .._git import Repo

        r = Repo.discover(bare_ok=True)
    except Exception:
        return False
    from ..capture.artwalk import inside

    full = os.path.abspath(path)
    roots = [r.common_dir, r.git_dir] + ([r.work_tree] if r.work_tree else [])
    return any(inside(full, d) for d in roots)


def write_crash_log() -> str:
    """The traceback of the exception being handled, in <git common dir>/gitrun/ (the temp
    directory outside a repository); one file per crash, so reports never overwrite."""
    import tempfile
    import time
    import traceback

    from ..format.layout import crash_log_name

    name = crash_log_name(time.strftime("%Y%m%d-%H%M%S"), os.getpid())
    places = []
    try:
        from .._git import Repo

        places.append(os.path.join(Repo.discover(bare_ok=True).gitrun_dir, name))
    except Exception:
        pass
    places.append(os.path.join(tempfile.gettempdir(), "gitrun-" + name))
    for path in places:
        d = os.path.dirname(path)
        try:
            os.makedirs(d, exist_ok=True)
            with open(path, "x", encoding="utf-8") as f:
                traceback.print_exc(file=f)
            return path
        except OSError:
            continue
    return "(nowhere: no directory could be written)"
