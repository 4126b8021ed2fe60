"""`gitrun.models`, shaped like `mlflow.models`: signatures, input examples, the MLmodel file.

    from gitrun.models import infer_signature, ModelSignature, Model, get_model_info

What gitrun writes here is MLflow's own format: real MLflow reads the signature and the
input example of a model gitrun saved, and gitrun reads MLflow's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from ..errors import InvalidInputError
from ..query import artifacts
from . import mlmodel
from . import signature as signature
from .mlmodel import ModelInfo
from .signature import (
    ColSpec,
    DataType,
    ModelSignature,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
    infer_signature,
)

# What mlflow.models.ModelInputExample names: the kinds of data an input example may be.
ModelInputExample = Any

__all__ = [
    "ColSpec",
    "DataType",
    "Model",
    "ModelInfo",
    "ModelInputExample",
    "ModelSignature",
    "ParamSchema",
    "ParamSpec",
    "Schema",
    "TensorSpec",
    "get_model_info",
    "infer_signature",
    "set_signature",
]


class Model:
    """An MLmodel file (mlflow.models.Model): flavors, signature, input example."""

    def __init__(
        self,
        artifact_path: str | None = None,
        run_id: str | None = None,
        utc_time_created: str | None = None,
        flavors: dict[str, Any] | None = None,
        signature: Any = None,
        saved_input_example_info: dict[str, Any] | None = None,
        model_uuid: str | None = None,
        mlflow_version: str | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from .signature import as_signature

        self.artifact_path = artifact_path
        self.run_id = run_id
        self.utc_time_created = utc_time_created
        self.flavors = {} if flavors is None else flavors
        self.signature = as_signature(signature)
        self.saved_input_example_info = saved_input_example_info
        self.model_uuid = model_uuid
        self.mlflow_version = mlflow_version
        self.metadata = metadata
        self.model_id = kwargs.pop("model_id", None)
        self._extra = kwargs
        self._dir: str | None = None  # the local directory it was loaded from

    @classmethod
    def from_dict(cls, model_dict: dict[str, Any]) -> Model:
        d = dict(model_dict)
        sig = d.pop("signature", None)
        for key in ("is_signature_from_type_hint", "type_hint_from_example"):
            d.pop(key, None)
        model = cls(**d)
        model.signature = ModelSignature.from_dict(sig) if sig else None
        return model

    @classmethod
    def load(cls, path: str) -> Model:
        """Read the MLmodel file of a model directory, an MLmodel file, or a model URI
        (runs:/<run_id>/<path>, file:)."""
        local = str(path)
        if not os.path.exists(local):
            tmp = tempfile.mkdtemp(prefix="gitrun-mlmodel-")
            try:
                model = cls.from_dict(mlmodel.read_mlmodel(artifacts.resolve_uri(local, tmp)))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return model
        model = cls.from_dict(mlmodel.read_mlmodel(local))
        model._dir = local if os.path.isdir(local) else os.path.dirname(local)
        return model

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "artifact_path": self.artifact_path,
            "flavors": self.flavors,
            "mlflow_version": self.mlflow_version,
            "model_uuid": self.model_uuid,
            "run_id": self.run_id,
            "utc_time_created": self.utc_time_created,
            "metadata": self.metadata,
            "saved_input_example_info": self.saved_input_example_info,
            **self._extra,
        }
        d = {k: v for k, v in d.items() if v is not None}
        if self.signature is not None:
            d["signature"] = self.signature.to_dict()
            d["is_signature_from_type_hint"] = False
            d["type_hint_from_example"] = False
        return dict(sorted(d.items()))

    def to_yaml(self) -> str:
        from ..format import yamlio

        return str(yamlio.dump(self.to_dict()))

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict())

    def save(self, path: str) -> None:
        """Write this MLmodel file at `path` (a file, or a directory to hold MLmodel)."""
        directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
        mlmodel.write_doc(directory, self.to_dict())

    def add_flavor(self, name: str, **params: Any) -> Model:
        self.flavors[name] = params
        return self

    def get_input_schema(self) -> Schema | None:
        return self.signature.inputs if self.signature is not None else None

    def get_output_schema(self) -> Schema | None:
        return self.signature.outputs if self.signature is not None else None

    def get_params_schema(self) -> ParamSchema | None:
        return self.signature.params if self.signature is not None else None

    def _example_dir(self, path: str | None, tmp: str) -> str:
        if path is None:
            if self._dir is not None:
                return self._dir
            if not self.run_id or not self.artifact_path:
                raise InvalidInputError(
                    "This model was not loaded from a directory or a run; pass the model "
                    "directory or runs:/<run_id>/<path> to load_input_example."
                )
            path = f"runs:/{self.run_id}/{self.artifact_path}"
        path = str(path)
        if os.path.exists(path):
            return path
        return artifacts.resolve_uri(path, tmp)

    def load_input_example(self, path: str | None = None) -> Any:
        """The input example saved with the model (DataFrame, numpy array, dict, ...), or
        None when it was saved without one."""
        from .signature import read_example

        if not self.saved_input_example_info:
            return None
        tmp = tempfile.mkdtemp(prefix="gitrun-example-")
        try:
            directory = self._example_dir(path, tmp)
            return read_example(directory, self.saved_input_example_info, self.signature)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def load_input_example_params(self, path: str) -> dict[str, Any] | None:
        import json

        info = self.saved_input_example_info
        if not info or not info.get("params"):
            return None
        tmp = tempfile.mkdtemp(prefix="gitrun-example-")
        try:
            directory = self._example_dir(path, tmp)
            with open(os.path.join(directory, info["artifact_path"]), encoding="utf-8") as f:
                params: dict[str, Any] = json.load(f)["params"]
            return params
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def get_model_info(self, model_uri: str | None = None) -> ModelInfo:
        uri = model_uri or f"runs:/{self.run_id}/{self.artifact_path}"
        doc = self.to_dict()
        doc.setdefault("flavors", {})
        return ModelInfo.from_mlmodel(doc, uri)

    def __repr__(self) -> str:
        return f"Model(run_id={self.run_id!r}, artifact_path={self.artifact_path!r})"


def get_model_info(model_uri: str) -> ModelInfo:
    """The ModelInfo of a saved or logged model (runs:/<run_id>/<path> or a directory)."""
    return Model.load(model_uri).get_model_info(model_uri)


def set_signature(model_uri: str, signature: ModelSignature) -> None:
    """Set the signature of a saved model: a model directory, or runs:/<run_id>/<path>
    (a new version of the run is committed with the rewritten MLmodel)."""
    if not isinstance(signature, ModelSignature):
        raise InvalidInputError("The signature argument must be a ModelSignature object")
    if os.path.exists(model_uri) or model_uri.startswith("file:"):
        local = artifacts.resolve_uri(model_uri)
        model = Model.load(local)
        model.signature = signature
        model.save(local)
        return
    if not model_uri.startswith("runs:"):
        raise InvalidInputError(
            f"set_signature cannot change '{model_uri}': pass a model directory or "
            "runs:/<run_id>/<path>."
        )
    run_id, path = artifacts.parse_runs_uri(model_uri)
    model = Model.load(model_uri)
    model.signature = signature
    tmp = tempfile.mkdtemp(prefix="gitrun-mlmodel-")
    try:
        model.save(tmp)
        from ..tracking.client import MlflowClient

        MlflowClient().log_artifact(
            run_id, os.path.join(tmp, mlmodel.MLMODEL_FILE), artifact_path=path or None
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
