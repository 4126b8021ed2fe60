"""Property-based tests (hypothesis): the filter parser, artifact paths, the text format.

* Filters: random token streams and random text either parse or raise FilterError, and
  whatever parses compiles to SQL in which every value of the user is a bound parameter.
* Artifact paths: the writer accepts a path only if checkout restores it (one rule, in
  gitrun/paths.py), and everything logged passes `git fsck --strict`.
* Run names, params and tags come back from the format exactly as they were logged.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IDENTITY, git, run_cli
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import gitrun
from gitrun._git import Repo
from gitrun.errors import FilterError, InvalidInputError, UnsafePathError
from gitrun.format import journal, store
from gitrun.format.entities import Artifact, RunRecord
from gitrun.format.paths import ArtifactPaths, check_artifact_path, check_history_path, path_problem
from gitrun.query import filter as F
from gitrun.query import index
from gitrun.tracking import validate_key
from gitrun.workflows.checkout import check_rel_path, checkout

GIT_EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _new_repo(d: Path) -> Path:
    d.mkdir()
    git(d, "init", "-q", "-b", "main", env=IDENTITY)
    (d / "train.py").write_text("print('training')\n")
    git(d, "add", ".", env=IDENTITY)
    git(d, "commit", "-qm", "initial", env=IDENTITY)
    return d


def _fsck_errors(d: Path) -> list[str]:
    p = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"], cwd=d, capture_output=True, text=True
    )
    lines = (p.stdout + p.stderr).splitlines()
    # A `.gitmodules` artifact that is not a git config file gets an informational
    # gitmodulesParse line; remotes with receive.fsckObjects accept it.
    problems = [ln for ln in lines if not ln.startswith("notice:") and "gitmodulesParse" not in ln]
    return problems + ([f"exit {p.returncode}"] if p.returncode else [])


# ---------------------------------------------------------------------------
# filters
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def search_repo(tmp_path_factory) -> Path:
    """A repository with three runs: numeric and string params, NaN metrics, odd keys."""
    d = _new_repo(tmp_path_factory.mktemp("search") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(d.parent))
        for k, v in IDENTITY.items():
            mp.setenv(k, v)
        with chdir(d):
            for i, (y, z) in enumerate([("1", "a"), ("rf", "b'c"), ("2.5", "%_*")]):
                with gitrun.start_run(run_name=f"r{i}"):
                    gitrun.log_param("y", y)
                    gitrun.log_param("my key", f"v{i}")
                    gitrun.set_tag("z", z)
                    gitrun.log_metric("x", float("nan") if i == 1 else i, step=0)
                    gitrun.log_metric("x", i + 0.5, step=1)
                    gitrun.log_metric("f1 score", 0.5 * i)
    return d


IDENTS = [
    "metrics.x",
    "metrics.x.min",
    "metrics.x.max",
    "metric.`f1 score`",
    "params.y",
    'params."my key"',
    "param.`my key`",
    "tags.z",
    "tag.`z`",
    "attributes.status",
    "attribute.run_name",
    "attr.run_id",
    "run.user_id",
    "status",
    "run_name",
    "artifact_uri",
    "start_time",
    "attributes.end_time",
    "created",
    "datasets.name",
    "dataset.digest",
    "experiment_id",
    "foo.bar",
    "metrics.",
    "params",
    "x",
]
OPS = ["=", "!=", "<>", "==", ">", ">=", "<", "<=", "LIKE", "ILIKE", "like", "NOT LIKE"]
OPS += ["NOT ILIKE", "IN", "NOT IN", "in"]
KEYWORDS = ["AND", "OR", "NOT", "and", "or", "Not", "IN", "LIKE", "ASC", "DESC"]
INJECTIONS = [
    "'; DROP TABLE runs; --",
    "' OR '1'='1",
    '") OR 1=1 --',
    "%",
    "_",
    "*",
    "?",
    "[a-",
    "\\",
    "x' || 'y",
    "\x00",
    "?1",
    ":name",
]


def _quote(text: str, q: str) -> str:
    return q + text.replace("\\", "\\\\").replace(q, q + q) + q


_strings = st.builds(
    _quote, st.text(max_size=8) | st.sampled_from(INJECTIONS), st.sampled_from(["'", '"'])
)
_numbers = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(repr),
    st.sampled_from(["1e3", ".5", "-0", "+1", "1.", "nan", "inf", "-inf", "Infinity", "1e999"]),
)
_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,6}", fullmatch=True)
_idents = st.sampled_from(IDENTS) | st.builds(
    "{}.{}".format,
    st.sampled_from(["metrics", "params", "tags", "attributes", "run", "dataset", "Tags", "x"]),
    _keys,
)
_tokens = st.one_of(
    _idents,
    st.sampled_from(OPS),
    st.sampled_from(KEYWORDS),
    st.sampled_from(["(", ")", ",", "(", ")"]),
    _strings,
    _numbers,
    st.sampled_from(["'", '"', "`", "'abc", '"a\\"', "`x", "metrics.`x", "params.'y"]),
    st.text(max_size=3),
)
_seps = st.sampled_from([" ", " ", " ", "", "\t", "\n", "\u3000", "  "])
token_streams = st.lists(st.tuples(_tokens, _seps), max_size=25).map(
    lambda pairs: "".join(t + s for t, s in pairs)
)

_values = _strings | _numbers
_NUMERIC = ["metrics.x", "metrics.x.min", "metric.`f1 score`", "metrics.nope", "start_time"]
_NUMERIC += ["attributes.end_time", "created", "params.y", "param.`my key`"]
_TEXT = ["params.y", 'params."my key"', "tags.z", "tag.`z`", "attributes.status", "run_name"]
_TEXT += ["attr.run_id", "run.user_id", "artifact_uri", "datasets.name", "tags.nope"]
_in_list = st.lists(_values, min_size=1, max_size=3).map(lambda vals: f"({', '.join(vals)})")
_comparisons = st.one_of(
    # Mostly well-typed comparisons, so that most filters parse and reach SQL ...
    st.builds(
        "{} {} {}".format,
        st.sampled_from(_NUMERIC),
        st.sampled_from(["=", "!=", "<>", "==", ">", ">=", "<", "<="]),
        _numbers,
    ),
    st.builds(
        "{} {} {}".format,
        st.sampled_from(_TEXT),
        st.sampled_from(["=", "!=", "LIKE", "ILIKE", "NOT LIKE", "not ilike"]),
        _strings,
    ),
    st.builds(
        "{} {} {}".format, st.sampled_from(_TEXT), st.sampled_from(["IN", "NOT IN"]), _in_list
    ),
    # ... and some that are not.
    st.builds("{} {} {}".format, _idents, st.sampled_from(OPS), _values),
    st.builds("{} {} {}".format, _idents, st.sampled_from(["IN", "NOT IN"]), _in_list),
)
structured_filters = st.recursive(
    _comparisons,
    lambda inner: st.one_of(
        st.builds("({}) {} ({})".format, inner, st.sampled_from(["AND", "OR", "and"]), inner),
        st.builds("{} {} {}".format, inner, st.sampled_from(["AND", "OR"]), inner),
        inner.map("NOT ({})".format),
        inner.map("not {}".format),
    ),
    max_leaves=6,
)

# Every word that may appear in compiled SQL: gitrun's own names, never the user's text.
_SQL_WORDS = {
    *"SELECT FROM LEFT JOIN ON WHERE AND OR NOT IN IS NULL EXISTS GLOB LIKE ORDER BY".split(),
    *"ASC DESC LIMIT CASE WHEN THEN ELSE END lower".split(),
    *"runs metrics params tags r m x rid key value num is_nan vmin vmax".split(),
    *"run_id run_name status artifact_uri user_id start_time end_time".split(),
    *"experiment lifecycle".split(),
    *"inputs i path kind digest context".split(),  # the inputs table (inputs.*, datasets.*)
}
_SQL_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\?|!=|<=|>=|[=<>(),.*]|\S")


def _bound_values(node: F.Node) -> Iterator[tuple[object, ...]]:
    """For each value of the user in the filter: the forms it may be bound as."""
    if isinstance(node, (F.And, F.Or)):
        for item in node.items:
            yield from _bound_values(item)
        return
    if isinstance(node, F.Not):
        yield from _bound_values(node.item)
        return
    kind, key, op, value = node.ident.kind, node.ident.key, node.op, node.value
    if kind == F.DATASET:
        return
    if kind == F.METRIC:
        yield (key, key.rpartition(".")[0])
    elif kind != F.ATTR:
        yield (key,)
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, float):
            if not math.isnan(v):
                yield (v,)
        elif "LIKE" in op:
            yield (index.like_to_glob(v), v.lower())
        else:
            yield (v,)


def _check_compiled(conn, node: F.Node | None, order: list[F.OrderItem]) -> None:
    sql, params = index.compile_query(conn, node, order, ["Default"], ("active",), 50)
    assert not set("'\"`;") & set(sql), sql
    words = [t for t in _SQL_TOKEN.findall(sql) if t[0].isalpha() or t[0] == "_"]
    leaked = [w for w in words if w not in _SQL_WORDS and not re.fullmatch(r"o\d+", w)]
    assert not leaked, (leaked, sql)
    numbers = [t for t in _SQL_TOKEN.findall(sql) if t.isdigit()]
    assert set(numbers) <= {"0", "1", "2"}, sql
    assert sql.count("?") == len(params), (sql, params)
    for forms in _bound_values(node) if node is not None else ():
        assert any(f in params for f in forms), (forms, params)
    conn.execute(sql, params).fetchall()  # SQLite accepts it


def _parse(text: str) -> tuple[F.Node | None, bool]:
    try:
        return F.parse_filter(text), True
    except FilterError as e:
        assert str(e).startswith("Invalid filter"), str(e)
        return None, False


@FAST
@given(text=token_streams | structured_filters | st.text(max_size=40))
def test_filter_parses_or_raises_filter_error_and_binds_every_value(search_repo, text):
    node, ok = _parse(text)
    if not ok:
        return
    with index.session(Repo.discover(str(search_repo))) as conn:
        _check_compiled(conn, node, [])


@FAST
@given(items=st.lists(token_streams | st.sampled_from(IDENTS).map("{} DESC".format), max_size=3))
def test_order_by_parses_or_raises_filter_error_and_binds_every_key(search_repo, items):
    try:
        order = F.parse_order_by(items)
    except FilterError as e:
        assert str(e).startswith(("Invalid order_by", "Invalid filter")), str(e)
        return
    with index.session(Repo.discover(str(search_repo))) as conn:
        sql, params = index.compile_query(conn, None, order, None, None, None)
        assert sql.count("?") == len(params)
        for item in order:
            if item.ident.kind != F.ATTR:
                assert item.ident.key in params or item.ident.key.rpartition(".")[0] in params
        conn.execute(sql, params).fetchall()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=structured_filters)
def test_search_runs_answers_every_filter_that_parses(search_repo, text):
    with chdir(search_repo):
        try:
            runs = gitrun.search_runs(
                filter_string=text, search_all_experiments=True, output_format="list"
            )
        except FilterError:
            assert not _parse(text)[1]
            return
    assert {r.info.run_name for r in runs} <= {"r0", "r1", "r2"}


def test_filter_values_are_data_not_sql(search_repo):
    with chdir(search_repo):
        found = gitrun.search_runs(filter_string="tags.z = 'b''c'", output_format="list")
        assert [r.info.run_name for r in found] == ["r1"]
        # '*' is no wildcard for LIKE, though the index answers LIKE with GLOB.
        found = gitrun.search_runs(filter_string="tags.z LIKE '%*'", output_format="list")
        assert [r.info.run_name for r in found] == ["r2"]
        for evil in INJECTIONS:
            found = gitrun.search_runs(
                filter_string=f"params.y = {_quote(evil, chr(39))}", output_format="list"
            )
            assert found == []
        assert len(gitrun.search_runs(output_format="list")) == 3  # the tables are intact


# ---------------------------------------------------------------------------
# artifact paths
# ---------------------------------------------------------------------------
_fine_names = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="/\\"
    ),
    min_size=1,
    max_size=12,
).filter(lambda name: path_problem(name) is None) | st.sampled_from(["model.pkl", "é", "a b"])
_components = st.one_of(
    st.sampled_from(
        [
            ".git",
            ".GIT",
            ".Git.",
            ".git ",
            ".git. .",
            "git~1",
            "GIT~1",
            ".g\u200cit",
            "\ufeff.git",
            ".git::$INDEX_ALLOCATION",
            ".gitmodules",
            ".gitx",
            "git~10",
            "..",
            ".",
            "",
            "...",
            "a\\b",
            "..\\x",
            "x\\.git",
            "C:",
            "c:x",
            "ckpt:1",
            "model.pkl",
            "é",
            "日本語",
            "\u2028",
            "\x85",
            "a\x00b",
            "\x7f",
            "\t",
            " ",
            "  lead",
            "trail ",
            "-rf",
            "*?[",
            "\U0001f600",
        ]
    ),
    st.text(max_size=12),
    st.text(st.characters(codec="utf-8"), min_size=120, max_size=300),
    # Names a user could mean, so that most paths are accepted and reach git:
    _fine_names,
    _fine_names,
    _fine_names,
    _fine_names,
)


def _join(lead: str, parts: list[str], seps: list[str], trail: str) -> str:
    seps = seps + ["/"] * len(parts)
    return lead + "".join(p + seps[i] for i, p in enumerate(parts[:-1])) + parts[-1] + trail


artifact_paths = st.builds(
    _join,
    st.sampled_from([""] * 8 + ["/", "./", "\\"]),
    st.lists(_components, min_size=1, max_size=5),
    st.lists(st.sampled_from(["/"] * 8 + ["//", "\\", "/./"]), max_size=5),
    st.sampled_from([""] * 8 + ["/"]),
)

fine_paths = st.lists(_fine_names, min_size=1, max_size=4).map("/".join)


def _assert_safe(rel: str) -> None:
    """What an accepted path must be, stated without the rule's own code."""
    assert rel and not rel.startswith(("/", "\\"))
    assert len(rel.encode()) <= 1024
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in rel)
    for part in rel.split("/"):
        assert part not in ("", ".", "..") and len(part.encode()) <= 255
        for name in part.split("\\"):
            assert name not in ("", ".", "..")
            assert name.rstrip(". ").lower() not in (".git", "git~1")
            assert not name.lower().startswith((".git:", "git~1:"))
            assert name.replace("\u200c", "").replace("\ufeff", "").lower() != ".git"


@settings(max_examples=1000, deadline=None)
@given(path=artifact_paths | st.text(max_size=30))
def test_writer_accepts_only_what_checkout_accepts(path):
    try:
        stored = check_artifact_path(path)
    except InvalidInputError as e:
        assert "Invalid artifact path" in str(e)
        stored = None
    try:
        history_parts: list[str] | None = check_history_path(path)
    except UnsafePathError as e:
        assert "nothing was written" in str(e)
        history_parts = None
    if stored is not None:
        _assert_safe(stored)
        assert check_rel_path(stored) == stored.split("/")  # checkout takes it
        assert check_artifact_path(stored) == stored  # normal form is stable
        assert path_problem(stored) is None
    if history_parts is None:
        # Checkout refuses it: the writer refuses it too, or stores its normal form.
        assert stored is None or stored != path
    else:
        assert stored == path


def test_models_dot_git_is_refused_at_log_time_and_writes_nothing(repo, tmp_path):
    """Regression (issue 10): this committed, then every checkout refused it as crafted."""
    (repo / "out").mkdir()
    (repo / "out" / "f.txt").write_text("data\n")
    with gitrun.start_run() as run:
        with pytest.raises(InvalidInputError) as e:
            gitrun.log_artifact("out/f.txt", artifact_path="models/.git")
        assert "models/.git/f.txt" in str(e.value) and "'.git'" in str(e.value)
        assert "\n" not in str(e.value)
        for bad in ("models/.GIT/f.txt", "a/.git./f", "git~1/f", "x/.g\u200cit/y", "a\\..\\b"):
            with pytest.raises(InvalidInputError, match="Invalid artifact path"):
                gitrun.log_text("x", bad)
        live = Path(journal.live_root(Repo.discover()), run.info.run_id, journal.JOURNAL)
        so_far = journal.replay(str(live))
        assert so_far is not None and so_far.artifacts == {}
        gitrun.log_artifact("out/f.txt", artifact_path="models")
    rec = gitrun.get_run(run.info.run_id)
    assert [a.path for a in gitrun.MlflowClient().list_artifacts(rec.info.run_id, "models")] == [
        "models/f.txt"
    ]
    assert _fsck_errors(repo) == []
    p = run_cli("checkout", run.info.run_id, "--artifacts-only", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "models" / "f.txt").read_text() == "data\n"


ODD_BUT_FINE = [
    "a\\b.txt",
    "ckpt:12.pt",
    ".gitx/y",
    "git~10",
    "sp ace/ lead and trail ",
    "é/日本語/\U0001f600.txt",
    "-rf",
    "*?[",
    "deep/" * 30 + "f",
    "n" * 255,
    "..x/x..",
]


def test_checkout_restores_every_odd_path_the_writer_accepts(repo, tmp_path):
    with gitrun.start_run() as run:
        for i, path in enumerate(ODD_BUT_FINE):
            gitrun.log_text(f"content {i}\n", path)
    assert _fsck_errors(repo) == []
    out = tmp_path / "restored"
    p = run_cli("checkout", run.info.run_id, "--artifacts-only", str(out))
    assert p.returncode == 0, p.stderr
    got = {str(f.relative_to(out)) for f in out.rglob("*") if f.is_file()}
    assert got == set(ODD_BUT_FINE)
    for i, path in enumerate(ODD_BUT_FINE):
        assert (out / path).read_text() == f"content {i}\n"


@pytest.fixture(scope="module")
def api_repo(tmp_path_factory) -> Path:
    return _new_repo(tmp_path_factory.mktemp("api") / "repo")


@GIT_EXAMPLES
@given(
    logged=st.lists(
        st.tuples(artifact_paths | fine_paths, st.text(max_size=20)), min_size=1, max_size=6
    )
)
def test_every_logged_path_is_checked_out_with_its_content(api_repo, logged):
    expected: dict[str, str] = {}
    tree = ArtifactPaths()
    with chdir(api_repo), gitrun.start_run() as run:
        for path, text in logged:
            try:
                stored = check_artifact_path(path)
            except InvalidInputError:
                with pytest.raises(InvalidInputError, match="Invalid artifact path"):
                    gitrun.log_text(text, path)
                continue
            if tree.conflict(stored):
                with pytest.raises(InvalidInputError, match="both a file and a directory"):
                    gitrun.log_text(text, path)
                continue
            tree.add(stored)
            gitrun.log_text(text, path)
            expected[stored] = text
    assert _fsck_errors(api_repo) == []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        checkout(Repo.discover(str(api_repo)), run.info.run_id, artifacts_only=str(out))
        files = sorted(f for f in out.rglob("*") if f.is_file()) if out.exists() else []
        got = {f.relative_to(out).as_posix(): f.read_bytes().decode() for f in files}
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(
    paths=st.lists(st.sampled_from(["a", "a/b", "a/b/c", "b", "ab", "a-b/c", "a/c"]), max_size=6)
)
def test_artifact_paths_refuse_a_file_that_is_also_a_directory(paths):
    tree = ArtifactPaths()
    added: list[str] = []
    for p in paths:
        clash = any(q.startswith(p + "/") or p.startswith(q + "/") for q in added)
        if clash:
            with pytest.raises(InvalidInputError, match="both a file and a directory"):
                tree.add(p)
        else:
            tree.add(p)
            added.append(p)
    assert tree.files == set(added)


def test_a_file_and_a_directory_of_the_same_name_are_refused_at_log_time(repo, tmp_path):
    """Regression: 'a' then 'a/b' crashed the commit (TypeError in store._build_tree), and
    with it every later gitrun command, which tried to recover the run."""
    with gitrun.start_run() as run:
        gitrun.log_text("x", "a")
        with pytest.raises(InvalidInputError, match="both a file and a directory"):
            gitrun.log_text("y", "a/b")
        gitrun.log_text("z", "d/e")
        with pytest.raises(InvalidInputError, match="both a file and a directory"):
            gitrun.log_text("w", "d")
        gitrun.log_text("x2", "a")  # logging a file again replaces it
    p = run_cli("checkout", run.info.run_id, "--artifacts-only", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "a").read_text() == "x2"
    assert (tmp_path / "out" / "d" / "e").read_text() == "z"
    assert _fsck_errors(repo) == []
    assert run_cli("ls").returncode == 0


# ---------------------------------------------------------------------------
# run names, params and tags through the format
# ---------------------------------------------------------------------------
def _valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidInputError:
        return False
    return True


_param_keys = st.text(
    st.characters(categories=("L", "N")) | st.sampled_from("_.- :/"), min_size=1, max_size=16
).filter(_valid_key)
YAML_SPECIAL = [
    "yes",
    "no",
    "null",
    "~",
    "1e3",
    "0x1F",
    "'",
    '"',
    ": ",
    "- x",
    "  leading",
    "trailing  ",
    "",
    "a\tb",
    "line1\nline2",
    "\r\n",
    "#comment",
    "{a: 1}",
    "[1, 2]",
    "&anchor",
    "*alias",
    "!!python/object",
    "%YAML",
    "---",
    "...",
    "\\",
    "\\u0041",
    ".nan",
    "-.inf",
    "\x85",
    "\u2028",
    "\u2029",
    "\x7f",
    "\x9f",
    "\ufeff",
    "\ufffe",
    "é\U0001f600",
    "True",
    "2024-01-01",
    "1_000",
    "0o17",
    "+1",
]
_param_values = st.sampled_from(YAML_SPECIAL) | st.text(st.characters(codec="utf-8"), max_size=30)
_run_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(
    params=st.dictionaries(_param_keys, _param_values, max_size=5),
    name=_run_names | st.sampled_from(YAML_SPECIAL),
    command=st.lists(st.text(st.characters(codec="utf-8"), max_size=10), max_size=3),
    paths=st.lists(artifact_paths, max_size=3),
)
def test_record_files_round_trip(params, name, command, paths):
    """store.run_files -> store.parse_record gives back exactly the record (no git)."""
    experiment = name or "Default"  # an experiment always has a name
    rec = RunRecord(run_id="0" * 32, run_name=name, experiment=experiment, status="FINISHED")
    rec.params = dict(params)
    rec.tags = {**params, "mlflow.runName": name}
    rec.command = command or None
    rec.cwd = name
    for p in paths:
        with contextlib.suppress(InvalidInputError):
            a = check_artifact_path(p)
            rec.artifacts[a] = Artifact(a, 1, "0" * 64, "git")
    back = store.parse_record(store.run_files(rec))
    assert (back.run_name, back.experiment, back.cwd) == (name, experiment, name)
    assert back.command == rec.command
    assert back.params == rec.params
    assert back.tags == rec.tags
    assert set(back.artifacts) == set(rec.artifacts)
    for data in store.run_files(rec).values():
        text = data.decode()
        assert text.count("\n") == len(text.splitlines())  # no line breaks but "\n"


def test_nel_in_a_param_value_round_trips():
    """Regression: json.dumps leaves U+0085 raw; YAML refused or folded it (run unreadable)."""
    for value in ["9\x85", "a\u2028b", "\x80\x9f", "x\ufffey"]:
        files = store.run_files(RunRecord(run_id="0" * 32, params={"p": value}))
        assert store.parse_record(files).params == {"p": value}
        assert value not in files[store.PARAMS_FILE].decode()  # escaped, valid YAML
        import yaml

        assert yaml.safe_load(files[store.PARAMS_FILE].decode()) == {"p": value}


@GIT_EXAMPLES
@given(
    name=_run_names,
    params=st.dictionaries(_param_keys, _param_values, min_size=1, max_size=4),
    tags=st.dictionaries(_param_keys, _param_values, max_size=3),
)
def test_names_params_tags_round_trip_through_the_api(api_repo, name, params, tags):
    tags = {k: v for k, v in tags.items() if not k.startswith(("mlflow.", "gitrun."))}
    with chdir(api_repo):
        try:
            run = gitrun.start_run(run_name=name)
        except InvalidInputError:
            reject()
        with run:
            gitrun.log_params(params)
            gitrun.set_tags(tags)
        got = gitrun.get_run(run.info.run_id)
        assert got.info.run_name == name
        assert got.data.params == params
        assert {k: got.data.tags.get(k) for k in tags} == tags
        assert got.data.tags["mlflow.runName"] == name
        key, value = next(iter(params.items()))
        found = gitrun.search_runs(
            filter_string=f"params.`{key}` = {_quote(value, chr(39))}",
            search_all_experiments=True,
            output_format="list",
        )
        assert run.info.run_id in [r.info.run_id for r in found]


def test_odd_values_round_trip_in_a_fresh_process(repo):
    values = {f"k{i}": v for i, v in enumerate(YAML_SPECIAL)}
    name = "  yes: - x \u00e9 'q\" ~"
    with gitrun.start_run(run_name=name) as run:
        gitrun.log_params(values)
        gitrun.set_tags(values)
    code = (
        "import json, sys, gitrun; r = gitrun.get_run(sys.argv[1]); "
        "print(json.dumps([r.info.run_name, r.data.params, r.data.tags]))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, run.info.run_id], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    got_name, got_params, got_tags = json.loads(p.stdout)
    assert got_name == name
    assert got_params == values
    assert {k: got_tags[k] for k in values} == values
    p = run_cli("show", run.info.run_id)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize(
    "path", [".gitmodules", "a/.gitmodules/b.txt", "x/.GitModules.", "gitmod~1"]
)
def test_gitmodules_is_refused_at_log_time(repo, path):
    """Found by the property test above: an artifact directory named `.gitmodules` made
    `git fsck` fail (gitmodulesBlob), so a remote with receive.fsckObjects would refuse the
    runs ref; a file of that name is parsed by fsck as submodule config."""
    with gitrun.start_run():
        with pytest.raises(InvalidInputError, match="reserved"):
            gitrun.log_text("x", path)
