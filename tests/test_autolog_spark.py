"""Spark ML: gitrun.pyspark.ml.autolog() and the spark model flavor, on a real local Spark
(one SparkSession for the module: local[1], no UI, one shuffle partition), with real MLflow
side by side (file store in a temp dir) and loading what gitrun logged."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import warnings

import pytest

pytest.importorskip("pyspark")

import gitrun  # noqa: E402
import gitrun.pyspark.ml  # noqa: E402
import gitrun.spark  # noqa: E402

LR_PARAMS = {
    "aggregationDepth": "2",
    "elasticNetParam": "0.0",
    "family": "auto",
    "featuresCol": "features",
    "fitIntercept": "True",
    "labelCol": "label",
    "maxBlockSizeInMB": "0.0",
    "maxIter": "5",
    "predictionCol": "prediction",
    "probabilityCol": "probability",
    "rawPredictionCol": "rawPrediction",
    "regParam": "0.0",
    "standardization": "True",
    "threshold": "0.5",
    "tol": "1e-06",
}
PIPELINE_PARAMS = {
    "stages": "['VectorAssembler', 'LogisticRegression']",
    "VectorAssembler.handleInvalid": "error",
    "VectorAssembler.inputCols": "['a', 'b']",
    "VectorAssembler.outputCol": "features",
    **{f"LogisticRegression.{k}": v for k, v in LR_PARAMS.items()},
}
EVALUATOR_INFO = {
    "evaluator_class": "pyspark.ml.evaluation.BinaryClassificationEvaluator",
    "params": {
        "labelCol": "label",
        "metricName": "areaUnderROC",
        "numBins": 1000,
        "rawPredictionCol": "rawPrediction",
    },
}


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("gitrun-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.driver.memory", "512m")
        .config("spark.driver.host", "127.0.0.1")
        # tiny data on a busy machine: a quick JIT and no query code generation
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.adaptive.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data(spark):
    rng = random.Random(0)
    rows = []
    for _ in range(40):
        a, b = rng.random(), rng.random()
        rows.append((a, b, float(a + b + 0.3 * rng.random() > 1.15)))
    return spark.createDataFrame(rows, ["a", "b", "label"])


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    gitrun.pyspark.ml.autolog(disable=True)


def _pipeline():
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    return Pipeline(
        stages=[
            VectorAssembler(inputCols=["a", "b"], outputCol="features"),
            LogisticRegression(maxIter=5),
        ]
    )


def _runs():
    return gitrun.search_runs(search_all_experiments=True, output_format="list")


def _artifacts(run_id, path=None):
    out = []
    for f in gitrun.MlflowClient().list_artifacts(run_id, path):
        out += _artifacts(run_id, f.path) if f.is_dir else [f.path]
    return out


def _json(run_id, path, tmp_path):
    local = gitrun.MlflowClient().download_artifacts(run_id, path, str(tmp_path))
    with open(local, encoding="utf-8") as f:
        return json.load(f)


def test_pipeline_fit_logs_params_tags_metrics_and_model(repo, spark, data, tmp_path):
    import pandas as pd
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    gitrun.pyspark.ml.autolog(log_input_examples=True)
    model = _pipeline().fit(data)
    (run,) = _runs()  # only the outermost fit logs: the pipeline's LogisticRegression.fit not
    rid = run.info.run_id
    test_df = data.select("*")
    predictions = model.transform(test_df)
    evaluator = BinaryClassificationEvaluator()
    auc = evaluator.evaluate(predictions)
    evaluator.evaluate(predictions)  # a second call on the same data: "-2"
    run = gitrun.get_run(rid)
    assert run.info.status == "FINISHED"
    assert run.data.params == PIPELINE_PARAMS
    tags = run.data.tags
    assert tags["estimator_name"] == "Pipeline"
    assert tags["estimator_class"] == "pyspark.ml.pipeline.Pipeline"
    assert tags["mlflow.autologging"] == "pyspark.ml"
    assert run.data.metrics == {"areaUnderROC_test_df": auc, "areaUnderROC-2_test_df": auc}
    c = gitrun.MlflowClient()
    for key in run.data.metrics:
        assert [(m.step, m.value) for m in c.get_metric_history(rid, key)] == [(0, auc)]
    arts = _artifacts(rid)
    assert {"estimator_info.json", "metric_info.json", "model/MLmodel"} <= set(arts)
    assert {"model/conda.yaml", "model/python_env.yaml", "model/requirements.txt"} <= set(arts)
    assert "model/input_example.json" in arts
    assert any(a.startswith("model/sparkml/stages/1_LogisticRegression_") for a in arts)
    assert _json(rid, "estimator_info.json", tmp_path / "e") == {
        "hierarchy": {
            "name": "Pipeline",
            "stages": [{"name": "VectorAssembler"}, {"name": "LogisticRegression"}],
        }
    }
    assert _json(rid, "metric_info.json", tmp_path / "m") == {
        "areaUnderROC-2_test_df": EVALUATOR_INFO,
        "areaUnderROC_test_df": EVALUATOR_INFO,
    }
    from gitrun._git import Repo
    from gitrun.query import resolve

    train = resolve.load(Repo.discover(), rid).inputs["dataset"]
    assert (train.kind, train.context, len(train.digest)) == ("dataset", "train", 8)

    # the MLmodel file MLflow's spark flavor writes
    from gitrun.models import Model

    mm = Model.load(f"runs:/{rid}/model")
    assert mm.flavors["spark"]["model_class"] == "pyspark.ml.pipeline.PipelineModel"
    assert mm.flavors["spark"]["model_data"] == "sparkml"
    assert mm.flavors["python_function"]["loader_module"] == "mlflow.spark"
    assert mm.flavors["python_function"]["data"] == "sparkml"
    assert mm.signature.to_dict()["inputs"] == (
        '[{"type": "double", "name": "a", "required": true}, '
        '{"type": "double", "name": "b", "required": true}]'
    )
    assert mm.signature.to_dict()["outputs"] == '[{"type": "double", "required": true}]'
    example = mm.load_input_example()  # the first 5 rows of the feature columns
    assert list(example.columns) == ["a", "b"] and len(example) == 5

    # round trip through gitrun
    expected = [r.prediction for r in model.transform(data).select("prediction").collect()]
    loaded = gitrun.spark.load_model(f"runs:/{rid}/model")
    assert type(loaded).__name__ == "PipelineModel"
    got = [r.prediction for r in loaded.transform(data).select("prediction").collect()]
    assert got == expected
    pdf = data.select("a", "b").toPandas()
    pyfunc = gitrun.pyfunc.load_model(f"runs:/{rid}/model")
    assert list(pyfunc.predict(pdf)) == expected
    assert gitrun.get_run(rid).data.metrics.keys() == run.data.metrics.keys()  # no new metric

    # ... and through the real MLflow, from the downloaded model directory
    pytest.importorskip("mlflow")
    import mlflow.pyfunc
    import mlflow.spark

    model_dir = c.download_artifacts(rid, "model", str(tmp_path / "dl"))
    real = mlflow.spark.load_model(model_dir)
    assert [r.prediction for r in real.transform(data).select("prediction").collect()] == expected
    assert list(mlflow.pyfunc.load_model(model_dir).predict(pd.DataFrame(pdf))) == expected


def test_estimator_in_user_run_log_models_false_disable_and_save(repo, spark, data, tmp_path):
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    from gitrun.errors import InvalidInputError

    features = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(data)
    gitrun.pyspark.ml.autolog(log_models=False, extra_tags={"team": "ml"})
    with gitrun.start_run() as active:
        LogisticRegression(maxIter=5).fit(features)
    (run,) = _runs()
    assert run.info.run_id == active.info.run_id
    assert run.data.params == LR_PARAMS  # a bare estimator: no stage prefix
    assert run.data.tags["estimator_name"] == "LogisticRegression"
    assert run.data.tags["estimator_class"] == "pyspark.ml.classification.LogisticRegression"
    assert "mlflow.autologging" not in run.data.tags  # the user's run, not autolog's
    assert "team" not in run.data.tags
    assert _artifacts(run.info.run_id) == []  # log_models=False; no hierarchy for one stage

    StringIndexer(inputCol="label", outputCol="idx").fit(data)  # featurizers get no run
    assert len(_runs()) == 1

    gitrun.pyspark.ml.autolog(disable=True)
    lr_model = LogisticRegression(maxIter=5).fit(features)
    assert len(_runs()) == 1

    # the spark flavor by hand: save_model / load_model of a bare model
    path = tmp_path / "saved"
    doc = gitrun.spark.save_model(lr_model, str(path))
    assert doc["flavors"]["spark"]["model_class"] == "pyspark.ml.pipeline.PipelineModel"
    assert sorted(os.listdir(path)) == [
        "MLmodel",
        "conda.yaml",
        "python_env.yaml",
        "requirements.txt",
        "sparkml",
    ]
    assert (path / "requirements.txt").read_text().startswith("pyspark==")
    loaded = gitrun.spark.load_model(str(path))
    assert loaded.stages[0].coefficients == lr_model.coefficients
    with pytest.raises(InvalidInputError, match="MLWritable"):
        gitrun.spark.save_model(object(), str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(InvalidInputError, match="not empty"):
        gitrun.spark.save_model(lr_model, str(path))
    assert len(_runs()) == 1  # saving logs nothing
    mlmodel = (path / "MLmodel").read_text()
    (path / "MLmodel").write_text(mlmodel.replace("model_data: sparkml", "model_data: ../.."))
    with pytest.raises(InvalidInputError, match="not a directory inside the model"):
        gitrun.spark.load_model(str(path))  # a damaged MLmodel never reads outside the model


def test_train_validation_split_logs_search_and_child_runs(repo, spark, data, tmp_path):
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit

    features = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(data)
    lr = LogisticRegression(maxIter=3)
    grid = ParamGridBuilder().addGrid(lr.regParam, [0.0, 0.5]).build()
    tvs = TrainValidationSplit(
        estimator=lr,
        estimatorParamMaps=grid,
        evaluator=BinaryClassificationEvaluator(),
        trainRatio=0.7,
        seed=1,
    )
    gitrun.pyspark.ml.autolog(log_models=False)
    model = tvs.fit(features)  # its trials fit and evaluate in a worker thread: not logged
    scores = list(model.validationMetrics)
    runs = _runs()
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    pid = parent.info.run_id
    assert parent.data.params == {
        "estimator": "LogisticRegression",
        "evaluator": "BinaryClassificationEvaluator",
        "BinaryClassificationEvaluator.labelCol": "label",
        "BinaryClassificationEvaluator.metricName": "areaUnderROC",
        "BinaryClassificationEvaluator.numBins": "1000",
        "BinaryClassificationEvaluator.rawPredictionCol": "rawPrediction",
        "collectSubModels": "False",
        "parallelism": "1",
        "seed": "1",
        "trainRatio": "0.7",
        "best_LogisticRegression.regParam": "0.0" if scores[0] >= scores[1] else "0.5",
    }
    assert parent.data.metrics == {}
    assert parent.data.tags["estimator_name"] == "TrainValidationSplit"
    assert sorted(_artifacts(pid)) == [
        "best_parameters.json",
        "estimator_info.json",
        "search_results.csv",
    ]
    info = _json(pid, "estimator_info.json", tmp_path / "i")
    assert info["hierarchy"]["tuned_estimator"] == {"name": "LogisticRegression"}
    assert info["TrainValidationSplit"]["tuning_parameter_map_list"] == [
        {"LogisticRegression.regParam": 0.0},
        {"LogisticRegression.regParam": 0.5},
    ]
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == pid),
        key=lambda r: r.data.params["regParam"],
    )
    assert [r.data.metrics for r in children] == [{"areaUnderROC": v} for v in scores]
    assert [r.data.params["regParam"] for r in children] == ["0.0", "0.5"]
    assert all(r.data.tags["mlflow.autologging"] == "pyspark.ml" for r in children)


def test_same_keys_as_real_mlflow(repo, spark, data, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    import mlflow
    import mlflow.pyspark.ml
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())

    def train(module):
        model = _pipeline().fit(data)
        val_df = data.select("*")
        BinaryClassificationEvaluator().evaluate(model.transform(val_df))
        return module.last_active_run().info.run_id

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyspark.ml.autolog(log_models=False, silent=True)
        try:
            mid = train(mlflow)
        finally:
            mlflow.pyspark.ml.autolog(disable=True)
    gitrun.pyspark.ml.autolog(log_models=False)
    gid = train(gitrun)
    theirs, ours = mlflow.get_run(mid), gitrun.get_run(gid)
    assert ours.data.params == theirs.data.params
    assert ours.data.metrics.keys() == theirs.data.metrics.keys() == {"areaUnderROC_val_df"}
    (their_input,) = [i for i in theirs.inputs.dataset_inputs if i.tags[0].value == "train"]
    from gitrun._git import Repo
    from gitrun.query import resolve

    our_input = resolve.load(Repo.discover(), gid).inputs["dataset"]
    assert our_input.digest == their_input.dataset.digest  # the same DataFrame, same digest
    assert our_input.context == their_input.tags[0].value == "train"
    keep = ("estimator_name", "estimator_class", "mlflow.autologging")
    assert {k: ours.data.tags[k] for k in keep} == {k: theirs.data.tags[k] for k in keep}
    m = mlflow.MlflowClient()
    their_arts = sorted(f.path for f in m.list_artifacts(mid))
    assert sorted(_artifacts(gid)) == their_arts == ["estimator_info.json", "metric_info.json"]
    for name in their_arts:
        with open(m.download_artifacts(mid, name, str(tmp_path / "theirs"))) as f:
            assert _json(gid, name, tmp_path / "ours") == json.load(f)


def test_missing_pyspark_gives_install_hint(repo):
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import gitrun.pyspark.ml, gitrun.spark\n"
        "for f in (gitrun.pyspark.ml.autolog, lambda: gitrun.spark.load_model('x')):\n"
        "    try:\n"
        "        f()\n"
        "    except Exception as e:\n"
        "        print(type(e).__name__, e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 2, p.stderr
    for line in lines:
        assert line.startswith("MissingDependencyError")
        assert "pip install 'gitrun-ml[spark]'" in line


def test_gitrun_autolog_turns_spark_on_when_pyspark_ml_is_imported(repo):
    code = (
        "import sys, gitrun\n"
        "from gitrun.mlflow import autolog as al\n"
        "gitrun.autolog(log_models=False)\n"
        "print('pyspark' in sys.modules, al.enabled('pyspark.ml'))\n"
        "import pyspark.ml\n"
        "print(al.enabled('pyspark.ml'), al.config('pyspark.ml').log_models)\n"
        "from pyspark.ml.base import Estimator\n"
        "print(hasattr(Estimator.fit, '__gitrun_autolog_original__'))\n"
        "gitrun.autolog(disable=True)\n"
        "print(al.enabled('pyspark.ml'), hasattr(Estimator.fit, '__gitrun_autolog_original__'))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.split("\n")[:4] == [
        "False False",  # gitrun.autolog() imports no framework
        "True False",
        "True",
        "False False",
    ], p.stderr


def test_version_outside_tested_range_warns_once(repo, spark, monkeypatch):
    from gitrun.mlflow import autolog as al
    from gitrun.mlflow import pyspark_ml

    monkeypatch.setattr(pyspark_ml, "TESTED", ("0.1", "0.2"))
    monkeypatch.setattr(al, "_version_warned", set())
    with pytest.warns(UserWarning, match="outside the versions") as caught:
        gitrun.pyspark.ml.autolog()
        gitrun.pyspark.ml.autolog()
    assert len([w for w in caught if "outside the versions" in str(w.message)]) == 1
    assert al.enabled("pyspark.ml")  # it keeps going
    gitrun.pyspark.ml.autolog(disable_for_unsupported_versions=True)
    assert not al.enabled("pyspark.ml")
