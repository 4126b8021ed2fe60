"""MLflow names gitrun answers differently, or not at all (docs/mlflow.md has the table).

Kept free of heavy imports: `gitrun.__getattr__` consults it on every unknown name.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

# MLflow name -> what to use instead.  Accessing one gives a function that raises
# NotImplementedError when called (hasattr() stays True, calling is never a silent no-op).
NOT_IMPLEMENTED: dict[str, str] = {
    "log_inputs": "call gitrun.log_input once per dataset",
    "log_outputs": "log outputs with gitrun.log_artifact or gitrun.log_dict",
    "log_table": "write the table with gitrun.log_dict or gitrun.log_text (e.g. CSV)",
    "load_table": "download the artifact with gitrun.MlflowClient().download_artifacts",
    "evaluate": "compute metrics yourself (e.g. sklearn.metrics) and gitrun.log_metrics",
    "run": "run the command under `gitrun record -- <command>`",
    "projects": "run the command under `gitrun record -- <command>`",
    "delete_experiment": "experiments are names on runs; delete the runs with MlflowClient",
    "set_experiment_tag": "tag the runs with gitrun.set_tag",
    "set_experiment_tags": "tag the runs with gitrun.set_tags",
    "search_traces": "gitrun records runs, not GenAI traces",
    "trace": "gitrun records runs, not GenAI traces",
    "start_span": "gitrun records runs, not GenAI traces",
    "get_trace": "gitrun records runs, not GenAI traces",
    "log_trace": "gitrun records runs, not GenAI traces",
    "enable_system_metrics_logging": "log system metrics yourself with gitrun.log_metric",
    "disable_system_metrics_logging": "log system metrics yourself with gitrun.log_metric",
    "log_model": "use the flavor's log_model, e.g. gitrun.sklearn.log_model",
    "tensorflow": "only the sklearn flavor is built in; save the model and gitrun.log_artifact",
    "transformers": "only the sklearn flavor is built in; save_pretrained and gitrun.log_artifacts",
    "openai": "gitrun records runs, not GenAI traces",
    "langchain": "gitrun records runs, not GenAI traces",
    "genai": "gitrun records runs, not GenAI traces",
}


class NotImplementedAttribute(NotImplementedError, AttributeError):
    pass


class _Missing:
    """Stands for an MLflow function or module gitrun does not implement."""

    def __init__(self, name: str, alternative: str) -> None:
        self._name = name
        self._alternative = alternative

    def _message(self, what: str) -> str:
        return f"gitrun does not implement mlflow.{what}; {self._alternative}."

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(self._message(self._name))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise NotImplementedAttribute(self._message(f"{self._name}.{attr}"))

    def __repr__(self) -> str:
        return f"<not implemented in gitrun: mlflow.{self._name}>"


def missing(name: str) -> Callable[..., NoReturn] | None:
    alt = NOT_IMPLEMENTED.get(name)
    return _Missing(name, alt) if alt else None  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# tracking URI: gitrun always records into the git repository around the cwd
# ---------------------------------------------------------------------------


def _client() -> Any:
    from ..tracking.client import MlflowClient

    return MlflowClient()


def delete_run(run_id: str) -> None:
    _client().delete_run(run_id)


def search_experiments(*args: Any, **kwargs: Any) -> list[Any]:
    return _client().search_experiments(*args, **kwargs)  # type: ignore[no-any-return]


def register_model(model_uri: str, name: str, *args: Any, **kwargs: Any) -> Any:
    from ..tracking import register_model as register

    return register(model_uri, name, *args, **kwargs)


def search_registered_models(*args: Any, **kwargs: Any) -> list[Any]:
    return _client().search_registered_models(*args, **kwargs)  # type: ignore[no-any-return]


def search_model_versions(*args: Any, **kwargs: Any) -> list[Any]:
    return _client().search_model_versions(*args, **kwargs)  # type: ignore[no-any-return]


# Names module-level MLflow code uses that live here (gitrun.__getattr__ serves them).
from ..tracking.uri import get_tracking_uri, is_tracking_uri_set, set_tracking_uri  # noqa: E402

EXTRA = {
    "set_tracking_uri": set_tracking_uri,
    "get_tracking_uri": get_tracking_uri,
    "is_tracking_uri_set": is_tracking_uri_set,
    "delete_run": delete_run,
    "search_experiments": search_experiments,
    # the model registry is the repository's refs/gitrun/models: its URI is the tracking URI
    "register_model": register_model,
    "search_registered_models": search_registered_models,
    "search_model_versions": search_model_versions,
    "set_registry_uri": set_tracking_uri,
    "get_registry_uri": get_tracking_uri,
}

# ---------------------------------------------------------------------------
# MLflow submodules gitrun implements: `import gitrun.X` and `from gitrun.X import name`
# work for each name listed (docs/mlflow.md; tests/test_mlflow_imports.py walks this table).
# ---------------------------------------------------------------------------
SUBMODULES: dict[str, tuple[str, ...]] = {
    "entities": (
        "Experiment",
        "ExperimentTag",
        "FileInfo",
        "LifecycleStage",
        "Metric",
        "Param",
        "Run",
        "RunData",
        "RunInfo",
        "RunStatus",
        "RunTag",
        "SourceType",
        "ViewType",
    ),
    "models": (
        "Model",
        "ModelInputExample",
        "ModelSignature",
        "get_model_info",
        "infer_signature",
        "set_signature",
    ),
    "models.signature": ("ModelSignature", "infer_signature", "set_signature"),
    "types": ("ColSpec", "DataType", "ParamSchema", "ParamSpec", "Schema", "TensorSpec"),
    "artifacts": ("download_artifacts", "list_artifacts", "load_dict", "load_image", "load_text"),
    "exceptions": ("MlflowException",),
    "client": ("MlflowClient",),
    "sklearn": ("autolog", "load_model", "log_model", "save_model"),
    "pytorch": ("autolog", "load_checkpoint", "load_model", "log_model", "save_model"),
    "keras": ("autolog", "load_model", "log_model", "save_model"),
    "xgboost": ("autolog", "load_model", "log_model", "save_model"),
    "lightgbm": ("autolog", "load_model", "log_model", "save_model"),
    "spark": ("load_model", "log_model", "save_model"),
    "pyspark.ml": ("autolog",),
    "pyfunc": ("load_model",),
    "data": ("from_numpy", "from_pandas"),
}
