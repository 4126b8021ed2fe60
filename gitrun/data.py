"""`gitrun.data` as MLflow programs import it (`mlflow.data.from_pandas(df, source=...)`);
the code lives in `gitrun.tracking.datasets`.

The module replaces itself with that one, so `import gitrun.data` and attribute access
give the very same module object.
"""

import sys

from .tracking import datasets as _impl

sys.modules[__name__] = _impl
