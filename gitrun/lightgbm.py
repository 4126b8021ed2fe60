"""`gitrun.lightgbm` as MLflow programs import it; the code lives in `gitrun.mlflow.lightgbm`.

The module replaces itself with that one, so `import gitrun.lightgbm` and attribute access give
the very same module object.
"""

import sys

from .mlflow import lightgbm as _impl

sys.modules[__name__] = _impl
