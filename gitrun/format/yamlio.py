"""YAML through PyYAML, with its C (libyaml) loader and dumper when it was built with them.

The one door to PyYAML in gitrun (as pre-commit's yaml.py): the loader and dumper are
picked once, and PyYAML is imported on first use only, never by `import gitrun`.  The
files gitrun writes itself are read by textfmt's fast line parser first; only what it
does not recognise (files written by people or other tools: params files, .gitrun.yaml,
MLmodel) comes here, and the YAML gitrun writes for MLflow's formats leaves from here.
"""

from __future__ import annotations

import functools
from typing import IO, Any


class YAMLError(ValueError):
    """Text that is not valid YAML (the message is PyYAML's)."""


@functools.cache
def _yaml() -> tuple[Any, Any, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml, loader, dumper


def load(stream: str | bytes | IO[Any]) -> Any:
    """yaml.safe_load, with the C loader when there is one; YAMLError when malformed."""
    yaml, loader, _ = _yaml()
    try:
        return yaml.load(stream, Loader=loader)
    except yaml.YAMLError as e:
        error = e
    if loader is not yaml.SafeLoader:
        # The pure-Python loader says more (the offending character, the line shown).
        try:
            if not isinstance(stream, (str, bytes)):
                stream.seek(0)
            yaml.load(stream, Loader=yaml.SafeLoader)
        except (yaml.YAMLError, OSError, ValueError) as e:
            if isinstance(e, yaml.YAMLError):
                error = e
    raise YAMLError(str(error)) from error


def dump(data: Any, stream: IO[str] | None = None, **options: Any) -> Any:
    """yaml.safe_dump in block style with keys in their order (what gitrun writes for
    MLflow's files), with the C dumper when there is one; the text when `stream` is None."""
    yaml, _, dumper = _yaml()
    options.setdefault("sort_keys", False)
    options.setdefault("default_flow_style", False)
    return yaml.dump(data, stream, Dumper=dumper, **options)
