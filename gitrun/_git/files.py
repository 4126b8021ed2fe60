"""Two small file helpers the _git modules share: read a text file or None, a file's
mtime or 0."""

from __future__ import annotations

import os


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
