"""The model registry API, MLflow's names and shapes, kept in git (refs/gitrun/models).

`MlflowClient`'s registry methods and `gitrun.register_model` call these functions; the
storage (files, commits, joining) is `format/registry.py`'s.  A version's source is always
`runs:/<run_id>/<path>`: `models:/<name>/<version>` and `models:/<name>@<alias>` resolve
to it (query/artifacts.py `resolve_uri`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

from .._git import Repo
from ..errors import InvalidInputError, RunNotFoundError
from ..format import registry as reg
from ..format.registry import AliasRecord, ModelRecord, VersionRecord

__all__ = [
    "ModelVersion",
    "RegisteredModel",
    "create_model_version",
    "create_registered_model",
    "delete_model_version_tag",
    "delete_registered_model_alias",
    "delete_registered_model_tag",
    "get_latest_versions",
    "get_model_version",
    "get_model_version_by_alias",
    "get_registered_model",
    "register_model",
    "search_model_versions",
    "search_registered_models",
    "set_model_version_tag",
    "set_registered_model_alias",
    "set_registered_model_tag",
    "update_model_version",
    "update_registered_model",
]


# ---------------------------------------------------------------------------
# entities (MLflow's attribute names; versions are ints as MLflow's local stores give)
# ---------------------------------------------------------------------------
class _Entity:
    _fields: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for f in self._fields:
            yield f, getattr(self, f)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and dict(self) == dict(other)  # type: ignore[call-overload]

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in sorted(self))
        return f"<{type(self).__name__}: {body}>"


class ModelVersion(_Entity):
    """MLflow's ModelVersion: one registered version of a model."""

    _fields = (
        "name",
        "version",
        "creation_timestamp",
        "last_updated_timestamp",
        "description",
        "user_id",
        "current_stage",
        "source",
        "run_id",
        "status",
        "status_message",
        "tags",
        "run_link",
        "aliases",
    )

    def __init__(self, name: str, v: VersionRecord, aliases: list[str]) -> None:
        self.name = name
        self.version = v.version
        self.creation_timestamp = v.creation_timestamp
        self.last_updated_timestamp = v.last_updated_timestamp
        self.description = v.description
        self.user_id = v.user_id
        self.current_stage = "None"
        self.source = v.source
        self.run_id = v.run_id
        self.status = v.status
        self.status_message = None
        self.tags = dict(v.tags)
        self.run_link = None
        self.aliases = aliases
        self.model_id = None


class RegisteredModel(_Entity):
    """MLflow's RegisteredModel."""

    _fields = (
        "name",
        "creation_timestamp",
        "last_updated_timestamp",
        "description",
        "latest_versions",
        "tags",
        "aliases",
    )

    def __init__(self, m: ModelRecord) -> None:
        self.name = m.name
        self.creation_timestamp = m.creation_timestamp
        self.last_updated_timestamp = m.updated()
        self.description = m.description
        self.tags = dict(m.tags)
        self.aliases = m.live_aliases()
        latest = [_version(m, max(m.versions))] if m.versions else []
        self.latest_versions = latest


def _version(m: ModelRecord, n: int) -> ModelVersion:
    aliases = [a for a, v in m.live_aliases().items() if v == n]
    return ModelVersion(m.name, m.versions[n], aliases)


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return None


def _repo(repo: Repo | None) -> Repo:
    return repo or Repo.discover()


def _tag_value(key: object, value: object) -> tuple[str, str]:
    from .validation import tag_value, validate_key

    validate_key(str(key), "tag name")
    return str(key), tag_value(str(key), value)


# ---------------------------------------------------------------------------
# registered models
# ---------------------------------------------------------------------------
def create_registered_model(
    name: str,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    repo: Repo | None = None,
) -> RegisteredModel:
    reg.check_model_name(name)
    pairs = dict(_tag_value(k, v) for k, v in (tags or {}).items())

    def edit(cur: ModelRecord | None) -> tuple[ModelRecord, str]:
        if cur is not None:
            raise InvalidInputError(f"Registered Model (name={name}) already exists.")
        now = reg.now_ms()
        rec = ModelRecord(name, now, now, description, _user(), pairs)
        return rec, f"{name}: registered model"

    return RegisteredModel(reg.change(_repo(repo), name, edit))


def get_registered_model(name: str, repo: Repo | None = None) -> RegisteredModel:
    return RegisteredModel(reg.get_model(_repo(repo), name))


def model_with_versions(
    name: str, repo: Repo | None = None
) -> tuple[RegisteredModel, list[ModelVersion]]:
    """A registered model and every version of it, oldest first, from one read."""
    m = reg.get_model(_repo(repo), name)
    return RegisteredModel(m), [_version(m, n) for n in sorted(m.versions)]


def _edit_model(repo: Repo | None, name: str, fn: Any) -> ModelRecord:
    """Change an existing model: fn(record) -> commit subject (None: nothing changed)."""
    r = _repo(repo)
    reg.get_model(r, name)  # the one sentence for an unknown model

    def edit(cur: ModelRecord | None) -> tuple[ModelRecord, str]:
        if cur is None:
            reg.get_model(r, name)
            raise RunNotFoundError(f"Registered model '{name}' does not exist.")
        return cur, fn(cur)

    return reg.change(r, name, edit)


def set_registered_model_tag(name: str, key: str, value: Any, repo: Repo | None = None) -> None:
    k, v = _tag_value(key, value)

    def fn(m: ModelRecord) -> str:
        m.tags[k] = v
        m.last_updated_timestamp = reg.now_ms()
        return f"{name}: tag {k}={v}"

    _edit_model(repo, name, fn)


def delete_registered_model_tag(name: str, key: str, repo: Repo | None = None) -> None:
    def fn(m: ModelRecord) -> str:
        if key not in m.tags:
            raise InvalidInputError(f"Registered model '{name}' has no tag '{key}' to delete.")
        del m.tags[key]
        m.last_updated_timestamp = reg.now_ms()
        return f"{name}: tag {key} deleted"

    _edit_model(repo, name, fn)


def update_registered_model(
    name: str, description: str | None = None, repo: Repo | None = None
) -> RegisteredModel:
    def fn(m: ModelRecord) -> str:
        m.description = description
        m.last_updated_timestamp = reg.now_ms()
        return f"{name}: description"

    return RegisteredModel(_edit_model(repo, name, fn))


# ---------------------------------------------------------------------------
# versions
# ---------------------------------------------------------------------------
def _check_source(repo: Repo, source: str, run_id: str | None) -> tuple[str, str]:
    """(normalised runs:/ source, full run id); the run and its artifact must exist."""
    from ..query import artifacts
    from ..query import resolve as runs

    if not isinstance(source, str) or not source.startswith("runs:"):
        raise InvalidInputError(
            f"Cannot register '{source}': gitrun registers models logged to runs, so give "
            "runs:/<run_id>/<artifact path> (the model_uri log_model returns)."
        )
    rid, path = artifacts.parse_runs_uri(source)
    rec = runs.load(repo, rid, history=False)
    if run_id is not None and run_id != rec.run_id:
        raise InvalidInputError(
            f"run_id {run_id} does not match the source '{source}' (run {rec.run_id})."
        )
    if (
        path
        and path not in rec.artifacts
        and not any(a.startswith(path + "/") for a in rec.artifacts)
    ):
        raise RunNotFoundError(
            f"Run {rec.run_id} has no artifact '{path}', so it cannot be registered; "
            f"`gitrun show {rec.run_id[:8]}` lists its artifacts."
        )
    return f"runs:/{rec.run_id}/{path}" if path else f"runs:/{rec.run_id}", rec.run_id


def create_model_version(
    name: str,
    source: str,
    run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    run_link: str | None = None,
    description: str | None = None,
    repo: Repo | None = None,
    create_model: bool = False,
) -> ModelVersion:
    r = _repo(repo)
    reg.check_model_name(name)
    pairs = dict(_tag_value(k, v) for k, v in (tags or {}).items())
    src, rid = _check_source(r, source, run_id)
    if not create_model:
        reg.get_model(r, name)
    vid = reg.new_version_id()
    made: list[int] = []

    def edit(cur: ModelRecord | None) -> tuple[ModelRecord, str]:
        now = reg.now_ms()
        made.clear()
        if cur is None:
            if not create_model:
                raise RunNotFoundError(f"Registered model '{name}' does not exist.")
            cur = ModelRecord(name, now, now, None, _user())
            made.append(0)
        n = max(cur.versions, default=0) + 1
        cur.versions[n] = VersionRecord(
            n, vid, src, rid, now, now, _user(), description, "READY", dict(pairs)
        )
        made.append(n)
        return cur, f"{name}: version {n} from run {rid[:8]}"

    m = reg.change(r, name, edit)
    return _version(m, made[-1])


def register_model(
    model_uri: str,
    name: str,
    await_registration_for: Any = None,
    *,
    tags: dict[str, Any] | None = None,
    repo: Repo | None = None,
    **_: Any,
) -> ModelVersion:
    """MLflow's `mlflow.register_model`: the model is created when new, then a version."""
    r = _repo(repo)
    reg.check_model_name(name)
    known = name in reg.read(r)
    mv = create_model_version(name, model_uri, tags=tags, repo=r, create_model=True)
    if not known:
        print(f"Successfully registered model '{name}'.", file=sys.stderr)
    else:
        print(
            f"Registered model '{name}' already exists. Creating a new version of this model...",
            file=sys.stderr,
        )
    print(f"Created version '{mv.version}' of model '{name}'.", file=sys.stderr)
    return mv


def get_model_version(name: str, version: Any, repo: Repo | None = None) -> ModelVersion:
    m = reg.get_model(_repo(repo), name)
    return _version(m, reg.get_version(m, version).version)


def get_model_version_download_uri(name: str, version: Any, repo: Repo | None = None) -> str:
    return get_model_version(name, version, repo).source


def get_latest_versions(
    name: str, stages: list[str] | None = None, repo: Repo | None = None
) -> list[ModelVersion]:
    """The latest version (gitrun has no stages: every version's stage is 'None')."""
    m = reg.get_model(_repo(repo), name)
    if not m.versions or (stages and "None" not in stages and "none" not in stages):
        return []
    return [_version(m, max(m.versions))]


def _edit_version(repo: Repo | None, name: str, version: Any, fn: Any) -> ModelVersion:
    r = _repo(repo)
    n = reg.get_version(reg.get_model(r, name), version).version

    def edit(m: ModelRecord) -> str:
        v = reg.get_version(m, n)
        subject: str = fn(v)
        v.last_updated_timestamp = reg.now_ms()
        return subject

    return _version(_edit_model(r, name, edit), n)


def set_model_version_tag(
    name: str,
    version: Any = None,
    key: str | None = None,
    value: Any = None,
    stage: str | None = None,
    repo: Repo | None = None,
) -> None:
    if stage is not None:
        raise NotImplementedError(
            "gitrun has no model stages (MLflow deprecated them); tag a version by number "
            "or use aliases."
        )
    k, val = _tag_value(key, value)

    def fn(v: VersionRecord) -> str:
        v.tags[k] = val
        return f"{name}: version {v.version} tag {k}={val}"

    _edit_version(repo, name, version, fn)


def delete_model_version_tag(
    name: str,
    version: Any = None,
    key: str | None = None,
    stage: str | None = None,
    repo: Repo | None = None,
) -> None:
    def fn(v: VersionRecord) -> str:
        if key not in v.tags:
            raise InvalidInputError(f"Version {v.version} of '{name}' has no tag '{key}'.")
        del v.tags[str(key)]
        return f"{name}: version {v.version} tag {key} deleted"

    _edit_version(repo, name, version, fn)


def update_model_version(
    name: str, version: Any, description: str | None = None, repo: Repo | None = None
) -> ModelVersion:
    def fn(v: VersionRecord) -> str:
        v.description = description
        return f"{name}: version {v.version} description"

    return _edit_version(repo, name, version, fn)


# ---------------------------------------------------------------------------
# aliases
# ---------------------------------------------------------------------------
def set_registered_model_alias(
    name: str, alias: str, version: Any, repo: Repo | None = None
) -> None:
    r = _repo(repo)
    reg.check_alias(alias)
    n = reg.get_version(reg.get_model(r, name), version).version

    def fn(m: ModelRecord) -> str:
        v = reg.get_version(m, n)
        old = m.live_aliases().get(alias)
        m.aliases[alias] = AliasRecord(n, v.id, reg.now_ms(), _user())
        return f"{name}: alias {alias} {old if old is not None else '(new)'} -> {n}"

    _edit_model(r, name, fn)


def delete_registered_model_alias(name: str, alias: str, repo: Repo | None = None) -> None:
    r = _repo(repo)
    if alias not in reg.get_model(r, name).live_aliases():
        return  # as MLflow: deleting an alias that is not set changes nothing

    def fn(m: ModelRecord) -> str:
        old = m.live_aliases().get(alias)
        m.aliases[alias] = AliasRecord(None, None, reg.now_ms(), _user())
        return f"{name}: alias {alias} {old} -> (deleted)"

    _edit_model(r, name, fn)


def get_model_version_by_alias(name: str, alias: str, repo: Repo | None = None) -> ModelVersion:
    m = reg.get_model(_repo(repo), name)
    return _version(m, reg.version_by_alias(m, alias).version)


# ---------------------------------------------------------------------------
# search (MLflow's registry filter: name, tags.<key>, run_id, source, version_number)
# ---------------------------------------------------------------------------
_CLAUSE = re.compile(
    r"\s*(?P<key>`?[\w.]+`?(?:\.`[^`]+`)?)\s*(?P<op>!=|=|<=|>=|<|>|(?i:not\s+ilike|not\s+like|"
    r"ilike|like|in))\s*(?P<value>'(?:[^']|'')*'|\"[^\"]*\"|\((?:[^()])*\)|-?\d+)\s*",
)


def _like(pattern: str, text: str, ci: bool) -> bool:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, text, re.IGNORECASE | re.DOTALL if ci else re.DOTALL) is not None


def _literal(text: str) -> Any:
    if text.startswith("("):
        return [
            _literal(p.strip())
            for p in re.findall(r"'(?:[^']|'')*'|\"[^\"]*\"|[^,\s]+", text[1:-1])
        ]
    if text[0] in "'\"":
        return text[1:-1].replace("''", "'") if text[0] == "'" else text[1:-1]
    return int(text)


def _parse_filter(filter_string: str | None, keys: tuple[str, ...]) -> list[tuple[str, str, Any]]:
    if not filter_string or not filter_string.strip():
        return []
    parts = re.split(r"\s+(?i:and)\s+", filter_string.strip())
    out = []
    for part in parts:
        m = _CLAUSE.fullmatch(part)
        key = m.group("key").replace("`", "") if m else ""
        if not m or not (key in keys or key.startswith(("tags.", "tag."))):
            raise InvalidInputError(
                f"Invalid filter '{filter_string}': gitrun's registry search accepts "
                f"{', '.join(keys)} and tags.<key> compared with =, !=, LIKE, ILIKE or IN, "
                "joined by AND (e.g. name = 'churn')."
            )
        out.append((key, " ".join(m.group("op").lower().split()), _literal(m.group("value"))))
    return out


def _matches(get: Any, clauses: list[tuple[str, str, Any]]) -> bool:
    for key, op, want in clauses:
        have = get(key)
        if have is None:
            return False
        if op in ("like", "ilike", "not like", "not ilike"):
            hit = _like(str(want), str(have), "ilike" in op)
            if op.startswith("not"):
                hit = not hit
        elif op == "in":
            hit = str(have) in [str(w) for w in want]
        else:
            a: Any = have if isinstance(want, int) else str(have)
            b: Any = want if isinstance(want, int) else str(want)
            try:
                hit = {
                    "=": a == b,
                    "!=": a != b,
                    "<": a < b,
                    ">": a > b,
                    "<=": a <= b,
                    ">=": a >= b,
                }[op]
            except TypeError:
                hit = False
        if not hit:
            return False
    return True


def _sorted(items: list[Any], order_by: list[str] | None, default: list[str]) -> list[Any]:
    for clause in reversed(order_by or default):
        words = clause.split()
        if (
            not words
            or len(words) > 2
            or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC"))
        ):
            raise InvalidInputError(f"Invalid order_by clause '{clause}': write 'key ASC|DESC'.")
        key = {"version_number": "version", "timestamp": "creation_timestamp"}.get(
            words[0], words[0]
        )
        if key not in ("name", "version", "creation_timestamp", "last_updated_timestamp"):
            raise InvalidInputError(
                f"Invalid order_by key '{words[0]}': use name, version_number, "
                "creation_timestamp or last_updated_timestamp."
            )
        desc = len(words) == 2 and words[1].upper() == "DESC"
        items = sorted(items, key=lambda x: getattr(x, key, 0) or 0, reverse=desc)
    return items


def search_registered_models(
    filter_string: str | None = None,
    max_results: int = 100,
    order_by: list[str] | None = None,
    page_token: str | None = None,
    repo: Repo | None = None,
) -> list[RegisteredModel]:
    clauses = _parse_filter(filter_string, ("name",))
    out = []
    for m in reg.read(_repo(repo)).values():
        if _matches(
            lambda k, m=m: m.name if k == "name" else m.tags.get(k.split(".", 1)[1]), clauses
        ):
            out.append(RegisteredModel(m))
    return _sorted(out, order_by, ["name ASC"])[:max_results]


def search_model_versions(
    filter_string: str | None = None,
    max_results: int = 10000,
    order_by: list[str] | None = None,
    page_token: str | None = None,
    repo: Repo | None = None,
) -> list[ModelVersion]:
    keys = ("name", "run_id", "source", "version_number", "source_path")
    clauses = _parse_filter(filter_string, keys)
    out = []
    for m in reg.read(_repo(repo)).values():
        for n in m.versions:
            mv = _version(m, n)

            def get(k: str, mv: ModelVersion = mv) -> Any:
                if k.startswith(("tags.", "tag.")):
                    return mv.tags.get(k.split(".", 1)[1])
                return {
                    "name": mv.name,
                    "run_id": mv.run_id,
                    "source": mv.source,
                    "source_path": mv.source,
                    "version_number": mv.version,
                }[k]

            if _matches(get, clauses):
                out.append(mv)
    default = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]
    return _sorted(out, order_by, default)[:max_results]
