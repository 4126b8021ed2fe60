"""`gitrun sweep`'s search space and samplers: `-p` specs, grid, seeded random, Optuna.

A `-p NAME=SPEC` is one of
    v1,v2,v3               a list (a grid axis; a choice for --random/--optuna)
    4..10                  the integers 4 to 10, both included (4..10..2: every second)
    loguniform:1e-4:1e-1   a float between the bounds, uniform in log space
    uniform:0:1            a float between the bounds
    int:3:12               an integer, both bounds included
    choice:a,b,c           one of the values
A plain `NAME=VALUE` is a constant.  Values keep the text typed (so `{lr}` becomes
`0.010` when that is what was written); sampled floats are written with repr().

Trial `i` of a grid or a random sweep is a pure function of the spec, the seed and `i`
(never of the order trials ran in), so `--resume` can repeat exactly the missing ones.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from typing import Any

from ..errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_INT = re.compile(r"^[+-]?\d+$")


class Dim:
    """One parameter of the space."""

    def __init__(
        self,
        name: str,
        kind: str,
        values: list[str] | None = None,
        low: float = 0.0,
        high: float = 0.0,
        text: str = "",
    ) -> None:
        self.name = name
        self.kind = kind
        self.values = values or []  # list, range and choice: the values as text
        self.low = low
        self.high = high
        self.text = text  # the spec as typed, kept in the sweep's parent run

    @property
    def discrete(self) -> bool:
        return self.kind in ("list", "range", "choice")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.text}


def parse(item: str) -> Dim:
    """`NAME=SPEC` (one -p) as a Dim; one UsageError sentence when it is not one."""
    name, eq, spec = item.partition("=")
    name = name.strip()
    if not eq or not name:
        raise UsageError(
            f"-p {item!r} is not NAME=VALUES; write e.g. -p lr=0.01,0.1 or -p depth=4..10."
        )
    if not _NAME.match(name):
        raise UsageError(
            f"Param name {name!r} (-p) must start with a letter or _ and hold only letters, "
            "digits, _, . and -."
        )
    return parse_spec(name, spec)


def parse_spec(name: str, spec: str) -> Dim:
    head, colon, rest = spec.partition(":")
    if colon and head in ("loguniform", "uniform", "int"):
        parts = rest.split(":")
        if len(parts) != 2:
            raise UsageError(f"-p {name}={spec}: {head} takes two bounds, e.g. {name}={head}:1:10.")
        lo, hi = (_number(name, spec, p, integer=head == "int") for p in parts)
        if lo > hi:
            raise UsageError(f"-p {name}={spec}: the low bound is above the high one.")
        if head == "loguniform" and lo <= 0:
            raise UsageError(f"-p {name}={spec}: loguniform bounds must be above 0.")
        return Dim(name, head, low=lo, high=hi, text=spec)
    if colon and head == "choice":
        values = _list(name, spec, rest)
        return Dim(name, "choice", values=values, text=spec)
    if colon and re.fullmatch(r"[A-Za-z_]+", head):
        import difflib

        kinds = ("loguniform", "uniform", "int", "choice")
        close = difflib.get_close_matches(head.lower(), kinds, n=1, cutoff=0.6)
        if close or head.lower() in kinds:
            raise UsageError(
                f"-p {name}={spec}: {head!r} is not a distribution; did you mean "
                f"{(close or [head.lower()])[0]}? (loguniform:LO:HI, uniform:LO:HI, int:LO:HI, "
                "choice:a,b,c)"
            )
    m = re.match(r"^([+-]?\d+)\.\.([+-]?\d+)(?:\.\.(\d+))?$", spec.strip())
    if m:
        lo, hi, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
        if lo > hi or step < 1:
            raise UsageError(
                f"-p {name}={spec}: a range runs from a low to a high integer, e.g. 4..10."
            )
        if (hi - lo) // step >= 1_000_000:
            raise UsageError(f"-p {name}={spec}: a range of over a million values is too long.")
        values = [str(v) for v in range(lo, hi + 1, step)]
        return Dim(name, "range", values=values, text=spec)
    return Dim(name, "list", values=_list(name, spec, spec), text=spec)


def _list(name: str, spec: str, body: str) -> list[str]:
    values = [v.strip() for v in body.split(",")]
    if not body.strip() or any(v == "" for v in values):
        raise UsageError(f"-p {name}={spec}: a value is empty; write e.g. {name}=a,b,c.")
    return values


def _number(name: str, spec: str, text: str, integer: bool) -> float:
    try:
        v = int(text) if integer else float(text)
    except ValueError:
        what = "an integer" if integer else "a number"
        raise UsageError(f"-p {name}={spec}: {text!r} is not {what}.") from None
    if not math.isfinite(v):
        raise UsageError(f"-p {name}={spec}: {text!r} is not a finite number.")
    return v


def typed(text: str) -> Any:
    """A param's text as the YAML/JSON value a params file gets (int, float, bool or str)."""
    if _INT.match(text):
        return int(text)
    try:
        f = float(text)
        if math.isfinite(f):
            return f
    except ValueError:
        pass
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    return text


def _float_text(v: float) -> str:
    return repr(float(v))


# ---------------------------------------------------------------------------
# grid
# ---------------------------------------------------------------------------
def grid_size(dims: list[Dim]) -> int:
    n = 1
    for d in dims:
        n *= len(d.values)
    return n


def check_grid(dims: list[Dim]) -> None:
    for d in dims:
        if not d.discrete:
            raise UsageError(
                f"-p {d.name}={d.text} is a distribution; sample it with --random N or "
                "--optuna N (a grid takes lists like a,b,c and ranges like 4..10)."
            )


def grid_trial(dims: list[Dim], index: int) -> dict[str, str]:
    """The `index`-th point of the grid (the last -p varies fastest)."""
    out: dict[str, str] = {}
    for d in reversed(dims):
        index, k = divmod(index, len(d.values))
        out[d.name] = d.values[k]
    return {d.name: out[d.name] for d in dims}


# ---------------------------------------------------------------------------
# random
# ---------------------------------------------------------------------------
def random_trial(dims: list[Dim], seed: int, index: int) -> dict[str, str]:
    """Trial `index` of a seeded random sweep: the same for the same seed and index."""
    rng = random.Random(f"gitrun-sweep:{seed}:{index}")  # str seeds: stable everywhere
    out: dict[str, str] = {}
    for d in dims:
        if d.discrete:
            out[d.name] = d.values[rng.randrange(len(d.values))]
        elif d.kind == "int":
            out[d.name] = str(rng.randint(int(d.low), int(d.high)))
        elif d.kind == "uniform":
            out[d.name] = _float_text(rng.uniform(d.low, d.high))
        else:  # loguniform
            out[d.name] = _float_text(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
    return out


# ---------------------------------------------------------------------------
# Optuna
# ---------------------------------------------------------------------------
def optuna_distributions(dims: list[Dim]) -> dict[str, Any]:
    from ..errors import require

    optuna = require("optuna", "gitrun-ml[optuna]")
    D = optuna.distributions
    out: dict[str, Any] = {}
    for d in dims:
        if d.kind == "range" and len(d.values) > 1:
            lo, hi = int(d.values[0]), int(d.values[-1])
            step = int(d.values[1]) - lo
            out[d.name] = D.IntDistribution(lo, hi, step=step)
        elif d.discrete:
            out[d.name] = D.CategoricalDistribution(list(d.values))
        elif d.kind == "int":
            out[d.name] = D.IntDistribution(int(d.low), int(d.high))
        else:
            out[d.name] = D.FloatDistribution(d.low, d.high, log=d.kind == "loguniform")
    return out


def optuna_text(dist: Any, value: Any) -> str:
    """A value Optuna chose, as the param's text."""
    if isinstance(value, float):
        return _float_text(value)
    return str(value)


def optuna_value(dist: Any, text: str) -> Any:
    """A recorded param's text back as the value Optuna knows (resuming a study)."""
    name = type(dist).__name__
    if name == "IntDistribution":
        return int(text)
    if name == "FloatDistribution":
        return float(text)
    return text


def iter_indices(total: int, done: set[int]) -> Iterator[int]:
    """The trial numbers still to run, in order (no list of all of them: memory flat)."""
    for i in range(total):
        if i not in done:
            yield i
