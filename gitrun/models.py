"""`gitrun.models` as MLflow programs import it (`from mlflow.models import infer_signature`,
`from mlflow.models.signature import ModelSignature`); the code lives in
`gitrun.mlflow.models` and `gitrun.mlflow.signature`.

The module replaces itself with that one, so `import gitrun.models` and attribute access give
the very same module object.
"""

import sys

from .mlflow import models as _impl

sys.modules[__name__] = _impl
sys.modules[__name__ + ".signature"] = _impl.signature
