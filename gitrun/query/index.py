"""The query index: a SQLite cache of refs/gitrun/runs at .git/gitrun/index.sqlite.

History is the truth; this file only saves re-reading it.  It remembers the ref tip it
was built from and the tree id of every bucket (runs/<2 hex>/) and run directory, so when
the ref moves only the buckets and runs whose tree ids changed are read again (one
`git cat-file --batch` stream).  When the tip did not move, a query spawns no git process.
A missing, corrupt or other-schema index is rebuilt silently in a temp file and renamed
into place, so concurrent processes never see half an index; updates run in one
`BEGIN IMMEDIATE` transaction, so two processes updating at once take turns.

The index-free path builds the very same schema in `:memory:` from history, and both
answer through the same SQL (`compile_query`).  Runs in progress (journals) are added to
the connection inside a transaction that is rolled back: they are never cached.

SQL text is made only from the fixed table and column names below; every key and value
from a filter is a `?` parameter.
"""

from __future__ import annotations

import errno
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import groupby
from operator import itemgetter
from typing import Any, TypeVar

from .._git import Repo
from ..errors import CorruptRecordError, GitError
from ..format import journal, store
from ..format.entities import RunRecord
from ..format.layout import (
    HISTORY_FILE,
    INPUTS_FILE,
    METRICS_FILE,
    PARAMS_FILE,
    RUN_FILE,
    RUNS_DIR,
    RUNS_REF,
    TAGS_FILE,
    bucket,
    index_path,
)
from . import filter as F

SCHEMA_VERSION = 2  # 2: the inputs table
# progress(done, total) of a long index build (the CLI draws it; None: silent)
Progress = Callable[[int, int], None]
INDEX_FILES = (RUN_FILE, PARAMS_FILE, TAGS_FILE, METRICS_FILE, HISTORY_FILE, INPUTS_FILE)

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE buckets(bucket TEXT PRIMARY KEY, tree TEXT NOT NULL);
CREATE TABLE runs(
    rid INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    tree TEXT,
    run_name TEXT,
    experiment TEXT,
    status TEXT,
    lifecycle TEXT,
    artifact_uri TEXT,
    user_id TEXT,
    start_time INTEGER,
    end_time INTEGER
);
CREATE INDEX runs_order ON runs(start_time DESC, run_id);
CREATE TABLE metrics(
    rid INTEGER NOT NULL, key TEXT NOT NULL,
    value REAL, is_nan INTEGER NOT NULL,   -- SQLite stores NaN as NULL: keep the flag
    vmin REAL, vmax REAL,                  -- over the whole history, NaN points left out
    PRIMARY KEY(rid, key)) WITHOUT ROWID;
CREATE INDEX metrics_key ON metrics(key, value);
CREATE TABLE params(
    rid INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    num REAL,                              -- the value as a number, when it is one
    PRIMARY KEY(rid, key)) WITHOUT ROWID;
CREATE INDEX params_key ON params(key, value);
CREATE TABLE tags(
    rid INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, num REAL,
    PRIMARY KEY(rid, key)) WITHOUT ROWID;
CREATE INDEX tags_key ON tags(key, value);
CREATE TABLE inputs(                       -- inputs.tsv rows, directory members included
    rid INTEGER NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL,
    digest TEXT NOT NULL, context TEXT NOT NULL);
CREATE INDEX inputs_digest ON inputs(digest);
"""

# The secondary indexes of SCHEMA, by name (dropped and rebuilt around bulk loads).
_INDEX_SQL = {m.group(1): m.group(0) for m in re.finditer(r"CREATE INDEX (\w+) ON [^;]+", SCHEMA)}
_NUM = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_CHUNK = 900  # stay under SQLite's bound-variable limit on old builds
_LIST_ALL = 16  # more changed buckets than this: list all of runs/ with one git ls-tree


# ---------------------------------------------------------------------------
# building and updating
# ---------------------------------------------------------------------------
def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [("schema", str(SCHEMA_VERSION)), ("format", str(store.FORMAT_VERSION)), ("tip", "")],
    )


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _num(v: str) -> float | None:
    if _NUM.match(v):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


class _Rows:
    """Rows for the four tables, rids assigned from `next_rid` on."""

    def __init__(self, next_rid: int) -> None:
        self.next_rid = next_rid
        self.runs: list[tuple[Any, ...]] = []
        self.metrics: list[tuple[Any, ...]] = []
        self.params: list[tuple[Any, ...]] = []
        self.tags: list[tuple[Any, ...]] = []
        self.inputs: list[tuple[Any, ...]] = []
        self._nums: dict[str, float | None] = {}

    def _num(self, v: str) -> float | None:
        try:
            return self._nums[v]
        except KeyError:
            n = self._nums[v] = _num(v)
            return n

    def add(
        self,
        r: RunRecord,
        tree: str | None,
        history: dict[str, list[float]] | None = None,
    ) -> None:
        """One run; `history`: metric key -> its non-NaN values (default: r.history)."""
        rid = self.next_rid
        self.next_rid += 1
        self.runs.append(
            (
                rid,
                r.run_id,
                tree,
                r.run_name,
                r.experiment,
                r.status,
                r.lifecycle_stage,
                r.artifact_uri,
                r.user,
                r.start_time,
                r.end_time,
            )
        )
        if history is None:
            history = {
                k: [p.value for p in pts if not math.isnan(p.value)]
                for k, pts in r.history.items()
                if pts
            }
        metrics = r.metrics or r.latest_metrics()
        for k, v in metrics.items():
            nan = math.isnan(v)
            pts = history.get(k)
            if pts is None:  # no history for the key: its value is its only point
                pts = [] if nan else [v]
            self.metrics.append(
                (
                    rid,
                    k,
                    None if nan else v,
                    1 if nan else 0,
                    min(pts) if pts else None,
                    max(pts) if pts else None,
                )
            )
        num = self._num
        self.params.extend((rid, k, v, num(v)) for k, v in r.params.items())
        self.tags.extend((rid, k, v, num(v)) for k, v in r.tags.items())
        if r.inputs:
            self.inputs.extend((rid, p, k, d, c) for p, k, _s, d, c in store.input_rows(r.inputs))

    def insert(self, conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO runs(rid, run_id, tree, run_name, experiment, status, lifecycle,"
            " artifact_uri, user_id, start_time, end_time)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.runs,
        )
        conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", self.metrics)
        conn.executemany("INSERT INTO params VALUES (?, ?, ?, ?)", self.params)
        conn.executemany("INSERT INTO tags VALUES (?, ?, ?, ?)", self.tags)
        conn.executemany("INSERT INTO inputs VALUES (?, ?, ?, ?, ?)", self.inputs)


def _next_rid(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(rid), 0) + 1 FROM runs").fetchone()[0])


def _insert(conn: sqlite3.Connection, recs: list[RunRecord], live: bool = False) -> None:
    if not recs:
        return
    rows = _Rows(_next_rid(conn))
    for r in recs:
        rows.add(r, None if live else r.tree)
    rows.insert(conn)


def _history_points(text: str) -> dict[str, list[float]] | None:
    """metric key -> its non-NaN values (None: a malformed metrics.tsv, which
    store.read_records names)."""
    try:
        rows = store.history_rows(text)
    except ValueError:
        return None
    out: dict[str, list[float]] = {}
    for key, group in groupby(rows, itemgetter(0)):
        values = [x for x in map(float, map(itemgetter(3), group)) if x == x]
        have = out.get(key)
        if have is None:
            out[key] = values
        else:
            have.extend(values)
    return out


def _read_runs(
    repo: Repo,
    rows: _Rows,
    wanted: dict[str, str],
    files: dict[str, dict[str, tuple[str, str]]],
) -> None:
    """Add the runs in `wanted` (run id -> tree), their files listed in `files`.

    Runs are parsed without building their metric history (store.history_rows gives
    the values); anything unusual goes through store.read_records, the reference."""
    need: dict[str, dict[str, str]] = {}
    slow: dict[str, str] = {}
    for run_id, tree in wanted.items():
        entries = files.get(tree, {})
        names = {}
        for name in INDEX_FILES:
            e = entries.get(name)
            if e is not None:
                names[name] = e[1] if e[0] == "blob" else ""
        if RUN_FILE not in names or "" in names.values():
            slow[run_id] = tree
        else:
            need[run_id] = names
    shas = sorted({sha for names in need.values() for sha in names.values()})
    content = {sha: data for sha, kind, data in store.read_many(repo, shas) if kind == "blob"}
    for run_id, names in need.items():
        texts = {}
        try:
            for name, sha in names.items():
                texts[name] = content[sha]
            hist = texts.pop(HISTORY_FILE, None)
            history = _history_points(hist.decode()) if hist is not None else {}
        except (KeyError, UnicodeDecodeError):
            history = None
        if history is None:
            slow[run_id] = wanted[run_id]
            continue
        try:
            rec = store.parse_record(texts, run_id)
        except CorruptRecordError:  # read_records warns and leaves it out
            slow[run_id] = wanted[run_id]
            continue
        if (not rec.metrics and history) or rec.run_id != run_id:
            # Latest values come from the history; another id is damage read_records names.
            slow[run_id] = wanted[run_id]
            continue
        rows.add(rec, wanted[run_id], history)
    if slow:
        for rec in store.read_records(repo, slow, INDEX_FILES).values():
            rows.add(rec, rec.tree)


def _delete(conn: sqlite3.Connection, rids: list[int]) -> None:
    for i in range(0, len(rids), _CHUNK):
        part = rids[i : i + _CHUNK]
        marks = ",".join("?" * len(part))
        for table in ("metrics", "params", "tags", "inputs", "runs"):
            conn.execute(f"DELETE FROM {table} WHERE rid IN ({marks})", part)


def _runs_tree(repo: Repo, tip: str | None) -> str | None:
    if not tip:
        return None
    runs = store.runs_top(repo, tip).get(RUNS_DIR)
    return runs[1] if runs else None


def _sync(
    conn: sqlite3.Connection, repo: Repo, tip: str | None, progress: Progress | None = None
) -> None:
    """Bring the tables to `tip`, reading only buckets and runs whose tree ids changed.

    A bucket with a run left out (damaged, or its objects missing) is not remembered as
    read, and the tip is stored as incomplete: the next query reads that bucket again, so
    the warning repeats and restored objects are picked up without the ref moving."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _meta(conn, "tip") == (tip or ""):
            conn.execute("COMMIT")  # another process got there first
            return
        runs_tree = _runs_tree(repo, tip)
        new: dict[str, str] = {}
        if runs_tree:
            new = store.run_buckets(repo, runs_tree)
        old = dict(conn.execute("SELECT bucket, tree FROM buckets").fetchall())
        changed = [b for b in set(old) | set(new) if old.get(b) != new.get(b)]
        listing = None
        if runs_tree and len(changed) > _LIST_ALL:
            # Many buckets moved (a first build, a big sync): one `git ls-tree` lists them all.
            try:
                listing = store.list_runs_dir(repo, runs_tree)
            except GitError:  # a tree below is missing: bucket by bucket says which
                listing = None
        damaged: set[str] = set()
        gone: list[int] = []
        wanted: dict[str, str] = {}
        for b in changed:
            have = {
                run_id: (rid, tree)
                for rid, run_id, tree in conn.execute(
                    "SELECT rid, run_id, tree FROM runs WHERE substr(run_id, 1, 2) = ?", (b,)
                )
            }
            now: dict[str, str] = {}
            if listing is not None:
                now = listing[1].get(b, {})
            elif b in new:
                listed = store.bucket_runs(repo, b, new[b])
                if listed is None:
                    damaged.add(b)
                else:
                    now = listed
            for run_id, (rid, tree) in have.items():
                if now.get(run_id) != tree:
                    gone.append(rid)
            for run_id, tree in now.items():
                if have.get(run_id, (0, None))[1] != tree:
                    wanted[run_id] = tree
        _delete(conn, gone)
        # Into empty tables, building the secondary indexes afterwards is faster.
        bulk = len(wanted) > PROGRESS_MIN and not old and _next_rid(conn) == 1
        if bulk:
            for name in _INDEX_SQL:
                conn.execute(f"DROP INDEX {name}")
        added = _read_and_insert(
            conn, repo, wanted, listing[2] if listing is not None else None, progress
        )
        if bulk:
            for sql in _INDEX_SQL.values():
                conn.execute(sql)
        damaged.update(bucket(run_id) for run_id in wanted if run_id not in added)
        conn.execute("DELETE FROM buckets")
        conn.executemany(
            "INSERT INTO buckets VALUES (?, ?)",
            sorted((b, t) for b, t in new.items() if b not in damaged),
        )
        stored = (tip or "") if not damaged else f"incomplete {tip}"
        conn.execute("UPDATE meta SET value = ? WHERE key = 'tip'", (stored,))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (a full disk, an I/O error).
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


PROGRESS_MIN = 2000  # builds of this many runs or more report their progress
_READ_CHUNK = 1000  # runs read and inserted per step of an index build


def _read_and_insert(
    conn: sqlite3.Connection,
    repo: Repo,
    wanted: dict[str, str],
    files: dict[str, dict[str, tuple[str, str]]] | None = None,
    progress: Progress | None = None,
) -> set[str]:
    """Read the runs in `wanted` (run id -> tree) and insert them; `files`: every run
    tree's files, from store.list_runs_dir, when runs/ was listed whole.  Returns the ids
    inserted (a damaged run is left out).  `progress` hears of builds of PROGRESS_MIN
    runs or more, after each chunk."""
    items = list(wanted.items())
    added: set[str] = set()
    if len(items) < PROGRESS_MIN:
        progress = None
    for start in range(0, len(items), _READ_CHUNK):
        chunk = dict(items[start : start + _READ_CHUNK])
        rows = _Rows(_next_rid(conn))
        if files is not None:
            _read_runs(repo, rows, chunk, files)
        else:
            for rec in store.read_records(repo, chunk, INDEX_FILES).values():
                rows.add(rec, rec.tree)
        rows.insert(conn)
        added.update(r[1] for r in rows.runs)
        if progress is not None:
            progress(min(start + _READ_CHUNK, len(items)), len(items))
    return added


def _valid(conn: sqlite3.Connection) -> bool:
    try:
        return _meta(conn, "schema") == str(SCHEMA_VERSION) and _meta(conn, "format") == str(
            store.FORMAT_VERSION
        )
    except sqlite3.DatabaseError:
        return False


def _rebuild(repo: Repo, path: str, tip: str | None, progress: Progress | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isdir(path):
        try:
            os.rmdir(path)  # an empty directory in the index's place: take the place back
        except OSError:
            raise IsADirectoryError(
                errno.EISDIR, "it is a directory, not gitrun's index; remove it", path
            ) from None
    tmp = f"{path}.tmp-{os.getpid()}-{id(repo)}"
    try:
        for p in (tmp, tmp + "-journal"):
            if os.path.lexists(p):
                os.unlink(p)
        # Created here, so that a read-only or full disk is named by its errno (SQLite
        # only says "unable to open database file"); an empty file is an empty database.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        conn = _connect(tmp)
        try:
            _create(conn)
            _sync(conn, repo, tip, progress)
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        for p in (tmp, tmp + "-journal"):
            try:
                os.unlink(p)
            except OSError:
                pass
        raise


def _open_valid(
    repo: Repo, path: str, tip: str | None, progress: Progress | None = None
) -> sqlite3.Connection | None:
    """The index file brought to `tip`; None when it is missing, damaged or of another
    schema (to be rebuilt).  Errors writing it (read-only, full disk) are raised."""
    if not os.path.isfile(path):
        return None
    try:
        conn = _connect(path)
    except sqlite3.Error:  # unreadable: a rebuild replaces it
        return None
    try:
        if _valid(conn):
            if _meta(conn, "tip") != (tip or ""):
                _sync(conn, repo, tip, progress)
            return conn
    except sqlite3.DatabaseError as e:
        if not _damaged(e):
            conn.close()
            raise
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


def _in_memory(repo: Repo, tip: str | None, progress: Progress | None = None) -> sqlite3.Connection:
    conn = _connect(":memory:")
    _create(conn)
    _sync(conn, repo, tip, progress)
    return conn


def open_index(
    repo: Repo, use_index: bool = True, rebuild: bool = False, progress: Progress | None = None
) -> sqlite3.Connection:
    """A connection whose tables answer for the current tip of the runs ref.

    The index is a cache: a damaged one is rebuilt (`rebuild` forces that), and one that
    cannot be written (a read-only repository, a full disk) is left aside with one
    warning; the answer then comes from history, in memory.  A long build reports to
    `progress`."""
    tip = repo.read_ref(RUNS_REF)
    if not use_index:
        return _in_memory(repo, tip, progress)
    path = index_path(repo)
    try:
        conn = None if rebuild else _open_valid(repo, path, tip, progress)
        if conn is None:
            _rebuild(repo, path, tip, progress)
            conn = _open_valid(repo, path, tip, progress)
        if conn is not None:
            return conn
        raise sqlite3.DatabaseError("the index was damaged again right after its rebuild")
    except (OSError, sqlite3.Error) as e:
        _without_index(path, e)
    return _in_memory(repo, tip, progress)


# SQLite's primary result codes (an error's sqlite_errorcode is the extended code).
_SQLITE_ERROR, _SQLITE_CORRUPT, _SQLITE_NOTADB = 1, 11, 26
# PERM, BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN: the file cannot be written now.
_SQLITE_UNWRITABLE = {3, 5, 6, 8, 10, 13, 14}


def _sqlite_code(e: BaseException) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _damaged(e: BaseException) -> bool:
    """The index file is not an index of this schema: damaged pages, another database."""
    code = _sqlite_code(e)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    msg = str(e)
    return code == _SQLITE_ERROR and (msg.startswith("no such ") or " has no column " in msg)


def _unwritable(e: BaseException) -> bool:
    return isinstance(e, OSError) or _sqlite_code(e) in _SQLITE_UNWRITABLE


def _without_index(path: str, e: BaseException) -> None:
    """Say once per process that the index is left aside (reads still answer)."""
    reason = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
    store.warn_once(
        "search index",
        f"cannot use the search index {path} ({reason}); answering from history without "
        "it, which is slower.",
    )


@contextmanager
def session(
    repo: Repo, use_index: bool = True, rebuild: bool = False, progress: Progress | None = None
) -> Iterator[sqlite3.Connection]:
    """The index plus runs in progress; the live rows are rolled back at the end."""
    conn = open_index(repo, use_index, rebuild, progress)
    try:
        live = journal.live_runs(repo)
        if live:
            conn.execute("BEGIN IMMEDIATE" if use_index else "BEGIN")
            ids = [r.run_id for r in live]
            marks = ",".join("?" * len(ids))
            old = [
                row[0]
                for row in conn.execute(f"SELECT rid FROM runs WHERE run_id IN ({marks})", ids)
            ]
            _delete(conn, old)
            _insert(conn, live, live=True)
        yield conn
    finally:
        _rollback(conn)
        conn.close()


_T = TypeVar("_T")


def _query(
    repo: Repo,
    use_index: bool,
    ask: Callable[[sqlite3.Connection], _T],
    progress: Progress | None = None,
) -> _T:
    """ask(conn) in a session.  The index is only a cache, so a query that finds it
    damaged rebuilds it and asks once more, and one that cannot write it (runs in
    progress are added inside a transaction) asks history in memory instead."""
    if use_index:
        for rebuild in (False, True):
            try:
                with session(repo, True, rebuild, progress) as conn:
                    return ask(conn)
            except sqlite3.DatabaseError as e:
                if _damaged(e) and not rebuild:
                    continue
                if not (_damaged(e) or _unwritable(e)):
                    raise  # the query itself: the index-free path would fail alike
                _without_index(index_path(repo), e)
                break
    with session(repo, False, progress=progress) as conn:
        return ask(conn)


# ---------------------------------------------------------------------------
# compiling filters and order_by to SQL
# ---------------------------------------------------------------------------
# The only names that ever appear in SQL text.
_KIND_TABLE = {F.METRIC: "metrics", F.PARAM: "params", F.TAG: "tags"}
_ATTR_COLUMN = {
    "run_id": "run_id",
    "run_name": "run_name",
    "status": "status",
    "artifact_uri": "artifact_uri",
    "user_id": "user_id",
    "start_time": "start_time",
    "end_time": "end_time",
    "experiment_id": "experiment",
}
_SQL_OP = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def like_to_glob(pattern: str) -> str:
    """SQL LIKE (case-sensitive, % and _) as a SQLite GLOB pattern."""
    out = []
    for c in pattern:
        if c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        elif c in "*?[":
            out.append(f"[{c}]")
        else:
            out.append(c)
    return "".join(out)


class _Compiler:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.params: list[Any] = []
        self._metric_cols: dict[str, tuple[str, str]] = {}

    def metric(self, key: str) -> tuple[str, str]:
        """(stored key, column): `loss.min` is the metric of that name when one exists,
        else the minimum of `loss` over its history."""
        if key not in self._metric_cols:
            col = "value"
            stored = key
            base, dot, agg = key.rpartition(".")
            if dot and agg in ("min", "max"):
                row = self.conn.execute(
                    "SELECT 1 FROM metrics WHERE key = ? LIMIT 1", (key,)
                ).fetchone()
                if row is None:
                    stored, col = base, "v" + agg
            self._metric_cols[key] = (stored, col)
        return self._metric_cols[key]

    def string_test(self, col: str, op: str, value: Any) -> str:
        if op in ("IN", "NOT IN"):
            strs = [v for v in value if isinstance(v, str)]
            nums = [v for v in value if isinstance(v, float)]
            parts = []
            if strs:
                parts.append(f"{col} IN ({','.join('?' * len(strs))})")
                self.params.extend(strs)
            if nums:  # param IN (1, 2): numeric values compare as numbers
                num_col = col.rsplit(".", 1)[0] + ".num"
                parts.append(f"{num_col} IN ({','.join('?' * len(nums))})")
                self.params.extend(nums)
            test = "(" + " OR ".join(parts) + ")"
            return f"NOT {test}" if op == "NOT IN" else test
        if op in ("LIKE", "NOT LIKE"):
            self.params.append(like_to_glob(value))
            return f"{'NOT ' if op == 'NOT LIKE' else ''}{col} GLOB ?"
        if op in ("ILIKE", "NOT ILIKE"):
            self.params.append(value.lower())
            return f"{'NOT ' if op == 'NOT ILIKE' else ''}lower({col}) LIKE ?"
        self.params.append(value)
        return f"{col} {_SQL_OP[op]} ?"

    def node(self, n: F.Node) -> str:
        if isinstance(n, F.And):
            return "(" + " AND ".join(self.node(i) for i in n.items) + ")"
        if isinstance(n, F.Or):
            return "(" + " OR ".join(self.node(i) for i in n.items) + ")"
        if isinstance(n, F.Not):
            return f"(NOT {self.node(n.item)})"
        return self.compare(n)

    def compare(self, c: F.Compare) -> str:
        kind, key, op, value = c.ident.kind, c.ident.key, c.op, c.value
        if kind in (F.INPUT, F.DATASET):
            return self.input_test(kind, key, op, value)
        if kind == F.ATTR:
            col = "r." + _ATTR_COLUMN[key]
            if key in F.NUMERIC_ATTRS:
                assert isinstance(value, float)
                if math.isnan(value):
                    return f"({col} IS NOT NULL)" if op == "!=" else "0"
                self.params.append(value)
                return f"({col} IS NOT NULL AND {col} {_SQL_OP[op]} ?)"
            return f"({col} IS NOT NULL AND {self.string_test(col, op, value)})"
        if kind == F.METRIC:
            stored, col = self.metric(key)
            nan = "m.is_nan = 1" if col == "value" else f"m.{col} IS NULL"
            self.params.append(stored)
            assert isinstance(value, float)
            if math.isnan(value):
                test = "1" if op == "!=" else "0"
            elif op == "!=":
                test = f"({nan} OR m.{col} != ?)"
                self.params.append(value)
            else:
                test = f"(NOT ({nan}) AND m.{col} {_SQL_OP[op]} ?)"
                self.params.append(value)
            return f"EXISTS (SELECT 1 FROM metrics m WHERE m.rid = r.rid AND m.key = ? AND {test})"
        table = _KIND_TABLE[kind]
        self.params.append(key)
        if op in F.NULL_OPS:  # MLflow's IS [NOT] NULL: the param or tag is absent / present
            have = f"EXISTS (SELECT 1 FROM {table} x WHERE x.rid = r.rid AND x.key = ?)"
            return have if op == "IS NOT NULL" else f"(NOT {have})"
        if isinstance(value, float):
            if math.isnan(value):
                test = "x.num IS NOT NULL" if op == "!=" else "0"
            else:
                test = f"x.num IS NOT NULL AND x.num {_SQL_OP[op]} ?"
                self.params.append(value)
        else:
            test = self.string_test("x.value", op, value)
        return f"EXISTS (SELECT 1 FROM {table} x WHERE x.rid = r.rid AND x.key = ? AND {test})"

    def input_test(self, kind: str, key: str, op: str, value: Any) -> str:
        """inputs.path/digest/kind/context; MLflow's datasets.name/digest/context are the
        inputs of kind "dataset" (name: their path)."""
        col = "i." + {"name": "path"}.get(key, key)
        if key == "digest" and isinstance(value, str) and op in ("=", "!=") and ":" not in value:
            value = "sha256:" + value  # a bare hex digest
        only = ""
        if kind == F.DATASET:
            only = " AND i.kind = ?"
            self.params.append("dataset")
        test = self.string_test(col, op, value)
        return f"EXISTS (SELECT 1 FROM inputs i WHERE i.rid = r.rid{only} AND {test})"

    def all_numeric(self, table: str, key: str) -> bool:
        row = self.conn.execute(
            f"SELECT count(*), count(num) FROM {table} WHERE key = ?", (key,)
        ).fetchone()
        return bool(row[0]) and row[0] == row[1]


def compile_query(
    conn: sqlite3.Connection,
    node: F.Node | None,
    order: list[F.OrderItem],
    experiments: list[str] | None,
    lifecycles: tuple[str, ...] | None,
    max_results: int | None,
) -> tuple[str, list[Any]]:
    """SELECT r.rid ... for a parsed filter; returns (sql, parameters)."""
    comp = _Compiler(conn)
    joins: list[str] = []
    order_sql: list[str] = []
    for i, item in enumerate(order):
        alias = f"o{i}"
        direction = "ASC" if item.ascending else "DESC"
        kind, key = item.ident.kind, item.ident.key
        if kind == F.ATTR:
            col = "r." + _ATTR_COLUMN[key]
            order_sql += [f"({col} IS NULL)", f"{col} {direction}"]
            continue
        table = _KIND_TABLE[kind]
        if kind == F.METRIC:
            stored, col = comp.metric(key)
            nan = f"{alias}.is_nan = 1" if col == "value" else f"{alias}.{col} IS NULL"
            rank = f"CASE WHEN {alias}.rid IS NULL THEN 2 WHEN {nan} THEN 1 ELSE 0 END"
        else:
            stored = key
            col = "num" if comp.all_numeric(table, key) else "value"
            rank = f"CASE WHEN {alias}.rid IS NULL THEN 2 ELSE 0 END"
        joins.append(f"LEFT JOIN {table} {alias} ON {alias}.rid = r.rid AND {alias}.key = ?")
        comp.params.append(stored)
        order_sql += [rank, f"{alias}.{col} {direction}"]
    join_params = list(comp.params)
    comp.params = []
    where: list[str] = []
    if experiments is not None:
        where.append(f"r.experiment IN ({','.join('?' * len(experiments))})")
        comp.params.extend(experiments)
    if lifecycles is not None:
        where.append(f"r.lifecycle IN ({','.join('?' * len(lifecycles))})")
        comp.params.extend(lifecycles)
    if node is not None:
        where.append(comp.node(node))
    order_sql += ["(r.start_time IS NULL)", "r.start_time DESC", "r.run_id ASC"]
    sql = "SELECT r.rid FROM runs r " + " ".join(joins)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY " + ", ".join(order_sql)
    params = join_params + comp.params
    if max_results is not None:
        sql += " LIMIT ?"
        params.append(int(max_results))
    return sql, params


# ---------------------------------------------------------------------------
# reading rows back
# ---------------------------------------------------------------------------
class Row:
    """One run as the index knows it (a plain class: no dataclasses at start-up)."""

    __slots__ = (
        "run_id",
        "run_name",
        "experiment",
        "status",
        "lifecycle_stage",
        "artifact_uri",
        "user_id",
        "start_time",
        "end_time",
        "metrics",
        "params",
        "tags",
        "metric_min",
        "metric_max",
    )

    def __init__(
        self,
        run_id: str,
        run_name: str,
        experiment: str,
        status: str,
        lifecycle_stage: str,
        artifact_uri: str,
        user_id: str,
        start_time: int | None,
        end_time: int | None,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        metric_min: dict[str, float] | None = None,
        metric_max: dict[str, float] | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_name = run_name
        self.experiment = experiment
        self.status = status
        self.lifecycle_stage = lifecycle_stage
        self.artifact_uri = artifact_uri
        self.user_id = user_id
        self.start_time = start_time
        self.end_time = end_time
        self.metrics: dict[str, float] = {} if metrics is None else metrics
        self.params: dict[str, str] = {} if params is None else params
        self.tags: dict[str, str] = {} if tags is None else tags
        self.metric_min: dict[str, float] = {} if metric_min is None else metric_min
        self.metric_max: dict[str, float] = {} if metric_max is None else metric_max

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row(run_id={self.run_id!r}, run_name={self.run_name!r}, status={self.status!r})"

    def metric(self, key: str) -> float | None:
        """A metric's latest value, or `<key>.min` / `<key>.max` over its history."""
        if key in self.metrics:
            return self.metrics[key]
        base, dot, agg = key.rpartition(".")
        if dot and agg in ("min", "max") and base in self.metrics:
            return (self.metric_min if agg == "min" else self.metric_max).get(base, math.nan)
        return None

    def to_record(self) -> RunRecord:
        return RunRecord(
            run_id=self.run_id,
            run_name=self.run_name,
            experiment=self.experiment,
            status=self.status,
            lifecycle_stage=self.lifecycle_stage,
            start_time=self.start_time,
            end_time=self.end_time,
            user=self.user_id,
            params=self.params,
            tags=self.tags,
            metrics=self.metrics,
        )


def _rows_where(conn: sqlite3.Connection, sql: str, rids: list[int], total: int) -> Iterator[Any]:
    """`sql` + a rid filter; everything at once when most runs are wanted."""
    if len(rids) * 2 > total:
        wanted = set(rids)
        for row in conn.execute(sql):
            if row[0] in wanted:
                yield row
        return
    for i in range(0, len(rids), _CHUNK):
        part = rids[i : i + _CHUNK]
        yield from conn.execute(f"{sql} WHERE rid IN ({','.join('?' * len(part))})", part)


def fetch(conn: sqlite3.Connection, rids: list[int]) -> list[Row]:
    """Full rows for rids, in the order given."""
    if not rids:
        return []
    total = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    rows: dict[int, Row] = {}
    for rid, *vals in _rows_where(
        conn,
        "SELECT rid, run_id, run_name, experiment, status, lifecycle, artifact_uri, user_id,"
        " start_time, end_time FROM runs",
        rids,
        total,
    ):
        rows[rid] = Row(*vals)
    for rid, key, value, is_nan, vmin, vmax in _rows_where(
        conn, "SELECT rid, key, value, is_nan, vmin, vmax FROM metrics", rids, total
    ):
        r = rows[rid]
        r.metrics[key] = math.nan if is_nan else value
        r.metric_min[key] = math.nan if vmin is None else vmin
        r.metric_max[key] = math.nan if vmax is None else vmax
    for rid, key, value in _rows_where(conn, "SELECT rid, key, value FROM params", rids, total):
        rows[rid].params[key] = value
    for rid, key, value in _rows_where(conn, "SELECT rid, key, value FROM tags", rids, total):
        rows[rid].tags[key] = value
    for r in rows.values():
        # Keys in name order, as the index-free path gives them.
        r.metrics = dict(sorted(r.metrics.items()))
        r.params = dict(sorted(r.params.items()))
        r.tags = dict(sorted(r.tags.items()))
    return [rows[rid] for rid in rids if rid in rows]


def fetch_columns(conn: sqlite3.Connection, rids: list[int]) -> dict[str, Any]:
    """The raw rows behind a DataFrame of `rids`, key by key (no per-run objects).

    Rows of runs not in `rids` may be included (whole tables are read when most runs are
    wanted); `max_rid` bounds every rid.  Keys: rids, max_rid, runs (rows of rid, run_id,
    experiment, status, artifact_uri, start_time, end_time), and metrics, params, tags:
    {key: rows of (rid, value)}, keys sorted, metric values None for NaN."""
    out: dict[str, Any] = {"rids": rids, "max_rid": 0, "runs": []}
    out.update(metrics={}, params={}, tags={})
    if not rids:
        return out
    total, max_rid = conn.execute("SELECT count(*), max(rid) FROM runs").fetchone()
    out["max_rid"] = max_rid
    whole = len(rids) * 2 > total

    def rows(sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        if whole:
            return conn.execute(sql, args).fetchall()
        got: list[Any] = []
        joiner = " AND " if " WHERE " in sql else " WHERE "
        for i in range(0, len(rids), _CHUNK):
            part = rids[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            got += conn.execute(f"{sql}{joiner}rid IN ({marks})", (*args, *part)).fetchall()
        return got

    out["runs"] = rows(
        "SELECT rid, run_id, experiment, status, artifact_uri, start_time, end_time FROM runs"
    )
    # A metric's value is NULL exactly when it is NaN (SQLite stores NaN as NULL, and
    # _Rows.add stores None for NaN only), so the (key, value) indexes cover these queries.
    for table in ("metrics", "params", "tags"):
        keys = [k for (k,) in conn.execute(f"SELECT DISTINCT key FROM {table} ORDER BY key")]
        sql = f"SELECT rid, value FROM {table} WHERE key = ?"
        out[table] = {k: rows(sql, (k,)) for k in keys}
    return out


def search_columns(
    repo: Repo,
    filter_string: str | None = "",
    order_by: list[str] | None = None,
    experiments: list[str] | None = None,
    lifecycles: tuple[str, ...] | None = ("active",),
    max_results: int | None = None,
    use_index: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """`search`, answered as fetch_columns (what search_runs' DataFrame is built from)."""
    return _answer(
        repo,
        fetch_columns,
        filter_string,
        order_by,
        experiments,
        lifecycles,
        max_results,
        use_index,
        progress,
    )


def search(
    repo: Repo,
    filter_string: str | None = "",
    order_by: list[str] | None = None,
    experiments: list[str] | None = None,
    lifecycles: tuple[str, ...] | None = ("active",),
    max_results: int | None = None,
    use_index: bool = True,
    progress: Progress | None = None,
) -> list[Row]:
    """The runs matching a filter, ordered; the one engine behind search_runs and the CLI.
    `progress(done, total)` hears how a long index build goes."""
    return _answer(
        repo,
        fetch,
        filter_string,
        order_by,
        experiments,
        lifecycles,
        max_results,
        use_index,
        progress,
    )


def _answer(
    repo: Repo,
    read: Any,
    filter_string: str | None,
    order_by: list[str] | None,
    experiments: list[str] | None,
    lifecycles: tuple[str, ...] | None,
    max_results: int | None,
    use_index: bool,
    progress: Progress | None = None,
) -> Any:
    """Parse, compile and run a query; `read(conn, rids)` turns the matching runs into rows."""
    node = F.parse_filter(filter_string)
    order = F.parse_order_by(order_by)

    def ask(conn: sqlite3.Connection) -> Any:
        sql, params = compile_query(conn, node, order, experiments, lifecycles, max_results)
        rids = [r[0] for r in conn.execute(sql, params)]
        return read(conn, rids)

    return _query(repo, use_index, ask, progress)


def run_names(repo: Repo, progress: Progress | None = None) -> dict[str, str]:
    return _query(
        repo,
        True,
        lambda conn: dict(conn.execute("SELECT run_id, run_name FROM runs").fetchall()),
        progress,
    )


def experiment_names(repo: Repo, progress: Progress | None = None) -> list[str]:
    return _query(
        repo,
        True,
        lambda conn: [
            r[0] for r in conn.execute("SELECT DISTINCT experiment FROM runs ORDER BY 1")
        ],
        progress,
    )


def unknown_keys(
    repo: Repo, asked: list[tuple[str, str]], progress: Progress | None = None
) -> dict[tuple[str, str], list[str]]:
    """Of the asked (table, key) pairs ("metrics"/"params"/"tags"), those no run has, each
    with every key its table does have (for a did-you-mean).  A metric `k.min`/`k.max` is
    known when `k` is.  One indexed lookup per key; the key lists only when one is missing."""

    def has(conn: sqlite3.Connection, table: str, key: str) -> bool:
        sql = f"SELECT 1 FROM {table} WHERE key = ? LIMIT 1"  # table: one of three names
        return conn.execute(sql, (key,)).fetchone() is not None

    def ask(conn: sqlite3.Connection) -> dict[tuple[str, str], list[str]]:
        out: dict[tuple[str, str], list[str]] = {}
        listed: dict[str, list[str]] = {}  # each table's keys, listed once
        for table, key in asked:
            base, dot, agg = key.rpartition(".")
            if has(conn, table, key) or (
                table == "metrics" and dot and agg in ("min", "max") and has(conn, table, base)
            ):
                continue
            if table not in listed:
                sql = f"SELECT DISTINCT key FROM {table} ORDER BY key"
                listed[table] = [k for (k,) in conn.execute(sql)]
            out[(table, key)] = listed[table]
        return out

    return _query(repo, True, ask, progress)
