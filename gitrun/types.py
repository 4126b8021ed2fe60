"""`gitrun.types` as MLflow programs import it (`from mlflow.types import Schema, ColSpec`);
the classes live in `gitrun.mlflow.signature`."""

from .mlflow.signature import ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec

__all__ = ["ColSpec", "DataType", "ParamSchema", "ParamSpec", "Schema", "TensorSpec"]
