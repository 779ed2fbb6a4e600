"""The model registry and metadata store (MLflow): aliases, versions, lineage tags, training runs."""
