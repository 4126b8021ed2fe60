"""The model registry: refs/gitrun/models, format version 1 (docs/format.md, "The models ref").

One commit per change; the tip's tree holds every registered model as small text files,
so `git log -p refs/gitrun/models` is the registry's history (who moved an alias, when):

    gitrun.yaml                         format: 1
    models/<name>/model.yaml            name, description, user, times, tags
    models/<name>/aliases.yaml          alias: {version, version_id, set_at, user}
    models/<name>/versions/<n>.yaml     version, id, run_id, source, status, times, tags

Every version has a unique `id` besides its number, and every alias names the id of its
version, so two registries join without losing a version (`merge_roots`): the union of
the models; a version changed on both sides keeps the later change; two versions that got
the same number on two clones both stay, the earlier (creation time, run id, id) keeps
the number and the other takes the next free one (tagged `gitrun.original_version`);
each alias takes the later of its two moves and follows its version's id.

Names and places are layout.py's; this module owns what the files say, reading them,
writing a change as a commit (compare-and-swap on the ref, retried) and joining.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._git import BLOB_MODE, TREE_MODE, Repo
from ..errors import CorruptRecordError, GitError, GitrunError, InvalidInputError
from . import textfmt
from .layout import (
    ALIASES_FILE,
    FORMAT_FILE,
    MODEL_FILE,
    MODELS_DIR,
    MODELS_REF,
    VERSIONS_DIR,
)
from .paths import path_problem

FORMAT_VERSION = 1
_FORMAT_DATA = f"format: {FORMAT_VERSION}\n".encode()
MAX_CAS_ATTEMPTS = 200
MAX_NAME = 255
ORIGINAL_VERSION_TAG = "gitrun.original_version"
_ALIAS = re.compile(r"[\w\-]+")
_RESERVED_ALIAS = re.compile(r"[vV]\d+")
_VERSION_FILE = re.compile(r"([1-9][0-9]{0,17})\.yaml")


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------
@dataclass
class VersionRecord:
    version: int
    id: str
    source: str
    run_id: str | None
    creation_timestamp: int
    last_updated_timestamp: int
    user_id: str | None = None
    description: str | None = None
    status: str = "READY"
    tags: dict[str, str] = field(default_factory=dict)

    def files(self) -> bytes:
        return textfmt.dump_map(
            {
                "version": self.version,
                "id": self.id,
                "run_id": self.run_id,
                "source": self.source,
                "status": self.status,
                "creation_timestamp": self.creation_timestamp,
                "last_updated_timestamp": self.last_updated_timestamp,
                "user_id": self.user_id,
                "description": self.description,
                "tags": dict(sorted(self.tags.items())),
            }
        )


@dataclass
class AliasRecord:
    version: int | None  # None: deleted (kept so a join knows the deletion is the later change)
    version_id: str | None
    set_at: int
    user: str | None = None


@dataclass
class ModelRecord:
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None = None
    user: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    versions: dict[int, VersionRecord] = field(default_factory=dict)
    aliases: dict[str, AliasRecord] = field(default_factory=dict)

    def meta(self) -> bytes:
        return textfmt.dump_map(
            {
                "name": self.name,
                "description": self.description,
                "user": self.user,
                "creation_timestamp": self.creation_timestamp,
                "last_updated_timestamp": self.last_updated_timestamp,
                "tags": dict(sorted(self.tags.items())),
            }
        )

    def aliases_file(self) -> bytes:
        if not self.aliases:
            return b""
        return textfmt.dump_map(
            {
                a: {
                    "version": r.version,
                    "version_id": r.version_id,
                    "set_at": r.set_at,
                    "user": r.user,
                }
                for a, r in sorted(self.aliases.items())
            }
        )

    def live_aliases(self) -> dict[str, int]:
        """alias -> version number, deleted aliases left out."""
        return {a: r.version for a, r in sorted(self.aliases.items()) if r.version is not None}

    def updated(self) -> int:
        """When anything about the model last changed (MLflow's last_updated_timestamp)."""
        times = [self.last_updated_timestamp]
        times += [v.last_updated_timestamp for v in self.versions.values()]
        return max(times)


# ---------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------
def check_model_name(name: object) -> str:
    """A registered model name: MLflow's rule (no '/' or ':') and one safe directory name."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(
            f"Invalid registered model name {name!r}: give a non-empty name such as 'churn'."
        )
    if "/" in name or ":" in name:
        raise InvalidInputError(
            f"Invalid registered model name {name!r}: names cannot contain '/' or ':'."
        )
    reason = (
        "it contains a control character or line break"
        if textfmt.has_control(name)
        else (path_problem(name))
    )
    if reason is None and (name != name.strip() or name.startswith(".") or "\\" in name):
        reason = "it starts with '.', has a backslash or leading/trailing spaces"
    if reason is None and len(name.encode()) > MAX_NAME:
        reason = f"it is longer than {MAX_NAME} bytes"
    if reason:
        raise InvalidInputError(f"Invalid registered model name {name!r}: {reason}.")
    return name


def check_alias(alias: object) -> str:
    """MLflow's alias rule: letters, digits, '_' and '-'; 'latest' and v<N> are reserved."""
    if not isinstance(alias, str) or not alias:
        raise InvalidInputError("Registered model alias name cannot be empty.")
    if not _ALIAS.fullmatch(alias) or not alias.isascii() or len(alias) > MAX_NAME:
        raise InvalidInputError(
            f"Invalid alias name {alias!r}: names may only contain alphanumerics, "
            f"underscores (_), and dashes (-), at most {MAX_NAME} characters."
        )
    if alias.lower() == "latest" or _RESERVED_ALIAS.fullmatch(alias):
        raise InvalidInputError(
            f"Alias name {alias!r} is reserved ('latest' and v<number> name versions)."
        )
    return alias


def check_version(version: object) -> int:
    """A version number as MLflow accepts it: 3 or '3'."""
    try:
        n = int(str(version).strip())
    except ValueError:
        n = 0
    if isinstance(version, bool) or n < 1:
        raise InvalidInputError(
            f"Invalid model version {version!r}: a version is a whole number from 1."
        )
    return n


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def _entries(repo: Repo, tree: str | None) -> dict[str, tuple[str, str]]:
    if not tree:
        return {}
    return {name: (mode, sha) for mode, name, sha in repo.read_tree(tree)}


def _text(repo: Repo, sha: str, where: str) -> dict[str, Any]:
    try:
        kind, data = repo.read_object(sha)
        if kind != "blob":
            raise ValueError(kind)
        return textfmt.load_map(data.decode())
    except (GitError, ValueError, UnicodeDecodeError):
        raise CorruptRecordError(
            f"{where} on {MODELS_REF} cannot be read; the registry ref was damaged or not "
            "written by gitrun (`git log -p refs/gitrun/models` shows its history)."
        ) from None


def _int(v: Any, default: int = 0) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _str_map(v: Any) -> dict[str, str]:
    return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}


def _opt(v: Any) -> str | None:
    return None if v is None else str(v)


def check_tip(repo: Repo, tip: str) -> str:
    """The root tree of a registry commit; refuses what is not a registry of this format."""
    try:
        tree = repo.read_commit(tip)[0]
        top = _entries(repo, tree)
    except GitError:
        top = {}
    if FORMAT_FILE not in top:
        raise CorruptRecordError(
            f"{MODELS_REF} ({tip[:12]}) is not a gitrun model registry (it has no "
            f"{FORMAT_FILE}); someone wrote something else there, so gitrun leaves it alone."
        )
    version = _int(_text(repo, top[FORMAT_FILE][1], FORMAT_FILE).get("format"), 1)
    if version > FORMAT_VERSION:
        raise GitrunError(
            f"{MODELS_REF} is in gitrun format {version}, newer than this gitrun understands "
            f"({FORMAT_VERSION}); upgrade gitrun."
        )
    return tree


def _read_model(repo: Repo, name: str, tree: str) -> ModelRecord | None:
    files = _entries(repo, tree)
    if MODEL_FILE not in files:
        return None
    meta = _text(repo, files[MODEL_FILE][1], f"models/{name}/{MODEL_FILE}")
    rec = ModelRecord(
        name=name,
        creation_timestamp=_int(meta.get("creation_timestamp")),
        last_updated_timestamp=_int(meta.get("last_updated_timestamp")),
        description=_opt(meta.get("description")),
        user=_opt(meta.get("user")),
        tags=_str_map(meta.get("tags")),
    )
    if ALIASES_FILE in files:
        for alias, a in _text(repo, files[ALIASES_FILE][1], f"models/{name}/aliases").items():
            if isinstance(a, dict):
                v = a.get("version")
                rec.aliases[str(alias)] = AliasRecord(
                    None if v is None else _int(v),
                    _opt(a.get("version_id")),
                    _int(a.get("set_at")),
                    _opt(a.get("user")),
                )
    vdir = files.get(VERSIONS_DIR)
    if vdir and vdir[0] == TREE_MODE:
        for fname, (_mode, sha) in _entries(repo, vdir[1]).items():
            m = _VERSION_FILE.fullmatch(fname)
            if not m:
                continue  # unknown files are ignored (docs/format.md, Compatibility)
            d = _text(repo, sha, f"models/{name}/{VERSIONS_DIR}/{fname}")
            n = int(m.group(1))
            rec.versions[n] = VersionRecord(
                version=n,
                id=str(d.get("id") or f"{name}-{n}"),
                source=str(d.get("source") or ""),
                run_id=_opt(d.get("run_id")),
                creation_timestamp=_int(d.get("creation_timestamp")),
                last_updated_timestamp=_int(d.get("last_updated_timestamp")),
                user_id=_opt(d.get("user_id")),
                description=_opt(d.get("description")),
                status=str(d.get("status") or "READY"),
                tags=_str_map(d.get("tags")),
            )
    return rec


def read_tree(repo: Repo, tree: str | None) -> dict[str, ModelRecord]:
    """name -> model, from a registry root tree."""
    top = _entries(repo, tree)
    models = top.get(MODELS_DIR)
    out: dict[str, ModelRecord] = {}
    if not models or models[0] != TREE_MODE:
        return out
    for name, (mode, sha) in sorted(_entries(repo, models[1]).items()):
        if mode != TREE_MODE:
            continue
        try:
            check_model_name(name)
        except InvalidInputError:
            continue  # a directory no gitrun writes: never used as a path
        rec = _read_model(repo, name, sha)
        if rec is not None:
            out[name] = rec
    return out


def read(repo: Repo, tip: str | None = None) -> dict[str, ModelRecord]:
    """Every registered model (name -> record) on MODELS_REF (or at `tip`)."""
    tip = tip or repo.read_ref(MODELS_REF)
    if not tip:
        return {}
    return read_tree(repo, check_tip(repo, tip))


def get_model(repo: Repo, name: str) -> ModelRecord:
    models = read(repo)
    check_model_name(name)
    if name not in models:
        from ..errors import RunNotFoundError

        known = ", ".join(sorted(models)[:10]) or "none yet"
        raise RunNotFoundError(
            f"Registered model '{name}' does not exist (registered models: {known}); "
            "`gitrun models ls` lists them."
        )
    return models[name]


def get_version(model: ModelRecord, version: object) -> VersionRecord:
    from ..errors import RunNotFoundError

    n = check_version(version)
    if n not in model.versions:
        have = ", ".join(str(v) for v in sorted(model.versions)) or "none"
        raise RunNotFoundError(
            f"Model '{model.name}' has no version {n} (its versions: {have}); "
            f"`gitrun models show {model.name}` lists them."
        )
    return model.versions[n]


def version_by_alias(model: ModelRecord, alias: str) -> VersionRecord:
    from ..errors import RunNotFoundError

    live = model.live_aliases()
    if alias not in live:
        have = ", ".join(live) or "none"
        raise RunNotFoundError(
            f"Model '{model.name}' has no alias '{alias}' (its aliases: {have}); set one with "
            f"`gitrun models alias {model.name} {alias} <version>`."
        )
    return get_version(model, live[alias])


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/<name>/<version>`, `models:/<name>/latest` or `models:/<name>@<alias>`
    -> (name, version or "latest", alias)."""
    rest = uri[len("models:") :].lstrip("/")
    bad = InvalidInputError(
        f"Invalid model URI '{uri}': write it as models:/<name>/<version>, "
        "models:/<name>/latest or models:/<name>@<alias>."
    )
    if "/" in rest:
        name, _, version = rest.partition("/")
        if not name or not version or "/" in version.strip("/"):
            raise bad
        return name, version.strip("/"), None
    name, at, alias = rest.partition("@")
    if not at or not name or not alias:
        raise bad
    return name, None, alias


def resolve_models_uri(repo: Repo, uri: str) -> VersionRecord:
    """The version a `models:/` URI names."""
    name, version, alias = parse_models_uri(uri)
    model = get_model(repo, name)
    if alias is not None:
        return version_by_alias(model, alias)
    if version == "latest":
        if not model.versions:
            raise InvalidInputError(f"Model '{name}' has no versions yet; register one first.")
        return model.versions[max(model.versions)]
    return get_version(model, version)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------
def _put(repo: Repo, tree: str | None, changes: dict[tuple[str, ...], bytes | None]) -> str | None:
    """A new tree with the given paths set (bytes) or removed (None); None when empty."""
    entries = _entries(repo, tree)
    nested: dict[str, dict[tuple[str, ...], bytes | None]] = {}
    for path, data in changes.items():
        if len(path) == 1:
            if data is None:
                entries.pop(path[0], None)
            else:
                entries[path[0]] = (BLOB_MODE, repo.write_blob(data))
        else:
            nested.setdefault(path[0], {})[path[1:]] = data
    for name, sub in nested.items():
        old = entries.get(name)
        new = _put(repo, old[1] if old and old[0] == TREE_MODE else None, sub)
        if new is None:
            entries.pop(name, None)
        else:
            entries[name] = (TREE_MODE, new)
    if not entries:
        return None
    return repo.write_tree((mode, name, sha) for name, (mode, sha) in entries.items())


def model_changes(old: ModelRecord | None, new: ModelRecord) -> dict[tuple[str, ...], bytes | None]:
    """The files of `new` that differ from `old` (paths as tuples under the root)."""
    base = (MODELS_DIR, new.name)
    out: dict[tuple[str, ...], bytes | None] = {}
    if old is None or old.meta() != new.meta():
        out[(*base, MODEL_FILE)] = new.meta()
    if old is None or old.aliases_file() != new.aliases_file():
        out[(*base, ALIASES_FILE)] = new.aliases_file() or None
    for n, v in new.versions.items():
        if old is None or n not in old.versions or old.versions[n].files() != v.files():
            out[(*base, VERSIONS_DIR, f"{n}.yaml")] = v.files()
    for n in old.versions if old else ():
        if n not in new.versions:
            out[(*base, VERSIONS_DIR, f"{n}.yaml")] = None
    return out


def change(
    repo: Repo, name: str, edit: Callable[[ModelRecord | None], tuple[ModelRecord, str]]
) -> ModelRecord:
    """Apply `edit` to model `name` and commit it on MODELS_REF as one commit.

    `edit(current or None)` returns (the new record, the commit subject); it may raise to
    refuse.  Compare-and-swap: when another process moved the ref meanwhile, the edit is
    applied again to the new tip.
    """
    check_model_name(name)
    for attempt in range(MAX_CAS_ATTEMPTS):
        old_tip = repo.read_ref(MODELS_REF)
        root = None
        if old_tip:
            root = check_tip(repo, old_tip)
        current = read_tree(repo, root).get(name)
        import copy

        new, subject = edit(copy.deepcopy(current))
        changes = model_changes(current, new)
        changes[(FORMAT_FILE,)] = _FORMAT_DATA
        with repo.batch():
            tree = _put(repo, root, changes)
            assert tree is not None
            parents = [old_tip] if old_tip else []
            commit = repo.write_commit(tree, parents, subject + "\n")
        if repo.cas_ref(MODELS_REF, commit, old_tip, f"gitrun: {subject}"):
            return new
        time.sleep(min(0.001 * (attempt + 1), 0.05))
    raise GitrunError(
        f"Could not update {MODELS_REF} after {MAX_CAS_ATTEMPTS} attempts because other "
        "processes kept moving it; try again."
    )


def new_version_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------
# joining two registries (sync)
# ---------------------------------------------------------------------------
def _later_version(a: VersionRecord, b: VersionRecord) -> VersionRecord:
    """One version (same id) changed on two clones: the later change, ties by content."""
    return max(a, b, key=lambda v: (v.last_updated_timestamp, v.files()))


def merge_models(a: ModelRecord, b: ModelRecord) -> ModelRecord:
    """One model from two registries; symmetric, so every clone gets the same result."""
    first = max(a, b, key=lambda m: (m.last_updated_timestamp, m.meta()))
    out = ModelRecord(
        name=a.name,
        creation_timestamp=min(a.creation_timestamp, b.creation_timestamp),
        last_updated_timestamp=first.last_updated_timestamp,
        description=first.description,
        user=first.user,
        tags=dict(first.tags),
    )
    # Versions by id; a version renumbered by an earlier join only ever moved up.
    by_id: dict[str, VersionRecord] = {}
    for v in [*a.versions.values(), *b.versions.values()]:
        old = by_id.get(v.id)
        if old is None:
            by_id[v.id] = v
            continue
        number = max(old.version, v.version)
        picked = _later_version(old, v)
        picked.version = number
        by_id[v.id] = picked
    by_number: dict[int, list[VersionRecord]] = {}
    for v in by_id.values():
        by_number.setdefault(v.version, []).append(v)
    next_free = max(by_number, default=0) + 1
    losers: list[VersionRecord] = []
    for n in sorted(by_number):
        group = sorted(by_number[n], key=lambda v: (v.creation_timestamp, v.run_id or "", v.id))
        out.versions[n] = group[0]
        losers += group[1:]
    for v in sorted(losers, key=lambda v: (v.creation_timestamp, v.run_id or "", v.id)):
        v.tags.setdefault(ORIGINAL_VERSION_TAG, str(v.version))
        v.version = next_free
        out.versions[next_free] = v
        next_free += 1
    number_of = {v.id: n for n, v in out.versions.items()}
    for alias in sorted(set(a.aliases) | set(b.aliases)):
        cands = [m.aliases[alias] for m in (a, b) if alias in m.aliases]
        r = max(cands, key=lambda r: (r.set_at, r.version_id or "", r.version or 0, r.user or ""))
        r = AliasRecord(r.version, r.version_id, r.set_at, r.user)
        if r.version is not None and r.version_id in number_of:
            r.version = number_of[r.version_id]
        out.aliases[alias] = r
    return out


def merge_roots(repo: Repo, ours: str | None, theirs: str | None) -> str:
    """The union of two registry trees (see the module's docstring)."""
    if not ours or ours == theirs:
        return theirs or ours or _empty_root(repo)
    if not theirs:
        return ours
    mine, other = read_tree(repo, ours), read_tree(repo, theirs)
    changes: dict[tuple[str, ...], bytes | None] = {(FORMAT_FILE,): _FORMAT_DATA}
    for name, m in other.items():
        if name not in mine:
            changes.update(model_changes(None, m))
        else:
            changes.update(model_changes(mine[name], merge_models(mine[name], m)))
    tree = _put(repo, ours, changes)
    assert tree is not None
    return tree


def _empty_root(repo: Repo) -> str:
    tree = _put(repo, None, {(FORMAT_FILE,): _FORMAT_DATA})
    assert tree is not None
    return tree
