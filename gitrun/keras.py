"""`gitrun.keras` as MLflow programs import it; the code lives in
`gitrun.mlflow.keras`.

The module replaces itself with that one, so `import gitrun.keras` and attribute access give
the very same module object.
"""

import sys

from .mlflow import keras as _impl

sys.modules[__name__] = _impl
