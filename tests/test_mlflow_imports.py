"""The imports and names real MLflow programs use: `from gitrun.models import infer_signature`,
`gitrun.artifacts`, `gitrun.entities`, and every MLflow submodule the compat table claims.

Side by side with real MLflow where it is installed: the signature JSON gitrun infers is
MLflow's, MLflow reads the signature and input example of a model gitrun saved, and gitrun
reads MLflow's.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import gitrun
from gitrun.mlflow import compat

from .test_mlflow_compat import _env

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parent.parent


def _cases() -> dict[str, tuple[object, object, object]]:
    return {
        "dataframe": (
            pd.DataFrame(
                {
                    "a": [1, 2],
                    "b": [1.5, 2.5],
                    "c": ["x", "y"],
                    "d": [True, False],
                    "e": np.array([1, 2], dtype="int32"),
                    "f": np.array([1, 2], dtype="float32"),
                    "t": pd.to_datetime(["2020-01-01", "2020-01-02"]),
                    "by": [b"a", b"b"],
                }
            ),
            np.array([0, 1]),
            None,
        ),
        "missing": (
            pd.DataFrame({"a": [1, None], "b": ["x", None], "c": [[1, 2], [3]]}),
            None,
            None,
        ),
        "unnamed columns": (pd.DataFrame(np.zeros((2, 2))), pd.Series(["a", "b"]), None),
        "tensors": (np.zeros((3, 4), dtype=np.float32), np.array([1.0, 2.0, 3.0]), None),
        "named tensors": ({"a": np.zeros((2, 3)), "b": np.array(["x", "y"])}, None, None),
        "lists": ([1, 2, 3], ["a", "b"], None),
        "nested lists": ([[1, 2], [3, 4]], [None, None], None),
        "dict": ({"a": [1, 2], "b": "x", "n": {"p": 1.0}}, {"out": np.array([1.0])}, None),
        "records": (
            [{"a": 1, "b": "x", "n": {"p": 1}}, {"a": 2, "c": [1.0], "n": {"q": "s"}}, {"a": None}],
            None,
            None,
        ),
        "scalars": ("hello", dt.datetime(2020, 1, 1), None),
        "small ints": (np.array([1, 2], dtype=np.uint8), None, None),
        "not inferable": ([1, "a"], object(), None),
        "params": (
            pd.Series([1.0], name="s"),
            None,
            {
                "alpha": 0.5,
                "name": "x",
                "flags": [1, 2],
                "on": True,
                "when": dt.datetime(2020, 1, 1),
                "obj": {"a": 1, "b": ["x"]},
                "f32": np.float32(1.5),
            },
        ),
    }


def _parsed(sig_dict: dict) -> dict:
    return {k: (json.loads(v) if v else v) for k, v in sig_dict.items()}


def _quiet():
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)


def test_infer_signature_json_is_mlflows():
    mlflow_models = pytest.importorskip("mlflow.models")
    from gitrun.models import ModelSignature, infer_signature

    try:
        with warnings.catch_warnings():
            _quiet()
            for name, (x, y, params) in _cases().items():
                ours = infer_signature(x, y, params=params)
                theirs = mlflow_models.infer_signature(x, y, params=params)
                assert isinstance(ours, ModelSignature)
                assert _parsed(ours.to_dict()) == _parsed(theirs.to_dict()), name
                # the JSON round-trips, and MLflow reads it as its own
                assert ModelSignature.from_dict(ours.to_dict()) == ours
                assert mlflow_models.ModelSignature.from_dict(ours.to_dict()) == theirs, name
    finally:
        logging.disable(logging.NOTSET)


def test_infer_signature_warns_like_mlflow(caplog):
    from gitrun.models import infer_signature

    with pytest.warns(UserWarning, match="integer column"):
        infer_signature(pd.DataFrame({"a": [1, 2]}))
    with caplog.at_level(logging.WARNING, logger="gitrun.models"):
        sig = infer_signature([1, "a"])
    assert "Failed to infer schema for inputs" in caplog.text
    assert json.loads(sig.to_dict()["inputs"]) == [{"type": "any", "required": True}]
    with pytest.raises(gitrun.GitrunError, match="parameters"):
        infer_signature([1.0], params={"bad": [[1, 2]]})


def _model():
    sk = pytest.importorskip("sklearn.linear_model")
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1, 0, 1, 0]})
    return sk.LogisticRegression().fit(x, [0, 1, 0, 1]), x


def _files(d: Path) -> dict:
    import yaml

    doc = yaml.safe_load((d / "MLmodel").read_text())
    out = {
        "signature": _parsed(doc["signature"]) if doc.get("signature") else None,
        "saved_input_example_info": doc.get("saved_input_example_info"),
    }
    for f in ("input_example.json", "serving_input_example.json"):
        out[f] = json.loads((d / f).read_text()) if (d / f).exists() else None
    return out


def test_save_model_writes_signature_and_example_as_mlflow(tmp_path):
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import infer_signature as mlflow_infer

    import gitrun.sklearn as gsk
    from gitrun.models import infer_signature

    model, x = _model()
    examples = {
        "dataframe": x.head(2),
        "ndarray": x.values[:2],
        "dict": {"a": [1.0], "b": [1]},
        "named arrays": {"a": np.array([1.0, np.nan])},
        "with params": (x.head(1), {"alpha": 0.5}),
        "list": [[1.0, 2.0]],
    }
    try:
        with warnings.catch_warnings():
            _quiet()
            for i, (name, example) in enumerate(examples.items()):
                for with_sig in (True, False):
                    sig = infer_signature(x, model.predict(x)) if with_sig else None
                    real_sig = mlflow_infer(x, model.predict(x)) if with_sig else None
                    ours, theirs = tmp_path / f"g{i}{with_sig}", tmp_path / f"m{i}{with_sig}"
                    gsk.save_model(model, str(ours), signature=sig, input_example=example)
                    mlflow_sklearn.save_model(
                        model,
                        str(theirs),
                        signature=real_sig,
                        input_example=example,
                        serialization_format="cloudpickle",
                        pip_requirements=["scikit-learn"],  # skips MLflow's slow inference
                    )
                    assert _files(ours) == _files(theirs), (name, with_sig)
            # signature=False: no signature even with an example, as MLflow
            gsk.save_model(model, str(tmp_path / "nosig"), signature=False, input_example=x)
            assert _files(tmp_path / "nosig")["signature"] is None
    finally:
        logging.disable(logging.NOTSET)


def test_mlflow_reads_gitrun_signature_and_example(repo, tmp_path):
    pytest.importorskip("mlflow")
    import mlflow.models
    import mlflow.pyfunc

    import gitrun as g
    from gitrun.models import Model, get_model_info, infer_signature

    model, x = _model()
    with warnings.catch_warnings():
        _quiet()
        try:
            sig = infer_signature(x, model.predict(x), params={"k": 3})
            with g.start_run() as run:
                info = g.sklearn.log_model(
                    model, name="model", signature=sig, input_example=x.head(3)
                )
            real_sig = mlflow.models.infer_signature(x, model.predict(x), params={"k": 3})
        finally:
            logging.disable(logging.NOTSET)
    assert info.model_uri == f"runs:/{run.info.run_id}/model"
    assert info.signature == sig and info.saved_input_example_info["type"] == "dataframe"
    local = g.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "dl"))

    # real MLflow, on the directory gitrun logged
    real = mlflow.models.Model.load(local)
    assert real.signature == real_sig
    assert mlflow.models.get_model_info(local).signature == real_sig
    pd.testing.assert_frame_equal(real.load_input_example(local), x.head(3))
    assert list(mlflow.pyfunc.load_model(local).predict(x.head(3))) == list(
        model.predict(x.head(3))
    )

    # gitrun, on the run's URI and on the directory
    for where in (info.model_uri, local):
        ours = Model.load(where)
        assert ours.signature == sig and ours.get_input_schema() == sig.inputs
        pd.testing.assert_frame_equal(ours.load_input_example(), x.head(3))
        assert get_model_info(where).signature == sig
    assert Model.load(local).run_id == run.info.run_id


def test_gitrun_reads_mlflow_signature_and_example(tmp_path):
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from gitrun.models import Model, infer_signature

    model, x = _model()
    with warnings.catch_warnings():
        _quiet()
        mlflow_sklearn.save_model(
            model, str(tmp_path / "m"), input_example=x.values[:2], pip_requirements=["x"]
        )
        expected = infer_signature(x.values[:2], model.predict(x.values[:2]))
    m = Model.load(str(tmp_path / "m"))
    assert m.signature == expected
    np.testing.assert_array_equal(m.load_input_example(), x.values[:2])
    assert m.load_input_example().dtype == np.float64


def test_set_signature_on_a_logged_model(repo):
    pytest.importorskip("mlflow")
    import mlflow.models
    import mlflow.pyfunc

    import gitrun as g
    from gitrun.models import Model, infer_signature, set_signature

    model, x = _model()
    with g.start_run() as run:
        info = g.sklearn.log_model(model, name="model")
    assert Model.load(info.model_uri).signature is None
    with warnings.catch_warnings():
        _quiet()
        sig = infer_signature(x, model.predict(x))
    set_signature(info.model_uri, sig)
    assert Model.load(info.model_uri).signature == sig
    local = g.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model")
    assert mlflow.models.Model.load(local).signature.to_dict() == sig.to_dict()
    with pytest.raises(gitrun.GitrunError, match="ModelSignature"):
        set_signature(info.model_uri, "not a signature")  # type: ignore[arg-type]


def test_artifacts_module(repo, tmp_path):
    import gitrun as g
    from gitrun.artifacts import (
        download_artifacts,
        list_artifacts,
        load_dict,
        load_image,
        load_text,
    )

    with g.start_run() as run:
        g.log_text("This is a sentence", "file.txt")
        g.log_text("inner", "dir/inner.txt")
        g.log_dict({"mlflow-version": "0.28", "n_cores": "10"}, "config.json")
        g.log_text("not json", "bad.json")
    uri = run.info.artifact_uri
    rid = run.info.run_id
    assert load_text(uri + "/file.txt") == "This is a sentence"
    assert load_text(f"runs:/{rid}/dir/inner.txt") == "inner"
    assert load_dict(uri + "/config.json") == {"mlflow-version": "0.28", "n_cores": "10"}
    with pytest.raises(gitrun.GitrunError, match="JSON"):
        load_dict(uri + "/bad.json")

    dst = tmp_path / "out"
    path = download_artifacts(run_id=rid, artifact_path="dir", dst_path=str(dst))
    assert Path(path) == dst / "dir" and (dst / "dir" / "inner.txt").read_text() == "inner"
    whole = Path(download_artifacts(run_id=rid))
    assert (whole / "file.txt").read_text() == "This is a sentence"
    assert (whole / "dir" / "inner.txt").exists()
    # a local file is copied into dst_path under its own name, as MLflow does
    copied = download_artifacts(str(whole / "file.txt"), dst_path=str(tmp_path / "copy"))
    assert Path(copied) == tmp_path / "copy" / "file.txt" and Path(copied).exists()

    assert [f.path for f in list_artifacts(run_id=rid)] == [
        "bad.json",
        "config.json",
        "dir",
        "file.txt",
    ]
    assert [f.path for f in list_artifacts(f"runs:/{rid}/dir")] == ["dir/inner.txt"]
    assert [f.path for f in list_artifacts(uri + "/dir")] == ["dir/inner.txt"]

    with pytest.raises(gitrun.GitrunError, match="Exactly one of"):
        download_artifacts()
    with pytest.raises(gitrun.GitrunError, match="Exactly one of"):
        download_artifacts(f"runs:/{rid}/file.txt", run_id=rid)
    with pytest.raises(gitrun.GitrunError, match="cannot be specified"):
        download_artifacts(f"runs:/{rid}", artifact_path="file.txt")
    with pytest.raises(NotImplementedError, match="git repository"):
        download_artifacts(run_id=rid, tracking_uri="http://localhost:5000")

    pil = pytest.importorskip("PIL.Image")
    with g.start_run() as run2:
        g.log_image(pil.new("RGB", (7, 5)), "image.png")
    assert load_image(run2.info.artifact_uri + "/image.png").size == (7, 5)


def test_entities_are_mlflows():
    from gitrun.entities import (
        Experiment,
        FileInfo,
        LifecycleStage,
        Metric,
        Param,
        Run,
        RunStatus,
        RunTag,
        SourceType,
        ViewType,
    )

    assert gitrun.entities.Run is Run is gitrun.Run
    assert Metric("m", 1.0, 0, 0).key == "m" and Param("p", "v").value == "v"
    assert RunTag("t", "v") != Param("t", "v") and Experiment("e", "e").name == "e"
    assert FileInfo("p", False, 3).file_size == 3
    assert RunStatus.to_string(RunStatus.FINISHED) == "FINISHED"
    assert RunStatus.from_string("KILLED") == RunStatus.KILLED
    with pytest.raises(gitrun.GitrunError, match="Valid run status strings"):
        RunStatus.from_string("DONE")

    real = pytest.importorskip("mlflow.entities")
    for name in ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"):
        assert getattr(RunStatus, name) == getattr(real.RunStatus, name)
        number = getattr(RunStatus, name)
        assert RunStatus.is_terminated(number) == real.RunStatus.is_terminated(number)
    assert RunStatus.all_status() == real.RunStatus.all_status()
    for name in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        assert getattr(ViewType, name) == getattr(real.ViewType, name)
        vt = getattr(ViewType, name)
        assert LifecycleStage.view_type_to_stages(vt) == real.LifecycleStage.view_type_to_stages(vt)
        for stage in ("active", "deleted"):
            assert LifecycleStage.matches_view_type(vt, stage) == (
                real.LifecycleStage.matches_view_type(vt, stage)
            )
    assert SourceType.SOURCETYPE_TO_STRING == real.SourceType.SOURCETYPE_TO_STRING


# Flavors that need their framework installed to give their names.
FRAMEWORKS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "pytorch": "torch",
    "keras": "keras",
    "spark": "pyspark",
    "pyspark.ml": "pyspark",
}


def test_every_claimed_submodule_imports():
    """Walk the compat table: each `mlflow.X` gitrun claims imports as `gitrun.X`, in a fresh
    interpreter, with `from gitrun.X import <name>` for every name claimed; docs/mlflow.md
    lists it; and each name is one real MLflow has there."""
    docs = (ROOT / "docs" / "mlflow.md").read_text()
    lines = ["import importlib, sys"]
    for mod, names in compat.SUBMODULES.items():
        assert f"mlflow.{mod}" in docs, f"docs/mlflow.md does not list mlflow.{mod}"
        framework = FRAMEWORKS.get(mod)
        if framework and importlib.util.find_spec(framework) is None:
            continue  # the flavor says how to install its framework (tested per flavor)
        lines.append(f"m = importlib.import_module('gitrun.{mod}')")
        lines.append(f"from gitrun.{mod} import {', '.join(names)}")
        lines += [f"assert getattr(m, {n!r}) is {n}" for n in names]
        top = mod.split(".")[0]
        lines.append(
            f"import gitrun; assert getattr(gitrun, {top!r}) is sys.modules['gitrun.{top}']"
        )
    lines.append("print('ok')")
    p = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, env=_env()
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"

    if importlib.util.find_spec("mlflow") is None:
        return
    for mod, names in compat.SUBMODULES.items():
        real = importlib.import_module(f"mlflow.{mod}")
        missing = [n for n in names if not hasattr(real, n)]
        assert not missing, f"mlflow.{mod} has no {missing}"


def test_models_attribute_and_import_are_one_module():
    import gitrun.models

    assert gitrun.models is importlib.import_module("gitrun.mlflow.models")
    assert os.path.basename(gitrun.models.__file__) == "models.py"
    from gitrun.models.signature import ModelSignature

    assert ModelSignature is gitrun.models.ModelSignature
