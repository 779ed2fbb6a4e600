"""Feature transforms (pure functions named in model configs) and the offline feature store writer."""
