"""What a user installs: every declared dependency is used, and nothing heavy loads early."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
# Distribution name -> the module it provides, where the two differ.
IMPORT_NAME = {"pyyaml": "yaml", "gitpython": "git", "scikit-learn": "sklearn", "pillow": "PIL"}
# Extras that only bundle other extras or tools run from the command line.
TOOL_EXTRAS = {"all", "dev", "lint"}


def _imported_modules(where: str = "gitrun") -> set[str]:
    """Top-level modules imported in a tree: import statements, and the optional
    dependencies loaded through errors.require("module", ...) / importlib.import_module."""
    found: set[str] = set()
    for path in (ROOT / where).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None))
                in ("require", "import_module", "importorskip")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_declared_dependency_is_imported_by_the_package():
    """A dependency that is never imported makes every user install it for nothing (GitPython
    was declared and never used)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    used = _imported_modules()
    for spec in meta["dependencies"]:
        dist = re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower()
        assert IMPORT_NAME.get(dist, dist.replace("-", "_")) in used, f"{dist} is never imported"


def _dist(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower()


def test_every_optional_dependency_is_imported():
    """Each extra's packages are used: by the package, or (the test extra) by the tests."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    in_package = _imported_modules("gitrun")
    in_tests = _imported_modules("tests") | _imported_modules("bench")
    for extra, specs in extras.items():
        if extra in TOOL_EXTRAS:
            continue
        used = in_tests if extra == "test" else in_package
        for spec in specs:
            dist = _dist(spec)
            name = IMPORT_NAME.get(dist, dist.replace("-", "_"))
            assert name in used, f"extra [{extra}]: {dist} is never imported"


def test_import_gitrun_loads_nothing_heavy():
    code = (
        "import sys, gitrun\n"
        "heavy = [m for m in ('pandas', 'yaml', 'click', 'git', 'sklearn', 'mlflow', 'numpy')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
