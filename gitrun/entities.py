"""Run, RunInfo, RunData, Metric, Experiment: the shapes MLflow code expects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int

    def sort_key(self) -> tuple[int, int, float]:
        # MLflow's "latest": highest step, then latest timestamp, then largest value.
        v = self.value
        return (self.step, self.timestamp, -math.inf if math.isnan(v) else v)


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass
class Artifact:
    path: str
    size: int
    sha256: str
    storage: str = "git"
    blob: str | None = None  # git blob id when storage == "git"


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    user_id: str = ""
    lifecycle_stage: str = "active"

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass
class RunData:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    info: RunInfo
    data: RunData

    def to_dictionary(self) -> dict[str, Any]:
        return {"info": vars(self.info), "data": vars(self.data)}


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Everything gitrun knows about one run; the in-memory form of a run directory."""

    run_id: str
    run_name: str = ""
    experiment: str = "Default"
    status: str = "RUNNING"
    lifecycle_stage: str = "active"
    start_time: int | None = None
    end_time: int | None = None
    updated_time: int | None = None
    user: str = ""
    host: str = ""
    source_name: str = ""
    command: list[str] | None = None
    cwd: str | None = None
    exit_code: int | None = None
    code: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value per key
    history: dict[str, list[Metric]] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    env_blob: str | None = None
    output_blob: str | None = None
    tree: str | None = None  # the run directory's tree id, once committed

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
