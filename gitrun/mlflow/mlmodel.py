"""MLflow's model directory format (MLmodel + flavor files), written and read without mlflow.

A directory written here loads with `mlflow.sklearn.load_model` and
`mlflow.pyfunc.load_model`; the field names follow what MLflow 2.x/3.x write.
"""

from __future__ import annotations

import datetime
import os
import platform
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ..errors import GitrunError, InvalidInputError

MLMODEL_FILE = "MLmodel"
REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
CONDA_FILE = "conda.yaml"


@dataclass
class ModelInfo:
    """What log_model returns (the subset of MLflow's ModelInfo gitrun can fill)."""

    artifact_path: str
    flavors: dict[str, Any]
    model_uri: str
    model_uuid: str
    run_id: str | None
    utc_time_created: str
    mlflow_version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.artifact_path


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def python_version() -> str:
    return platform.python_version()


def write_env_files(path: str, packages: list[str]) -> None:
    """requirements.txt, python_env.yaml and conda.yaml pinned to the installed versions."""
    from ..format import yamlio

    reqs = []
    for dist in packages:
        v = _version(dist)
        reqs.append(f"{dist}=={v}" if v else dist)
    with open(os.path.join(path, REQUIREMENTS_FILE), "w", encoding="utf-8") as f:
        f.write("".join(r + "\n" for r in reqs))
    pip = _version("pip")
    py_env = {
        "python": python_version(),
        "build_dependencies": [f"pip=={pip}" if pip else "pip", "setuptools", "wheel"],
        "dependencies": ["-r requirements.txt"],
    }
    with open(os.path.join(path, PYTHON_ENV_FILE), "w", encoding="utf-8") as f:
        yamlio.dump(py_env, f)
    conda = {
        "channels": ["conda-forge"],
        "dependencies": [f"python={python_version()}", "pip", {"pip": reqs}],
        "name": "mlflow-env",
    }
    with open(os.path.join(path, CONDA_FILE), "w", encoding="utf-8") as f:
        yamlio.dump(conda, f)


def write_mlmodel(
    path: str,
    flavors: dict[str, Any],
    run_id: str | None = None,
    artifact_path: str | None = None,
) -> dict[str, Any]:
    from ..format import yamlio

    doc: dict[str, Any] = {}
    if artifact_path is not None:
        doc["artifact_path"] = artifact_path
    doc["flavors"] = flavors
    # MLflow only uses mlflow_version to warn about mismatches; write the installed one if any.
    mv = _version("mlflow") or _version("mlflow-skinny")
    if mv:
        doc["mlflow_version"] = mv
    doc["model_uuid"] = uuid.uuid4().hex
    if run_id:
        doc["run_id"] = run_id
    doc["utc_time_created"] = str(datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None))
    with open(os.path.join(path, MLMODEL_FILE), "w", encoding="utf-8") as f:
        yamlio.dump(doc, f)
    return doc


def read_mlmodel(path: str) -> dict[str, Any]:
    from ..format import yamlio

    f = path if os.path.isfile(path) else os.path.join(path, MLMODEL_FILE)
    if not os.path.exists(f):
        raise InvalidInputError(
            f"{path} is not an MLflow model directory (it has no {MLMODEL_FILE} file); "
            "pass the directory log_model or save_model wrote."
        )
    with open(f, encoding="utf-8") as fh:
        doc = yamlio.load(fh)
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise GitrunError(f"{f} is not a valid MLmodel file: it has no flavors mapping.")
    return doc


def prepare_dir(path: str) -> str:
    path = os.path.abspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise InvalidInputError(
            f"Path '{path}' already exists and is not empty; save the model to a new directory."
        )
    os.makedirs(path, exist_ok=True)
    return path
