"""`gitrun.pyspark.ml` as MLflow programs import `mlflow.pyspark.ml`; the code lives in
`gitrun.mlflow.pyspark_ml`.

The module replaces itself with that one, so `import gitrun.pyspark.ml` and attribute access
give the very same module object.
"""

import sys

from ..mlflow import pyspark_ml as _impl

sys.modules[__name__] = _impl
