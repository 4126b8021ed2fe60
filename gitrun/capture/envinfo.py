"""The environment a run ran in: Python, platform, installed packages.

Listing installed distributions costs tens of milliseconds, so the result is
cached per process and on disk (keyed by the interpreter and the modification
times of its sys.path directories, which change when packages are installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from typing import Any

_cache: dict[str, Any] | None = None


def _package_dirs() -> list[str]:
    # Where installed distributions live; the script's own directory (sys.path[0])
    # is left out so the cache key does not change with every training script.
    return [p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)]


def _fingerprint() -> str:
    h = hashlib.sha1(sys.executable.encode())
    for p in _package_dirs():
        try:
            h.update(f"{p}:{os.stat(p).st_mtime_ns}".encode())
        except OSError:
            pass
    return h.hexdigest()[:16]


def packages() -> dict[str, str]:
    """name -> version of installed distributions.

    Read from the `<name>-<version>.dist-info` directory names (parsing every METADATA
    file costs ~0.5 s); other layouts (egg-info) fall back to importlib.metadata.
    """
    out: dict[str, str] = {}
    slow = False
    for d in _package_dirs():
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in entries:
            if e.endswith(".dist-info") and "-" in e:
                name, _, version = e[: -len(".dist-info")].rpartition("-")
                out.setdefault(name.lower().replace("_", "-"), version)
            elif e.endswith(".egg-info"):
                slow = True
    if slow or not out:
        from importlib import metadata

        for dist in metadata.distributions():
            try:
                name = dist.metadata["Name"]
            except Exception:
                continue
            if name:
                out.setdefault(name.lower().replace("_", "-"), dist.version)
    return dict(sorted(out.items()))


def capture(cache_dir: str | None = None) -> dict[str, Any]:
    global _cache
    if _cache is not None:
        return _cache
    path = None
    if cache_dir:
        path = os.path.join(cache_dir, f"env-{_fingerprint()}.json")
        try:
            with open(path, encoding="utf-8") as f:
                _cache = json.load(f)
                return _cache
        except (OSError, ValueError):
            pass
    env = {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "packages": packages(),
    }
    _cache = env
    if path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(env, f)
            os.replace(tmp, path)
        except OSError:
            pass
    return env


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between a run's recorded environment and this one."""
    out = []
    for section, key in (
        ("python", "version"),
        ("python", "implementation"),
        ("platform", "system"),
        ("platform", "machine"),
    ):
        a = (recorded.get(section) or {}).get(key)
        b = (current.get(section) or {}).get(key)
        if a and a != b:
            out.append(f"{section} {key}: recorded {a}, now {b}")
    rp = recorded.get("packages") or {}
    cp = current.get("packages") or {}
    for name in sorted(rp):
        if name not in cp:
            out.append(f"package {name}: recorded {rp[name]}, now not installed")
        elif cp[name] != rp[name]:
            out.append(f"package {name}: recorded {rp[name]}, now {cp[name]}")
    return out
