"""`gitrun.spark` as MLflow programs import it; the code lives in `gitrun.mlflow.spark`.

The module replaces itself with that one, so `import gitrun.spark` and attribute access give
the very same module object.
"""

import sys

from .mlflow import spark as _impl

sys.modules[__name__] = _impl
