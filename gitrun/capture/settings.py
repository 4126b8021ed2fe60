"""Project defaults: `[tool.gitrun]` in pyproject.toml or `.gitrun.yaml` at the repo root.

The recognised keys and their types are KNOWN_KEYS (all optional); a value of the wrong
type is an error naming the file and key, an unknown key a warning suggesting the closest
known one.  Environment variables win over files: GITRUN_EXPERIMENT_NAME,
GITRUN_MAX_UNTRACKED_SIZE.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import InvalidInputError

DEFAULT_MAX_UNTRACKED = 10 * 1024 * 1024


# Every key gitrun reads from [tool.gitrun] / .gitrun.yaml, and the kind of value it takes
# (checked by _check below: "string", "list", "mapping", "size", "bool" or "int").
KNOWN_KEYS: dict[str, str] = {
    "experiment": "string",
    "name": "string",
    "params-file": "string",
    "metrics-file": "string",
    "artifacts": "list",
    "tags": "mapping",
    "max-untracked-size": "size",
    "auto-push": "bool",
    "max-artifact-files": "int",
    "max-artifact-size": "size",
    "large-file-threshold": "size",
    "artifact-store": "string",
}

# How a yes/no setting may be written (also `gitrun config auto-push VALUE`).
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")

_warned: set[tuple[str, str]] = set()


def load(root: str | None) -> dict[str, Any]:
    """The settings of both files (.gitrun.yaml wins), checked against KNOWN_KEYS."""
    if not root:
        return {}
    out: dict[str, Any] = {}
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.isfile(pyproject):
        try:
            import tomllib  # type: ignore[import-not-found]
        except ImportError:  # Python < 3.11
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                tomllib = None  # type: ignore[assignment]
        if tomllib is not None:
            try:
                with open(pyproject, "rb") as f:
                    data = tomllib.load(f)
            except OSError as e:
                raise InvalidInputError(
                    f"Cannot read {pyproject} ({e.strerror}); fix its permissions."
                ) from None
            except Exception as e:
                raise InvalidInputError(
                    f"{pyproject} is not valid TOML ({e}); fix it or remove [tool.gitrun]."
                ) from None
            tool = data.get("tool", {})
            section = tool.get("gitrun") if isinstance(tool, dict) else None
            if section is not None:
                where = f"{pyproject} [tool.gitrun]"
                if not isinstance(section, dict):
                    raise InvalidInputError(f"{where} must be a table of settings; fix it.")
                out.update(_checked(section, where))
    path = os.path.join(root, ".gitrun.yaml")
    if os.path.exists(path):
        from ..format import yamlio

        try:
            with open(path, encoding="utf-8") as f:
                data = yamlio.load(f) or {}
        except yamlio.YAMLError as e:
            detail = " ".join(str(e).split())
            raise InvalidInputError(f"{path} is not valid YAML ({detail}); fix it.") from None
        except UnicodeDecodeError:
            raise InvalidInputError(f"{path} is not UTF-8 text; fix it.") from None
        except OSError as e:
            raise InvalidInputError(
                f"Cannot read {path} ({e.strerror}); make it a readable file."
            ) from None
        if not isinstance(data, dict):
            raise InvalidInputError(
                f"{path} must be a mapping of settings (key: value lines); fix it."
            )
        out.update(_checked(data, path))
    return out


def _checked(data: dict[Any, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw, value in data.items():
        key = str(raw).replace("_", "-")
        kind = KNOWN_KEYS.get(key)
        if kind is None:
            _warn_unknown(key, where)
            continue
        if value is None:  # `key:` with nothing after it: not set
            continue
        out[key] = _check(key, kind, value, where)
    return out


def _warn_unknown(key: str, where: str) -> None:
    import difflib
    import sys

    if (where, key) in _warned:
        return
    _warned.add((where, key))
    close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(KNOWN_KEYS)}."
    print(f"gitrun: warning: unknown key '{key}' in {where} is ignored; {hint}", file=sys.stderr)


_EXPECTED = {
    "string": "a non-empty string on one line",
    "list": "a list of paths (e.g. [model.pkl, plots/])",
    "mapping": "a mapping of names to values (e.g. {team: nlp})",
    "size": "a size such as 10MB, 500k or 1048576",
    "bool": "true or false",
    "int": "a whole number (0 or more)",
}


def _check(key: str, kind: str, value: Any, where: str) -> Any:
    def bad() -> InvalidInputError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return InvalidInputError(
            f"In {where}, '{key}' must be {_EXPECTED[kind]}, not {type(value).__name__} "
            f"{shown}; fix it."
        )

    def text(v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise bad()
        s = str(v)
        if not s.strip() or any(ord(c) < 32 or ord(c) == 127 for c in s):
            raise bad()
        return s

    if kind == "string":
        return text(value)
    if kind == "list":
        if isinstance(value, str):
            return [text(value)]
        if not isinstance(value, list):
            raise bad()
        return [text(v) for v in value]
    if kind == "mapping":
        if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
            raise bad()
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if kind == "size":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise bad()
        if not _SIZE.match(str(value)):
            raise bad()
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        v = str(value).strip().lower()
        if v in TRUE_WORDS:
            return True
        if v in FALSE_WORDS:
            return False
        raise bad()
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad()
        return value
    raise AssertionError(f"unknown kind {kind!r} for config key {key!r}")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: Any) -> int:
    if isinstance(text, (int, float)):
        return int(text)
    m = _SIZE.match(str(text))
    if not m:
        raise InvalidInputError(f"'{text}' is not a size; write it like 10MB, 500k or 1048576.")
    unit = (m.group(2) or "").lower()[:1]
    return int(float(m.group(1)) * _UNITS[unit])


def max_untracked_size(cfg: dict[str, Any]) -> int:
    v = os.environ.get("GITRUN_MAX_UNTRACKED_SIZE") or cfg.get("max-untracked-size")
    return parse_size(v) if v is not None else DEFAULT_MAX_UNTRACKED
