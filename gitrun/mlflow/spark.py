"""Spark MLlib models in MLflow's `spark` flavor format: log_model, save_model, load_model.

`import gitrun as mlflow` then `mlflow.spark.log_model(model, name="model")` writes what
`mlflow.spark.log_model` writes — an MLmodel file with the `spark` and `python_function`
flavors and the model saved by Spark ML persistence under `sparkml/` (always as a
PipelineModel) — so `mlflow.spark.load_model` and `mlflow.pyfunc.load_model` load it, and
gitrun loads models MLflow logged.  pyspark is imported inside the functions that need it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from typing import Any

from ..errors import InvalidInputError, require
from ..query import artifacts
from . import autolog as _autolog
from . import mlmodel

FLAVOR_NAME = "spark"
SPARK_MODEL_PATH_SUB = "sparkml"  # where MLflow puts the Spark ML persistence output
DFS_TMP = "/tmp/gitrun-spark"  # staging directory when Spark's default filesystem is not local
INSTALL_HINT = "'gitrun-ml[spark]'"

# Spark SQL type name -> MLflow column type (mlflow.types.DataType.get_spark_types()).
_SPARK_TYPES = {
    "BooleanType": "boolean",
    "IntegerType": "integer",
    "LongType": "long",
    "FloatType": "float",
    "DoubleType": "double",
    "StringType": "string",
    "BinaryType": "binary",
    "DateType": "datetime",
    "TimestampType": "datetime",
}
SPARKML_VECTOR = "sparkml_vector"  # MLflow's type name for pyspark.ml.linalg vector columns


def _pyspark() -> Any:
    return require("pyspark", INSTALL_HINT)


def fully_qualified_class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__name__}"


# ---------------------------------------------------------------------------
# Spark helpers
# ---------------------------------------------------------------------------
def active_session(create: bool = False) -> Any:
    """The active SparkSession; with create=True a local one is started when there is none."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        spark = getattr(SparkSession, "_instantiatedSession", None)
    if spark is None and create:
        spark = SparkSession.builder.master("local[1]").getOrCreate()
    return spark


def _hadoop_fs(spark: Any) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return jvm, jvm.org.apache.hadoop.fs.FileSystem.get(conf)


def _default_fs_is_local(spark: Any) -> bool:
    """Whether Spark ML persistence writes a plain path to this machine's disk."""
    try:
        jvm, fs = _hadoop_fs(spark)
        return str(fs.getUri().getScheme() or "file") == "file"
    except Exception:
        return True


def _validate_model(spark_model: Any) -> None:
    from pyspark.ml import Model, Transformer
    from pyspark.ml.util import MLReadable, MLWritable

    if not isinstance(spark_model, (Model, Transformer)) or not (
        isinstance(spark_model, MLReadable) and isinstance(spark_model, MLWritable)
    ):
        raise InvalidInputError(
            f"Cannot save a {type(spark_model).__name__} as a Spark model: gitrun.spark saves "
            "pyspark.ml Models and Transformers that implement MLWritable and MLReadable."
        )


def _write_sparkml(spark_model: Any, dest: str, dfs_tmpdir: str | None) -> None:
    """Spark ML persistence into the local directory `dest` (through a DFS staging directory
    when Spark's default filesystem is not this machine's disk, as MLflow does)."""
    spark = active_session()
    if spark is None or _default_fs_is_local(spark):
        spark_model.write().save(dest)
        return
    jvm, fs = _hadoop_fs(spark)
    staged = f"{(dfs_tmpdir or DFS_TMP).rstrip('/')}/{uuid.uuid4().hex}"
    spark_model.write().save(staged)
    fs.copyToLocalFile(
        True, jvm.org.apache.hadoop.fs.Path(staged), jvm.org.apache.hadoop.fs.Path(dest)
    )


_kept: list[str] = []


def _cleanup_kept() -> None:
    for d in _kept:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_kept)


def _load_sparkml(local_dir: str, keep: bool, dfs_tmpdir: str | None = None) -> Any:
    """PipelineModel.load of a local `sparkml` directory.  Spark may read a model's files
    after load returns (e.g. ALS factors), so a copy that would be deleted is kept in a
    temporary directory until the interpreter exits; on a cluster the files are copied to
    the default filesystem first."""
    from pyspark.ml import PipelineModel

    spark = active_session(create=True)
    if not _default_fs_is_local(spark):
        jvm, fs = _hadoop_fs(spark)
        staged = f"{(dfs_tmpdir or DFS_TMP).rstrip('/')}/{uuid.uuid4().hex}"
        fs.copyFromLocalFile(
            False,
            jvm.org.apache.hadoop.fs.Path(os.path.abspath(local_dir)),
            jvm.org.apache.hadoop.fs.Path(staged),
        )
        return PipelineModel.load(staged)
    if not keep:
        tmp = tempfile.mkdtemp(prefix="gitrun-sparkml-")
        _kept.append(tmp)
        target = os.path.join(tmp, SPARK_MODEL_PATH_SUB)
        shutil.copytree(local_dir, target, symlinks=False)
        local_dir = target
    return PipelineModel.load(os.path.abspath(local_dir))


def _data_dir(model_dir: str, conf: dict[str, Any]) -> str:
    """The model's `model_data` directory, refused when it points outside the model."""
    rel = str(conf.get("model_data") or SPARK_MODEL_PATH_SUB)
    root = os.path.realpath(model_dir)
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.isabs(rel) or not full.startswith(root + os.sep) or not os.path.isdir(full):
        raise InvalidInputError(
            f"The spark flavor's model_data '{rel}' is not a directory inside the model "
            f"directory {model_dir}; the model is damaged."
        )
    return full


# ---------------------------------------------------------------------------
# signatures: from Spark schemas, as MLflow infers them for Spark DataFrames
# ---------------------------------------------------------------------------
def _column_type(field: Any) -> str | None:
    from pyspark.ml.linalg import VectorUDT

    if isinstance(field.dataType, VectorUDT):
        return SPARKML_VECTOR
    return _SPARK_TYPES.get(type(field.dataType).__name__)


def unsupported_columns(schema: Any) -> list[str]:
    """Columns whose Spark type has no MLflow column type (arrays, maps, structs, ...)."""
    return [f.name for f in schema.fields if _column_type(f) is None]


def prediction_column(spark_model: Any, columns: list[str]) -> str:
    """`prediction`, or the output column of a pipeline's last stage when it writes none."""
    if "prediction" in columns:
        return "prediction"
    last = spark_model.stages[-1] if hasattr(spark_model, "stages") else spark_model
    if last.hasParam("outputCol") and last.isDefined(last.getParam("outputCol")):
        return str(last.getOrDefault(last.getParam("outputCol")))
    return "prediction"


def signature_from_spark(spark_model: Any, input_df: Any) -> Any:
    """The ModelSignature MLflow infers for a Spark model: the input DataFrame's columns and
    the unnamed prediction column.  Only schemas are analysed: no Spark job runs."""
    import json

    from .signature import ModelSignature, Schema

    bad = unsupported_columns(input_df.schema)
    if bad:
        raise InvalidInputError(
            f"Model inputs contain unsupported Spark data types: {bad}; no signature logged."
        )
    cols = [
        {"type": _column_type(f), "name": f.name, "required": True} for f in input_df.schema.fields
    ]
    inputs = Schema.from_json(json.dumps(cols))
    out_schema = spark_model.transform(input_df).schema
    pred = prediction_column(spark_model, out_schema.names)
    kind = _column_type(out_schema[pred])
    outputs = None
    if kind is not None:
        outputs = Schema.from_json(json.dumps([{"type": kind, "required": True}]))
    return ModelSignature(inputs, outputs)


# ---------------------------------------------------------------------------
# save / log / load
# ---------------------------------------------------------------------------
def save_model(
    spark_model: Any,
    path: str,
    mlflow_model: Any = None,
    conda_env: Any = None,
    code_paths: Any = None,
    dfs_tmpdir: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    _run_id: str | None = None,
    _artifact_path: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Write `spark_model` as an MLflow model directory at `path`; returns the MLmodel contents."""
    pyspark = _pyspark()
    from pyspark.ml import PipelineModel

    _validate_model(spark_model)
    if code_paths:
        raise NotImplementedError(
            "gitrun.spark.save_model does not copy code_paths; the run's code commit "
            "already holds the exact code (gitrun checkout <run>)."
        )
    if not isinstance(spark_model, PipelineModel):
        spark_model = PipelineModel([spark_model])  # as MLflow: always a PipelineModel
    from . import signature as sigs

    example = sigs.input_example(input_example)
    if signature is None and example is not None:
        signature = _signature_from_example(spark_model, input_example)
    sig = sigs.as_signature(signature) if signature is not False else None
    path = mlmodel.prepare_dir(path)
    _write_sparkml(spark_model, os.path.join(path, SPARK_MODEL_PATH_SUB), dfs_tmpdir)
    packages = ["pyspark"]
    mlmodel.write_env_files(path, packages, pip_requirements, extra_pip_requirements)
    flavors = {
        "python_function": mlmodel.pyfunc_flavor("mlflow.spark", data=SPARK_MODEL_PATH_SUB),
        FLAVOR_NAME: {
            "code": None,
            "model_class": fully_qualified_class_name(spark_model),
            "model_data": SPARK_MODEL_PATH_SUB,
            "pyspark_version": pyspark.__version__,
        },
    }
    return mlmodel.write_mlmodel(
        path,
        flavors,
        run_id=_run_id,
        artifact_path=_artifact_path,
        signature=sig,
        example=example,
        metadata=metadata,
    )


def _signature_from_example(spark_model: Any, input_example: Any) -> Any:
    """As MLflow: the example (a pandas DataFrame) as a Spark DataFrame through the model."""
    import pandas as pd

    spark = active_session()
    if spark is None or not isinstance(input_example, pd.DataFrame):
        return None
    try:
        return signature_from_spark(spark_model, spark.createDataFrame(input_example))
    except Exception as e:
        import warnings

        warnings.warn(f"gitrun could not infer the model signature ({e}).", stacklevel=3)
        return None


def log_model(
    spark_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: Any = None,
    dfs_tmpdir: str | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: Any = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    **_: Any,
) -> mlmodel.ModelInfo:
    """Log the model as artifacts of the active run (started if none) under `name`;
    with registered_model_name, also a new version of that registered model."""
    _pyspark()
    _validate_model(spark_model)  # refused before a run is started
    return _autolog.log_model_dir(
        save_model,
        spark_model,
        name or artifact_path or "model",
        registered_model_name,
        dfs_tmpdir=dfs_tmpdir,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        metadata=metadata,
    )


def load_model(model_uri: str, dfs_tmpdir: str | None = None, dst_path: str | None = None) -> Any:
    """Load the Spark model (a pyspark.ml PipelineModel) from runs:/<run_id>/<path>,
    models:/<name>/<version>, a local directory or a file: URI."""
    _pyspark()
    with artifacts.local_copy(model_uri, dst_path) as local:
        conf = mlmodel.read_mlmodel(local)["flavors"].get(FLAVOR_NAME)
        if conf is None:
            raise InvalidInputError(
                f"The model at '{model_uri}' has no spark flavor; load it with the flavor "
                "its MLmodel file names."
            )
        _check_not_connect(conf)
        return _load_sparkml(
            _data_dir(local, conf), keep=dst_path is not None, dfs_tmpdir=dfs_tmpdir
        )


def _check_not_connect(conf: dict[str, Any]) -> None:
    if str(conf.get("model_class") or "").startswith("pyspark.ml.connect."):
        raise NotImplementedError(
            "gitrun does not load Spark Connect ML models; load this one with "
            "mlflow.spark.load_model (pip install mlflow)."
        )


# ---------------------------------------------------------------------------
# pyfunc: predict on a pandas DataFrame, as MLflow's spark flavor does
# ---------------------------------------------------------------------------
class SparkPyfuncModel:
    """A Spark PipelineModel behind `predict(pandas_df) -> list` (MLflow's behaviour: the
    DataFrame goes through the model on the active SparkSession, the prediction column
    comes back as a list)."""

    def __init__(self, spark: Any, spark_model: Any, signature: Any = None) -> None:
        self.spark = spark
        self.spark_model = spark_model
        self.signature = signature

    def get_raw_model(self) -> Any:
        return self.spark_model

    def _vector_columns(self) -> list[str]:
        if self.signature is None or self.signature.inputs is None:
            return []
        out = []
        for spec in self.signature.inputs.inputs:
            d = spec.to_dict() if hasattr(spec, "to_dict") else {}
            if d.get("type") == SPARKML_VECTOR and d.get("name"):
                out.append(str(d["name"]))
        return out

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> list[Any]:
        import pandas as pd
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql import functions as F

        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame(data)
        vectors = [c for c in self._vector_columns() if c in data.columns]
        if vectors:
            data = data.copy()
            for c in vectors:
                data[c] = data[c].map(lambda a: [float(x) for x in a])
        sdf = self.spark.createDataFrame(data)
        for c in vectors:
            sdf = sdf.withColumn(c, array_to_vector(F.col(c)))
        sdf = self._features_as_vector(sdf)
        out = self.spark_model.transform(sdf)
        pred = prediction_column(self.spark_model, out.columns)
        return [row[0] for row in out.select(pred).collect()]

    def _features_as_vector(self, sdf: Any) -> Any:
        """An array<double> column named like the last stage's featuresCol becomes a vector
        (input examples store vectors as arrays)."""
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql import functions as F
        from pyspark.sql import types as t

        stages = getattr(self.spark_model, "stages", None) or [self.spark_model]
        last = stages[-1]
        if not last.hasParam("featuresCol"):
            return sdf
        col = str(last.getOrDefault(last.getParam("featuresCol")))
        for f in sdf.schema.fields:
            if (
                f.name == col
                and isinstance(f.dataType, t.ArrayType)
                and isinstance(f.dataType.elementType, t.DoubleType)
            ):
                return sdf.withColumn(col, array_to_vector(F.col(col)))
        return sdf


def _load_pyfunc(path: str) -> SparkPyfuncModel:
    """gitrun.pyfunc's loader protocol: `path` is the model's `sparkml` directory (or the
    model directory)."""
    _pyspark()
    from .signature import ModelSignature

    model_dir = (
        path
        if os.path.exists(os.path.join(path, mlmodel.MLMODEL_FILE))
        else (os.path.dirname(path.rstrip(os.sep)))
    )
    doc = mlmodel.read_mlmodel(model_dir)
    conf = doc["flavors"].get(FLAVOR_NAME, {})
    _check_not_connect(conf)
    sig = ModelSignature.from_dict(doc["signature"]) if doc.get("signature") else None
    spark = active_session(create=True)
    model = _load_sparkml(_data_dir(model_dir, conf), keep=False)
    return SparkPyfuncModel(spark, model, sig)


def autolog(disable: bool = False, silent: bool = False) -> None:
    """MLflow's mlflow.spark.autolog records Spark datasource reads; gitrun does not."""
    if disable:
        return
    raise NotImplementedError(
        "gitrun does not implement mlflow.spark.autolog (datasource reads); use "
        "gitrun.pyspark.ml.autolog() for pyspark.ml training, and gitrun.log_input for data."
    )
