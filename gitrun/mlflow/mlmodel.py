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
# how a flavor that pickles its model (sklearn, lightgbm's scikit-learn API) writes it
SERIALIZATION_PICKLE = "pickle"
SERIALIZATION_CLOUDPICKLE = "cloudpickle"
PICKLE_FORMATS = (SERIALIZATION_PICKLE, SERIALIZATION_CLOUDPICKLE)


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
    registered_model_version: int | None = None  # set when log_model registered it
    saved_input_example_info: dict[str, Any] | None = None
    signature_dict: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.artifact_path

    @property
    def signature(self) -> Any:
        """The model's ModelSignature (None when it was saved without one)."""
        if not self.signature_dict:
            return None
        from .signature import ModelSignature

        return ModelSignature.from_dict(self.signature_dict)

    @classmethod
    def from_mlmodel(cls, doc: dict[str, Any], model_uri: str) -> ModelInfo:
        return cls(
            artifact_path=doc.get("artifact_path") or "",
            flavors=doc["flavors"],
            model_uri=model_uri,
            model_uuid=doc.get("model_uuid") or "",
            run_id=doc.get("run_id"),
            utc_time_created=str(doc.get("utc_time_created") or ""),
            mlflow_version=doc.get("mlflow_version"),
            metadata=doc.get("metadata") or {},
            saved_input_example_info=doc.get("saved_input_example_info"),
            signature_dict=doc.get("signature"),
        )


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def python_version() -> str:
    return platform.python_version()


def pyfunc_flavor(loader_module: str, **conf: Any) -> dict[str, Any]:
    """The python_function flavor entry of a model directory that `loader_module` loads: the
    environment files, the Python version and the flavor's own keys (data, model_path, ...),
    sorted as MLflow writes them."""
    entry = {
        "env": {"conda": CONDA_FILE, "virtualenv": PYTHON_ENV_FILE},
        "loader_module": loader_module,
        "python_version": python_version(),
        **conf,
    }
    return dict(sorted(entry.items()))


def write_env_files(
    path: str,
    packages: list[str],
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
) -> None:
    """requirements.txt, python_env.yaml and conda.yaml pinned to the installed versions.

    `packages` are the flavor's own requirements; save_model's `pip_requirements` replace
    them and its `extra_pip_requirements` are added, as in MLflow."""
    from ..format import yamlio

    if pip_requirements is not None:
        packages = list(pip_requirements)
    packages = list(packages) + list(extra_pip_requirements or [])
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
    signature: Any = None,
    example: Any = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the MLmodel file, keys sorted as MLflow writes them; returns its contents.

    `signature` is the model's ModelSignature (None: none; its to_dict() is the `signature:`
    block MLflow writes), and `example` the signature.InputExample saved beside it (its info
    is the `saved_input_example_info` entry; its files are written here too).
    """
    if example:
        example.save(path)
    signature = signature.to_dict() if signature else None
    saved_input_example_info = dict(sorted(example.info.items())) if example else None
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
    if metadata:
        doc["metadata"] = metadata
    if saved_input_example_info:
        doc["saved_input_example_info"] = saved_input_example_info
    if signature:
        doc["signature"] = signature
        doc["is_signature_from_type_hint"] = False
        doc["type_hint_from_example"] = False
    doc = dict(sorted(doc.items()))
    write_doc(path, doc)
    return doc


def write_doc(path: str, doc: dict[str, Any]) -> None:
    """(Re)write the MLmodel file of the model directory `path`."""
    from ..format import yamlio

    with open(os.path.join(path, MLMODEL_FILE), "w", encoding="utf-8") as f:
        yamlio.dump(doc, f)


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


def flavor_entry(doc: dict[str, Any], flavor: str, where: str) -> dict[str, Any]:
    """The `flavor` entry of the MLmodel contents `doc` of the model at `where`; refused, naming
    the flavors it has, when there is none."""
    conf = doc["flavors"].get(flavor)
    if conf is None:
        raise InvalidInputError(
            f"The model at '{where}' has no {flavor} flavor (it has "
            f"{', '.join(doc['flavors'])}); load it with the matching flavor."
        )
    return conf


def inside_model(model_dir: str, rel: str) -> str:
    """The real path of `model_dir/rel`, refused when `rel` (read from the MLmodel file) points
    outside `model_dir`."""
    full = os.path.realpath(os.path.join(model_dir, rel))
    base = os.path.realpath(model_dir)
    if full != base and not full.startswith(base + os.sep):
        raise InvalidInputError(f"The MLmodel file names a path outside the model: '{rel}'.")
    return full


def default_serialization() -> str:
    """cloudpickle when it is installed (MLflow's default), else pickle."""
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        return SERIALIZATION_PICKLE
    return SERIALIZATION_CLOUDPICKLE


def dump_pickled(model: Any, path: str, fmt: str) -> None:
    """Write `model` at `path` with pickle or cloudpickle (`fmt`, one of PICKLE_FORMATS)."""
    import pickle

    with open(path, "wb") as f:
        if fmt == SERIALIZATION_CLOUDPICKLE:
            import cloudpickle

            cloudpickle.dump(model, f)
        else:
            pickle.dump(model, f, protocol=pickle.DEFAULT_PROTOCOL)


def load_pickled(path: str, conf: dict[str, Any], default_format: str, where: str) -> Any:
    """The model a flavor pickled at `path`; `conf` is its flavor entry (serialization_format,
    else `default_format`; also skops, which MLflow 3 writes when skops is installed)."""
    import pickle

    from ..errors import require

    fmt = conf.get("serialization_format", default_format)
    if fmt == "skops":
        skops_io = require("skops.io", "skops")
        trusted = conf.get("skops_trusted_types") or skops_io.get_untrusted_types(file=path)
        return skops_io.load(path, trusted=trusted)
    if fmt not in PICKLE_FORMATS:
        raise InvalidInputError(f"Unsupported serialization format '{fmt}' in {where}.")
    with open(path, "rb") as f:
        if fmt == SERIALIZATION_CLOUDPICKLE:
            return require("cloudpickle", "cloudpickle").load(f)
        return pickle.load(f)


def prepare_dir(path: str) -> str:
    path = os.path.abspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise InvalidInputError(
            f"Path '{path}' already exists and is not empty; save the model to a new directory."
        )
    os.makedirs(path, exist_ok=True)
    return path
