"""pyspark.ml autologging: `gitrun.pyspark.ml.autolog()`, shaped like `mlflow.pyspark.ml.autolog`.

What an outermost `Estimator.fit` / `Pipeline.fit` records (MLflow's names):
- params: the estimator's params; a Pipeline's stages and any Params-valued param (OneVsRest's
  classifier, a tuner's evaluator) flattened with the stage's name as prefix
  (`LogisticRegression.maxIter`; `<Class>_<n>` when a class occurs more than once);
- tags `estimator_name`, `estimator_class` (and `mlflow.autologging=pyspark.ml` on runs it starts);
- `estimator_info.json` with the stage hierarchy of meta estimators;
- the fitted model (`model/`, the spark flavor) when its class is in the log-model allowlist;
- the training DataFrame as an input (context "train");
- post-training metrics: `Evaluator.evaluate` on the output of the fitted model's `transform`
  logs `<metricName>[-<call index>]_<dataset variable name>` to the fit's run, with
  `metric_info.json` describing each evaluator call.

Fits inside a fit (a Pipeline's stages, a tuner's trials) log nothing of their own; featurizers
(`pyspark.ml.feature.*`) fitted directly get no run.  pyspark is imported inside functions.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections import defaultdict
from typing import Any

from . import autolog as al

FLAVOR = "pyspark.ml"
TESTED = ("3.4.0", "4")  # pyspark versions this module is tested with
ALLOWLIST_CONF = "spark.mlflow.pysparkml.autolog.logModelAllowlistFile"
MAX_KEY = 250  # MLflow's limit on param and metric key lengths

# Models logged by default (as MLflow's built-in allowlist): large ones such as ALS are not.
DEFAULT_ALLOWLIST = frozenset(
    {
        f"pyspark.ml.classification.{n}"
        for n in (
            "LinearSVCModel",
            "DecisionTreeClassificationModel",
            "GBTClassificationModel",
            "LogisticRegressionModel",
            "RandomForestClassificationModel",
            "NaiveBayesModel",
            "OneVsRestModel",
        )
    }
    | {
        f"pyspark.ml.clustering.{n}"
        for n in ("BisectingKMeansModel", "KMeansModel", "GaussianMixtureModel")
    }
    | {
        f"pyspark.ml.regression.{n}"
        for n in (
            "AFTSurvivalRegressionModel",
            "DecisionTreeRegressionModel",
            "GBTRegressionModel",
            "GeneralizedLinearRegressionModel",
            "LinearRegressionModel",
            "RandomForestRegressionModel",
        )
    }
    | {
        f"pyspark.ml.feature.{n}"
        for n in (
            "BucketedRandomProjectionLSHModel",
            "ChiSqSelectorModel",
            "CountVectorizerModel",
            "IDFModel",
            "ImputerModel",
            "MaxAbsScalerModel",
            "MinHashLSHModel",
            "MinMaxScalerModel",
            "OneHotEncoderModel",
            "RobustScalerModel",
            "RFormulaModel",
            "StandardScalerModel",
            "StringIndexerModel",
            "VarianceThresholdSelectorModel",
            "VectorIndexerModel",
            "UnivariateFeatureSelectorModel",
        )
    }
    | {
        "pyspark.ml.pipeline.PipelineModel",
        "pyspark.ml.tuning.CrossValidatorModel",
        "pyspark.ml.tuning.TrainValidationSplitModel",
    }
    | {
        f"synapse.ml.{n}.*"
        for n in (
            "cognitive",
            "exploratory",
            "featurize",
            "geospatial",
            "image",
            "io",
            "isolationforest",
            "lightgbm",
            "nn",
            "opencv",
            "stages",
            "vw",
        )
    }
)

_allowlist: frozenset[str] = DEFAULT_ALLOWLIST


def autolog(
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    log_post_training_metrics: bool = True,
    registered_model_name: str | None = None,
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_model_allowlist: list[str] | None = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Log every outermost pyspark.ml `Estimator.fit` (params, tags, the model) and the
    evaluator metrics computed on its model's predictions; disable=True turns it off."""
    global _allowlist
    if disable:
        al.configure(FLAVOR, disable=True, silent=silent)
        al.unpatch(FLAVOR)
        return
    pyspark = al.require_framework(FLAVOR)
    al.configure(
        FLAVOR,
        log_models=log_models,
        log_datasets=log_datasets,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        log_post_training_metrics=log_post_training_metrics,
        registered_model_name=registered_model_name,
        log_input_examples=log_input_examples,
        log_model_signatures=log_model_signatures,
        extra_tags=extra_tags,
    )
    if not al.supported(FLAVOR, [pyspark.__version__], *TESTED):
        return
    _allowlist = _read_allowlist(log_model_allowlist)
    from pyspark.ml.base import Estimator, Model
    from pyspark.ml.evaluation import Evaluator

    al.unpatch(FLAVOR)  # settings may have changed which methods are patched
    al.patch(FLAVOR, Estimator, "fit", _patched_fit)
    if log_post_training_metrics:
        al.patch(FLAVOR, Model, "transform", _patched_transform)
        al.patch(FLAVOR, Evaluator, "evaluate", _patched_evaluate)


def _cfg() -> al.AutologConfig:
    return al.config(FLAVOR)


def _warn(message: str) -> None:
    al.warn(FLAVOR, message)


# ---------------------------------------------------------------------------
# the log-model allowlist
# ---------------------------------------------------------------------------
def _parse_allowlist(lines: Any) -> frozenset[str]:
    out = set()
    for line in lines:
        s = str(line).strip()
        if s and not s.startswith("#"):
            out.add(s)
    return frozenset(out)


def _read_allowlist(given: list[str] | None) -> frozenset[str]:
    """The `log_model_allowlist` argument, else the file named by the Spark conf
    spark.mlflow.pysparkml.autolog.logModelAllowlistFile (a local path), else the built-in."""
    if given:
        return frozenset(str(m).strip() for m in given)
    from .spark import active_session

    spark = active_session()
    path = None
    if spark is not None:
        try:
            path = spark.sparkContext.getConf().get(ALLOWLIST_CONF, None)
        except Exception:
            path = None
    if not path:
        return DEFAULT_ALLOWLIST
    local = path[len("file://") :] if path.startswith("file://") else path
    try:
        with open(local, encoding="utf-8") as f:
            return _parse_allowlist(f)
    except OSError as e:
        _warn(f"the model allowlist {path} cannot be read ({e}); using the built-in one")
        return DEFAULT_ALLOWLIST


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__name__}"


def _allowed(name: str) -> bool:
    if name in _allowlist:
        return True
    return any(a.endswith("*") and name.startswith(a[:-1]) for a in _allowlist)


def should_log_model(spark_model: Any) -> bool:
    """Whether the model and every model inside it (pipeline stages, OneVsRest's models, a
    tuner's best model) are allowlisted."""
    from pyspark.ml.base import Model

    name = _class_name(spark_model)
    if not _allowed(name):
        return False
    if name == "pyspark.ml.classification.OneVsRestModel":
        return should_log_model(spark_model.models[0])
    if name == "pyspark.ml.pipeline.PipelineModel":
        return all(should_log_model(s) for s in spark_model.stages if isinstance(s, Model))
    if _is_search_model(spark_model):
        return should_log_model(spark_model.bestModel)
    return all(
        should_log_model(v) for v in _param_map(spark_model).values() if isinstance(v, Model)
    )


# ---------------------------------------------------------------------------
# params: flattened with stage names, as MLflow
# ---------------------------------------------------------------------------
def _param_map(instance: Any) -> dict[str, Any]:
    return {p.name: instance.getOrDefault(p) for p in instance.params if instance.isDefined(p)}


def _params_valued(instance: Any) -> dict[str, Any]:
    from pyspark.ml.param import Params

    return {k: v for k, v in _param_map(instance).items() if isinstance(v, Params)}


def _is_search(instance: Any) -> bool:
    from pyspark.ml.tuning import CrossValidator, TrainValidationSplit

    return isinstance(instance, (CrossValidator, TrainValidationSplit))


def _is_search_model(instance: Any) -> bool:
    from pyspark.ml.tuning import CrossValidatorModel, TrainValidationSplitModel

    return isinstance(instance, (CrossValidatorModel, TrainValidationSplitModel))


def _walk(stage: Any) -> Any:
    """The stage and, depth first, every stage inside it."""
    from pyspark.ml import Pipeline

    yield stage
    if isinstance(stage, Pipeline):
        for sub in stage.getStages():
            yield from _walk(sub)
    else:
        for sub in _params_valued(stage).values():
            yield from _walk(sub)


def stage_names(estimator: Any) -> dict[str, str]:
    """uid -> `<Class>`, or `<Class>_<n>` (depth-first order) when the class occurs more than
    once."""
    counts: dict[str, int] = defaultdict(int)
    seen: dict[str, tuple[str, int]] = {}
    for stage in _walk(estimator):
        cls = type(stage).__name__
        counts[cls] += 1
        seen[stage.uid] = (cls, counts[cls])
    return {uid: f"{c}_{n}" if counts[c] > 1 else c for uid, (c, n) in seen.items()}


def _hierarchy(stage: Any, names: dict[str, str]) -> dict[str, Any]:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import OneVsRest

    node: dict[str, Any] = {"name": names[stage.uid]}
    if isinstance(stage, Pipeline):
        node["stages"] = [_hierarchy(s, names) for s in stage.getStages()]
    elif isinstance(stage, OneVsRest):
        node["classifier"] = _hierarchy(stage.getClassifier(), names)
    elif _is_search(stage):
        node["evaluator"] = _hierarchy(stage.getEvaluator(), names)
        node["tuned_estimator"] = _hierarchy(stage.getEstimator(), names)
    elif _params_valued(stage):
        node["params"] = {k: _hierarchy(v, names) for k, v in _params_valued(stage).items()}
    return node


def _has_hierarchy(estimator: Any) -> bool:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import OneVsRest

    return (
        isinstance(estimator, (Pipeline, OneVsRest))
        or _is_search(estimator)
        or bool(_params_valued(estimator))
    )


def flat_params(instance: Any, names: dict[str, str], level: int = 0) -> dict[str, Any]:
    """MLflow's flattened param map: a nested stage's params prefixed with its name."""
    from pyspark.ml import Pipeline
    from pyspark.ml.param import Params

    prefix = "" if level == 0 else names[instance.uid] + "."
    out: dict[str, Any] = {}
    for name, value in _param_map(instance).items():
        key = prefix + name
        if isinstance(instance, Pipeline) and name == "stages":
            out[key] = [names[s.uid] for s in instance.getStages()]
            for s in instance.getStages():
                out.update(flat_params(s, names, level + 1))
        elif _is_search(instance) and name == "estimator":
            out[key] = names[value.uid]  # its params go to estimator_info.json
        elif _is_search(instance) and name == "estimatorParamMaps":
            continue  # in estimator_info.json
        elif isinstance(value, Params):
            out[key] = names[value.uid]
            out.update(flat_params(value, names, level + 1))
        else:
            out[key] = value
    return out


def _tuning_param_maps(search: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    maps = []
    for pm in search.getEstimatorParamMaps():
        row = {}
        for p, v in pm.items():
            if p.parent not in names:
                raise ValueError(f"the tuned param {p} belongs to no stage of the estimator")
            row[f"{names[p.parent]}.{p.name}"] = v
        maps.append(row)
    return maps


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


# ---------------------------------------------------------------------------
# Estimator.fit
# ---------------------------------------------------------------------------
_state = threading.local()  # .quiet: inside an evaluate/transform we watch
# Fits under way in any thread: meta estimators fit and evaluate their stages in worker
# threads (TrainValidationSplit, CrossValidator), which must not log (as MLflow's global
# training session).  Independent fits in several user threads therefore log only the first.
_fitting = [0]
_fitting_lock = threading.Lock()


class _Fitting:
    def __enter__(self) -> None:
        with _fitting_lock:
            _fitting[0] += 1

    def __exit__(self, *exc: Any) -> None:
        with _fitting_lock:
            _fitting[0] -= 1


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _patched_fit(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    with al.outermost() as top:
        params = _arg(args, kwargs, 1, "params")
        if (
            not top
            or _fitting[0] > 0
            or getattr(_state, "quiet", False)
            or _class_name(self).startswith("pyspark.ml.feature.")  # featurizers: no run
        ):
            return original(self, *args, **kwargs)
        if isinstance(params, (list, tuple)):
            _warn(
                f"{_class_name(self)}.fit with a list of param maps is not autologged; call "
                "fit once per param map to log each"
            )
            return original(self, *args, **kwargs)
        with _Fitting(), al.autolog_run(FLAVOR) as live:
            if live is None:
                return original(self, *args, **kwargs)
            estimator = self.copy(params) if isinstance(params, dict) and params else self
            dataset = _arg(args, kwargs, 0, "dataset")
            names = stage_names(estimator)
            with al.safely(FLAVOR, "the estimator's params and tags"):
                _log_before(live, estimator, names, dataset)
            model = original(self, *args, **kwargs)
            _log_after(live, estimator, names, model, dataset)
            return model


def _log_before(live: Any, estimator: Any, names: dict[str, str], dataset: Any) -> None:
    cfg = _cfg()
    info: dict[str, Any] = {}
    if _has_hierarchy(estimator):
        info["hierarchy"] = _hierarchy(estimator, names)
    for stage in _walk(estimator):
        if _is_search(stage):
            info[names[stage.uid]] = {
                "tuning_parameter_map_list": _tuning_param_maps(stage, names),
                "tuned_estimator_parameter_map": flat_params(stage.getEstimator(), names, 1),
            }
    if info:
        import json

        live.log_artifact_bytes(
            json.dumps(_jsonable(info), indent=2).encode("utf-8"), "estimator_info.json"
        )
    for key, value in flat_params(estimator, names).items():
        if len(key) > MAX_KEY:
            _warn(f"param '{key[:40]}...' is longer than {MAX_KEY} characters; truncated")
            key = key[:MAX_KEY]
        try:
            live.log_param(key, value)
        except Exception as e:
            _warn(f"param '{key}' not logged ({e})")
    live.set_tag("estimator_name", type(estimator).__name__)
    live.set_tag("estimator_class", _class_name(estimator))
    if cfg.log_datasets and dataset is not None:
        with al.safely(FLAVOR, "the training dataset"):
            _log_dataset(live, dataset, "train")


def dataset_digest(df: Any) -> str:
    """MLflow's SparkDataset digest: md5 of the logical plan's semantic hash (8 hex digits)."""
    import hashlib
    import struct

    data = struct.pack("<q", int(df.semanticHash()))  # numpy int64's bytes, as MLflow hashes
    return hashlib.md5(data, usedforsecurity=False).hexdigest()[:8]


def _log_dataset(live: Any, df: Any, context: str) -> None:
    from ..format.entities import Input

    live.log_input(Input("dataset", "dataset", 0, dataset_digest(df), context))


def _log_after(live: Any, estimator: Any, names: dict[str, str], model: Any, dataset: Any) -> None:
    cfg = _cfg()
    if _is_search(estimator):
        with al.safely(FLAVOR, "the parameter search results"):
            _log_search(live, estimator, names, model)
    if cfg.log_models:
        with al.safely(FLAVOR, "the model"):
            _log_model(model, dataset)
    if cfg.extra.get("log_post_training_metrics", True):
        with al.safely(FLAVOR, "the model's link to its run (for evaluator metrics)"):
            _models[id(model)] = live.run_id
            weakref.finalize(model, _models.pop, id(model), None)


def _log_model(model: Any, dataset: Any) -> None:
    from . import spark as flavor

    cfg = _cfg()
    if not should_log_model(model):
        _warn(
            f"model {model.uid} is not logged: its class (or a model inside it) is not in the "
            "log-model allowlist; log it with gitrun.spark.log_model, or pass "
            "log_model_allowlist to autolog"
        )
        return
    signature = None
    if cfg.log_model_signatures and dataset is not None:
        try:
            features = dataset.select(
                sorted(feature_columns(dataset, model), key=dataset.columns.index)
            )
            signature = flavor.signature_from_spark(model, features)
        except Exception as e:
            _warn(f"the model signature is not logged ({e})")
    example = None
    if cfg.log_input_examples and dataset is not None:
        with al.safely(FLAVOR, "the input example"):
            example = _input_example(dataset, model)
    flavor.log_model(
        model,
        name="model",
        registered_model_name=cfg.registered_model_name,
        signature=signature if signature is not None else False,
        input_example=example,
    )
    if _is_search_model(model):
        flavor.log_model(model.bestModel, name="best_model")


def feature_columns(df: Any, model: Any) -> set[str]:
    """The input columns the model needs: those whose absence makes transform fail with a
    missing-column error (only the query is analysed, no data is read)."""
    import re

    needed = set()
    for col in df.columns:
        try:
            _ = model.transform(df.drop(col)).schema
        except Exception as e:
            text = str(e)
            if re.search(
                r"does not exist|no such struct field|cannot be resolved|UNRESOLVED_COLUMN",
                text,
                re.IGNORECASE,
            ):
                needed.add(col)
                continue
            raise
    return needed


def _input_example(df: Any, model: Any) -> Any:
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT

    cols = sorted(feature_columns(df, model), key=df.columns.index)
    sample = df.select(cols).limit(5)
    for f in sample.schema.fields:
        if isinstance(f.dataType, VectorUDT):
            sample = sample.withColumn(f.name, vector_to_array(f.name))
    return sample.toPandas()


def _log_search(live: Any, search: Any, names: dict[str, str], model: Any) -> None:
    """CrossValidator / TrainValidationSplit: the metrics of every param map
    (search_results.csv), the best one (best_parameters.json, best_* params), one child run
    per param map."""
    import json

    import numpy as np

    evaluator = search.getEvaluator()
    metric = evaluator.getMetricName()
    metrics: dict[str, list[float]] = {}
    if hasattr(model, "avgMetrics"):
        avg = list(model.avgMetrics)
        metrics["avg_" + metric] = avg
        if getattr(model, "stdMetrics", None):
            metrics["std_" + metric] = list(model.stdMetrics)
    else:
        avg = list(model.validationMetrics)
        metrics[metric] = avg
    best = int(np.argmax(avg) if evaluator.isLargerBetter() else np.argmin(avg))
    maps = _tuning_param_maps(search, names)
    names_in_order = list(dict.fromkeys(k for m in maps for k in m))
    rows = ["params", *metrics, *names_in_order]
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([r if r in metrics or r == "params" else f"param.{r}" for r in rows])
    for i, m in enumerate(maps):
        line: list[Any] = [json.dumps(_jsonable(m))]
        line += [metrics[k][i] for k in metrics]
        line += [m.get(k, "") for k in rows[1 + len(metrics) :]]
        w.writerow(line)
    live.log_artifact_bytes(buf.getvalue().encode("utf-8"), "search_results.csv")
    live.log_artifact_bytes(
        json.dumps(_jsonable(maps[best]), indent=2).encode("utf-8"), "best_parameters.json"
    )
    for k, v in maps[best].items():
        try:
            live.log_param(f"best_{k}", v)
        except Exception as e:
            _warn(f"param 'best_{k}' not logged ({e})")
    _child_runs(live, search, names, metrics)


def _child_runs(live: Any, search: Any, names: dict[str, str], metrics: dict[str, Any]) -> None:
    from .. import tracking
    from ..tracking.client import MlflowClient

    client = MlflowClient()  # as MLflow: children never become the active run
    active = tracking.active_run()
    start = active.info.start_time if active is not None else None
    tuned = search.getEstimator()
    for i, pm in enumerate(search.getEstimatorParamMaps()):
        child_est = tuned.copy(pm)
        tags = {
            "mlflow.autologging": FLAVOR,
            "mlflow.parentRunId": live.run_id,
            "estimator_name": type(child_est).__name__,
            "estimator_class": _class_name(child_est),
        }
        child = client.create_run(live.record.experiment, start_time=start, tags=tags)
        status = "FAILED"
        try:
            for k, v in flat_params(child_est, names).items():
                client.log_param(child.info.run_id, k, v)
            for k, col in metrics.items():
                client.log_metric(child.info.run_id, k, float(col[i]), step=0)
            status = "FINISHED"
        finally:
            client.set_terminated(child.info.run_id, status)


# ---------------------------------------------------------------------------
# post-training metrics: Model.transform output -> Evaluator.evaluate
# ---------------------------------------------------------------------------
_models: dict[int, str] = {}  # id(fitted model) -> run id
_predictions: dict[int, tuple[str, str]] = {}  # id(transform output) -> (run id, dataset name)
_datasets: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
_calls: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = defaultdict(
    lambda: defaultdict(list)
)


def _quiet() -> bool:
    return al.inside_autologged_call() or _fitting[0] > 0 or getattr(_state, "quiet", False)


def variable_name(value: Any, fallback: str = "unknown_dataset") -> str:
    """The name the caller's code gives `value`: walking out from the caller, the first frame
    where it is a local variable and not one of the frame's arguments."""
    frame = inspect.currentframe()
    try:
        frame = frame.f_back if frame is not None else None
        while frame is not None:
            info = inspect.getargvalues(frame)
            passed = [info.locals[a] for a in info.args if a in info.locals]
            if info.varargs:
                passed += list(info.locals.get(info.varargs) or ())
            if info.keywords:
                passed += list((info.locals.get(info.keywords) or {}).values())
            if any(value is a for a in passed):
                frame = frame.f_back
                continue
            for name, local in frame.f_locals.items():
                if local is value:
                    return str(name)
            return fallback
        return fallback
    except Exception:
        return fallback
    finally:
        del frame


def _patched_transform(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    run_id = _models.get(id(self))
    if run_id is None or _quiet():
        return original(self, *args, **kwargs)
    _state.quiet = True
    try:
        result = original(self, *args, **kwargs)
    finally:
        _state.quiet = False
    with al.safely(FLAVOR, "the prediction dataset's name"):
        dataset = _arg(args, kwargs, 0, "dataset")
        name = variable_name(dataset)
        seen = _datasets[run_id][name]
        if id(dataset) not in seen:
            seen.append(id(dataset))
        index = seen.index(id(dataset))
        _predictions[id(result)] = (run_id, name if index == 0 else f"{name}-{index + 1}")
        weakref.finalize(result, _predictions.pop, id(result), None)
    return result


def _patched_evaluate(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    if _quiet():
        return original(self, *args, **kwargs)
    _state.quiet = True
    try:
        metric = original(self, *args, **kwargs)
    finally:
        _state.quiet = False
    dataset = _arg(args, kwargs, 0, "dataset")
    found = _predictions.get(id(dataset))
    if found is None or isinstance(metric, bool):
        return metric
    import numbers

    if not isinstance(metric, numbers.Real):
        return metric
    with al.safely(FLAVOR, "the evaluator metric"):
        params = _arg(args, kwargs, 1, "params")
        evaluator = self.copy(params) if isinstance(params, dict) and params else self
        _log_evaluation(found, evaluator, float(metric))
    return metric


def _log_evaluation(found: tuple[str, str], evaluator: Any, value: float) -> None:
    from .. import tracking
    from ..tracking.client import MlflowClient

    run_id, dataset_name = found
    metric_name = str(evaluator.getMetricName())
    calls = _calls[run_id][metric_name]
    indexed = metric_name if not calls else f"{metric_name}-{len(calls) + 1}"
    key = f"{indexed}_{dataset_name}"[:MAX_KEY]
    params = {k: _jsonable(v) for k, v in _param_map(evaluator).items()}
    calls.append((key, {"evaluator_class": _class_name(evaluator), "params": params}))
    info = dict(sorted(c for per in _calls[run_id].values() for c in per))
    live, opened = None, False
    active = tracking.active_run()
    if active is not None and active.info.run_id == run_id:  # the fit's run is still going
        live = tracking.live_run()
    else:
        attached = tracking.attached_env()
        if attached is not None and attached[0] == run_id:  # `gitrun record`'s run
            live, opened = tracking.attach(*attached), True
    if live is None:  # the fit's run has ended: a new version of it
        client = MlflowClient()
        client.log_metric(run_id, key, value, step=0)
        client.log_dict(run_id, info, "metric_info.json")
        return
    import json

    try:
        live.log_metric(key, value, 0, None)
        live.log_artifact_bytes(json.dumps(info, indent=2).encode("utf-8"), "metric_info.json")
    finally:
        if opened:
            live.end()  # the wrapper owns the run: this only closes our journal handle
