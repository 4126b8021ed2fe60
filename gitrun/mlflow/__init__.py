"""MLflow compatibility: the compat table, the MLmodel format, pyfunc, autolog flavors."""
