"""`gitrun.exceptions` as MLflow programs import it (`from mlflow.exceptions import
MlflowException`); the code lives in `gitrun.errors`.

The module replaces itself with that one, so `import gitrun.exceptions` and attribute access
give the very same module object.
"""

import sys

from . import errors as _impl

sys.modules[__name__] = _impl
