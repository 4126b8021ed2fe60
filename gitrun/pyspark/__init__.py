"""`gitrun.pyspark` as MLflow programs import `mlflow.pyspark`: its `ml` submodule has
`autolog()` for pyspark.ml (gitrun.mlflow.pyspark_ml).

Importing it does not import pyspark; inside gitrun, `import pyspark` always means the real
package (absolute imports), never this one.
"""

from . import ml as ml

__all__ = ["ml"]
