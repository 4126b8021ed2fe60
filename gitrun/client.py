"""`gitrun.client` as MLflow programs import it (`from mlflow.client import MlflowClient`);
the code lives in `gitrun.tracking.client`.

The module replaces itself with that one, so `import gitrun.client` and attribute access give
the very same module object.
"""

import sys

from .tracking import client as _impl

sys.modules[__name__] = _impl
