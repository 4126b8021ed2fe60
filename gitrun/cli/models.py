"""models: the model registry kept in git (refs/gitrun/models) — ls, show, register, alias,
diff."""

from __future__ import annotations

import json
from typing import Any

import click

from . import cli
from .common import format_option, repo


@cli.group()
def models() -> None:
    """Registered models: which model do we ship? (kept on refs/gitrun/models).

    Versions point at a run's model (runs:/<run_id>/<path>); aliases such as
    champion name the version to ship and move by compare-and-swap. The registry
    travels with gitrun push/pull; its history is git log refs/gitrun/models.

    \b
    Example:
      gitrun models register rf-deeper churn
      gitrun models alias churn champion 4
      gitrun models show churn
      git log --oneline refs/gitrun/models
    """


def _version_ref(model: Any, ref: str) -> Any:
    """A version by number, or by alias (`champion` or `@champion`)."""
    from ..format import registry as reg

    if ref.strip().isdigit():
        return reg.get_version(model, ref)
    return reg.version_by_alias(model, ref.lstrip("@"))


@models.command(name="ls")
@format_option(choices=("table", "json", "csv", "markdown"))
def ls_models(fmt: str) -> None:
    """List registered models: versions, the latest one, aliases.

    \b
    Example:
      gitrun models ls
      gitrun models ls --format json
    """
    from ..format import registry as reg
    from .render import fmt_time, render

    rows = []
    for m in reg.read(repo()).values():
        aliases = m.live_aliases()
        latest = max(m.versions, default=None)
        if fmt == "json":
            rows.append([m.name, len(m.versions), latest, aliases, m.description, m.updated()])
        else:
            shown = " ".join(f"{a}={v}" for a, v in aliases.items())
            rows.append(
                [m.name, len(m.versions), latest, shown, m.description, fmt_time(m.updated())]
            )
    cols = ["name", "versions", "latest", "aliases", "description", "updated"]
    if not rows and fmt == "table":
        click.echo(
            "No registered models yet; register one with `gitrun models register <run> <name>` "
            "or log_model(..., registered_model_name=...)."
        )
        return
    click.echo(render(cols, rows, fmt))


@models.command()
@click.argument("name")
@format_option(choices=("table", "json"))
def show(name: str, fmt: str) -> None:
    """Show a registered model: its versions (run, source, when, who) and aliases.

    \b
    Example:
      gitrun models show churn
      gitrun models show churn --format json
    """
    from ..tracking import registry as api
    from .render import fmt_time, table

    r = repo()
    # the versions from the same read (a filter built from the name breaks on a quote in it)
    rm, versions = api.model_with_versions(name, repo=r)
    if fmt == "json":
        out = dict(rm)
        out["latest_versions"] = [dict(v) for v in rm.latest_versions]
        out["versions"] = [dict(v) for v in versions]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    lines = [f"{rm.name}" + (f": {rm.description}" if rm.description else "")]
    if rm.tags:
        lines.append("tags     " + " ".join(f"{k}={v}" for k, v in rm.tags.items()))
    lines.append("aliases  " + (" ".join(f"{a} -> {v}" for a, v in rm.aliases.items()) or "(none)"))
    rows = [
        [
            v.version,
            (v.run_id or "")[:8],
            v.source.split("/", 2)[-1] if v.source.startswith("runs:/") else v.source,
            fmt_time(v.creation_timestamp),
            v.user_id or "",
            " ".join(v.aliases),
            " ".join(f"{k}={x}" for k, x in sorted(v.tags.items())),
        ]
        for v in versions
    ]
    lines.append("")
    lines.append(
        table(["version", "run", "path", "created", "user", "aliases", "tags"], rows)
        or "(no versions)"
    )
    click.echo("\n".join(lines))


@models.command()
@click.argument("run")
@click.argument("name")
@click.option(
    "--path",
    "path",
    default="model",
    show_default=True,
    help="The model's artifact path in the run.",
)
def register(run: str, name: str, path: str) -> None:
    """Register RUN's model (artifact PATH) as a new version of NAME.

    RUN is a run id, a unique id prefix or a unique run name. The model is
    created when NAME is new.

    \b
    Example:
      gitrun models register rf-deeper churn
      gitrun models register 3f2a9c1e churn --path best_estimator
    """
    from ..query import resolve as runs
    from ..tracking import registry as api

    r = repo()
    rid = runs.resolve(r, run)
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        mv = api.register_model(f"runs:/{rid}/{path}", name, repo=r)
    click.echo(f"Registered {mv.source} as version {mv.version} of '{name}'.")


@models.command()
@click.argument("name")
@click.argument("alias")
@click.argument("version", required=False)
@click.option("--delete", is_flag=True, help="Remove the alias instead of moving it.")
def alias(name: str, alias: str, version: str | None, delete: bool) -> None:
    """Point ALIAS of model NAME at VERSION (or --delete it).

    The move is one commit on refs/gitrun/models, so `git log refs/gitrun/models`
    shows who moved it from which version to which, and when.

    \b
    Example:
      gitrun models alias churn champion 4
      gitrun models alias churn challenger --delete
    """
    from ..errors import UsageError
    from ..format import registry as reg
    from ..tracking import registry as api

    r = repo()
    model = reg.get_model(r, name)
    old = model.live_aliases().get(alias)
    if delete:
        if version is not None:
            raise UsageError("Give either a VERSION or --delete, not both.")
        if old is None:
            raise UsageError(f"Model '{name}' has no alias '{alias}' to delete.")
        api.delete_registered_model_alias(name, alias, repo=r)
        click.echo(f"{name}: alias {alias} (was version {old}) deleted.")
        return
    if version is None:
        raise UsageError(
            f"Give the version for alias '{alias}', e.g. `gitrun models alias {name} {alias} 3`."
        )
    api.set_registered_model_alias(name, alias, version, repo=r)
    n = reg.check_version(version)
    was = f"{old} -> {n}" if old is not None else f"-> {n} (new)"
    click.echo(f"{name}: alias {alias} {was}.")


@models.command(name="diff")
@click.argument("name")
@click.argument("version_a")
@click.argument("version_b")
@click.option("--patch", is_flag=True, help="Show the full code diff, not only --stat.")
@format_option(choices=("table", "json"))
def diff_versions(name: str, version_a: str, version_b: str, patch: bool, fmt: str) -> None:
    """Show what differs between the runs behind two versions of model NAME.

    Versions are numbers or aliases; the output is `gitrun diff` of their runs.

    \b
    Example:
      gitrun models diff churn 3 4
      gitrun models diff churn champion 4 --format json
    """
    from ..errors import InvalidInputError
    from ..format import registry as reg
    from ..workflows.diff import diff as do_diff
    from .search import render_diff

    r = repo()
    model = reg.get_model(r, name)
    a, b = _version_ref(model, version_a), _version_ref(model, version_b)
    for v in (a, b):
        if not v.run_id:
            raise InvalidInputError(f"Version {v.version} of '{name}' names no run to compare.")
    result = do_diff(r, a.run_id, b.run_id, patch=patch)
    if fmt == "json":
        result = {"model": name, "version_a": a.version, "version_b": b.version, **result}
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(f"{name}  version {a.version} (A) -> version {b.version} (B)")
    click.echo(render_diff(result))
