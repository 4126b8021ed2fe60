"""Datasets as MLflow's `mlflow.data` makes them (`from_pandas`, `from_numpy`), for
`log_input(dataset, context=...)`: gitrun keeps their name, size and a digest of their
content (kind "dataset" in inputs.tsv), never the data itself.

pandas and numpy are imported only by the functions that receive their objects.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import InvalidInputError


class Dataset:
    """MLflow's Dataset, as far as gitrun records it: name, digest, source, size."""

    def __init__(self, name: str, digest: str, source: str, size: int, data: Any = None) -> None:
        self.name = name
        self.digest = digest  # "sha256:<hex>"
        self.source = source
        self.size = size  # bytes hashed
        self._data = data

    @property
    def df(self) -> Any:
        return self._data

    @property
    def features(self) -> Any:
        return self._data

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, digest={self.digest!r}, source={self.source!r})"


def _source_text(source: Any) -> str:
    if source is None:
        return ""
    uri = getattr(source, "uri", None) or getattr(source, "url", None)
    return str(uri if uri is not None else source)


def from_pandas(
    df: Any,
    source: Any = None,
    targets: str | None = None,
    name: str | None = None,
    digest: str | None = None,
    predictions: str | None = None,
) -> Dataset:
    """MLflow's mlflow.data.from_pandas: the digest is the sha256 of `df.to_csv()`."""
    if not hasattr(df, "to_csv"):
        raise InvalidInputError(f"from_pandas needs a pandas DataFrame, not {type(df).__name__}.")
    data = df.to_csv(index=True).encode("utf-8")
    return _dataset(data, source, name, digest, df)


def from_numpy(
    features: Any,
    source: Any = None,
    targets: Any = None,
    name: str | None = None,
    digest: str | None = None,
) -> Dataset:
    """MLflow's mlflow.data.from_numpy: the digest covers dtype, shape and bytes (of every
    array, in key order, when `features` is a dict of arrays)."""
    import numpy as np

    arrays = features if isinstance(features, dict) else {"": features}
    h = hashlib.sha256()
    size = 0
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}\t{a.dtype.str}\t{a.shape}\n".encode())
        raw = a.tobytes()
        h.update(raw)
        size += len(raw)
    return Dataset(
        name or "dataset", digest or "sha256:" + h.hexdigest(), _source_text(source), size, features
    )


def _dataset(data: bytes, source: Any, name: str | None, digest: str | None, obj: Any) -> Dataset:
    d = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    return Dataset(name or "dataset", d, _source_text(source), len(data), obj)
