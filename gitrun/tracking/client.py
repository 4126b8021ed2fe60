"""`MlflowClient`: MLflow's lower-level API, addressing runs by id.

Which run a call writes to:
* a run this process is logging to (started with start_run, or attached under
  `gitrun record`): its live journal, as the fluent API would;
* a run this client created with `create_run`: the client owns it (journaled under
  .git/gitrun/live like any run) until `set_terminated` commits it; if the process
  dies first, the next gitrun command commits it as KILLED;
* a finished (committed) run: MLflow allows logging to it, and so does gitrun: the
  change is applied to the run's record and committed at once as a new version of the
  run (same id, later `updated_time`), one commit per call;
* a run in progress in another process: refused, since its owner commits it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any, Callable

from .._git import Repo
from ..errors import GitrunError, InvalidInputError, ParamChangedError, RunNotFoundError
from ..format import journal, store
from ..format.entities import (
    Artifact,
    Experiment,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunRecord,
    RunTag,
)
from ..query import ViewType, artifacts
from . import state
from .live import LiveRun, new_run
from .validation import (
    artifact_dest,
    check_experiment_name,
    check_run_id,
    check_run_name,
    metric_step,
    metric_timestamp,
    metric_value,
    param_value,
    safe_artifact_path,
    tag_value,
    validate_key,
)

__all__ = ["MlflowClient", "PagedList", "ViewType"]


class PagedList(list):  # type: ignore[type-arg]
    """A list of results with MLflow's `token` (always None: gitrun returns every page)."""

    token: str | None = None


def _run_of(live: LiveRun) -> Run:
    rec = journal.replay(live.journal.path) if os.path.exists(live.journal.path) else None
    rec = rec or live.record
    info = RunInfo(
        run_id=live.run_id,
        experiment_id=rec.experiment,
        run_name=rec.run_name,
        status="RUNNING",
        start_time=rec.start_time,
        end_time=None,
        artifact_uri=rec.artifact_uri,
        user_id=rec.user,
    )
    return Run(info, RunData(rec.latest_metrics(), dict(rec.params), dict(rec.tags)))


def _time_ms(what: str, value: Any) -> int | None:
    """An explicit run time (ms since 1970) as MLflow records it; None or 0 means now.
    A float (time.time() * 1000) is cut to whole milliseconds."""
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0 <= value < 2**63:  # NaN fails the comparison too
        raise InvalidInputError(
            f"Invalid {what} {value!r}: a run time is a whole number of milliseconds since "
            "1970, not negative."
        )
    return int(value) or None


class MlflowClient:
    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        if tracking_uri:
            from .uri import set_tracking_uri

            set_tracking_uri(tracking_uri)  # refuses servers; local paths are accepted
        self._owned: dict[str, LiveRun] = {}
        self._repo: Repo | None = None

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            self._repo = Repo.discover()
        return self._repo

    # -- reading ----------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        from ..query import resolve as runs

        check_run_id(run_id)
        return runs.load(Repo.discover(bare_ok=True), run_id).to_run()

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        from ..query import resolve as runs

        check_run_id(run_id)
        validate_key(key, "metric name")
        rec = runs.load(Repo.discover(bare_ok=True), run_id, history=True)
        return list(rec.history.get(key, []))

    def search_runs(
        self,
        experiment_ids: str | Sequence[str] | None = None,
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        from .search import search_runs

        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        runs = search_runs(
            experiment_ids=list(experiment_ids) if experiment_ids is not None else None,
            filter_string=filter_string,
            run_view_type=run_view_type,
            max_results=max_results,
            order_by=order_by,
            output_format="list",
            search_all_experiments=experiment_ids is None,
        )
        return PagedList(runs)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[artifacts.FileInfo]:
        from ..query import resolve as runs

        return artifacts.list_artifacts(runs.load(self.repo, run_id, history=False), path)

    def download_artifacts(self, run_id: str, path: str = "", dst_path: str | None = None) -> str:
        from ..query import resolve as runs

        rec = runs.load(self.repo, run_id, history=False)
        return artifacts.download(self.repo, rec, path or None, dst_path)

    # -- experiments (named; the name is the id) ----------------------------
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        from .. import query

        names = query.experiment_names(Repo.discover())
        if name not in names and name != state.DEFAULT_EXPERIMENT and name != state.experiment():
            return None
        return Experiment(
            experiment_id=name, name=name, artifact_location=f"gitrun:experiments/{name}"
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        e = self.get_experiment_by_name(str(experiment_id))
        if e is None:
            raise RunNotFoundError(f"No experiment '{experiment_id}' has any runs yet.")
        return e

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: Any = None
    ) -> str:
        return check_experiment_name(name)

    def search_experiments(self, *args: Any, **kwargs: Any) -> PagedList:
        from .. import query

        names = query.experiment_names(self.repo)
        return PagedList(
            Experiment(n, n, artifact_location=f"gitrun:experiments/{n}") for n in names
        )

    # -- creating and ending runs ----------------------------------------
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        check_experiment_name(None if experiment_id is None else str(experiment_id))
        tags = dict(tags or {})
        # As MLflow's client: user_id is the `mlflow.user` tag, else "unknown" (no tag added).
        user = str(tags.get("mlflow.user", "unknown"))
        live = new_run(
            self.repo,
            run_name=run_name,
            experiment=str(experiment_id),
            tags=tags,
            start_time=_time_ms("start_time", start_time),
            user=user,
        )
        self._owned[live.run_id] = live
        return _run_of(live)

    def set_terminated(
        self, run_id: str, status: str | None = "FINISHED", end_time: int | None = None
    ) -> None:
        status = status or "FINISHED"
        if status not in store.TERMINAL:
            raise InvalidInputError(
                f"Invalid terminal status '{status}'; use one of {', '.join(store.TERMINAL)}."
            )
        end_ms = _time_ms("end_time", end_time)  # recorded as given (None or 0: now)
        if run_id in self._owned:
            self._owned.pop(run_id).end(status, end_time=end_ms)
            return
        active = state.find(run_id)
        if active is not None:
            active.live.end(status, end_time=end_ms)  # state.end below finds it ended
            state.end(active, status)
            return

        def edit(rec: RunRecord) -> None:
            rec.status = status
            rec.end_time = end_ms or store.now_ms()

        self._edit_finished(run_id, edit)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        if name:
            self.set_tag(run_id, "mlflow.runName", name)
        if status and status in store.TERMINAL:
            self.set_terminated(run_id, status)

    def delete_run(self, run_id: str) -> None:
        self._set_lifecycle(run_id, "deleted")

    def restore_run(self, run_id: str) -> None:
        self._set_lifecycle(run_id, "active")

    def _set_lifecycle(self, run_id: str, stage: str) -> None:
        rid = self._resolve(run_id)
        if rid in self._owned or self._active(rid) is not None:
            raise GitrunError(
                f"Run {rid} is still running; end it (set_terminated or end_run) before "
                f"changing its lifecycle stage to {stage}."
            )

        def edit(rec: RunRecord) -> None:
            rec.lifecycle_stage = stage

        self._edit_finished(rid, edit)

    # -- logging ----------------------------------------------------------
    def log_param(self, run_id: str, key: str, value: Any, synchronous: Any = None) -> Any:
        self.log_batch(run_id, params=[Param(key, str(value))])
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: Any = None,
        **_: Any,
    ) -> None:
        st = metric_step(str(key), step)
        ts = metric_timestamp(str(key), timestamp)
        ts = int(time.time() * 1000) if ts is None else ts
        self.log_batch(run_id, metrics=[Metric(key, value, ts, st)])

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: Any = None) -> None:
        self.log_batch(run_id, tags=[RunTag(key, str(value))])

    def delete_tag(self, run_id: str, key: str) -> None:
        validate_key(key, "tag name")
        live = self._writable(run_id)
        if live is not None:
            live.delete_tag(key)
            return

        def edit(rec: RunRecord) -> None:
            if key not in rec.tags:
                raise InvalidInputError(f"Run {rec.run_id} has no tag '{key}' to delete.")
            del rec.tags[key]

        self._edit_finished(run_id, edit)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: Any = None,
    ) -> None:
        for t in tags:
            if t.key == "mlflow.runName":
                check_run_name(str(t.value))
        for m in metrics:
            metric_step(str(m.key), m.step)
            metric_timestamp(str(m.key), m.timestamp)
        seen: dict[str, str] = {}
        for p in params:
            if p.key in seen and seen[p.key] != str(p.value):
                raise InvalidInputError(
                    f"Duplicate param '{p.key}' with different values in one batch; "
                    "log each param once."
                )
            seen[p.key] = str(p.value)
        live = self._writable(run_id)
        if live is not None:
            for p in params:
                live.log_param(p.key, p.value)
            for m in metrics:
                live.log_metric(m.key, m.value, m.step, m.timestamp)
            for t in tags:
                live.set_tag(t.key, t.value)
            return

        def edit(rec: RunRecord) -> None:
            for p in params:
                validate_key(p.key, "param name")
                text = param_value(p.key, p.value)
                old = rec.params.get(p.key)
                if old is not None and old != text:
                    raise ParamChangedError(
                        f"Changing param values is not allowed: param '{p.key}' was already "
                        f"logged with value '{old}' for run {rec.run_id}, and the new value "
                        f"is '{text}'. Log it under another name or start a new run."
                    )
                rec.params[p.key] = text
            for m in metrics:
                validate_key(m.key, "metric name")
                v = metric_value(m.key, m.value)
                ts = int(time.time() * 1000) if m.timestamp is None else int(m.timestamp)
                rec.history.setdefault(m.key, []).append(Metric(m.key, v, ts, int(m.step or 0)))
            for t in tags:
                validate_key(t.key, "tag name")
                rec.tags[t.key] = tag_value(t.key, t.value)
                if t.key == "mlflow.runName":
                    rec.run_name = rec.tags[t.key]
            rec.metrics = rec.latest_metrics()

        self._edit_finished(run_id, edit)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        if os.path.isdir(local_path):
            self.log_artifacts(run_id, local_path, artifact_dest(local_path, artifact_path))
            return
        if not os.path.exists(local_path):
            raise InvalidInputError(f"Artifact '{local_path}' does not exist; check the path.")
        self._put_files(run_id, [(local_path, artifact_dest(local_path, artifact_path))])

    def log_artifacts(
        self,
        run_id: str,
        local_dir: str,
        artifact_path: str | None = None,
        *,
        max_artifact_files: int | None = None,
        max_artifact_size: int | str | None = None,
    ) -> None:
        from ..capture import artwalk

        lim = artwalk.api_limits(self.repo.work_tree, max_artifact_files, max_artifact_size)
        files = artwalk.dir_files(local_dir, artifact_path, lim)
        self._put_files(run_id, [(full, dest) for full, dest, _ in files])

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._put_bytes(run_id, text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        """MLflow's log_dict: JSON, or YAML for a .yaml/.yml name (the fluent one calls this)."""
        if artifact_file.endswith((".yaml", ".yml")):
            from ..format import yamlio

            data = yamlio.dump(dictionary)
        else:
            data = json.dumps(dictionary, indent=2)
        self.log_text(run_id, data, artifact_file)

    def _put_files(self, run_id: str, files: list[tuple[str, str]]) -> None:
        live = self._writable(run_id)
        if live is not None:
            for src, dest in files:
                live.log_artifact_file(src, dest)
            return
        repo = self.repo

        def edit(rec: RunRecord) -> None:
            from ..capture import artwalk

            for src, dest in files:
                d = safe_artifact_path(dest)
                art = artwalk.store_artifact(repo, os.path.realpath(src), src)
                art.path = d
                rec.artifacts[d] = art

        self._edit_finished(run_id, edit)

    def _put_bytes(self, run_id: str, data: bytes, dest: str) -> None:
        import hashlib

        live = self._writable(run_id)
        if live is not None:
            live.log_artifact_bytes(data, dest)
            return
        repo = self.repo

        def edit(rec: RunRecord) -> None:
            d = safe_artifact_path(dest)
            blob = repo.write_blob(data)
            rec.artifacts[d] = Artifact(d, len(data), hashlib.sha256(data).hexdigest(), "git", blob)

        self._edit_finished(run_id, edit)

    # -- model registry (refs/gitrun/models; tracking/registry.py) -------------
    def create_registered_model(
        self,
        name: str,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        **_: Any,
    ) -> Any:
        from . import registry

        return registry.create_registered_model(name, tags, description, repo=self.repo)

    def get_registered_model(self, name: str) -> Any:
        from . import registry

        return registry.get_registered_model(name, repo=self.repo)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        from . import registry

        return PagedList(
            registry.search_registered_models(filter_string, max_results, order_by, repo=self.repo)
        )

    def update_registered_model(self, name: str, description: str | None = None, **_: Any) -> Any:
        from . import registry

        return registry.update_registered_model(name, description, repo=self.repo)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        from . import registry

        registry.set_registered_model_tag(name, key, value, repo=self.repo)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        from . import registry

        registry.delete_registered_model_tag(name, key, repo=self.repo)

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        await_creation_for: int = 300,
        **_: Any,
    ) -> Any:
        from . import registry

        return registry.create_model_version(
            name, source, run_id, tags, run_link, description, repo=self.repo
        )

    def get_model_version(self, name: str, version: Any) -> Any:
        from . import registry

        return registry.get_model_version(name, version, repo=self.repo)

    def get_model_version_download_uri(self, name: str, version: Any) -> str:
        from . import registry

        return registry.get_model_version_download_uri(name, version, repo=self.repo)

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[Any]:
        from . import registry

        return registry.get_latest_versions(name, stages, repo=self.repo)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        from . import registry

        return PagedList(
            registry.search_model_versions(filter_string, max_results, order_by, repo=self.repo)
        )

    def update_model_version(self, name: str, version: Any, description: str | None = None) -> Any:
        from . import registry

        return registry.update_model_version(name, version, description, repo=self.repo)

    def set_model_version_tag(
        self,
        name: str,
        version: Any = None,
        key: str | None = None,
        value: Any = None,
        stage: str | None = None,
    ) -> None:
        from . import registry

        registry.set_model_version_tag(name, version, key, value, stage, repo=self.repo)

    def delete_model_version_tag(
        self, name: str, version: Any = None, key: str | None = None, stage: str | None = None
    ) -> None:
        from . import registry

        registry.delete_model_version_tag(name, version, key, stage, repo=self.repo)

    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        from . import registry

        registry.set_registered_model_alias(name, alias, version, repo=self.repo)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        from . import registry

        registry.delete_registered_model_alias(name, alias, repo=self.repo)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        from . import registry

        return registry.get_model_version_by_alias(name, alias, repo=self.repo)

    def _not_in_registry(self, what: str) -> Any:
        raise NotImplementedError(
            f"gitrun does not implement MlflowClient.{what}: the registry is a history that "
            "travels with push/pull, and removals would not survive a join with a clone that "
            "still has them; move aliases instead (set_registered_model_alias)."
        )

    def delete_registered_model(self, name: str) -> None:
        self._not_in_registry("delete_registered_model")

    def delete_model_version(self, name: str, version: Any) -> None:
        self._not_in_registry("delete_model_version")

    def rename_registered_model(self, name: str, new_name: str) -> Any:
        self._not_in_registry("rename_registered_model")

    # -- which run a call writes to ------------------------------------------
    def _resolve(self, run_id: str) -> str:
        from ..query import resolve as runs

        if run_id in self._owned or state.find(run_id) is not None:
            return run_id
        return runs.resolve(self.repo, run_id)

    def _active(self, run_id: str) -> LiveRun | None:
        active = state.find(run_id)
        return None if active is None else active.live

    def _writable(self, run_id: str) -> LiveRun | None:
        """The live run to journal into, or None when the run is finished (edit it)."""
        if run_id in self._owned:
            return self._owned[run_id]
        live = self._active(run_id)
        if live is not None:
            return live
        rid = self._resolve(run_id)
        if rid != run_id:
            return self._writable(rid)
        for rec in journal.live_runs(self.repo):
            if rec.run_id == rid:
                raise GitrunError(
                    f"Run {rid} is in progress in another process; log to it from that "
                    "process, or wait until it has finished."
                )
        return None

    def _edit_finished(self, run_id: str, edit: Callable[[RunRecord], None]) -> None:
        rid = self._resolve(run_id)
        trees = store.list_run_trees(self.repo)
        if rid not in trees:
            raise GitrunError(
                f"Run {rid} is in progress in another process; log to it from that "
                "process, or wait until it has finished."
            )
        rec = store.read_record(self.repo, rid, trees[rid], history=True)
        edit(rec)
        rec.updated_time = max(store.now_ms(), (rec.updated_time or 0) + 1)
        store.commit_run(self.repo, rec)
