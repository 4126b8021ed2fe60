"""Finding one run: by full id, a unique id prefix (4+ characters), or a unique name."""

from __future__ import annotations

import re
import time

from . import journal, store
from .entities import RunRecord
from .errors import AmbiguousRunError, RunNotFoundError
from .git import Repo

_HEX = re.compile(r"^[0-9a-fA-F]{4,}$")


def _describe(rec: RunRecord) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime((rec.start_time or 0) / 1000))
    return f"{rec.run_id[:8]} ({rec.run_name or 'unnamed'}, {rec.experiment}, {when})"


def resolve(repo: Repo, ref: str) -> str:
    """The full id of the run `ref` names; one clear sentence when none or several match."""
    from . import query

    journal.recover(repo)
    trees = store.list_run_trees(repo)
    live = {r.run_id: r for r in journal.live_runs(repo)}
    ids = set(trees) | set(live)
    ref = ref.strip()
    if ref in ids:
        return ref
    if _HEX.match(ref):
        hits = sorted(i for i in ids if i.startswith(ref.lower()))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            recs = query.records(repo, hits)
            raise AmbiguousRunError(
                f"'{ref}' is a prefix of {len(hits)} runs: "
                + ", ".join(_describe(recs[h]) for h in hits[:10])
                + "; give more characters of the id."
            )
    names = query.names(repo)
    hits = sorted(i for i, n in names.items() if n == ref)
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        recs = query.records(repo, hits)
        raise AmbiguousRunError(
            f"{len(hits)} runs are named '{ref}': "
            + ", ".join(_describe(recs[h]) for h in hits[:10])
            + "; use an id prefix instead."
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
