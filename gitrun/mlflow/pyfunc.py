"""`gitrun.pyfunc.load_model`: a generic `.predict` for models in MLflow's format.

gitrun loads the flavors it implements itself (sklearn); a model of any other flavor
needs `mlflow.pyfunc.load_model`, which reads the same directory.
"""

from __future__ import annotations

import os
from typing import Any

from ..query import artifacts
from . import mlmodel

# loader_module in MLmodel -> gitrun's implementation of that flavor
_LOADERS = {"mlflow.sklearn": "gitrun.sklearn", "gitrun.sklearn": "gitrun.sklearn"}
_LOADERS.update(  # torch and Keras models (gitrun/mlflow/pytorch.py, keras.py)
    {f"{p}.{f}": f"gitrun.{f}" for f in ("pytorch", "keras") for p in ("mlflow", "gitrun")}
)
_LOADERS.update({"mlflow.spark": "gitrun.spark", "gitrun.spark": "gitrun.spark"})  # spark.py
_LOADERS.update(  # xgboost and lightgbm models (gitrun/mlflow/xgboost.py, lightgbm.py)
    {f"{p}.{f}": f"gitrun.{f}" for f in ("xgboost", "lightgbm") for p in ("mlflow", "gitrun")}
)


class PyFuncModel:
    """The loaded model behind a uniform `predict(data)`."""

    def __init__(self, model: Any, meta: dict[str, Any], predict_fn: str = "predict") -> None:
        self._model = model
        self.metadata = meta
        self._predict_fn = predict_fn

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return getattr(self._model, self._predict_fn)(data)

    def get_raw_model(self) -> Any:
        return self._model

    unwrap_python_model = get_raw_model

    @property
    def loader_module(self) -> str:
        return str(self.metadata["flavors"]["python_function"]["loader_module"])

    def __repr__(self) -> str:
        run = self.metadata.get("run_id")
        return f"<gitrun.pyfunc.PyFuncModel {type(self._model).__name__} run_id={run}>"


def load_model(
    model_uri: str, suppress_warnings: bool = False, dst_path: str | None = None, **_: Any
) -> PyFuncModel:
    with artifacts.local_copy(model_uri, dst_path) as local:
        return _load_from(model_uri, local)


def _load_from(model_uri: str, local: str) -> PyFuncModel:
    import importlib

    meta = mlmodel.read_mlmodel(local)
    conf = meta["flavors"].get("python_function")
    if conf is None:
        raise NotImplementedError(
            f"The model at '{model_uri}' has no python_function flavor, so it cannot be "
            "loaded generically; load it with its own flavor."
        )
    loader = _LOADERS.get(str(conf.get("loader_module")))
    if loader is None:
        raise NotImplementedError(
            f"gitrun cannot load models of loader module '{conf.get('loader_module')}'; "
            "load this model with mlflow.pyfunc.load_model (pip install mlflow)."
        )
    path = os.path.join(local, conf.get("model_path", "")) if conf.get("model_path") else local
    if os.path.isfile(path):
        path = local  # the flavor reads MLmodel itself to know the serialization format
    model = importlib.import_module(loader)._load_pyfunc(path)
    return PyFuncModel(model, meta, str(conf.get("predict_fn") or "predict"))
