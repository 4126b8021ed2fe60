"""MLflow's model signature and input example, written and read without mlflow.

`infer_signature` follows mlflow.models.infer_signature (MLflow 3.x) rule for rule, so the
`signature:` block and the `input_example.json` gitrun writes into an MLmodel directory are
the ones MLflow writes for the same data; real MLflow reads them back (`Model.load(...)
.signature`, `load_input_example`).  Types are kept in their JSON form: that form is what
the MLmodel file holds and what the side-by-side tests compare.

numpy and pandas are imported inside the functions that need them.
"""

from __future__ import annotations

import builtins
import copy
import datetime as dt
import enum
import json
import logging
import os
import sys
import warnings
from typing import Any

from ..errors import InvalidInputError

_logger = logging.getLogger("gitrun.models")

EXAMPLE_FILENAME = "input_example.json"
SERVING_INPUT_FILENAME = "serving_input_example.json"
_LLM_KEYS = ("messages", "prompt", "input")  # MLflow's unified LLM input formats

# ---------------------------------------------------------------------------
# types, in MLflow's JSON form
# ---------------------------------------------------------------------------
# A type is one of: a DataType name ("long", "double", ...), ANY, ("array", item type),
# ("object", [(name, type, required), ...]).
ANY = "any"
DATA_TYPES = ("boolean", "integer", "long", "float", "double", "string", "binary", "datetime")


class _TypeClash(InvalidInputError):
    pass


_MULTIPLE_TYPES = (
    "Expected all values in list to be of same type, found multiple types; "
    "give the column one type (e.g. convert it with astype)."
)


def _type_dict(t: Any) -> dict[str, Any]:
    if isinstance(t, str):
        return {"type": t}
    if t[0] == "array":
        return {"type": "array", "items": _type_dict(t[1])}
    props: dict[str, Any] = {}
    for name, dtype, required in t[1]:
        props[name] = {**_type_dict(dtype), "required": required}
    return {"type": "object", "properties": props}


def _type_from_dict(d: dict[str, Any]) -> Any:
    kind = d["type"]
    if kind == "array":
        return ("array", _type_from_dict(d["items"]))
    if kind == "object":
        return (
            "object",
            [
                (name, _type_from_dict(p), p.get("required", True))
                for name, p in d["properties"].items()
            ],
        )
    return kind


def _merge(a: Any, b: Any) -> Any:
    """MLflow's BaseType._merge: a is the type seen so far, b the next item's."""
    if a == ANY:
        if b == ANY or isinstance(b, str):
            return b
        return _merge(b, a)
    if isinstance(a, str):  # a DataType: only reached through Array/Property merges
        if a == b or b == ANY:
            return a
        raise _TypeClash(f"Types {a} and {b} are incompatible.")
    if a[0] == "array":
        if b == ANY or a == b:
            return a
        if isinstance(b, str) or b[0] != "array":
            raise _TypeClash("Can't merge array with non-array type.")
        return ("array", _merge(a[1], b[1]))
    # object
    if b == ANY:
        return ("object", [(n, t, False) for n, t, _ in a[1]])
    if isinstance(b, str) or b[0] != "object":
        raise _TypeClash("Can't merge object with non-object type.")
    if a == b:
        return a
    pa = {n: (t, r) for n, t, r in a[1]}
    pb = {n: (t, r) for n, t, r in b[1]}
    props = [(n, t, False) for n, (t, _) in pa.items() if n not in pb]
    for n, (t, r) in pa.items():
        if n in pb:
            t2, r2 = pb[n]
            props.append((n, _merge(t, t2), r and r2))
    props += [(n, t, False) for n, (t, _) in pb.items() if n not in pa]
    return ("object", props)


def _is_none_or_nan(x: Any) -> bool:
    if isinstance(x, float):
        return x != x
    if x is None:
        return True
    pd = sys.modules.get("pandas")
    return pd is not None and (x is pd.NA or x is pd.NaT)


def _scalar_type(x: Any) -> str:
    import numpy as np

    mapping = {
        bool: "boolean",
        np.bool_: "boolean",
        int: "long",
        np.int64: "long",
        np.int32: "integer",
        float: "double",
        np.float64: "double",
        np.float32: "float",
        str: "string",
        np.str_: "string",
        object: "string",
        bytes: "binary",
        np.bytes_: "binary",
        bytearray: "binary",
    }
    if type(x) in mapping:
        return mapping[type(x)]
    if type(x) in (dt.date, dt.datetime, np.datetime64):
        return "datetime"
    raise InvalidInputError(f"Data {x!r} is not one of the supported DataType.")


def _datatype(x: Any) -> Any:
    """MLflow's _infer_datatype; None for an array with no item of known type."""
    import numpy as np

    if _is_none_or_nan(x) or (isinstance(x, (list, dict)) and not x):
        return ANY
    if isinstance(x, dict):
        props = []
        for k, v in x.items():
            t = _datatype(v)
            if t is None:
                raise InvalidInputError("Dictionary value must not be an empty numpy array.")
            props.append((k, t, t != ANY))
        return ("object", props)
    if isinstance(x, (list, np.ndarray)):
        return _array_type(x)
    return _scalar_type(x)


def _array_type(data: Any) -> Any:
    result = None
    for item in data:
        t = _datatype(item)
        if t is None:
            continue
        if result is None:
            result = ("array", t)
        elif not isinstance(result[1], str) or result[1] == ANY:
            try:
                result = ("array", _merge(result[1], t))
            except _TypeClash as e:
                raise InvalidInputError(_MULTIPLE_TYPES) from e
        elif t != ANY and t != result[1]:
            raise InvalidInputError(_MULTIPLE_TYPES)
    return result


def _colspec_type(x: Any) -> Any:
    t = _datatype(x)
    if t is None:
        raise InvalidInputError(
            f"Numpy array must include at least one non-empty item. Invalid input `{x}`."
        )
    return t


def _numpy_type(dtype: Any) -> str:
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "boolean"
    if kind in "iu":
        if size < 4 or (kind == "i" and size == 4):
            return "integer"
        if size < 8 or (kind == "i" and size == 8):
            return "long"
    elif kind == "f":
        if size <= 4:
            return "float"
        if size <= 8:
            return "double"
    elif kind == "U":
        return "string"
    elif kind == "S":
        return "binary"
    elif kind == "M":
        return "datetime"
    raise InvalidInputError(f"Unsupported numpy data type '{dtype}', kind '{kind}'.")


def _pandas_column(col: Any) -> Any:
    import pandas as pd

    if len(col.values.shape) > 1:
        raise InvalidInputError(f"Expected 1d array, got array with shape {col.shape}")
    if col.dtype.kind == "O":
        col = col.infer_objects()
    if col.dtype.kind == "O":
        try:
            t = _colspec_type(col.to_list())
            if t == ANY:
                raise InvalidInputError("An empty column has no type.")
            return t[1]
        except Exception as e:
            if pd.api.types.is_string_dtype(col):
                return "string"
            raise InvalidInputError(f"Failed to infer schema for pandas.Series {col}: {e}") from e
    return _numpy_type(col.dtype)


def _required(col: Any) -> bool:
    pd = sys.modules.get("pandas")
    if isinstance(col, list) or (pd is not None and isinstance(col, pd.Series)):
        return not any(_is_none_or_nan(x) for x in col)
    return not _is_none_or_nan(col)


def _colspec(t: Any, name: Any = None, required: bool = True) -> dict[str, Any]:
    d = _type_dict(t)
    if name is not None:
        d["name"] = name
    d["required"] = required
    return d


def _tensor_dtype(dtype: Any) -> str:
    if dtype.char == "U":
        return "str"
    if dtype.char == "S":
        return "bytes"
    return str(dtype.name)


def _tensorspec(arr: Any, name: Any = None) -> dict[str, Any]:
    if arr.ndim == 0:
        raise InvalidInputError(
            "The specified variable_dimension 0 is out of bounds with respect to the number "
            "of dimensions 0 in the input dataset"
        )
    d: dict[str, Any] = {} if name is None else {"name": name}
    d["type"] = "tensor"
    d["tensor-spec"] = {"dtype": _tensor_dtype(arr.dtype), "shape": [-1, *arr.shape[1:]]}
    return d


def _sparse_kind(x: Any) -> str | None:
    sparse = sys.modules.get("scipy.sparse")
    if sparse is None:
        return None
    if isinstance(x, sparse.csc_matrix):
        return "sparse_matrix_csc"
    if isinstance(x, sparse.csr_matrix):
        return "sparse_matrix_csr"
    return None


def infer_schema(data: Any) -> list[dict[str, Any]]:
    """mlflow.types.utils._infer_schema, as the JSON list the MLmodel file holds."""
    import numpy as np

    pd = sys.modules.get("pandas")
    if isinstance(data, list) and data == []:
        return [{"type": "string", "required": True}]
    if isinstance(data, list) and all(isinstance(v, dict) for v in data):
        columns: dict[Any, list[Any]] = {}
        for item in data:
            for k, v in item.items():
                columns.setdefault(k, []).append(v)
        specs = [
            _colspec(
                _colspec_type(values)[1],
                name,
                all(item.get(name) is not None for item in data),
            )
            for name, values in columns.items()
        ]
    elif isinstance(data, dict):
        if all(isinstance(v, np.ndarray) for v in data.values()):
            specs = [_tensorspec(v, name) for name, v in data.items()]
        else:
            if any(not isinstance(k, str) for k in data):
                raise InvalidInputError("The dictionary keys are not all strings.")
            specs = [_colspec(_colspec_type(v), k, _required(v)) for k, v in data.items()]
    elif pd is not None and isinstance(data, pd.Series):
        specs = [_colspec(_pandas_column(data), data.name, _required(data))]
    elif pd is not None and isinstance(data, pd.DataFrame):
        specs = [_colspec(_pandas_column(data[c]), c, _required(data[c])) for c in data.columns]
    elif isinstance(data, np.ndarray):
        specs = [_tensorspec(data)]
    elif _sparse_kind(data):
        dtype = _tensor_dtype(data.data.dtype)
        specs = [
            {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": [-1, *data.shape[1:]]}}
        ]
    elif isinstance(data, list):
        specs = [_colspec(_colspec_type(data)[1])]
    else:
        try:
            specs = [_colspec(_colspec_type(data))]
        except InvalidInputError as e:
            raise InvalidInputError(
                "Failed to infer schema. Expected a pandas DataFrame or Series, a numpy array, "
                "a dictionary of (name -> numpy array), a scalar, a list of scalars, a "
                f"dictionary or a list of dictionaries, but got '{data}'. Error: {e}"
            ) from e
    if any(s.get("type") in ("integer", "long") for s in specs):
        warnings.warn(
            "Hint: Inferred schema contains integer column(s). Integer columns in "
            "Python cannot represent missing values. If your input data contains "
            "missing values at inference time, it will be encoded as floats and will "
            "cause a schema enforcement error. The best way to avoid this problem is "
            "to infer the model schema based on a realistic data sample (training "
            "dataset) that includes missing values. Alternatively, you can declare "
            "integer columns as doubles (float64) whenever these columns may have "
            "missing values. See `Handling Integers With Missing Values "
            "<https://www.mlflow.org/docs/latest/models.html#"
            "handling-integers-with-missing-values>`_ for more details.",
            stacklevel=2,
        )
    return specs


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=NumpyEncoder))


def infer_param_schema(params: dict[str, Any]) -> list[dict[str, Any]]:
    """mlflow.types.utils._infer_param_schema, as JSON."""
    import numpy as np

    if not isinstance(params, dict):
        raise InvalidInputError(f"Expected parameters to be dict, got {type(params).__name__}")
    out, invalid = [], []
    for name, value in params.items():
        try:
            shape: list[int] | None = None
            default = copy.deepcopy(value)
            if isinstance(value, (list, np.ndarray)):
                depth = np.ndim(value) if isinstance(value, np.ndarray) else _depth(value)
                if depth != 1:
                    raise InvalidInputError(
                        f"Expected parameters to be 1D array or scalar, got {depth}D array"
                    )
                shape = [-1]
                if all(type(v) in (dt.date, dt.datetime, np.datetime64) for v in value):
                    t: Any = "datetime"
                    default = [v.isoformat() for v in value]
                else:
                    t = _numpy_type(np.array(value).dtype)
            elif type(value) in (dt.date, dt.datetime, np.datetime64):
                t, default = "datetime", value.isoformat()
            elif np.isscalar(value):
                t = _numpy_type(np.array(value).dtype)
            elif isinstance(value, dict):
                t = _colspec_type(value)
            else:
                raise InvalidInputError(
                    f"Expected parameters to be 1D array or scalar, got {type(value).__name__}"
                )
            spec = {"name": str(name), "default": _jsonable(default), "shape": shape}
            spec.update(_type_dict(t))
            out.append(spec)
        except Exception as e:
            invalid.append((name, value, e))
    if invalid:
        raise InvalidInputError(f"Failed to infer schema for parameters: {invalid}")
    return out


def _depth(v: Any) -> int:
    import numpy as np

    if isinstance(v, np.ndarray):
        return int(v.ndim)
    if isinstance(v, list):
        return max(_depth(i) for i in v) + 1 if v else 1
    return 0


# ---------------------------------------------------------------------------
# Schema, ColSpec, TensorSpec, ParamSchema, ModelSignature
# ---------------------------------------------------------------------------
class ColSpec:
    """A named (or unnamed) column of a given type, as mlflow.types.ColSpec."""

    def __init__(self, type: Any, name: Any = None, required: bool = True) -> None:
        if isinstance(type, str):
            if type not in DATA_TYPES:
                raise InvalidInputError(
                    f"Unsupported type '{type}', expected one of {list(DATA_TYPES)}"
                )
            t: Any = type
        elif isinstance(type, dict):
            t = _type_from_dict(type)
        elif hasattr(type, "to_dict"):  # mlflow's Array / Object / AnyType
            t = _type_from_dict(type.to_dict())
        else:  # mlflow's DataType enum
            t = str(getattr(type, "name", type))
        self._type = t
        self.name = name
        self.required = required

    @property
    def type(self) -> Any:
        return self._type

    def to_dict(self) -> dict[str, Any]:
        return _colspec(self._type, self.name, self.required)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        req = "required" if self.required else "optional"
        t = self._type if isinstance(self._type, str) else json.dumps(_type_dict(self._type))
        return f"{t} ({req})" if self.name is None else f"{self.name!r}: {t} ({req})"


class TensorSpec:
    """A tensor of a numpy dtype and shape (-1: any size), as mlflow.types.TensorSpec."""

    def __init__(self, type: Any, shape: Any, name: Any = None) -> None:
        import numpy as np

        self.type = np.dtype(type)
        self.shape = tuple(shape)
        self.name = name

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {} if self.name is None else {"name": self.name}
        d["type"] = "tensor"
        d["tensor-spec"] = {"dtype": _tensor_dtype(self.type), "shape": list(self.shape)}
        return d

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        shape = f"Tensor({_tensor_dtype(self.type)!r}, {self.shape})"
        return shape if self.name is None else f"{self.name!r}: {shape}"


def _spec_from_dict(d: dict[str, Any]) -> ColSpec | TensorSpec:
    if d.get("type") == "tensor":
        ts = d["tensor-spec"]
        return TensorSpec(ts["dtype"], ts["shape"], d.get("name"))
    rest = {k: v for k, v in d.items() if k not in ("name", "required")}
    return ColSpec(rest, d.get("name"), d.get("required", True))


class Schema:
    """A list of ColSpec or TensorSpec (never both), as mlflow.types.Schema."""

    def __init__(self, inputs: list[Any]) -> None:
        inputs = [
            s if isinstance(s, (ColSpec, TensorSpec)) else _spec_from_dict(s.to_dict())
            for s in inputs
        ]
        kinds = {isinstance(s, TensorSpec) for s in inputs}
        if len(kinds) > 1:
            raise InvalidInputError(
                "Creating Schema with a combination of ColSpec and TensorSpec is not supported."
            )
        self.inputs = inputs

    def is_tensor_spec(self) -> bool:
        return bool(self.inputs) and isinstance(self.inputs[0], TensorSpec)

    def has_input_names(self) -> bool:
        return bool(self.inputs) and self.inputs[0].name is not None

    def input_names(self) -> list[Any]:
        return [s.name or i for i, s in enumerate(self.inputs)]

    def required_input_names(self) -> list[Any]:
        return [s.name or i for i, s in enumerate(self.inputs) if getattr(s, "required", True)]

    def to_dict(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.inputs]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, json_str: str) -> Schema:
        return cls([_spec_from_dict(d) for d in json.loads(json_str)])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.to_dict() == other.to_dict()

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self) -> Any:
        return iter(self.inputs)

    def __repr__(self) -> str:
        return repr(self.inputs)


class ParamSpec:
    """An inference parameter with a default, as mlflow.types.ParamSpec."""

    def __init__(self, name: str, dtype: Any, default: Any, shape: Any = None) -> None:
        self.name = str(name)
        self.dtype = dtype if isinstance(dtype, str) else str(getattr(dtype, "name", dtype))
        self.default = default
        self.shape = tuple(shape) if shape is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": _jsonable(self.default),
            "shape": None if self.shape is None else list(self.shape),
            "type": self.dtype,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        shape = f" (shape: {self.shape})" if self.shape is not None else ""
        return f"{self.name!r}: {self.dtype} (default: {self.default}){shape}"


class ParamSchema:
    """The inference parameters of a model, as mlflow.types.ParamSchema."""

    def __init__(self, params: list[Any]) -> None:
        self.params = list(params)
        self._json: list[dict[str, Any]] | None = None

    @classmethod
    def _from_json_list(cls, items: list[dict[str, Any]]) -> ParamSchema:
        out = cls([])
        out._json = items
        return out

    def to_dict(self) -> list[dict[str, Any]]:
        return self._json if self._json is not None else [p.to_dict() for p in self.params]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, json_str: str) -> ParamSchema:
        return cls._from_json_list(json.loads(json_str))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSchema) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return repr(self.to_dict())


def _schema(x: Any) -> Schema | None:
    if x is None or isinstance(x, Schema):
        return x
    if hasattr(x, "to_json"):  # an mlflow.types.Schema
        return Schema.from_json(x.to_json())
    raise TypeError(f"Expected a Schema or None, got '{type(x).__name__}'.")


class ModelSignature:
    """A model's input, output and params schemas, as mlflow.models.ModelSignature."""

    def __init__(self, inputs: Any = None, outputs: Any = None, params: Any = None) -> None:
        if inputs is None and outputs is None and params is None:
            raise ValueError("At least one of inputs, outputs or params must be provided")
        self.inputs = _schema(inputs)
        self.outputs = _schema(outputs)
        if params is not None and not isinstance(params, ParamSchema):
            params = ParamSchema.from_json(params.to_json())
        self.params = params

    def to_dict(self) -> dict[str, Any]:
        """The `signature:` block of an MLmodel file (schemas as JSON strings)."""
        return {
            "inputs": self.inputs.to_json() if self.inputs else None,
            "outputs": self.outputs.to_json() if self.outputs else None,
            "params": self.params.to_json() if self.params else None,
        }

    @classmethod
    def from_dict(cls, signature_dict: dict[str, Any]) -> ModelSignature:
        def get(key: str) -> Any:
            return signature_dict.get(key) or None

        inputs = Schema.from_json(x) if (x := get("inputs")) else None
        outputs = Schema.from_json(x) if (x := get("outputs")) else None
        params = ParamSchema.from_json(x) if (x := get("params")) else None
        return cls(inputs, outputs, params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSignature) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"inputs: \n  {self.inputs!r}\noutputs: \n  {self.outputs!r}\n"
            f"params: \n  {self.params!r}\n"
        )


def as_signature(signature: Any) -> ModelSignature | None:
    """gitrun's ModelSignature for one of gitrun's or mlflow's (None and False: none)."""
    if signature is None or signature is False:
        return None
    if isinstance(signature, ModelSignature):
        return signature
    if hasattr(signature, "to_dict"):
        return ModelSignature.from_dict(signature.to_dict())
    if isinstance(signature, dict):
        return ModelSignature.from_dict(signature)
    raise InvalidInputError(
        f"signature must be a ModelSignature (from infer_signature), got "
        f"'{type(signature).__name__}'."
    )


def infer_signature(
    model_input: Any = None, model_output: Any = None, params: dict[str, Any] | None = None
) -> ModelSignature:
    """mlflow.models.infer_signature: the schemas of the model's input, output and params."""
    import dataclasses

    schemas: dict[str, Any] = {"inputs": model_input, "outputs": model_output}
    for key, data in schemas.items():
        if data is None:
            continue
        if dataclasses.is_dataclass(data):
            raise NotImplementedError(
                "gitrun's infer_signature does not read dataclasses; pass an example of the "
                "data instead (a DataFrame, numpy array, dict or list)."
            )
        try:
            schemas[key] = Schema([_spec_from_dict(d) for d in infer_schema(data)])
        except Exception:
            extra = (
                "Note that MLflow doesn't validate data types during inference for AnyType. "
                if key == "inputs"
                else ""
            )
            _logger.warning(
                f"Failed to infer schema for {key}. Setting schema to "
                f"`Schema([ColSpec(type=AnyType())]` as default. {extra}"
                "To see the full traceback, set logging level to DEBUG.",
                exc_info=_logger.isEnabledFor(logging.DEBUG),
            )
            schemas[key] = Schema([ColSpec({"type": ANY})])
    param_schema = ParamSchema._from_json_list(infer_param_schema(params)) if params else None
    return ModelSignature(schemas["inputs"], schemas["outputs"], param_schema)


# ---------------------------------------------------------------------------
# input examples (mlflow.models.utils._Example)
# ---------------------------------------------------------------------------
class NumpyEncoder(json.JSONEncoder):
    """JSON for numpy/pandas values, as MLflow's NumpyEncoder."""

    def _convert(self, o: Any) -> tuple[Any, bool]:
        import base64

        np = sys.modules.get("numpy")
        pd = sys.modules.get("pandas")
        if np is not None:
            if isinstance(o, np.ndarray):
                if o.dtype == object:
                    return [self._convert(x)[0] for x in o.tolist()], True
                if o.dtype.kind == "S":
                    return [base64.encodebytes(x).decode("ascii") for x in o.tolist()], True
                return o.tolist(), True
            if isinstance(o, np.datetime64):
                return np.datetime_as_string(o), True
            if isinstance(o, np.generic):
                return o.item(), True
        if isinstance(o, (bytes, bytearray)):
            return base64.encodebytes(o).decode("ascii"), True
        if (pd is not None and isinstance(o, pd.Timestamp)) or isinstance(
            o, (dt.date, dt.datetime, dt.time)
        ):
            return o.isoformat(), True
        return o, False

    def default(self, o: Any) -> Any:
        res, converted = self._convert(o)
        return res if converted else super().default(o)


def _ndarray_json(a: Any) -> Any:
    import numpy as np

    if np.issubdtype(a.dtype, np.number):
        a = np.where(np.isnan(a), None, a)
    return a.tolist()


class InputExample:
    """What save_model writes for `input_example=`: the files and the MLmodel entry."""

    def __init__(self, input_example: Any) -> None:
        import numpy as np

        pd = sys.modules.get("pandas")
        example = copy.deepcopy(input_example)
        params = None
        if isinstance(example, tuple) and len(example) == 2 and isinstance(example[1], dict):
            example, params = example
            infer_param_schema(params)
        self.inference_data = example
        self.inference_params = params
        info: dict[str, Any] = {"artifact_path": EXAMPLE_FILENAME}
        data = copy.deepcopy(example)
        serving: Any
        if isinstance(data, dict):
            if any(isinstance(v, np.ndarray) for v in data.values()):
                if not all(isinstance(v, np.ndarray) for v in data.values()):
                    raise InvalidInputError(
                        "Mixed types in dictionary are not supported as input examples. "
                        "Found numpy arrays and other types."
                    )
                info["type"] = "ndarray"
                data = {k: _ndarray_json(v) for k, v in data.items()}
                serving = {"inputs": data}
            else:
                info["type"] = "json_object"
                serving = data if any(k in data for k in _LLM_KEYS) else {"inputs": data}
        elif isinstance(data, np.ndarray):
            data = _ndarray_json(data)
            info["type"] = "ndarray"
            serving = {"inputs": data}
        elif isinstance(data, list):
            if _has_ndarray(data):
                raise InvalidInputError(
                    "Multidimensional arrays (aka tensors) are not supported. "
                    "Numpy arrays in list are not supported as input examples."
                )
            info["type"] = "json_object"
            serving = {"inputs": data}
        elif kind := _sparse_kind(data):
            info["type"] = kind
            serving = {"inputs": data.toarray()}
            data = {
                "data": _ndarray_json(data.data),
                "indices": data.indices.tolist(),
                "indptr": data.indptr.tolist(),
                "shape": list(data.shape),
            }
        elif pd is not None and isinstance(data, pd.DataFrame):
            split = data.where(data.notnull(), None).to_dict(orient="split")
            del split["index"]
            if all(data.columns == range(len(data.columns))):
                del split["columns"]
            info["type"] = "dataframe"
            info["pandas_orient"] = "split" if "columns" in split else "values"
            serving = {"dataframe_split": split}
            data = split
        elif np.isscalar(data) or isinstance(data, dt.datetime):
            info["type"] = "json_object"
            serving = {"inputs": data}
        else:
            raise InvalidInputError(
                "Expected the input example to be a pandas DataFrame, a numpy array, a "
                "dictionary of (name -> numpy array), a scipy csr/csc matrix, a dict, a list, "
                f"a scalar or a datetime, but got '{type(data)}'"
            )
        if params is not None:
            info["params"] = "true"
            data = {"inputs": data, "params": params}
            if any(k in serving for k in _LLM_KEYS) and info["type"] == "json_object":
                serving = {**serving, **params}
            else:
                serving = {**serving, "params": params}
        info["serving_input_path"] = SERVING_INPUT_FILENAME
        self.info = info
        self.json_input_example = json.dumps(data, cls=NumpyEncoder)
        self.json_serving_input = json.dumps(serving, cls=NumpyEncoder, indent=2)

    def save(self, path: str) -> None:
        with open(os.path.join(path, EXAMPLE_FILENAME), "w", encoding="utf-8") as f:
            f.write(self.json_input_example)
        with open(os.path.join(path, SERVING_INPUT_FILENAME), "w", encoding="utf-8") as f:
            f.write(self.json_serving_input)


def _has_ndarray(data: Any) -> bool:
    import numpy as np

    if isinstance(data, np.ndarray):
        return True
    if isinstance(data, list):
        return any(_has_ndarray(x) for x in data)
    if isinstance(data, dict):
        return any(_has_ndarray(x) for x in data.values())
    return False


def input_example(example: Any) -> InputExample | None:
    """What save_model writes for `input_example=` (None when it got none)."""
    return InputExample(example) if example is not None else None


def model_signature(
    signature: Any, example: InputExample | None, predict: Any
) -> ModelSignature | None:
    """The signature save_model writes, as MLflow: the one given (False: none); with none
    given and an input example, the one inferred from the example and `predict` on it."""
    if signature is None and example is not None:
        return signature_from_example(example, predict)
    return as_signature(signature)


def signature_from_example(example: InputExample, predict: Any) -> ModelSignature | None:
    """What MLflow infers when save_model gets an input example and no signature: the
    inputs from the example, the outputs from the model's prediction on it; a warning and
    no signature when that fails."""
    import numpy as np

    try:
        data = copy.deepcopy(example.inference_data)
        inputs = infer_schema(data)
        params = infer_param_schema(example.inference_params) if example.inference_params else None
        tensor = bool(inputs) and inputs[0].get("type") == "tensor"
        if not tensor and not isinstance(data, (np.ndarray, list)) or isinstance(data, list):
            # pyfunc's schema enforcement hands column-based input over as a DataFrame
            import pandas as pd

            if isinstance(data, dict) or np.isscalar(data):
                data = pd.DataFrame([data])
            elif isinstance(data, list):
                records = all(isinstance(v, dict) for v in data)
                data = pd.DataFrame(data) if records else pd.DataFrame({0: data})
        prediction = predict(data)
        if not tensor and isinstance(prediction, np.ndarray) and prediction.ndim == 1:
            import pandas as pd

            prediction = pd.Series(prediction)
        try:
            outputs = infer_schema(prediction)
        except Exception:
            _logger.warning(
                "Failed to infer model output schema from prediction result, setting "
                "output schema to AnyType. For full traceback, set logging level to debug."
            )
            outputs = [{"type": ANY, "required": True}]
        return ModelSignature(
            Schema([_spec_from_dict(d) for d in inputs]),
            Schema([_spec_from_dict(d) for d in outputs]),
            ParamSchema._from_json_list(params) if params else None,
        )
    except Exception as e:
        _logger.warning(
            "Failed to infer the model signature from the input example. Reason: %r. To see "
            "the full traceback, set the logging level to DEBUG via "
            '`logging.getLogger("gitrun").setLevel(logging.DEBUG)`.',
            e,
        )
        return None


def read_example(model_dir: str, info: dict[str, Any], signature: ModelSignature | None) -> Any:
    """The input example saved with a model, as MLflow's Model.load_input_example gives it."""
    path = os.path.join(model_dir, info["artifact_path"])
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if info.get("params"):
        data = data["inputs"]
    kind = info["type"]
    if kind == "json_object":
        return data
    if kind == "ndarray":
        import numpy as np

        dtypes: dict[Any, Any] = {}
        if signature is not None and signature.inputs is not None:
            dtypes = {s.name: s.type for s in signature.inputs.inputs if isinstance(s, TensorSpec)}
        if isinstance(data, dict):
            return {k: np.array(v, dtype=dtypes.get(k)) for k, v in data.items()}
        return np.array(data, dtype=dtypes.get(None))
    if kind in ("sparse_matrix_csc", "sparse_matrix_csr"):
        from scipy import sparse

        cls = sparse.csc_matrix if kind == "sparse_matrix_csc" else sparse.csr_matrix
        return cls((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
    if kind == "dataframe":
        import pandas as pd

        df = pd.DataFrame(data["data"], columns=data.get("columns"))
        if signature is not None and signature.inputs is not None:
            for s in signature.inputs.inputs:
                if isinstance(s, ColSpec) and s.name in df.columns:
                    np_type = _NUMPY_OF.get(s.type) if isinstance(s.type, str) else None
                    if np_type is not None:
                        df[s.name] = df[s.name].astype(np_type)
        return df
    raise InvalidInputError(
        "Malformed input example metadata. The 'type' field must be one of "
        "'dataframe', 'ndarray', 'sparse_matrix_csc', 'sparse_matrix_csr' or 'json_object'."
    )


_NUMPY_OF = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "datetime": "datetime64[ns]",
}


class DataType(enum.Enum):
    """MLflow's column types (mlflow.types.DataType); ColSpec takes these or their names."""

    boolean = 1
    integer = 2
    long = 3
    float = 4
    double = 5
    string = 6
    binary = 7
    datetime = 8

    def __repr__(self) -> str:
        return self.name

    def to_numpy(self) -> Any:
        import numpy as np

        return np.dtype({"string": "str", "binary": "bytes"}.get(self.name) or _NUMPY_OF[self.name])

    def to_pandas(self) -> Any:
        return object if self.name in ("string", "binary") else self.to_numpy()

    def to_python(self) -> type:
        return {
            "boolean": bool,
            "integer": int,
            "long": int,
            "float": builtins.float,
            "double": builtins.float,
            "string": str,
            "binary": bytes,
            "datetime": dt.date,
        }[self.name]

    @classmethod
    def all_types(cls) -> list[DataType]:
        return list(cls)


def set_signature(model_uri: str, signature: ModelSignature) -> None:
    """mlflow.models.set_signature (gitrun.models.set_signature)."""
    from .models import set_signature as set_it

    set_it(model_uri, signature)
