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


# JSON leaves these characters raw, but YAML refuses them (DEL, C1 controls, U+FFFE/F,
# unpaired surrogates) or reads them as line breaks (NEL, U+2028, U+2029; so does
# str.splitlines).  Written as \u escapes they are the same JSON and valid YAML.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(text: str) -> bool:
    """Control characters and line breaks (C0, DEL, C1, U+2028/9): they garble `gitrun ls`,
    commit subjects and line-based files.  The one rule for names, at creation and when
    read back."""
    return _CONTROL.search(text) is not None


_JSON_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def json_text(v: Any) -> str:
    """`v` as one line of JSON that is also valid YAML (unicode kept readable)."""
    text = json.dumps(v, ensure_ascii=False)
    return _JSON_RAW_UNSAFE.sub(_escape, text)


def yaml_key(key: str) -> str:
    if _BARE_KEY.match(key) and key.lower() not in _YAML_WORDS:
        return key
    return json_text(key)


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
    return "".join(f"{yaml_key(k)}: {json_text(d[k])}\n" for k in sorted(d)).encode()


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


# The lines gitrun itself writes, matched over a whole file at once: an optional two-space
# indent, a bare or JSON-quoted key, then nothing (a nested block follows) or ": " and one
# JSON value (or a YAML float word).  No character `str.splitlines` breaks on may appear
# inside a line, so these lines are exactly the lines the general parser below sees.
_STR_CHARS = '[^"\\\\\x00-\x1f\x85\u2028\u2029]'
_JSON_STR = f'"{_STR_CHARS}*(?:\\\\[^\x00-\x1f\x85\u2028\u2029]{_STR_CHARS}*)*"'
_BARE = "[A-Za-z_][A-Za-z0-9_./-]*"
_NUMBER = "-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_WORD = "null|true|false|\\.nan|[+-]?\\.inf"
_FLOW = "[\\[{][^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*[\\]}]"
_LINE_RE = re.compile(
    f"^(  )?(?:({_BARE})|({_JSON_STR})):(?: ({_JSON_STR}|{_NUMBER}|{_WORD}|{_FLOW}))?\n",
    re.MULTILINE,
)
_WORDS = {"null": None, "true": True, "false": False, **_YAML_FLOATS}
_NOT_A_WORD = object()


def _fast_value(v: str) -> Any:
    c = v[0]
    if c == '"':
        return v[1:-1] if "\\" not in v else json.loads(v)
    if c in "[{":
        return json.loads(v)
    word = _WORDS.get(v, _NOT_A_WORD)
    if word is not _NOT_A_WORD:
        return word
    return float(v) if ("." in v or "e" in v or "E" in v) else int(v)


def _load_fast(text: str) -> dict[str, Any] | None:
    """load_map for files in exactly the shape gitrun writes; None for anything else."""
    lines = _LINE_RE.findall(text)
    # Every match starts at a line start and ends at that line's newline, so one match per
    # newline (and a final newline) means every line matched whole.
    if len(lines) != text.count("\n") or (text and text[-1] != "\n"):
        return None
    out: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    for indent, key, quoted, value in lines:
        if quoted:
            key = quoted[1:-1] if "\\" not in quoted else json.loads(quoted)
        if indent:
            if current is None or not value:
                return None
            current[key] = _fast_value(value)
        elif value:
            current = None
            if value[0] == '"' and "\\" not in value:
                out[key] = value[1:-1]
            else:
                out[key] = _fast_value(value)
        else:
            current = out[key] = {}
    return out


def load_map(text: str) -> dict[str, Any]:
    """Read a gitrun YAML file (one level of nesting); PyYAML for anything else."""
    try:
        fast = _load_fast(text)
    except ValueError:
        fast = None
    if fast is not None:
        return fast
    out: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    try:
        for line in _lines(text):
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
        from . import yamlio  # only for files not written by gitrun

        data = yamlio.load(text)
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
    return json_text(v)


def dump_tsv(header: Iterable[str], rows: Iterable[Iterable[str]]) -> bytes:
    out = ["\t".join(header)]
    out.extend("\t".join(r) for r in rows)
    return ("\n".join(out) + "\n").encode()


def _lines(text: str) -> list[str]:
    """Lines split at newlines only: unlike str.splitlines, a NEL or U+2028 inside a value
    (raw in files older gitruns wrote) does not break its line."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def load_tsv(text: str) -> list[list[str]]:
    return [line.split("\t") for line in _lines(text)[1:] if line]
