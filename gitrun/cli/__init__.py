"""The `gitrun` command: a thin click layer over the library.

Each command module registers its commands on `cli`; library errors become one
sentence on stderr with exit code 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import traceback
from typing import Any

import click

from ..errors import GitrunError

# One module per group of commands; each adds its commands to `cli` on import.
COMMAND_MODULES = ("core", "search", "checkout", "sync", "mlflow_import")


class GitrunGroup(click.Group):
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


for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_name}":
            raise


def main() -> None:
    try:
        cli.main(prog_name="gitrun")
    except KeyboardInterrupt:
        click.echo("gitrun: interrupted.", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception:  # a bug in gitrun: say so, keep the traceback in a file
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
