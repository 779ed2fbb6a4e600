"""Continuous delivery of model versions: infra validation, deployment targets, smoke test, rollback, ledger."""
