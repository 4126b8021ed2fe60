"""`gitrun.xgboost` as MLflow programs import it; the code lives in `gitrun.mlflow.xgboost`.

The module replaces itself with that one, so `import gitrun.xgboost` and attribute access give
the very same module object.
"""

import sys

from .mlflow import xgboost as _impl

sys.modules[__name__] = _impl
