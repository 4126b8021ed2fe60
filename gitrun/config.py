"""Project defaults: `[tool.gitrun]` in pyproject.toml or `.gitrun.yaml` at the repo root.

Recognised keys (all optional): experiment, name, params-file, metrics-file,
artifacts (list), tags (mapping), max-untracked-size (e.g. "10MB"),
auto-push (bool).  Environment variables win over files:
GITRUN_EXPERIMENT_NAME, GITRUN_MAX_UNTRACKED_SIZE.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .errors import InvalidInputError

DEFAULT_MAX_UNTRACKED = 10 * 1024 * 1024


def load(root: str | None) -> dict[str, Any]:
    if not root:
        return {}
    out: dict[str, Any] = {}
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.exists(pyproject):
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
            except Exception as e:
                raise InvalidInputError(
                    f"{pyproject} is not valid TOML ({e}); fix it or remove [tool.gitrun]."
                ) from None
            out.update(data.get("tool", {}).get("gitrun", {}) or {})
    path = os.path.join(root, ".gitrun.yaml")
    if os.path.exists(path):
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise InvalidInputError(f"{path} is not valid YAML ({e}); fix it.") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path} must be a mapping of settings; fix it.")
        out.update(data)
    return {str(k).replace("_", "-"): v for k, v in out.items()}


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
