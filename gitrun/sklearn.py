"""`gitrun.sklearn` as MLflow programs import it; the code lives in
`gitrun.mlflow.sklearn`.

The module replaces itself with that one, so `import gitrun.sklearn` and attribute access give
the very same module object.
"""

import sys

from .mlflow import sklearn as _impl

sys.modules[__name__] = _impl
