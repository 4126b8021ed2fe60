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
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


class GitrunGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__name__}.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GitrunError as e:
            err = (
                click.ClickException(e.message) if e.exit_code != 2 else click.UsageError(e.message)
            )
            err.exit_code = e.exit_code
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
    except Exception:  # a bug in gitrun: say so, keep the traceback in a file
        import tempfile
        import traceback

        path = os.path.join(tempfile.gettempdir(), "gitrun-crash.log")
        with open(path, "w", encoding="utf-8") as f:
            traceback.print_exc(file=f)
        exc = sys.exc_info()[1]
        click.echo(
            f"gitrun: internal error ({type(exc).__name__}: {exc}); the traceback is in "
            f"{path}. Please report it.",
            err=True,
        )
        sys.exit(70)
