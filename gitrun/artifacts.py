"""`gitrun.artifacts` as MLflow programs import it (`from mlflow.artifacts import
download_artifacts`); the code lives in `gitrun.mlflow.artifacts`.

The module replaces itself with that one, so `import gitrun.artifacts` and attribute access
give the very same module object.
"""

import sys

from .mlflow import artifacts as _impl

sys.modules[__name__] = _impl
