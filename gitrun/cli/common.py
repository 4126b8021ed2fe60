"""Options and helpers shared by several commands."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..errors import UsageError
from ..output import FORMATS


def format_option(default: str = "table") -> Callable[[Any], Any]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="Output format: aligned table for people; json, csv or markdown for scripts.",
    )


quiet_option = click.option("-q", "--quiet", is_flag=True, help="Print no progress or notices.")


def key_values(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise UsageError(f"{what} '{p}' must be written KEY=VALUE.")
        k, v = p.split("=", 1)
        out[k.strip()] = v
    return out


def repo() -> Any:
    from .. import journal
    from ..git import Repo

    r = Repo.discover()
    journal.recover(r)
    return r
