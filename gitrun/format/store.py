"""The run store: refs/gitrun/runs, format version 1 (docs/format.md).

This module owns what the files of a run say (record <-> files) and how runs are
committed, read and merged; their names and places are layout.py's.  Every finished
run is one commit on RUNS_REF whose tree holds *all* runs (the accumulated state), so
the tip tree is the union of history and two tips join by a tree union:

    gitrun.yaml                       format: 1
    runs/<id[:2]>/<id>/run.yaml       metadata, code, command, status, times
    runs/<id[:2]>/<id>/params.yaml    key: "value"
    runs/<id[:2]>/<id>/tags.yaml      key: "value"
    runs/<id[:2]>/<id>/metrics.yaml   latest value per metric
    runs/<id[:2]>/<id>/metrics.tsv    full history: key step timestamp value
    runs/<id[:2]>/<id>/artifacts.tsv  manifest: path size sha256 storage [location]
    runs/<id[:2]>/<id>/artifacts/...  artifact content (storage "git"), or its Git LFS
                                      pointer (storage "lfs": format/lfs.py, large.py)
    runs/<id[:2]>/<id>/inputs.tsv     data the run read: path kind size digest context
                                      [files] (only when it has inputs; "member" rows list
                                      a directory input's first files; stored copies are
                                      artifacts under gitrun.inputs/)
    runs/<id[:2]>/<id>/env.yaml       python, platform, packages
    runs/<id[:2]>/<id>/output.log     what `gitrun record` saw the command print

Parents of a run commit: the previous tip, then the run's code commit (HEAD or
the snapshot of a dirty work tree), so pushing the ref carries the exact code.
A sync merge has the two run tips as parents.
"""

from __future__ import annotations

import errno
import math
import os
import re
import sys
import threading
import time
import zlib
from collections.abc import Iterable
from typing import Any

from .._git import BLOB_MODE, TREE_MODE, Repo
from ..errors import CorruptRecordError, DiskError, GitError, GitrunError
from . import textfmt
from .entities import Artifact, Input, Metric, RunRecord
from .layout import (  # the names of layout.py that this module writes and reads
    ARTIFACTS_DIR,
    ENV_FILE,
    FORMAT_FILE,
    HISTORY_FILE,
    INPUTS_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    OUTPUT_FILE,
    PARAMS_FILE,
    RUN_FILE,
    RUNS_DIR,
    RUNS_REF,
    TAGS_FILE,
    bucket,
)

FORMAT_VERSION = 1
_FORMAT_DATA = f"format: {FORMAT_VERSION}\n".encode()  # the gitrun.yaml gitrun writes
STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
TERMINAL = ("FINISHED", "FAILED", "KILLED")
MAX_CAS_ATTEMPTS = 200


# ---------------------------------------------------------------------------
# record <-> files
# ---------------------------------------------------------------------------
def record_meta(rec: RunRecord) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "run_id": rec.run_id,
        "run_name": rec.run_name,
        "experiment": rec.experiment,
        "status": rec.status,
        "lifecycle_stage": rec.lifecycle_stage,
        "start_time": rec.start_time,
        "end_time": rec.end_time,
        "updated_time": rec.updated_time,
        "user": rec.user,
        "host": rec.host,
        "source_name": rec.source_name,
        "command": rec.command,
        "cwd": rec.cwd,
        "exit_code": rec.exit_code,
        "code": rec.code,
    }


def run_files(rec: RunRecord) -> dict[str, bytes]:
    hist_rows = []
    for key in sorted(rec.history):
        for m in rec.history[key]:
            hist_rows.append((key, str(m.step), str(m.timestamp), textfmt.tsv_float(m.value)))
    arts = sorted(rec.artifacts.values(), key=lambda a: a.path)
    art_cols: tuple[str, ...] = MANIFEST_COLUMNS
    art_rows: list[tuple[str, ...]] = [(a.path, str(a.size), a.sha256, a.storage) for a in arts]
    if any(a.location for a in arts):  # only then: every other manifest reads as it did
        art_cols += (LOCATION_COLUMN,)
        art_rows = [(*row, a.location or "") for row, a in zip(art_rows, arts)]
    files = {
        RUN_FILE: textfmt.dump_map(record_meta(rec)),
        PARAMS_FILE: textfmt.dump_str_map(rec.params),
        TAGS_FILE: textfmt.dump_str_map(rec.tags),
        METRICS_FILE: textfmt.dump_float_map(rec.metrics),
        HISTORY_FILE: textfmt.dump_tsv(("key", "step", "timestamp", "value"), hist_rows),
        MANIFEST_FILE: textfmt.dump_tsv(art_cols, art_rows),
    }
    if rec.inputs:  # absent otherwise: runs without inputs look as they always did
        rows: list[tuple[str, ...]] = list(input_rows(rec.inputs))
        cols: tuple[str, ...] = INPUT_COLUMNS
        counts = _file_counts(rec.inputs)
        if any(c for c in counts):  # only then: inputs.tsv without directories reads as it did
            cols += (FILES_COLUMN,)
            rows = [(*row, c) for row, c in zip(rows, counts)]
        files[INPUTS_FILE] = textfmt.dump_tsv(cols, rows)
    return files


MANIFEST_COLUMNS = ("path", "size", "sha256", "storage")
LOCATION_COLUMN = "location"  # storage "store": the object store's URL prefix
# Storage kinds whose run tree holds a blob at artifacts/<path>: the content ("git") or
# its Git LFS pointer file ("lfs", format/lfs.py).  "store" (format/objstore.py) has none.
TREE_KINDS = ("git", "lfs")
INPUT_COLUMNS = ("path", "kind", "size", "digest", "context")
FILES_COLUMN = "files"  # a sixth column: how many files a "dir" input has (listed or not)
MEMBER = "member"  # an inputs.tsv row listing one file of the directory input above it
# Stored copies of inputs (`gitrun record -i PATH --store`, log_input(path, store=True)) are
# artifacts under this reserved directory, at <STORED_INPUTS>/<input path>; checkout and
# rerun put them back at the input's path (docs/format.md, "Inputs").
STORED_INPUTS = "gitrun.inputs"


def is_stored_input(artifact_path: str) -> bool:
    """Whether an artifact path is a stored copy of an input (under STORED_INPUTS/)."""
    return artifact_path.startswith(STORED_INPUTS + "/")


def stored_input_path(input_path: str) -> str:
    """The artifact path of the stored copy of the input named `input_path` (relative to
    the work tree root; "." is the root itself); a file of a directory input goes below."""
    return STORED_INPUTS if input_path == "." else f"{STORED_INPUTS}/{input_path}"


def dir_digest(files: Iterable[tuple[str, str, int]]) -> str:
    """A directory's digest: `sha256:` over the lines "<relative path> TAB <sha256 hex> TAB
    <size> LF" of its files sorted by path (a "dir" input's rule, and directory lineage's)."""
    import hashlib

    h = hashlib.sha256()
    for rel, sha, size in sorted(files):
        h.update(f"{rel}\t{sha}\t{size}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


def stored_copies(rec: RunRecord) -> dict[str, list[Artifact]]:
    """input path -> the artifacts holding its stored copy, for each file or directory input
    whose copy is complete (its content, or its directory digest, is the input's digest)."""
    if not rec.inputs or not any(is_stored_input(p) for p in rec.artifacts):
        return {}
    out: dict[str, list[Artifact]] = {}
    for i in rec.inputs.values():
        if os.path.isabs(i.path) or not i.digest.startswith("sha256:"):
            continue
        base = stored_input_path(i.path)
        if i.kind == "file":
            a = rec.artifacts.get(base)
            if a is not None and "sha256:" + a.sha256 == i.digest and a.size == i.size:
                out[i.path] = [a]
        elif i.kind == "dir":
            under = [a for p, a in rec.artifacts.items() if p.startswith(base + "/")]
            listing = [(a.path[len(base) + 1 :], a.sha256, a.size) for a in under]
            if under and dir_digest(listing) == i.digest:
                out[i.path] = sorted(under, key=lambda a: a.path)
    return out


def _file_counts(inputs: dict[str, Input]) -> list[str]:
    """The FILES_COLUMN of each row input_rows gives ("" for every row but a dir's)."""
    out: list[str] = []
    for i in inputs.values():
        out.append(str(i.files) if i.kind == "dir" and i.files is not None else "")
        out += [""] * len(i.members)
    return out


def input_rows(inputs: dict[str, Input]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for i in inputs.values():
        rows.append((i.path, i.kind, str(i.size), i.digest, i.context))
        for rel, size, digest in i.members:
            rows.append((f"{i.path.rstrip('/')}/{rel}", MEMBER, str(size), digest, ""))
    return rows


def parse_inputs(text: str) -> dict[str, Input]:
    out: dict[str, Input] = {}
    last: Input | None = None
    for row in textfmt.load_tsv(text):
        path, kind, size, digest = row[:4]
        context = row[4] if len(row) > 4 else ""
        if kind == MEMBER:
            if last is not None and path.startswith(last.path.rstrip("/") + "/"):
                rel = path[len(last.path.rstrip("/")) + 1 :]
                last.members.append((rel, int(size), digest))
            continue
        files = int(row[5]) if kind == "dir" and len(row) > 5 and row[5] else None
        last = out[path] = Input(path, kind, int(size), digest, context, None, files)
    return out


_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
CODE_OBJECT_KEYS = ("commit", "head", "snapshot")  # code: values that name git objects


def _code_state(raw: object) -> dict[str, Any]:
    """run.yaml's `code` map, with every commit it names checked to be an object id: history
    may come from a teammate's push, and these values are handed to git (a crafted
    "--output=/x" must not become an option)."""
    code = dict(raw) if isinstance(raw, dict) else {}
    for key in CODE_OBJECT_KEYS:
        v = code.get(key)
        if v is not None and not (isinstance(v, str) and _OBJECT_ID.fullmatch(v)):
            code[key] = None
    return code


def parse_record(files: dict[str, bytes], run_id: str | None = None) -> RunRecord:
    """Build a RunRecord from a run directory's files (history may be absent)."""
    try:
        meta = textfmt.load_map(files[RUN_FILE].decode())
        rid = str(meta.get("run_id") or run_id or "")
        fmt = int(meta.get("format", 1))
        if fmt > FORMAT_VERSION:
            raise GitrunError(
                f"Run {rid} was written in gitrun format {fmt}, newer than this gitrun "
                f"understands ({FORMAT_VERSION}); upgrade gitrun to read it."
            )
        rec = RunRecord(
            run_id=rid,
            run_name=str(meta.get("run_name") or ""),
            experiment=str(meta.get("experiment") or "Default"),
            status=str(meta.get("status") or "FINISHED"),
            lifecycle_stage=str(meta.get("lifecycle_stage") or "active"),
            start_time=_int_or_none(meta.get("start_time")),
            end_time=_int_or_none(meta.get("end_time")),
            updated_time=_int_or_none(meta.get("updated_time")),
            user=str(meta.get("user") or ""),
            host=str(meta.get("host") or ""),
            source_name=str(meta.get("source_name") or ""),
            command=[str(a) for a in meta["command"]] if meta.get("command") else None,
            cwd=meta.get("cwd"),
            exit_code=_int_or_none(meta.get("exit_code")),
            code=_code_state(meta.get("code")),
        )
        if PARAMS_FILE in files:
            rec.params = {
                str(k): str(v) for k, v in textfmt.load_map(files[PARAMS_FILE].decode()).items()
            }
        if TAGS_FILE in files:
            rec.tags = {
                str(k): str(v) for k, v in textfmt.load_map(files[TAGS_FILE].decode()).items()
            }
        if METRICS_FILE in files:
            rec.metrics = {
                str(k): float(v) for k, v in textfmt.load_map(files[METRICS_FILE].decode()).items()
            }
        if HISTORY_FILE in files:
            hist: dict[str, list[Metric]] = {}
            for key, step, ts, value in history_rows(files[HISTORY_FILE].decode()):
                hist.setdefault(key, []).append(Metric(key, float(value), int(ts), int(step)))
            rec.history = hist
        if MANIFEST_FILE in files:
            for row in textfmt.load_tsv(files[MANIFEST_FILE].decode()):
                path, size, sha256, storage = row[:4]
                location = row[4] if len(row) > 4 and row[4] else None
                rec.artifacts[path] = Artifact(path, int(size), sha256, storage, None, location)
        if INPUTS_FILE in files:
            rec.inputs = parse_inputs(files[INPUTS_FILE].decode())
        if ENV_FILE in files:
            rec.env = textfmt.load_map(files[ENV_FILE].decode())
    except GitrunError:
        raise
    except Exception as e:  # anything malformed in history someone else wrote
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise CorruptRecordError(
            f"The record of run {run_id or '?'} on {RUNS_REF} is malformed ({detail}); "
            "it was not written by gitrun or was damaged."
        ) from None
    return rec


# metrics.tsv exactly as run_files writes it: one regex reads it (the index reads
# thousands).  No character `str.splitlines` breaks on may appear inside such a row.
_HISTORY_HEAD = "key\tstep\ttimestamp\tvalue\n"
_HISTORY_ROW = re.compile(
    "^([^\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*)\t(-?[0-9]+)\t(-?[0-9]+)\t"
    "([+-]?(?:[0-9]+(?:\\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|inf|nan))\n",
    re.MULTILINE,
)


def history_rows(text: str) -> list[tuple[str, str, str, str]]:
    """The rows of a metrics.tsv as text: (key, step, timestamp, value), in file order.

    The one reader of metrics.tsv (parse_record and the search index use it).  A file in
    the shape run_files writes is read by one regex; anything else line by line, where a
    row that is not a key, two integers and a number raises ValueError."""
    if text.startswith(_HISTORY_HEAD):
        rows: list[tuple[str, str, str, str]] = _HISTORY_ROW.findall(text, len(_HISTORY_HEAD))
        if len(rows) == text.count("\n") - 1 and text[-1] == "\n":
            return rows
    rows = []
    for key, step, ts, value in textfmt.load_tsv(text):
        int(step)  # each raises ValueError when the field is not a number
        int(ts)
        float(value)
        rows.append((key, step, ts, value))
    return rows


def _int_or_none(v: Any) -> int | None:
    if v is None or v == "":
        return None
    return int(v)


def commit_message(rec: RunRecord) -> str:
    shown = []
    # Final metrics (logged once) say more about a run than per-step curves like loss.
    keys = sorted(rec.metrics, key=lambda k: len(rec.history.get(k, ())) > 1)
    for key in keys[:3]:
        v = rec.metrics[key]
        shown.append(f"{key}={v:.4g}" if not math.isnan(v) else f"{key}=nan")
    title = f"{rec.run_name or rec.run_id[:8]} ({rec.experiment})"
    if shown:
        title += ": " + " ".join(shown)
    title += f" [{rec.status}]"
    body = [
        f"Gitrun-Run: {rec.run_id}",
        f"Gitrun-Experiment: {rec.experiment}",
        f"Gitrun-Status: {rec.status}",
    ]
    if rec.code.get("commit"):
        body.append(f"Gitrun-Code: {rec.code['commit']}")
    return title + "\n\n" + "\n".join(body) + "\n"


# ---------------------------------------------------------------------------
# writing runs
# ---------------------------------------------------------------------------
def _build_tree(repo: Repo, files: dict[str, str]) -> str:
    """files: path -> blob id (paths use '/'); returns the root tree id."""
    nested: dict[str, Any] = {}
    for path, sha in files.items():
        parts = path.split("/")
        d = nested
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = sha

    def write(d: dict[str, Any]) -> str:
        entries = []
        for name, v in d.items():
            if isinstance(v, dict):
                entries.append((TREE_MODE, name, write(v)))
            else:
                entries.append((BLOB_MODE, name, v))
        return repo.write_tree(entries)

    return write(nested)


def write_run_tree(repo: Repo, rec: RunRecord) -> str:
    """Write the run directory (files + artifacts) and return its tree id."""
    from .paths import ArtifactPaths

    paths = ArtifactPaths()
    for a in list(rec.artifacts.values()):
        # Logged by two processes of one run (the wrapper and its child), a path may have
        # become both a file and a directory: keep the first, name the other.
        reason = paths.conflict(a.path)
        if reason:
            del rec.artifacts[a.path]
            _add_problem(rec, f"Artifact '{a.path}' was left out: {reason}.")
        else:
            paths.add(a.path)
    blobs = {name: repo.write_blob(data) for name, data in run_files(rec).items()}
    if rec.env_blob:
        blobs[ENV_FILE] = rec.env_blob
    elif rec.env:
        blobs[ENV_FILE] = repo.write_blob(textfmt.dump_map(rec.env))
    if rec.output_blob:
        blobs[OUTPUT_FILE] = rec.output_blob
    for a in rec.artifacts.values():
        if a.storage in TREE_KINDS and a.blob:
            blobs[f"{ARTIFACTS_DIR}/{a.path}"] = a.blob
    return _build_tree(repo, blobs)


def _entries(repo: Repo, tree: str | None) -> dict[str, tuple[str, str]]:
    if not tree:
        return {}
    return {name: (mode, sha) for mode, name, sha in repo.read_tree(tree)}


def _write_entries(repo: Repo, entries: dict[str, tuple[str, str]]) -> str:
    return repo.write_tree((mode, name, sha) for name, (mode, sha) in entries.items())


def tip_tree(repo: Repo, tip: str | None) -> str | None:
    if not tip:
        return None
    return repo.read_commit(tip)[0]


def put_run_dirs(repo: Repo, root: str | None, run_trees: dict[str, str | None]) -> str:
    """Return a new root tree with runs/<b>/<id> set to the given trees (None: removed)."""
    top = _entries(repo, root)
    top[FORMAT_FILE] = (BLOB_MODE, repo.write_blob(_FORMAT_DATA))
    runs = _entries(repo, top.get(RUNS_DIR, ("", None))[1])
    by_bucket: dict[str, dict[str, str | None]] = {}
    for rid, t in run_trees.items():
        by_bucket.setdefault(bucket(rid), {})[rid] = t
    for b, items in by_bucket.items():
        bentries = _entries(repo, runs.get(b, ("", None))[1])
        for rid, t in items.items():
            if t is None:
                bentries.pop(rid, None)
            else:
                bentries[rid] = (TREE_MODE, t)
        if bentries:
            runs[b] = (TREE_MODE, _write_entries(repo, bentries))
        else:
            runs.pop(b, None)
    top[RUNS_DIR] = (TREE_MODE, _write_entries(repo, runs))
    return _write_entries(repo, top)


def _pointed_at(rec: RunRecord) -> dict[str, str]:
    """The objects a run points at outside its own directory tree: sha -> what it is."""
    wanted: dict[str, str] = {}
    if rec.code.get("commit"):
        wanted[rec.code["commit"]] = "its code commit"
    if rec.env_blob:
        wanted[rec.env_blob] = "its environment (env.yaml)"
    if rec.output_blob:
        wanted[rec.output_blob] = "its output.log"
    for a in rec.artifacts.values():
        if a.storage in TREE_KINDS and a.blob:
            wanted.setdefault(a.blob, f"artifact '{a.path}'")
    return wanted


def _drop_missing(repo: Repo, rec: RunRecord) -> None:
    """Leave out what the run points at but the repository lost (an object deleted by
    `git gc --prune=now` while the run was live, say), naming it in gitrun.problems:
    a run commit must never point at a missing object (`git fsck`, push and checkout
    would all reject it)."""
    wanted = _pointed_at(rec)
    missing = set(repo.missing_objects(wanted))
    if not missing:
        return
    lost = [wanted[sha] for sha in wanted if sha in missing]
    if rec.code.get("commit") in missing:
        rec.code = {**rec.code, "commit": None}
    if rec.env_blob in missing:
        rec.env_blob = None
    if rec.output_blob in missing:
        rec.output_blob = None
    for path, a in list(rec.artifacts.items()):
        if a.blob in missing:
            del rec.artifacts[path]
    problem = (
        f"The repository lost {', '.join(lost)} while the run was live (was `git gc "
        "--prune=now` run?); the run is recorded without them."
    )
    _add_problem(rec, problem)
    print(f"gitrun: run {rec.run_id[:8]}: {problem}", file=sys.stderr)


def _add_problem(rec: RunRecord, problem: str) -> None:
    """Append one sentence to the run's gitrun.problems tag."""
    old = rec.tags.get("gitrun.problems")
    rec.tags["gitrun.problems"] = f"{old} {problem}" if old else problem


def commit_run(repo: Repo, rec: RunRecord) -> str:
    """Append one run to RUNS_REF (compare-and-swap with retry); return the commit id."""
    if rec.status not in TERMINAL:
        # docs/format.md: a committed run is never RUNNING.
        raise GitrunError(
            f"Run {rec.run_id} cannot be committed with status {rec.status}; end it first."
        )
    _drop_missing(repo, rec)
    message = commit_message(rec)
    code = rec.code.get("commit")
    run_tree: str | None = None
    for attempt in range(MAX_CAS_ATTEMPTS):
        old = repo.read_ref(RUNS_REF)
        check_runs_ref(repo, old)  # never commit runs on top of a code commit
        # The run's objects reach the disk as one pack, before the ref points at them.
        with repo.batch():
            if run_tree is None:
                run_tree = write_run_tree(repo, rec)
            root = put_run_dirs(repo, tip_tree(repo, old), {rec.run_id: run_tree})
            # The first parent is always the previous runs commit (a root commit starts
            # the history), so `git log --first-parent` never wanders into the code's.
            parents = [old or _root_commit(repo)]
            if code and code not in parents:
                parents.append(code)
            commit = repo.write_commit(root, parents, message, when_ms=rec.end_time)
        rec.tree = run_tree
        if repo.cas_ref(RUNS_REF, commit, old, f"gitrun: record {rec.run_id}"):
            _good_tips.add(commit)  # written by us: the next run's check costs nothing
            # Reachable from the runs ref now (append-only): the next run on the same code
            # and environment asks git nothing about them.
            repo.reachable.update(_pointed_at(rec))
            return commit
        time.sleep(min(0.001 * (attempt + 1), 0.05))
    raise GitrunError(
        f"Could not update {RUNS_REF} after {MAX_CAS_ATTEMPTS} attempts because other "
        "processes kept moving it; the run is kept in .git/gitrun/live and the next "
        "gitrun command commits it."
    )


def _root_commit(repo: Repo) -> str:
    tree = put_run_dirs(repo, None, {})
    return repo.write_commit(tree, [], "gitrun: start of run history\n", when_ms=0)


# ---------------------------------------------------------------------------
# reading runs
# ---------------------------------------------------------------------------
_RUN_ID = re.compile("[0-9a-f]{32}")
_BUCKET = re.compile("[0-9a-f]{2}")
_OBJECT_ID = re.compile("[0-9a-f]{40}|[0-9a-f]{64}")


def is_run_id(value: object) -> bool:
    """The one rule for a run id read back from disk or history, as tracking.new_run_id
    makes them: 32 lowercase hex characters (so never '..', a path, or SQL)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def is_bucket(name: str) -> bool:
    return _BUCKET.fullmatch(name) is not None


def _shown(name: str) -> str:
    return name if name.isprintable() else repr(name)


def _restore_hint() -> str:
    # A plain fetch would not resend them: git assumes what its refs reach is present.
    return f"restore them from a clone that has them (`git fetch --refetch <remote> {RUNS_REF}`)"


def missing_run_error(rid: str) -> CorruptRecordError:
    return CorruptRecordError(
        f"The objects of run {rid} are missing from this repository (a lost pack or an "
        f"incomplete fetch); {_restore_hint()}."
    )


_good_tips: set[str] = set()


def check_runs_ref(repo: Repo, tip: str | None = None, *, for_writing: bool = False) -> None:
    """Refuse a runs ref that is not a gitrun runs history (an ordinary commit, a tree, a
    blob), before anything reads it or commits on top of it; checked once per process
    per tip.  for_writing: also refuse a repository gitrun cannot write (before a run
    starts, not when it ends)."""
    if tip is None:
        tip = repo.read_ref(RUNS_REF)
    if tip and tip not in _good_tips:
        runs_top(repo, tip)
    if for_writing:
        check_writable(repo)


def _not_a_history(what: str) -> CorruptRecordError:
    return CorruptRecordError(
        f"{RUNS_REF} points at {what}, not at a gitrun runs history, so gitrun neither "
        f"reads nor records runs there; if that was a mistake, delete the ref with "
        f"`git update-ref -d {RUNS_REF}` (or point it back at your runs history)."
    )


def runs_top(repo: Repo, tip: str) -> dict[str, tuple[str, str]]:
    """The top level of the runs store at `tip`, refused unless it is a gitrun runs
    history: a commit whose tree holds gitrun.yaml (and runs/ as a directory)."""
    if tip in _good_tips:
        return _entries(repo, tip_tree(repo, tip))
    if not _OBJECT_ID.fullmatch(tip):
        raise _not_a_history(f"{_shown(tip[:50])}, which is not an object id")
    try:
        kind, data = repo.read_object(tip)
    except (GitError, OSError, zlib.error, ValueError):
        raise CorruptRecordError(
            f"{RUNS_REF} points at {tip[:12]}, which is missing from this repository or "
            f"damaged; restore it from a clone that has it (`git fetch --refetch <remote> "
            f"{RUNS_REF}`), or delete the ref (`git update-ref -d {RUNS_REF}`) to start over."
        ) from None
    if kind != "commit":
        raise _not_a_history(f"a {kind} ({tip[:12]})")
    first = data.split(b"\n", 1)[0].decode(errors="replace")
    tree = first[5:] if first.startswith("tree ") else ""
    try:
        top = _entries(repo, tree)
    except GitError:
        raise CorruptRecordError(
            f"The tree of {RUNS_REF} ({tree[:12]}) is missing from this repository; "
            f"{_restore_hint()}."
        ) from None
    fmt = top.get(FORMAT_FILE)
    if fmt is None or fmt[0] == TREE_MODE:
        raise _not_a_history(f"an ordinary commit ({tip[:12]}, its tree has no {FORMAT_FILE})")
    check_format(repo, top)
    runs = top.get(RUNS_DIR)
    if runs is not None and runs[0] != TREE_MODE:
        raise CorruptRecordError(
            f"{RUNS_DIR} on {RUNS_REF} is not a directory; the runs ref was damaged or not "
            "written by gitrun."
        )
    _good_tips.add(tip)
    return top


_writable: set[str] = set()


def check_writable(repo: Repo) -> None:
    """DiskError unless gitrun can create files where a run writes (objects, its own
    state, the ref's lock): a read-only mount or CI cache is refused before the run.
    Probed once per process and repository (a sweep of runs pays it once)."""
    if repo.common_dir in _writable:
        return
    refs = "reftable" if repo.uses_reftable else "refs"
    for d in (
        repo.gitrun_dir,
        os.path.join(repo.common_dir, "objects"),
        os.path.join(repo.common_dir, refs),
    ):
        probe = os.path.join(d, f".gitrun-probe-{os.getpid()}-{threading.get_ident()}")
        try:
            os.makedirs(d, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"x")  # an empty file fits on a full disk; a byte does not
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as e:
            reason = e.strerror or type(e).__name__
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskError(
                    f"{reason} ({d}), so gitrun cannot record a run; free some space and run "
                    "the command again."
                ) from None
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise DiskError(
                    f"The repository {repo.common_dir} is read-only ({d}: {reason}), so "
                    "gitrun cannot record a run in it; record in a writable clone, or make "
                    "it writable (reading runs still works)."
                ) from None
            raise DiskError(
                f"gitrun cannot write to {d} ({reason}), so it cannot record a run; fix that "
                "and run the command again."
            ) from None
    _writable.add(repo.common_dir)


def run_buckets(repo: Repo, runs_tree: str) -> dict[str, str]:
    """bucket -> tree id under runs/; anything else there is left out with a warning."""
    try:
        entries = repo.read_tree(runs_tree)
    except GitError:
        raise CorruptRecordError(
            f"The {RUNS_DIR} directory of {RUNS_REF} ({runs_tree[:12]}) is missing from this "
            f"repository; {_restore_hint()}."
        ) from None
    out: dict[str, str] = {}
    for mode, b, sha in entries:
        if mode == TREE_MODE and is_bucket(b):
            out[b] = sha
        else:
            _bad_entry(b)
    return out


def bucket_runs(repo: Repo, b: str, tree: str) -> dict[str, str] | None:
    """run id -> run directory tree id in bucket `b`; None (with a warning) when the
    bucket's tree is missing.  Entries that are not run directories are left out."""
    try:
        entries = repo.read_tree(tree)
    except GitError:
        warn_once(
            f"{RUNS_DIR}/{b}",
            f"leaving out the runs in {RUNS_DIR}/{b}/: its tree {tree[:12]} is missing from "
            f"this repository; {_restore_hint()}.",
        )
        return None
    out: dict[str, str] = {}
    for mode, rid, sha in entries:
        if mode == TREE_MODE and is_run_id(rid) and rid.startswith(b):
            out[rid] = sha
        else:
            _bad_entry(f"{b}/{rid}")
    return out


def _bad_entry(path: str) -> None:
    warn_once(
        f"{RUNS_DIR}/{path}",
        f"leaving out {RUNS_DIR}/{_shown(path)} on {RUNS_REF}: gitrun keeps runs only in "
        f"{RUNS_DIR}/<2 hex>/<32 lowercase hex run id>/, so it was damaged or not written "
        "by gitrun.",
    )


def list_run_trees(repo: Repo, tip: str | None = None) -> dict[str, str]:
    """run id -> run directory tree id, read from the tip tree (no history walk)."""
    if tip is None:
        tip = repo.read_ref(RUNS_REF)
    if not tip:
        return {}
    runs = runs_top(repo, tip).get(RUNS_DIR)
    out: dict[str, str] = {}
    if not runs:
        return out
    for b, bsha in run_buckets(repo, runs[1]).items():
        out.update(bucket_runs(repo, b, bsha) or {})
    return out


_LS_TREE_ENTRY = re.compile("[0-7]+ ([a-z]+) ([0-9a-f]+)\t([^\0]*)\0")


def list_runs_dir(
    repo: Repo, runs_tree: str
) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict[str, tuple[str, str]]]]:
    """Everything under runs/ from one `git ls-tree -r -t -z`: bucket -> tree id,
    bucket -> {run id -> run tree id}, run tree id -> {file name -> (object type, id)}.

    Buckets and run directories are what run_buckets / bucket_runs accept (the rest is
    left out with a warning); files are the direct entries of a run directory (what is
    below artifacts/ is skipped)."""
    out = repo.git("ls-tree", "-r", "-t", "-z", runs_tree).stdout
    text = out.decode("utf-8", "surrogateescape")
    buckets: dict[str, str] = {}
    runs: dict[str, dict[str, str]] = {}
    files: dict[str, dict[str, tuple[str, str]]] = {}
    dirs: dict[str, dict[str, tuple[str, str]]] = {}  # "<bucket>/<run id>" -> its files
    for kind, sha, path in _LS_TREE_ENTRY.findall(text):
        depth = path.count("/")
        if depth == 2:
            parent, _, name = path.rpartition("/")
            d = dirs.get(parent)
            if d is not None:
                d[name] = (kind, sha)
        elif depth == 1:
            b, _, rid = path.partition("/")
            if b not in runs:
                continue  # not a bucket: warned about below
            if kind == "tree" and is_run_id(rid) and rid.startswith(b):
                runs[b][rid] = sha
                dirs[path] = files.setdefault(sha, {})
            else:
                _bad_entry(path)
        elif depth == 0:
            if kind == "tree" and is_bucket(path):
                buckets[path] = sha
                runs[path] = {}
            else:
                _bad_entry(path)
    return buckets, runs, files


def _format_blob_id(repo: Repo) -> str:
    """The id of the gitrun.yaml this gitrun writes: known good without reading it."""
    return repo.hash_object(f"blob {len(_FORMAT_DATA)}\0".encode(), _FORMAT_DATA)


def check_format(repo: Repo, top: dict[str, tuple[str, str]]) -> None:
    f = top.get(FORMAT_FILE)
    if not f or f[1] == _format_blob_id(repo):
        return
    try:
        text = repo.read_object(f[1])[1].decode(errors="replace")
    except GitError:
        raise CorruptRecordError(
            f"{FORMAT_FILE} on {RUNS_REF} is missing from this repository; {_restore_hint()}."
        ) from None
    try:
        version = int(textfmt.load_map(text).get("format", 1))
    except Exception:
        raise CorruptRecordError(
            f"{FORMAT_FILE} on {RUNS_REF} is malformed; the runs ref was damaged or not "
            "written by gitrun."
        ) from None
    if version > FORMAT_VERSION:
        raise GitrunError(
            f"{RUNS_REF} is in gitrun format {version}, newer than this gitrun understands "
            f"({FORMAT_VERSION}); upgrade gitrun."
        )


DEFAULT_FILES = (RUN_FILE, PARAMS_FILE, TAGS_FILE, METRICS_FILE, MANIFEST_FILE, INPUTS_FILE)


_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        print(f"gitrun: warning: {message}", file=sys.stderr)


def _skip(rid: str, error: CorruptRecordError, skip_corrupt: bool) -> None:
    """One damaged run must not hide all the others: warn once, leave it out."""
    if not skip_corrupt:
        raise error
    warn_once(rid, f"leaving out run {_shown(rid[:8])}: {error}")


def _corrupt(rid: str, what: str) -> CorruptRecordError:
    return CorruptRecordError(
        f"The record of run {_shown(rid)} on {RUNS_REF} {what}; it was damaged or not "
        "written by gitrun."
    )


def read_records(
    repo: Repo,
    run_trees: dict[str, str],
    files: Iterable[str] = DEFAULT_FILES,
    skip_corrupt: bool = True,
) -> dict[str, RunRecord]:
    """Read many run directories at once (one `git cat-file --batch` stream).

    A damaged record, or one whose objects are missing, is left out with a warning (or
    raised, with skip_corrupt=False).
    """
    wanted = set(files)
    # 1. the run directory trees, 2. the wanted blobs in them.
    blob_of: dict[str, dict[str, str]] = {}
    tree_ids = [(rid, t) for rid, t in run_trees.items() if _check_id(rid, skip_corrupt)]
    for (rid, _t), (_sha, kind, data) in zip(tree_ids, read_many(repo, [t for _, t in tree_ids])):
        if kind != "tree":
            error = missing_run_error(rid) if kind == "missing" else _corrupt(rid, f"is a {kind}")
            _skip(rid, error, skip_corrupt)
            continue
        try:
            entries = {name: sha for _mode, name, sha in _parse_tree(repo, data)}
        except ValueError:
            _skip(rid, _corrupt(rid, "is not a valid git tree"), skip_corrupt)
            continue
        blob_of[rid] = {n: s for n, s in entries.items() if n in wanted or n == RUN_FILE}
        for n in (ENV_FILE, OUTPUT_FILE):
            if n in entries:
                blob_of[rid]["@" + n] = entries[n]
    needed = sorted({s for d in blob_of.values() for n, s in d.items() if not n.startswith("@")})
    content = {sha: (kind, data) for sha, kind, data in read_many(repo, needed)}
    out: dict[str, RunRecord] = {}
    for rid, names in blob_of.items():
        if RUN_FILE not in names:
            _skip(rid, _corrupt(rid, f"has no {RUN_FILE}"), skip_corrupt)
            continue
        texts: dict[str, bytes] = {}
        kinds = set()
        for n, s in names.items():
            if not n.startswith("@"):
                kind, texts[n] = content[s]
                kinds.add(kind)
        if kinds != {"blob"}:
            error = (
                missing_run_error(rid)
                if "missing" in kinds
                else _corrupt(rid, "has a directory where a file belongs")
            )
            _skip(rid, error, skip_corrupt)
            continue
        try:
            rec = parse_record(texts, rid)
        except CorruptRecordError as e:
            _skip(rid, e, skip_corrupt)
            continue
        if rec.run_id != rid:
            what = f"names another run id ({_shown(rec.run_id[:40])}) in its {RUN_FILE}"
            _skip(rid, _corrupt(rid, what), skip_corrupt)
            continue
        rec.tree = run_trees[rid]
        rec.env_blob = names.get("@" + ENV_FILE)
        rec.output_blob = names.get("@" + OUTPUT_FILE)
        out[rid] = rec
    return out


def _check_id(rid: str, skip_corrupt: bool) -> bool:
    if is_run_id(rid):
        return True
    _skip(rid, _corrupt(rid, "has a directory name that is not a run id"), skip_corrupt)
    return False


def artifact_blobs(repo: Repo, run_tree: str) -> dict[str, tuple[str, str]]:
    """artifact path -> (mode, blob id), from a run directory tree."""
    entries = _entries(repo, run_tree)
    art = entries.get(ARTIFACTS_DIR)
    out: dict[str, tuple[str, str]] = {}
    if not art or art[0] != TREE_MODE:
        return out

    def walk(tree: str, prefix: str) -> None:
        for mode, name, sha in repo.read_tree(tree):
            if mode == TREE_MODE:
                walk(sha, prefix + name + "/")
            else:
                out[prefix + name] = (mode, sha)

    walk(art[1], "")
    return out


def _parse_tree(repo: Repo, data: bytes) -> list[tuple[str, str, str]]:
    from .._git import parse_tree

    return parse_tree(data, 32 if repo.object_format == "sha256" else 20)


def read_many(repo: Repo, shas: list[str]) -> Iterable[tuple[str, str, bytes]]:
    """(id, kind, data) for each of `shas`, kind "missing" for an object the repository
    does not have.  Loose objects are read in-process; the rest stream through cat-file."""
    missing = []
    found: dict[str, tuple[str, bytes]] = {}
    if len(shas) <= 64:
        for sha in shas:
            path = os.path.join(repo.common_dir, "objects", sha[:2], sha[2:])
            if os.path.exists(path):
                try:
                    found[sha] = repo.read_object(sha)
                    continue
                except (OSError, zlib.error, ValueError, GitError):
                    pass  # gone meanwhile (a gc) or damaged: git decides
            missing.append(sha)
    else:
        missing = shas
    streamed = {}
    if missing:
        for sha, kind, data in repo.cat_file().read_many(missing):
            streamed[sha] = (kind, data)
    for sha in shas:
        kind, data = found.get(sha) or streamed.get(sha, ("missing", b""))
        yield sha, kind, data


def read_record(repo: Repo, run_id: str, tree: str, history: bool = True) -> RunRecord:
    files = list(DEFAULT_FILES) + ([HISTORY_FILE, ENV_FILE] if history else [ENV_FILE])
    rec = read_records(repo, {run_id: tree}, files, skip_corrupt=False)[run_id]
    try:
        blobs = artifact_blobs(repo, tree)
    except GitError:
        raise missing_run_error(run_id) from None
    for path, a in rec.artifacts.items():
        if path in blobs:
            a.blob = blobs[path][1]
    return rec


# ---------------------------------------------------------------------------
# joining diverged histories
# ---------------------------------------------------------------------------
def _pick(repo: Repo, rid: str, a: str, b: str) -> str:
    """Two versions of one run: the later update wins, ties by tree id (deterministic)."""

    def stamp(tree: str) -> tuple[int, int, str]:
        for _m, name, sha in repo.read_tree(tree):
            if name == RUN_FILE:
                meta = textfmt.load_map(repo.read_object(sha)[1].decode())
                terminal = 1 if meta.get("status") in TERMINAL else 0
                return (int(meta.get("updated_time") or meta.get("end_time") or 0), terminal, tree)
        return (0, 0, tree)

    return max(a, b, key=stamp)


def merge_roots(repo: Repo, ours: str | None, theirs: str | None) -> str:
    """The union of two run-store trees; each run once (see _pick for conflicts)."""
    if not ours:
        return theirs or put_run_dirs(repo, None, {})
    if not theirs or ours == theirs:
        return ours
    top_o, top_t = _entries(repo, ours), _entries(repo, theirs)
    check_format(repo, top_t)
    runs_o = _entries(repo, top_o.get(RUNS_DIR, ("", None))[1])
    # Their side may be a teammate's (or anyone's) push: only what is laid out as gitrun
    # writes it joins ours; anything else is left out with a warning, never copied.
    runs_t = run_buckets(repo, top_t[RUNS_DIR][1]) if RUNS_DIR in top_t else {}
    for b, tsha in runs_t.items():
        if runs_o.get(b, ("", None))[1] == tsha:
            continue
        et = bucket_runs(repo, b, tsha)
        if et is None:
            continue
        if b not in runs_o:
            runs_o[b] = (
                TREE_MODE,
                _write_entries(repo, {r: (TREE_MODE, t) for r, t in et.items()}),
            )
            continue
        eo = _entries(repo, runs_o[b][1])
        for rid, rt in et.items():
            if rid not in eo:
                eo[rid] = (TREE_MODE, rt)
            elif eo[rid][1] != rt:
                eo[rid] = (TREE_MODE, _pick(repo, rid, eo[rid][1], rt))
        runs_o[b] = (TREE_MODE, _write_entries(repo, eo))
    top_o[RUNS_DIR] = (TREE_MODE, _write_entries(repo, runs_o))
    top_o[FORMAT_FILE] = (BLOB_MODE, repo.write_blob(_FORMAT_DATA))
    return _write_entries(repo, top_o)


def now_ms() -> int:
    return int(time.time() * 1000)
