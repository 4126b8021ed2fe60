"""Large artifacts in an object store, through fsspec (docs/format.md, "Large artifacts").

For teams whose artifacts outgrow a Git LFS quota: `gitrun config artifact-store URL`
(`s3://bucket/prefix`, `gs://...`, `az://...`, `file:///shared/dir`) sends large artifacts
there instead, content-addressed as Git LFS does: `<URL>/<oid[0:2]>/<oid[2:4]>/<oid>`, the
oid being the sha256 of the content.  The manifest row says storage `store` and carries the
URL in its `location` column, so any clone knows where to look.  Reading verifies size and
sha256 while streaming (format/lfs.py `verified_chunks`).  fsspec and the protocol's
package (s3fs, gcsfs, adlfs) are optional: `pip install gitrun-ml[s3]`.

Credentials and endpoints come from the environment as each library reads them
(`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, ...); a URL holding a user or password is
refused, since the URL is recorded in history.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import GitrunError, InvalidInputError, require
from .lfs import CHUNK, is_oid

STORAGE = "store"  # the artifacts.tsv storage kind
# scheme -> (python module, what to pip install)
SCHEMES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "gitrun-ml[s3]"),
    "gs": ("gcsfs", "gcsfs"),
    "gcs": ("gcsfs", "gcsfs"),
    "az": ("adlfs", "adlfs"),
    "abfs": ("adlfs", "adlfs"),
    "abfss": ("adlfs", "adlfs"),
    "file": ("fsspec", "gitrun-ml[s3]"),
}
UPLOAD_BLOCK = 8 << 20  # multipart part size (S3's minimum is 5 MiB): bounds memory


def check_url(url: str) -> str:
    """The store URL, normalised (no trailing slash); InvalidInputError when it is not one
    gitrun can record: a known scheme, a bucket or path, no credentials, one line."""
    text = str(url).strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in text) or not text:
        raise InvalidInputError("The artifact store URL must be one line of text.")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidInputError(
            f"'{text}' is not an artifact store gitrun knows; give s3://bucket/prefix, "
            "gs://bucket/prefix, az://container/prefix or file:///shared/dir."
        )
    if parts.username or parts.password or "@" in parts.netloc:
        raise InvalidInputError(
            f"The artifact store URL '{scheme}://{parts.hostname or ''}...' holds credentials; "
            "it is recorded in every run, so give them through the environment instead "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for S3)."
        )
    if parts.query or parts.fragment:
        raise InvalidInputError(f"The artifact store URL '{text}' may not have a ?query or #part.")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidInputError(
                f"'{text}' is not a local directory URL; write it as file:///absolute/path."
            )
    elif not parts.netloc:
        raise InvalidInputError(f"'{text}' names no bucket; write it as {scheme}://bucket/prefix.")
    if "\t" in text or any(seg in ("..", ".") for seg in parts.path.split("/")):
        raise InvalidInputError(f"The artifact store URL '{text}' may not contain '..' or '.'.")
    if scheme == "file":  # a directory as fsspec opens it (%20 is a space)
        path = unquote(parts.path)
        if any(ord(c) < 32 or ord(c) == 127 for c in path):
            raise InvalidInputError("The artifact store URL must be one line of text.")
        return "file://" + (path.rstrip("/") or "/")
    return text.rstrip("/")


def object_url(prefix: str, oid: str) -> str:
    if not is_oid(oid):
        raise GitrunError(f"{oid[:80]!r} is not an artifact object id (64 hex characters).")
    return f"{prefix}/{oid[0:2]}/{oid[2:4]}/{oid}"


def _fs(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path in it) for a store URL; the install hint when missing."""
    scheme = urlsplit(url).scheme.lower()
    module, pip = SCHEMES.get(scheme, ("fsspec", "gitrun-ml[s3]"))
    require("fsspec", "gitrun-ml[s3]")
    if scheme == "s3":  # the one object-store client gitrun's extras install
        require("s3fs", "gitrun-ml[s3]")
    else:
        require(module, pip)
    import fsspec

    return fsspec.core.url_to_fs(url)


def _store_error(url: str, e: Exception, verb: str) -> GitrunError:
    detail = " ".join(str(e).split())[:300] or type(e).__name__
    return GitrunError(
        f"Could not {verb} the artifact store {url} ({detail}); check the URL, "
        "your credentials and that the store is reachable."
    )


def exists(prefix: str, oid: str, size: int) -> bool:
    """Whether the store holds `oid` with the recorded size."""
    url = object_url(prefix, oid)
    fs, path = _fs(url)
    try:
        return int(fs.info(path).get("size", -1)) == size
    except FileNotFoundError:
        return False
    except Exception as e:  # network, permissions: the caller names where it looked
        raise _store_error(url, e, "read") from None


def put_fd(prefix: str, fd: int, shown: str) -> tuple[str, int]:
    """Upload an open file to the store: (oid, size).  Two passes over the file (hash, then
    send), so the object is written once under its final name and never twice: a store
    that already holds it is not sent it again.  Constant memory."""
    h = hashlib.sha256()
    size = 0
    try:
        while chunk := os.pread(fd, CHUNK, size):
            h.update(chunk)
            size += len(chunk)
    except OSError as e:
        raise InvalidInputError(
            f"Artifact '{shown}' cannot be read ({(e.strerror or str(e)).lower()})."
        ) from None
    oid = h.hexdigest()
    if exists(prefix, oid, size):
        return oid, size
    url = object_url(prefix, oid)
    fs, path = _fs(url)
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    target = f"{path}.gitrun-tmp-{os.getpid()}-{os.urandom(4).hex()}" if local else path
    try:
        if local:
            fs.makedirs(posixpath.dirname(path), exist_ok=True)
        sent = 0
        with fs.open(target, "wb", block_size=UPLOAD_BLOCK) as f:
            while chunk := os.pread(fd, CHUNK, sent):
                f.write(chunk)
                sent += len(chunk)
        if sent != size:
            raise GitrunError(f"Artifact '{shown}' changed while gitrun stored it; log it again.")
        if local:  # the rename makes it appear whole (S3 shows a multipart upload whole)
            fs.mv(target, path)
    except GitrunError:
        raise
    except Exception as e:
        if local:
            with contextlib.suppress(Exception):
                fs.rm(target)
        raise _store_error(prefix, e, "write to") from None
    return oid, size


def read_chunks(prefix: str, oid: str) -> Iterator[bytes]:
    """The stored object in CHUNK pieces (verify with lfs.verified_chunks)."""
    url = object_url(prefix, oid)
    fs, path = _fs(url)
    try:
        f = fs.open(path, "rb", block_size=CHUNK)
    except Exception as e:
        raise _store_error(url, e, "read") from None
    with f:
        while True:
            try:
                chunk = f.read(CHUNK)
            except Exception as e:
                raise _store_error(url, e, "read") from None
            if not chunk:
                return
            yield chunk
