"""Model serving: strict request validation and the scoring app in front of a model version."""
