"""Run, RunInfo, RunData, Metric, Experiment: the shapes MLflow code expects.

Plain classes with __slots__ rather than dataclasses: `dataclasses` and the code it
generates at import cost ~20 ms in every process, and the CLI starts often.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidInputError


class _Plain:
    """Equality and repr over __slots__, like a dataclass."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__)
        return f"{type(self).__name__}({inner})"

    def to_dict(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}


class Metric(_Plain):
    __slots__ = ("key", "value", "timestamp", "step")

    def __init__(self, key: str, value: float, timestamp: int, step: int) -> None:
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.step = step

    def __hash__(self) -> int:
        return hash(self._values())

    def sort_key(self) -> tuple[int, int, float]:
        # MLflow's "latest": highest step, then latest timestamp, then largest value.
        v = self.value
        return (self.step, self.timestamp, -math.inf if math.isnan(v) else v)


class _KeyValue(_Plain):
    __slots__ = ("key", "value")

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))


class Param(_KeyValue):
    """A run's param (key, value)."""


class RunTag(_KeyValue):
    """A run's tag (key, value)."""


class Artifact(_Plain):
    __slots__ = ("path", "size", "sha256", "storage", "blob", "location")

    def __init__(
        self,
        path: str,
        size: int,
        sha256: str,
        storage: str = "git",
        blob: str | None = None,
        location: str | None = None,
    ) -> None:
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.storage = storage
        # git blob id: the content (storage "git") or its LFS pointer file (storage "lfs")
        self.blob = blob
        self.location = location  # the object store's URL prefix (storage "store")


class Input(_Plain):
    """Data a run read (inputs.tsv): a file, a directory or a dataset, hashed not copied.

    `digest` is `sha256:<hex>`; for a directory it covers the sorted (path, sha256, size)
    list of its files, of which `members` lists the first ones (path relative to it) and
    `files` counts them all (None: not recorded, older runs).
    """

    __slots__ = ("path", "kind", "size", "digest", "context", "members", "files")

    def __init__(
        self,
        path: str,
        kind: str,
        size: int,
        digest: str,
        context: str = "",
        members: list[tuple[str, int, str]] | None = None,
        files: int | None = None,
    ) -> None:
        self.path = path
        self.kind = kind  # "file", "dir" or "dataset"
        self.size = size
        self.digest = digest
        self.context = context
        self.members: list[tuple[str, int, str]] = [] if members is None else members
        self.files = files

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Input:
        """The inverse of to_dict (a journal line's JSON); raises on a malformed one."""
        members = [(str(p), int(n), str(h)) for p, n, h in d.get("members") or []]
        text = (str(d["path"]), str(d["kind"]), str(d["digest"]), str(d.get("context") or ""))
        if any(c in v for v in text for c in "\t\n\r") or not text[0]:
            raise ValueError(f"bad input {d!r}")
        files = d.get("files")
        count = int(files) if files is not None else None
        return cls(text[0], text[1], int(d["size"]), text[2], text[3], members, count)


class RunInfo(_Plain):
    __slots__ = (
        "run_id",
        "experiment_id",
        "run_name",
        "status",
        "start_time",
        "end_time",
        "artifact_uri",
        "user_id",
        "lifecycle_stage",
    )

    def __init__(
        self,
        run_id: str,
        experiment_id: str,
        run_name: str,
        status: str,
        start_time: int | None,
        end_time: int | None,
        artifact_uri: str,
        user_id: str = "",
        lifecycle_stage: str = "active",
    ) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.run_name = run_name
        self.status = status
        self.start_time = start_time
        self.end_time = end_time
        self.artifact_uri = artifact_uri
        self.user_id = user_id
        self.lifecycle_stage = lifecycle_stage

    @property
    def run_uuid(self) -> str:
        return self.run_id


class RunData(_Plain):
    __slots__ = ("metrics", "params", "tags")

    def __init__(
        self,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.metrics = {} if metrics is None else metrics
        self.params = {} if params is None else params
        self.tags = {} if tags is None else tags


class Run:
    def __init__(self, info: RunInfo, data: RunData) -> None:
        self.info = info
        self.data = data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Run):
            return NotImplemented
        return (self.info, self.data) == (other.info, other.data)

    def __repr__(self) -> str:
        return f"Run(info={self.info!r}, data={self.data!r})"

    def to_dictionary(self) -> dict[str, Any]:
        return {"info": self.info.to_dict(), "data": self.data.to_dict()}


class Experiment(_Plain):
    __slots__ = ("experiment_id", "name", "artifact_location", "lifecycle_stage", "tags")

    def __init__(
        self,
        experiment_id: str,
        name: str,
        artifact_location: str = "",
        lifecycle_stage: str = "active",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.experiment_id = experiment_id
        self.name = name
        self.artifact_location = artifact_location
        self.lifecycle_stage = lifecycle_stage
        self.tags = {} if tags is None else tags


class RunRecord(_Plain):
    """Everything gitrun knows about one run; the in-memory form of a run directory."""

    __slots__ = (
        "run_id",
        "run_name",
        "experiment",
        "status",
        "lifecycle_stage",
        "start_time",
        "end_time",
        "updated_time",
        "user",
        "host",
        "source_name",
        "command",
        "cwd",
        "exit_code",
        "code",
        "params",
        "tags",
        "metrics",
        "history",
        "artifacts",
        "inputs",
        "env",
        "env_blob",
        "output_blob",
        "tree",
    )

    def __init__(
        self,
        run_id: str,
        run_name: str = "",
        experiment: str = "Default",
        status: str = "RUNNING",
        lifecycle_stage: str = "active",
        start_time: int | None = None,
        end_time: int | None = None,
        updated_time: int | None = None,
        user: str = "",
        host: str = "",
        source_name: str = "",
        command: list[str] | None = None,
        cwd: str | None = None,
        exit_code: int | None = None,
        code: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        history: dict[str, list[Metric]] | None = None,
        artifacts: dict[str, Artifact] | None = None,
        env: dict[str, Any] | None = None,
        inputs: dict[str, Input] | None = None,
        env_blob: str | None = None,
        output_blob: str | None = None,
        tree: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_name = run_name
        self.experiment = experiment
        self.status = status
        self.lifecycle_stage = lifecycle_stage
        self.start_time = start_time
        self.end_time = end_time
        self.updated_time = updated_time
        self.user = user
        self.host = host
        self.source_name = source_name
        self.command = command
        self.cwd = cwd
        self.exit_code = exit_code
        self.code: dict[str, Any] = {} if code is None else code
        self.params: dict[str, str] = {} if params is None else params
        self.tags: dict[str, str] = {} if tags is None else tags
        self.metrics: dict[str, float] = {} if metrics is None else metrics  # latest per key
        self.history: dict[str, list[Metric]] = {} if history is None else history
        self.artifacts: dict[str, Artifact] = {} if artifacts is None else artifacts
        self.env: dict[str, Any] = {} if env is None else env
        self.inputs: dict[str, Input] = {} if inputs is None else inputs  # by path
        self.env_blob = env_blob
        self.output_blob = output_blob
        self.tree = tree  # the run directory's tree id, once committed

    @property
    def artifact_uri(self) -> str:
        return f"gitrun:runs/{self.run_id}/artifacts"

    def latest_metrics(self) -> dict[str, float]:
        out = {}
        for key, points in self.history.items():
            if points:
                out[key] = max(points, key=Metric.sort_key).value
        return out

    def to_run(self) -> Run:
        info = RunInfo(
            run_id=self.run_id,
            experiment_id=self.experiment,
            run_name=self.run_name,
            status=self.status,
            start_time=self.start_time,
            end_time=self.end_time,
            artifact_uri=self.artifact_uri,
            user_id=self.user,
            lifecycle_stage=self.lifecycle_stage,
        )
        return Run(info, RunData(dict(self.metrics), dict(self.params), dict(self.tags)))


class ExperimentTag(_KeyValue):
    """An experiment's tag (key, value), as mlflow.entities.ExperimentTag."""


class RunStatus:
    """MLflow's RunStatus: the numbers MLflow's API uses; RunInfo.status holds the name."""

    RUNNING = 1
    SCHEDULED = 2
    FINISHED = 3
    FAILED = 4
    KILLED = 5
    _NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
    _TERMINATED = frozenset({3, 4, 5})

    @staticmethod
    def from_string(status_str: str) -> int:
        for number, name in RunStatus._NAMES.items():
            if name == status_str:
                return number
        raise InvalidInputError(
            f"Could not get run status corresponding to string {status_str}. Valid run "
            f"status strings: {list(RunStatus._NAMES.values())}"
        )

    @staticmethod
    def to_string(status: int) -> str:
        if status not in RunStatus._NAMES:
            raise InvalidInputError(
                f"Could not get string corresponding to run status {status}. Valid run "
                f"statuses: {list(RunStatus._NAMES)}"
            )
        return RunStatus._NAMES[status]

    @staticmethod
    def is_terminated(status: int) -> bool:
        return status in RunStatus._TERMINATED

    @staticmethod
    def all_status() -> list[int]:
        return list(RunStatus._NAMES)


class LifecycleStage:
    """MLflow's LifecycleStage: a run is active or deleted (a tombstone in gitrun)."""

    ACTIVE = "active"
    DELETED = "deleted"
    _VALID = frozenset({ACTIVE, DELETED})

    @classmethod
    def view_type_to_stages(cls, view_type: int = 3) -> list[str]:
        # ViewType: 1 ACTIVE_ONLY, 2 DELETED_ONLY, 3 ALL (gitrun.query.ViewType)
        stages = []
        if view_type in (1, 3):
            stages.append(cls.ACTIVE)
        if view_type in (2, 3):
            stages.append(cls.DELETED)
        return stages

    @classmethod
    def is_valid(cls, lifecycle_stage: str) -> bool:
        return lifecycle_stage in cls._VALID

    @classmethod
    def matches_view_type(cls, view_type: int, lifecycle_stage: str) -> bool:
        if not cls.is_valid(lifecycle_stage):
            raise InvalidInputError(f"Invalid lifecycle stage '{lifecycle_stage}'")
        if view_type == 3:
            return True
        if view_type == 1:
            return lifecycle_stage == cls.ACTIVE
        if view_type == 2:
            return lifecycle_stage == cls.DELETED
        raise InvalidInputError(f"Invalid view type '{view_type}'")


class SourceType:
    """MLflow's SourceType (the kind of program that made a run)."""

    NOTEBOOK = 1
    JOB = 2
    PROJECT = 3
    LOCAL = 4
    UNKNOWN = 5
    SOURCETYPE_TO_STRING = {1: "NOTEBOOK", 2: "JOB", 3: "PROJECT", 4: "LOCAL", 5: "UNKNOWN"}
    _STRING_TO_SOURCETYPE = {v: k for k, v in SOURCETYPE_TO_STRING.items()}

    @staticmethod
    def from_string(status_str: str) -> int:
        if status_str not in SourceType._STRING_TO_SOURCETYPE:
            raise InvalidInputError(
                f"Could not get run status corresponding to string {status_str}. Valid run "
                f"status strings: {list(SourceType._STRING_TO_SOURCETYPE)}"
            )
        return SourceType._STRING_TO_SOURCETYPE[status_str]

    @staticmethod
    def to_string(status: int) -> str:
        if status not in SourceType.SOURCETYPE_TO_STRING:
            raise InvalidInputError(
                f"Could not get string corresponding to run status {status}. Valid run "
                f"statuses: {list(SourceType.SOURCETYPE_TO_STRING)}"
            )
        return SourceType.SOURCETYPE_TO_STRING[status]
