"""Rendering rows for people (aligned tables) and for scripts (json, csv, markdown)."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json", "csv", "markdown")


def cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.6g}"
    return str(v)


def fmt_time(ms: int | None) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def fmt_duration(start: int | None, end: int | None) -> str:
    if not start:
        return ""
    secs = ((end or int(time.time() * 1000)) - start) / 1000
    if secs < 60:
        return f"{secs:.1f}s"
    if secs < 3600:
        return f"{secs / 60:.1f}m"
    return f"{secs / 3600:.1f}h"


def fmt_size(n: int) -> str:
    f = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if f < 1000 or unit == "GB":
            return f"{f:.0f} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1000
    return f"{n} B"


def table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int | None = None
) -> str:
    if not rows:
        return ""
    text = [[cell(v) for v in r] for r in rows]
    widths = [len(c) for c in columns]
    for r in text:
        for i, v in enumerate(r):
            widths[i] = max(widths[i], len(v))
    limit = max_width or max(shutil.get_terminal_size((200, 20)).columns, 80)
    cap = 40
    widths = [min(w, cap) for w in widths]

    def clip(v: str, w: int) -> str:
        return v if len(v) <= w else v[: w - 1] + "…"

    numeric = [all(_is_num(r[i]) for r in rows if r[i] is not None) for i in range(len(columns))]
    # Whole columns that fit the terminal; the rest are named below, never cut mid-word.
    keep, used = 0, -2
    while keep < len(columns) and (keep == 0 or used + 2 + widths[keep] <= limit):
        used += 2 + widths[keep]
        keep += 1
    lines = []
    for r in [list(columns)] + text:
        parts = []
        for i, v in enumerate(r[:keep]):
            v = clip(v, widths[i])
            parts.append(
                v.rjust(widths[i]) if numeric[i] and r is not columns else v.ljust(widths[i])
            )
        lines.append("  ".join(parts).rstrip())
    if keep < len(columns):
        hidden = list(columns[keep:])
        lines.append(
            f"(+{len(hidden)} more column(s) that do not fit: {', '.join(hidden)}; "
            "use a wider terminal or --format csv)"
        )
    return "\n".join(lines)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None if math.isnan(v) else str(v)
    return v


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            [{c: _jsonable(v) for c, v in zip(columns, r)} for r in rows],
            indent=2,
            ensure_ascii=False,
        )
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
        return buf.getvalue().rstrip("\n")
    if fmt == "markdown":
        out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        for r in rows:
            out.append("| " + " | ".join(cell(v).replace("|", "\\|") for v in r) + " |")
        return "\n".join(out)
    return table(columns, rows)


def yaml_block(d: dict[str, Any], indent: str = "  ") -> list[str]:
    w = max((len(k) for k in d), default=0)
    return [f"{indent}{k.ljust(w)}  {v}" for k, v in d.items()]
