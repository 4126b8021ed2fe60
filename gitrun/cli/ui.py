"""ui: the local web app and MLflow's read-only REST API (gitrun/ui/server.py)."""

from __future__ import annotations

import click

from . import cli
from .common import quiet_option


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback lets others on the network read the runs.",
)
@quiet_option
def ui(port, host, quiet):
    """Serve the runs as a local web app and as MLflow's REST API, read-only.

    Opens no browser: open the printed URL. Ctrl-C stops it. MLflow clients read
    the runs with MLFLOW_TRACKING_URI set to the URL (docs/ui.md lists the
    endpoints). Nothing is ever written to the repository.

    \b
    Example:
      gitrun ui
      gitrun ui --port 8080
      MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python -c \\
        "import mlflow; print(mlflow.search_runs(search_all_experiments=True))"
    """
    from .._git import Repo
    from ..ui import server

    r = Repo.discover(bare_ok=True)  # outside a repository: the usual sentence, exit 1
    exposed = not server.is_loopback(host)

    def ready(url: str) -> None:
        if exposed:
            click.echo(
                f"gitrun ui: warning: listening on {host}, so anyone who can reach this "
                "machine on the network can read every run, param, metric and artifact of "
                "this repository; use --host 127.0.0.1 to keep it local.",
                err=True,
            )
        if quiet:
            click.echo(url)
        else:
            where = r.work_tree or r.git_dir
            click.echo(f"gitrun ui: serving the runs of {where}")
            click.echo(f"  {url}/   (read-only; Ctrl-C stops it)")
            click.echo(f"  MLflow clients: MLFLOW_TRACKING_URI={url}")

    server.serve(r, host=host, port=port, quiet=quiet, on_ready=ready)
    if not quiet:
        click.echo("gitrun ui: stopped.")
