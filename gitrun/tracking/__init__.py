"""The tracking API: MLflow's fluent functions, recording into git.

A run this process owns is journaled under .git/gitrun/live/<id>/ as it is
logged and committed to refs/gitrun/runs when it ends.  A process started by
`gitrun record` (GITRUN_RUN_ID / GITRUN_JOURNAL in its environment) attaches
to the wrapper's run instead: its log calls go to the same journal and the
wrapper commits.

Shaped like mlflow.tracking: this module is the fluent API only; the rules values pass
are in `validation`, runs being written in `live`, the session (active runs, active
experiment) in `state`, and `client` (MlflowClient) builds on those three, never on
this module.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from .._git import Repo
from ..errors import GitrunError, InvalidInputError
from ..format import journal
from ..format.entities import Experiment, Metric, Param, Run
from . import state
from .live import (
    ENV_EXPERIMENT,
    ENV_GIT_DIR,
    ENV_JOURNAL,
    ENV_RUN_ID,
    LiveRun,
    attach,
    attached_env,
    new_run,
    new_run_id,
)
from .state import DEFAULT_EXPERIMENT, ActiveRun, experiment_name
from .state import stack as _stack
from .validation import (
    INT64,
    MAX_KEY,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    artifact_dest,
    check_experiment_name,
    check_run_name,
    metric_step,
    metric_timestamp,
    safe_artifact_path,
    validate_key,
)

if TYPE_CHECKING:
    from .client import MlflowClient

__all__ = [  # the fluent API, and what gitrun's own modules take from here
    "DEFAULT_EXPERIMENT",
    "ENV_EXPERIMENT",
    "ENV_GIT_DIR",
    "ENV_JOURNAL",
    "ENV_RUN_ID",
    "MAX_KEY",
    "MAX_PARAM_VALUE",
    "MAX_TAG_VALUE",
    "ActiveRun",
    "LiveRun",
    "active_run",
    "attach",
    "check_experiment_name",
    "check_run_name",
    "create_experiment",
    "delete_tag",
    "end_run",
    "experiment_name",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_run",
    "last_active_run",
    "live_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "new_run",
    "new_run_id",
    "register_model",
    "report",
    "safe_artifact_path",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
    "validate_key",
]


def _client() -> MlflowClient:
    from .client import MlflowClient

    return MlflowClient()


def _via_client(run_id: str, method: str, *args: Any, **kwargs: Any) -> bool:
    """MLflow's `run_id=` on a fluent call: when `run_id` is not the active run,
    `MlflowClient().<method>(run_id, *args, **kwargs)` writes to it (a finished run gets
    a new version) and this is True; for the active run it is False and the caller logs
    as usual. (No closure: the hot path of log_metric stays free of cell objects.)"""
    if _stack and _stack[-1].info.run_id == run_id:
        return False
    getattr(_client(), method)(run_id, *args, **kwargs)
    return True


# ---------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------
def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    if experiment_name is None and experiment_id is None:
        raise InvalidInputError(
            "set_experiment needs an experiment_name (or experiment_id); both were None."
        )
    name = check_experiment_name(experiment_name if experiment_name is not None else experiment_id)
    state.set_experiment(name)
    return Experiment(experiment_id=name, name=name, artifact_location=f"gitrun:experiments/{name}")


def get_experiment_by_name(name: str) -> Experiment | None:
    return _client().get_experiment_by_name(name)


def get_experiment(experiment_id: str) -> Experiment:
    return _client().get_experiment(experiment_id)


def create_experiment(name: str, artifact_location: str | None = None, tags: Any = None) -> str:
    return _client().create_experiment(name, artifact_location, tags)


# ---------------------------------------------------------------------------
# starting and ending runs
# ---------------------------------------------------------------------------
_atexit_installed = False
_failed = False


def _install_atexit() -> None:
    global _atexit_installed
    if _atexit_installed:
        return
    _atexit_installed = True
    prev_hook = sys.excepthook

    def hook(t: Any, v: Any, tb: Any) -> None:
        global _failed
        _failed = True
        prev_hook(t, v, tb)

    sys.excepthook = hook
    atexit.register(_end_all)


def _end_all() -> None:
    while _stack:
        try:
            end_run("FAILED" if _failed else "FINISHED")
        except Exception as e:  # never a traceback at interpreter exit
            print(f"gitrun: could not end run: {e}", file=sys.stderr)
            _stack.pop()


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    if run_name is not None:
        check_run_name(run_name)
    if experiment_id is not None:
        check_experiment_name(str(experiment_id))
    if _stack and not nested:
        raise GitrunError(
            f"Run {_stack[-1].info.run_id} is already active. To start a nested run, call "
            "start_run with nested=True; to start a new run, end the current one with end_run()."
        )
    _install_atexit()
    attached = attached_env()
    live: LiveRun
    if not _stack and attached and run_id in (None, attached[0]) and not state.attached_once():
        # Inside `gitrun record`: the first top-level run is the wrapper's run.
        live = attach(*attached)
        state.mark_attached()
        if run_name and live.record.tags.get("gitrun.name_from_cli") != "true":
            live.set_name(run_name)
            live.record.run_name = run_name
        if experiment_id is not None or state.experiment():
            if live.record.tags.get("gitrun.experiment_from_cli") != "true":
                name = experiment_name(experiment_id)
                live.journal.write(journal.json_line("x", name))
                live.record.experiment = name
    elif run_id is not None:
        from .live import resume

        live = resume(Repo.discover(), run_id)
    else:
        repo = Repo.discover()
        parent = parent_run_id or (_stack[-1].info.run_id if _stack else None)
        if parent is None and attached:
            parent = attached[0]  # a later run of a script under `gitrun record`
        all_tags = dict(tags or {})
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        if description:
            all_tags["mlflow.note.content"] = description
        # MLflow: an `mlflow.user` tag given here is the run's user_id too.
        user = all_tags.get("mlflow.user")
        live = new_run(
            repo,
            run_name=run_name,
            experiment=experiment_name(experiment_id),
            tags=all_tags,
            user=None if user is None else str(user),
        )
    if run_id is None and tags and not live.owner:
        for k, v in tags.items():
            live.set_tag(k, v)
    active = ActiveRun(live)
    state.push(active)
    return active


def end_run(status: str = "FINISHED") -> None:
    from ..format import store

    if status not in store.STATUSES:
        raise InvalidInputError(
            f"Invalid run status '{status}'; use one of {', '.join(store.TERMINAL)}."
        )
    if _stack:
        state.end(_stack[-1], status)


def active_run() -> ActiveRun | None:
    return _stack[-1] if _stack else None


def last_active_run() -> Run | None:
    if _stack:
        return _stack[-1]
    last = state.last()
    if last is None:
        return None
    return get_run(last.info.run_id)


def live_run() -> LiveRun:
    """The run the fluent API logs to: the innermost active run, started if there is none
    (as MLflow's log functions do)."""
    if not _stack:
        start_run()
    return _stack[-1].live


# ---------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------
def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    live_run().log_param(key, value)
    return value


def log_params(
    params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    if run_id is not None and _via_client(
        run_id, "log_batch", params=[Param(k, str(v)) for k, v in params.items()]
    ):
        return
    live = live_run()
    for k, v in params.items():
        live.log_param(k, v)


def log_metric(
    key: str,
    value: Any,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    **_: Any,
) -> None:
    if step is not None and (type(step) is not int or not -INT64 <= step < INT64):
        step = metric_step(key, step)
    if timestamp is not None and (type(timestamp) is not int or not 0 <= timestamp < INT64):
        timestamp = metric_timestamp(key, timestamp)
    if run_id is not None and _via_client(
        run_id, "log_metric", key, value, timestamp=timestamp, step=step
    ):
        return
    (_stack[-1].live if _stack else live_run()).log_metric(key, value, step, timestamp)


def log_metrics(
    metrics: dict[str, Any],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
    **_: Any,
) -> None:
    if not isinstance(metrics, dict):
        raise InvalidInputError(
            f"log_metrics takes a dict of metric names to values, not {type(metrics).__name__}."
        )
    first = str(next(iter(metrics), ""))
    step = metric_step(first, step) if step is not None else None
    timestamp = metric_timestamp(first, timestamp)
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    if run_id is not None and _via_client(run_id, "log_batch", _points(metrics, ts, step)):
        return
    live = live_run()
    for k, v in metrics.items():
        live.log_metric(k, v, step, ts)


def _points(metrics: dict[str, Any], ts: int, step: int | None) -> list[Metric]:
    return [Metric(k, v, ts, 0 if step is None else step) for k, v in metrics.items()]


# `gitrun sweep` tells a trial its objective metric and, when Optuna prunes, a directory
# through which report() asks the sweep driver whether to stop (docs/sweep.md, "Pruning").
ENV_SWEEP_OBJECTIVE = "GITRUN_SWEEP_OBJECTIVE"
ENV_SWEEP_CHANNEL = "GITRUN_SWEEP_CHANNEL"
SWEEP_REPORTS = "reports"  # in the channel: "<step>\t<value>" lines the trial appends
SWEEP_ANSWERS = "answers"  # in the channel: "<step>\tprune|go" lines the driver appends
PRUNED_TAG = "gitrun.sweep.pruned"
REPORT_WAIT = 30.0  # seconds report() waits for the driver's answer before going on


def report(step: int, value: float, key: str | None = None) -> bool:
    """Log an intermediate objective value; True when the sweep says: stop this trial.

    Logs `value` as the metric `key` (default: the sweep's objective, e.g. f1_score for
    `--maximize metrics.f1_score`, else "objective") at `step`.  Under `gitrun sweep
    --optuna` the driver hands it to the Optuna pruner and answers; a pruned trial is
    tagged gitrun.sweep.pruned and should end now (return, or break out of its loop).
    Elsewhere it only logs, and returns False."""
    name = key or os.environ.get(ENV_SWEEP_OBJECTIVE) or "objective"
    log_metric(name, value, step=step)
    chan = os.environ.get(ENV_SWEEP_CHANNEL)
    if not chan or not os.path.isdir(chan):
        return False
    line = f"{int(step)}\t{float(value)!r}\n".encode()
    fd = os.open(os.path.join(chan, SWEEP_REPORTS), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    want = f"{int(step)}\t"
    deadline = time.monotonic() + REPORT_WAIT
    answers = os.path.join(chan, SWEEP_ANSWERS)
    while time.monotonic() < deadline:
        try:
            with open(answers, encoding="utf-8") as f:
                for got in f.read().splitlines():
                    if got.startswith(want):
                        if got[len(want) :] == "prune":
                            set_tag(PRUNED_TAG, "true")
                            return True
                        return False
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    return False  # no driver answered (it is gone): go on


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    if key == "mlflow.runName":
        check_run_name(str(value))
    live = live_run()
    live.set_tag(key, value)
    if key == "mlflow.runName":
        _stack[-1].info.run_name = str(value)


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    for k, v in tags.items():
        set_tag(k, v)


def delete_tag(key: str) -> None:
    live_run().delete_tag(key)


def log_artifact(
    local_path: str,
    artifact_path: str | None = None,
    run_id: str | None = None,
    *,
    max_artifact_files: int | None = None,
    max_artifact_size: int | str | None = None,
) -> None:
    """MLflow's log_artifact; a directory is logged by `log_artifacts` (and its limits)."""
    if os.path.isdir(local_path):
        log_artifacts(
            local_path,
            artifact_dest(local_path, artifact_path),
            run_id,
            max_artifact_files=max_artifact_files,
            max_artifact_size=max_artifact_size,
        )
        return
    if run_id is not None and _via_client(run_id, "log_artifact", local_path, artifact_path):
        return
    if not os.path.exists(local_path):
        raise InvalidInputError(
            f"Artifact '{local_path}' does not exist; check the path (relative paths are "
            f"taken from {os.getcwd()})."
        )
    live_run().log_artifact_file(local_path, artifact_dest(local_path, artifact_path))


def log_artifacts(
    local_dir: str,
    artifact_path: str | None = None,
    run_id: str | None = None,
    *,
    max_artifact_files: int | None = None,
    max_artifact_size: int | str | None = None,
) -> None:
    """MLflow's log_artifacts, guarded: symlinks never lead out of `local_dir`, special
    files are skipped, and at most `max_artifact_files` files / `max_artifact_size` bytes
    (default 10,000 and 2 GiB; 0: no limit) are taken, checked before anything is stored.
    """
    if run_id is not None and _via_client(
        run_id,
        "log_artifacts",
        local_dir,
        artifact_path,
        max_artifact_files=max_artifact_files,
        max_artifact_size=max_artifact_size,
    ):
        return
    from ..capture import artwalk

    live = live_run()
    lim = artwalk.api_limits(live.repo.work_tree, max_artifact_files, max_artifact_size)
    for full, dest, shown in artwalk.dir_files(local_dir, artifact_path, lim):
        try:
            live.log_artifact_file(full, dest, shown)
        except InvalidInputError as e:
            print(f"gitrun: {e} It was skipped.", file=sys.stderr)


def log_input(
    dataset: Any = None,
    context: str | None = None,
    tags: dict[str, str] | None = None,
    model: Any = None,
    *,
    store: bool = False,
) -> None:
    """Record data the run read, hashed, not copied (inputs.tsv): a path to a file or
    directory (`gitrun.log_input("data/train.csv", context="training")`), or MLflow's
    dataset from `gitrun.data.from_pandas` / `from_numpy` (kind "dataset").  `tags` are
    accepted for MLflow's signature; gitrun keeps name, digest and context.  With
    `store=True` a path's content is also kept with the run (artifacts under
    gitrun.inputs/, large files in Git LFS or the artifact store), so `gitrun checkout`
    and `gitrun rerun` can put it back."""
    from ..format.entities import Input

    live = live_run()
    ctx = "" if context is None else str(context)
    if dataset is None:
        return
    if isinstance(dataset, (str, os.PathLike)):
        from ..capture import inputs

        repo = live.repo
        if repo.work_tree is None:  # attached to `gitrun record`'s run: paths from here
            try:
                repo = Repo.discover(os.getcwd())
            except GitrunError:
                pass
        if store:
            from ..capture import artwalk

            lim = artwalk.api_limits(repo.work_tree, None, None)
            inp, copies = inputs.store_path(repo, os.fspath(dataset), repo.work_tree, lim, ctx)
            live.log_input(inp, copies)
            return
        (inp,) = inputs.hash_paths(repo, [os.fspath(dataset)], ctx)
    else:
        if store:
            raise InvalidInputError(
                "store=True keeps a copy of a file or directory; a dataset is recorded by its "
                "digest only (log the data with log_artifact to keep it)."
            )
        digest = getattr(dataset, "digest", None)
        if not isinstance(digest, str) or not digest:
            raise InvalidInputError(
                "log_input takes a path or a dataset from gitrun.data.from_pandas / "
                f"from_numpy, not {type(dataset).__name__}."
            )
        name = str(getattr(dataset, "name", None) or "dataset")
        size = getattr(dataset, "size", 0)
        inp = Input(name, "dataset", size if isinstance(size, int) else 0, digest, ctx)
    live.log_input(inp)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    if run_id is not None and _via_client(run_id, "log_text", text, artifact_file):
        return
    live_run().log_artifact_bytes(text.encode("utf-8"), artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: str | None = None) -> None:
    """MLflow's log_dict (JSON, or YAML for a .yaml/.yml name): MlflowClient.log_dict
    writing to `run_id`, or to the active run (started if none)."""
    if run_id is None or (_stack and _stack[-1].info.run_id == run_id):
        run_id = live_run().run_id
    _client().log_dict(run_id, dictionary, artifact_file)


def log_figure(
    figure: Any, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None
) -> None:
    import io

    buf = io.BytesIO()
    ext = os.path.splitext(artifact_file)[1].lstrip(".") or "png"
    if hasattr(figure, "savefig"):  # matplotlib
        figure.savefig(buf, format=ext, **(save_kwargs or {}))
    elif hasattr(figure, "to_image"):  # plotly
        buf.write(figure.to_image(format=ext))
    elif hasattr(figure, "write_html") and ext == "html":
        buf.write(figure.to_html().encode())
    else:
        raise InvalidInputError(
            f"log_figure needs a matplotlib or plotly figure, not {type(figure).__name__}."
        )
    live_run().log_artifact_bytes(buf.getvalue(), artifact_file)


def log_image(image: Any, artifact_file: str | None = None, **_: Any) -> None:
    if artifact_file is None:
        raise NotImplementedError(
            "gitrun.log_image needs artifact_file; step-indexed image logging (key=, step=) "
            "is not implemented - pass artifact_file='name.png'."
        )
    try:
        from PIL import Image
    except ImportError:
        raise InvalidInputError(
            "log_image needs Pillow to encode images; install it with `pip install pillow`."
        ) from None
    img = image if isinstance(image, Image.Image) else Image.fromarray(_to_uint8(image))
    import io

    buf = io.BytesIO()
    img.save(buf, format=os.path.splitext(artifact_file)[1].lstrip(".").upper() or "PNG")
    live_run().log_artifact_bytes(buf.getvalue(), artifact_file)


def _to_uint8(arr: Any) -> Any:
    import numpy as np

    a = np.asarray(arr)
    if a.dtype.kind == "f":
        a = (np.clip(a, 0, 1) * 255).round().astype("uint8")
    return a


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def get_run(run_id: str) -> Run:
    return _client().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    return _client().get_metric_history(run_id, key)


def register_model(
    model_uri: str,
    name: str,
    await_registration_for: Any = None,
    *,
    tags: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """MLflow's register_model: a new version of `name` (created when new) for a
    runs:/<run_id>/<path> model; kept on refs/gitrun/models (tracking/registry.py)."""
    from . import registry

    return registry.register_model(model_uri, name, await_registration_for, tags=tags)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    run = _stack[-1] if _stack else None
    if run is None:
        raise GitrunError("No active run: start one with gitrun.start_run() first.")
    base = run.info.artifact_uri
    return f"{base}/{artifact_path}" if artifact_path else base


def __getattr__(name: str) -> Any:
    # `from mlflow.tracking import MlflowClient`, as MLflow programs write it; loaded on use.
    if name == "MlflowClient":
        from .client import MlflowClient

        return MlflowClient
    raise AttributeError(f"module 'gitrun.tracking' has no attribute '{name}'")
