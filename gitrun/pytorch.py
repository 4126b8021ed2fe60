"""`gitrun.pytorch` as MLflow programs import it; the code lives in
`gitrun.mlflow.pytorch`.

The module replaces itself with that one, so `import gitrun.pytorch` and attribute access give
the very same module object.
"""

import sys

from .mlflow import pytorch as _impl

sys.modules[__name__] = _impl
