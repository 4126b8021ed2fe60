"""lineage."""

from __future__ import annotations

import json
from typing import Any

import click

from . import cli
from .common import format_option, repo


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def _run_line(r: dict[str, Any]) -> str:
    return f"run {r['run_id'][:8]} ({r['run_name']})"


def _render_run(node: dict[str, Any], indent: int, out: list[str]) -> None:
    pad = "  " * indent
    out.append(pad + _run_line(node) + ("  (cycle)" if node.get("cycle") else ""))
    for i in node["inputs"]:
        made = i["produced_by"]
        src = "" if made else "  (no run produced it)"
        out.append(f"{pad}  reads {i['path']}  sha256 {_short(i['digest'])}{src}")
        for m in made:
            out.append(f"{pad}    produced as artifact {m['artifact']} by")
            _render_run(m["run"], indent + 3, out)


def _render_path(p: dict[str, Any], out: list[str]) -> None:
    now = f"sha256 {_short(p['digest_now'])} now" if p["digest_now"] else "not on disk now"
    out.append(f"{p['path']}  ({now})")
    if not p["versions"] or not any(v["read_by"] or v["produced_by"] for v in p["versions"]):
        out.append("  no run read or produced it")
    for v in p["versions"]:
        if not (v["read_by"] or v["produced_by"]):
            continue
        current = "  (current)" if v["current"] else ""
        out.append(f"  version sha256 {_short(v['digest'])}{current}")
        for r in v["produced_by"]:
            out.append(f"    produced by {_run_line(r)} as artifact {r['artifact']}")
        for r in v["read_by"]:
            ctx = f" [{r['context']}]" if r["context"] else ""
            via = f" (in {r['as']})" if r["as"] != p["path"] else ""
            out.append(f"    read by {_run_line(r)}{via}{ctx}")


@cli.command()
@click.argument("target")
@format_option(choices=("table", "json"))
def lineage(target, fmt):
    """Trace data through runs: which runs read PATH and which run produced it, or for
    a RUN its inputs and the runs that produced them, recursively (A -> B -> C).

    An artifact of one run whose content (sha256) is an input of another links them; so
    does an artifact directory whose files (path, sha256, size) are a directory input's.

    \b
    Example:
      gitrun lineage data/train.csv
      gitrun lineage rf-baseline --format json
    """
    from ..workflows.lineage import lineage as do_lineage

    data = do_lineage(repo(), target)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    out: list[str] = []
    if "run" in data:
        _render_run(data["run"], 0, out)
    else:
        _render_path(data["path"], out)
    click.echo("\n".join(out))
