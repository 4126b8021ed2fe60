"""The verbs: record, checkout, rerun, sync, import-mlflow (one module each, no click)."""
