"""gitrun import-mlflow."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import click

from . import cli
from .common import quiet_option, repo


@cli.command(name="import-mlflow")
@click.option(
    "--tracking-uri",
    "-u",
    metavar="URI",
    help="MLflow store: sqlite:///mlflow.db or an mlruns directory "
    "(default: $MLFLOW_TRACKING_URI, ./mlruns, ./mlflow.db).",
)
@click.option(
    "--experiment",
    "-e",
    "experiments",
    multiple=True,
    metavar="NAME",
    help="Import only this MLflow experiment (repeatable; default: all).",
)
@quiet_option
def import_mlflow(tracking_uri: str | None, experiments: tuple[str, ...], quiet: bool) -> None:
    """Import runs from an MLflow tracking store, with their full history.

    Every MLflow run becomes a gitrun run (params, metric histories, tags, status,
    times, artifacts); its MLflow id is kept as tag mlflow.import.run_id, and runs
    imported before are skipped, so running it again adds nothing. Needs mlflow.

    \b
    Example:
      gitrun import-mlflow --tracking-uri sqlite:///mlflow.db
      gitrun import-mlflow --tracking-uri ./mlruns -e churn -e fraud
    """
    from ..workflows.mlflow_import import import_runs

    def progress(items: list[Any]) -> Iterable[Any]:
        if quiet or not items:
            return items
        return _bar(items)

    result = import_runs(repo(), tracking_uri, experiments, progress=progress, quiet=quiet)
    if not quiet:
        click.echo(
            f"Imported {len(result.imported)} MLflow run(s); skipped {len(result.skipped)} "
            "already imported.",
            err=True,
        )


def _bar(items: list[Any]) -> Iterator[Any]:
    with click.progressbar(
        items, label="Importing MLflow runs", file=sys.stderr, show_pos=True
    ) as bar:
        yield from bar
