"""The rules every value logged to a run passes, shared by the fluent API, the client and
`gitrun record`: key names, param and tag values, metric values, steps and timestamps,
run and experiment names, run ids and artifact destinations (MLflow's rules where
MLflow has one)."""

from __future__ import annotations

import numbers
import os
import posixpath
import re
import sys
from typing import Any

from ..errors import InvalidInputError
from ..format.textfmt import has_control

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
INT64 = 2**63  # steps and timestamps are 64-bit signed integers: -INT64 <= n < INT64

_KEY_RE = re.compile(r"^[/\w.\- :]+$")

# Every key validate_key has accepted (a name is valid as any kind of key or none):
# hot paths test membership here before calling it.
known_keys: set[str] = set()


def validate_key(key: Any, what: str = "key") -> str:
    if key in known_keys:
        return key  # type: ignore[no-any-return]
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"Invalid {what} {key!r}: it must be a non-empty string.")
    if (
        len(key) > MAX_KEY
        or not _KEY_RE.match(key)
        or posixpath.normpath(key) != key
        or key.startswith(("..", "/"))
    ):
        raise InvalidInputError(
            f"Invalid {what} '{key}': names may contain only alphanumerics, underscores, "
            "periods, dashes, spaces, colons and slashes, must not contain '..' or start "
            f"with '/', and must be at most {MAX_KEY} characters."
        )
    known_keys.add(key)
    return key


# ---------------------------------------------------------------------------
# param and tag values: one rule for the fluent API, the client and finished runs
# ---------------------------------------------------------------------------
def param_value(key: str, value: Any) -> str:
    """A param's value as stored: its text, cut to MAX_PARAM_VALUE characters."""
    text = str(value)
    return text if len(text) <= MAX_PARAM_VALUE else _too_long("param", key, text, MAX_PARAM_VALUE)


def tag_value(key: str, value: Any) -> str:
    """A tag's value as stored: its text, cut to MAX_TAG_VALUE characters."""
    text = str(value)
    return text if len(text) <= MAX_TAG_VALUE else _too_long("tag", key, text, MAX_TAG_VALUE)


def _too_long(what: str, key: str, text: str, limit: int) -> str:
    """MLflow's rule: a too-long value is truncated with a warning, or refused when
    MLFLOW_TRUNCATE_LONG_VALUES is false."""
    if os.environ.get("MLFLOW_TRUNCATE_LONG_VALUES", "true").strip().lower() in ("false", "0"):
        raise InvalidInputError(
            f"The value of {what} '{key}' has {len(text)} characters, more than the limit "
            f"of {limit}; shorten it, or unset MLFLOW_TRUNCATE_LONG_VALUES to have it "
            "truncated."
        )
    print(
        f"gitrun: {what} '{key}' is longer than {limit} characters; truncated.",
        file=sys.stderr,
    )
    return text[:limit]


# ---------------------------------------------------------------------------
# metric points
# ---------------------------------------------------------------------------
def metric_value(key: str, value: Any) -> float:
    t = type(value)
    if t is float or t is int:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        if not isinstance(value, (str, bytes, bool)) and hasattr(value, "__float__"):
            try:
                return float(value)  # numpy 0-d arrays, torch scalars
            except (TypeError, ValueError):
                pass
        raise InvalidInputError(
            f"Got invalid value {value!r} for metric '{key}': a metric value must be a "
            "number (int or float; NaN and infinity are allowed)."
        )
    return float(value)  # type: ignore[arg-type]


def _whole(value: Any) -> int | None:
    """`value` as an int the way MLflow stores a step or timestamp: any real number,
    truncated (numpy scalars too); None for anything else (text, NaN, infinity)."""
    if not isinstance(value, numbers.Real):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None


def metric_step(key: str, step: Any) -> int:
    """A metric point's step as MLflow takes it: a 64-bit integer, 0 when not given."""
    if step is None:
        return 0
    st = _whole(step)
    if st is None or not -INT64 <= st < INT64:
        raise InvalidInputError(
            f"Invalid step {step!r} for metric '{key}': a step must be a number that fits "
            "a 64-bit integer."
        )
    return st


def metric_timestamp(key: str, timestamp: Any) -> int | None:
    """A metric point's timestamp (ms since 1970, 64-bit, not negative), or None for now."""
    if timestamp is None:
        return None
    ts = _whole(timestamp)
    if ts is None or not 0 <= ts < INT64:
        raise InvalidInputError(
            f"Invalid timestamp {timestamp!r} for metric '{key}': a timestamp must be a "
            "number of milliseconds since 1970, not negative."
        )
    return ts


# ---------------------------------------------------------------------------
# names and ids
# ---------------------------------------------------------------------------
def check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or has_control(name):
        raise InvalidInputError(
            f"Invalid experiment name {name!r}: use a non-empty string without newlines, "
            "tabs or other control characters."
        )
    return name


def check_run_name(name: Any) -> str:
    """A run name as given to start_run / gitrun record -n / the mlflow.runName tag."""
    if not isinstance(name, str) or has_control(name):
        raise InvalidInputError(
            f"Invalid run name {name!r}: use a string without newlines, tabs or other "
            "control characters."
        )
    return name


def check_run_id(run_id: Any) -> str:
    """A run reference as a caller gives it (resolved later: id, prefix or name)."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise InvalidInputError(
            f"Invalid run id {run_id!r}: pass the run's id (32 hex characters, or a unique "
            "prefix of 4 or more) or its unique name, as a string."
        )
    return run_id


# ---------------------------------------------------------------------------
# artifact destinations
# ---------------------------------------------------------------------------
def safe_artifact_path(path: str) -> str:
    """An artifact destination inside the run, normalised; see gitrun/format/paths.py for
    the rule.  The directory of stored inputs (format.store.STORED_INPUTS) is reserved."""
    from ..format.paths import check_artifact_path
    from ..format.store import STORED_INPUTS, is_stored_input

    out = check_artifact_path(path)
    if out == STORED_INPUTS or is_stored_input(out):
        raise InvalidInputError(
            f"Artifact path '{out}' is reserved: {STORED_INPUTS}/ holds the stored copies of "
            "inputs (gitrun record -i PATH --store); choose another artifact path."
        )
    return out


def artifact_dest(local_path: str, artifact_path: str | None) -> str:
    """Where log_artifact puts `local_path`: its name, under `artifact_path` if given."""
    name = os.path.basename(os.path.abspath(local_path))  # "." names the directory itself
    prefix = artifact_path.strip("/") if artifact_path else ""
    if not name:  # "/"
        return prefix
    return f"{prefix}/{name}" if prefix else name
