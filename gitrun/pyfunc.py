"""`gitrun.pyfunc` as MLflow programs import it; the code lives in
`gitrun.mlflow.pyfunc`.

The module replaces itself with that one, so `import gitrun.pyfunc` and attribute access give
the very same module object.
"""

import sys

from .mlflow import pyfunc as _impl

sys.modules[__name__] = _impl
