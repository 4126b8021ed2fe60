"""The small text encodings of a run record (format version 1, see docs/format.md).

Every file gitrun writes is line-oriented so `git diff` of two runs is readable:

* ``*.yaml`` files are valid YAML written one ``key: value`` per line, where
  each value is JSON (JSON scalars and flow lists are YAML too).  gitrun reads
  them back with a line parser (fast: no YAML library at import or query
  time) and falls back to PyYAML for files a person edited by hand.
* ``*.tsv`` files have a header line and tab-separated columns.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
# Words YAML 1.1 reads as booleans or null: such keys are quoted.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def yaml_key(key: str) -> str:
    if _BARE_KEY.match(key) and key.lower() not in _YAML_WORDS:
        return key
    return json.dumps(key, ensure_ascii=False)


def yaml_float(v: float) -> str:
    if math.isnan(v):
        return ".nan"
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    r = repr(float(v))
    # YAML 1.1 (PyYAML) wants a dot in the mantissa and a signed exponent.
    if "e" in r:
        mant, _, exp = r.partition("e")
        if "." not in mant:
            mant += ".0"
        if exp[0] not in "+-":
            exp = "+" + exp
        r = f"{mant}e{exp}"
    return r


def tsv_float(v: float) -> str:
    return repr(float(v))


def dump_str_map(d: dict[str, str]) -> bytes:
    """params.yaml / tags.yaml: sorted ``key: "value"`` lines."""
    return "".join(
        f"{yaml_key(k)}: {json.dumps(d[k], ensure_ascii=False)}\n" for k in sorted(d)
    ).encode()


def dump_float_map(d: dict[str, float]) -> bytes:
    return "".join(f"{yaml_key(k)}: {yaml_float(d[k])}\n" for k in sorted(d)).encode()


def _split_key(line: str) -> tuple[str, str]:
    if line.startswith('"'):
        key, end = json.JSONDecoder().raw_decode(line)
        rest = line[end:]
        if not rest.startswith(":"):
            raise ValueError(line)
        return key, rest[1:].strip()
    key, sep, rest = line.partition(":")
    if not sep:
        raise ValueError(line)
    return key.strip(), rest.strip()


_YAML_FLOATS = {".nan": math.nan, ".inf": math.inf, "-.inf": -math.inf, "+.inf": math.inf}


def _scalar(text: str) -> Any:
    if text in _YAML_FLOATS:
        return _YAML_FLOATS[text]
    return json.loads(text)


def load_map(text: str) -> dict[str, Any]:
    """Read a gitrun YAML file (one level of nesting); PyYAML for anything else."""
    out: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    try:
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("  "):
                if current is None:
                    raise ValueError(line)
                k, v = _split_key(line.strip())
                current[k] = _scalar(v)
                continue
            k, v = _split_key(line)
            if v == "":
                current = out[k] = {}
            else:
                current = None
                out[k] = _scalar(v)
        return out
    except (ValueError, json.JSONDecodeError):
        import yaml  # only for files not written by gitrun

        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError("not a mapping") from None
        return data


def dump_map(d: dict[str, Any]) -> bytes:
    """run.yaml / env.yaml: insertion order kept, nested dicts one level deep."""
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"{yaml_key(k)}:")
            if not v:
                lines[-1] += " {}"
            for k2, v2 in v.items():
                lines.append(f"  {yaml_key(k2)}: {_json_value(v2)}")
        else:
            lines.append(f"{yaml_key(k)}: {_json_value(v)}")
    return ("\n".join(lines) + "\n").encode()


def _json_value(v: Any) -> str:
    if isinstance(v, float) and not isinstance(v, bool):
        return yaml_float(v)
    return json.dumps(v, ensure_ascii=False)


def dump_tsv(header: Iterable[str], rows: Iterable[Iterable[str]]) -> bytes:
    out = ["\t".join(header)]
    out.extend("\t".join(r) for r in rows)
    return ("\n".join(out) + "\n").encode()


def load_tsv(text: str) -> list[list[str]]:
    lines = text.splitlines()
    return [line.split("\t") for line in lines[1:] if line]
