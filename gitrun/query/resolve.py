"""Finding one run: by full id, a unique id prefix (4+ characters), or a unique name."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from .._git import Repo
from ..errors import AmbiguousRunError, InvalidInputError, RunNotFoundError
from ..format import journal, store
from ..format.entities import RunRecord

_HEX = re.compile(r"^[0-9a-fA-F]{4,}$")


def _describe(rec: RunRecord) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime((rec.start_time or 0) / 1000))
    return f"{rec.run_id} ({rec.run_name or 'unnamed'}, {rec.experiment}, {when})"


def candidates(ref: str, ids: Iterable[str], names: dict[str, str]) -> tuple[list[str], list[str]]:
    """The runs `ref` may name, sorted: the `ids` it starts (4+ hex characters) and the
    runs `names` gives it as their name."""
    by_prefix = sorted(i for i in ids if i.startswith(ref.lower())) if _HEX.match(ref) else []
    return by_prefix, sorted(i for i, n in names.items() if n == ref)


def resolve(repo: Repo, ref: str) -> str:
    """The full id of the run `ref` names; one clear sentence when none or several match.

    A full id wins; otherwise every run whose id starts with `ref` (4+ hex characters) or
    whose name is `ref` is a candidate, so a run named like another run's id prefix is
    reported as ambiguous instead of silently picking one of them."""
    from .. import query

    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInputError(
            f"Invalid run {ref!r}: give a run id, a unique prefix of at least 4 characters "
            "or a unique run name, as a non-empty string."
        )
    journal.recover(repo)
    trees = store.list_run_trees(repo)
    live = {r.run_id: r for r in journal.live_runs(repo)}
    ids = set(trees) | set(live)
    ref = ref.strip()
    if ref in ids:
        return ref
    names = query.names(repo) if ids else {}
    for rid, rec in live.items():
        names.setdefault(rid, rec.run_name)
    by_prefix, by_name = candidates(ref, ids, names)
    hits = sorted(set(by_prefix) | set(by_name))
    if len(hits) == 1:
        return hits[0]
    if hits:
        recs = query.records(repo, hits)
        listed = ", ".join(_describe(recs[h]) for h in hits[:10] if h in recs)
        if not by_name:
            raise AmbiguousRunError(
                f"'{ref}' is a prefix of {len(hits)} runs: {listed}; give more characters "
                "of the id."
            )
        if not by_prefix:
            raise AmbiguousRunError(
                f"{len(hits)} runs are named '{ref}': {listed}; use an id prefix instead."
            )
        raise AmbiguousRunError(
            f"'{ref}' is ambiguous: it is the name of {len(by_name)} run(s) and the start of "
            f"the id of {len(by_prefix)} other run(s): {listed}; give the full id or a "
            "longer id prefix."
        )
    if not ids:
        raise RunNotFoundError(
            f"No run matches '{ref}': this repository has no runs yet; record one with "
            "`gitrun record -- python train.py`."
        )
    if len(ref) < 4 and _HEX.match(ref + "0000"):
        raise RunNotFoundError(
            f"No run is named '{ref}', and an id prefix needs at least 4 characters; "
            "`gitrun ls` lists runs."
        )
    raise RunNotFoundError(
        f"No run matches '{ref}'; give a full run id, a unique prefix of at least 4 "
        "characters, or a unique run name (`gitrun ls` lists runs)."
    )


def load(repo: Repo, ref: str, history: bool = True) -> RunRecord:
    """The whole record of one run (live runs included, as RUNNING)."""
    rid = resolve(repo, ref)
    for rec in journal.live_runs(repo):
        if rec.run_id == rid:
            return rec
    tree = store.list_run_trees(repo)[rid]
    return store.read_record(repo, rid, tree, history=history)
