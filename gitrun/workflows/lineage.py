"""`gitrun lineage PATH|RUN`: which runs read which data, and which run produced it.

An artifact of run A whose sha256 is the digest of an input of run B links A -> B, and so
does an artifact directory of A whose (path, sha256, size) listing has the digest of a
directory input of B (format.store.dir_digest, the rule inputs are hashed by).  Stored
copies of inputs (gitrun.inputs/) are not produced by their run and link nothing.  For
a path: the runs that read it (and which version), and the runs that produced each
version as an artifact.  For a run: its inputs and their producing runs, recursively
(the chain A -> B -> C).  Plain data here; the CLI renders it.
"""

from __future__ import annotations

import os
from typing import Any

from .._git import Repo
from ..errors import GitrunError
from ..format import store
from ..format.entities import Artifact, RunRecord
from ..query import all_records
from ..query import resolve as runs

MAX_DEPTH = 50


def _producers(recs: dict[str, RunRecord]) -> dict[str, list[tuple[RunRecord, str]]]:
    """artifact digest ("sha256:<hex>") -> [(run, artifact path)], oldest run first; with
    the digests of artifact directories (path "dir/", "." for all of a run's artifacts)
    when some run has a directory input."""
    dir_inputs = any(i.kind == "dir" for r in recs.values() for i in r.inputs.values())
    out: dict[str, list[tuple[RunRecord, str]]] = {}
    for rec in sorted(recs.values(), key=lambda r: (r.start_time or 0, r.run_id)):
        made = [a for a in rec.artifacts.values() if not store.is_stored_input(a.path)]
        for a in made:
            out.setdefault("sha256:" + a.sha256, []).append((rec, a.path))
        if dir_inputs and made:
            for d, listing in _directories(made).items():
                out.setdefault(store.dir_digest(listing), []).append((rec, d))
    return out


def _directories(arts: list[Artifact]) -> dict[str, list[tuple[str, str, int]]]:
    """Each directory of the artifacts ("." for their root) -> its files' (path relative
    to it, sha256, size)."""
    out: dict[str, list[tuple[str, str, int]]] = {}
    for a in arts:
        out.setdefault(".", []).append((a.path, a.sha256, a.size))
        parts = a.path.split("/")
        for n in range(1, len(parts)):
            d = "/".join(parts[:n])
            out.setdefault(d + "/", []).append(("/".join(parts[n:]), a.sha256, a.size))
    return out


def _run(rec: RunRecord) -> dict[str, Any]:
    return {"run_id": rec.run_id, "run_name": rec.run_name, "start_time": rec.start_time}


def for_run(repo: Repo, ref: str) -> dict[str, Any]:
    """The run, its inputs, and for each input the runs that produced it, recursively."""
    rec = runs.load(repo, ref, history=False)
    recs = all_records(repo)
    recs[rec.run_id] = rec
    producers = _producers(recs)

    def node(r: RunRecord, seen: frozenset[str], depth: int) -> dict[str, Any]:
        inputs = []
        for i in r.inputs.values():
            made = []
            for p, art in producers.get(i.digest, []):
                if p.run_id == r.run_id:
                    continue
                child: dict[str, Any]
                if p.run_id in seen or depth >= MAX_DEPTH:
                    child = {**_run(p), "inputs": [], "cycle": True}
                else:
                    child = node(p, seen | {p.run_id}, depth + 1)
                made.append({"artifact": art, "run": child})
            inputs.append({"path": i.path, "kind": i.kind, "digest": i.digest, "produced_by": made})
        return {**_run(r), "inputs": inputs}

    return node(rec, frozenset({rec.run_id}), 0)


def for_path(repo: Repo, path: str) -> dict[str, Any]:
    """Which runs read `path` (as an input, or as a file of a directory input), which
    version each read, and which runs produced each version as an artifact."""
    from ..capture import inputs as hashing

    root = repo.work_tree or os.getcwd()
    name = hashing.input_name(path, root) if os.path.exists(path) else path.strip("/")
    now = None
    if os.path.exists(path):
        try:
            now = hashing.hash_paths(repo, [path])[0].digest
        except GitrunError:
            now = None
    recs = all_records(repo)
    producers = _producers(recs)
    readers = []
    digests: list[str] = [now] if now else []
    for rec in sorted(recs.values(), key=lambda r: (r.start_time or 0, r.run_id)):
        for i in rec.inputs.values():
            digest = None
            if i.path == name:
                digest = i.digest
            else:
                for rel, _size, d in i.members:
                    if f"{i.path.rstrip('/')}/{rel}" == name:
                        digest = d
            if digest is None:
                continue
            readers.append({**_run(rec), "digest": digest, "context": i.context, "as": i.path})
            if digest not in digests:
                digests.append(digest)
    versions = []
    for d in digests:
        versions.append(
            {
                "digest": d,
                "current": d == now,
                "read_by": [r for r in readers if r["digest"] == d],
                "produced_by": [{**_run(p), "artifact": a} for p, a in producers.get(d, [])],
            }
        )
    return {"path": name, "digest_now": now, "versions": versions}


def lineage(repo: Repo, target: str) -> dict[str, Any]:
    """A path (an existing file or directory, or a path some run read) or a run."""
    if os.path.exists(target) or "/" in target:
        return {"path": for_path(repo, target)}
    try:
        return {"run": for_run(repo, target)}
    except GitrunError:
        return {"path": for_path(repo, target)}
