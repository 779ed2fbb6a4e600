"""Applications over the platform: the CLI (``python -m sluice``), the demo and the monitoring replay.

Nothing in the platform imports this package; it may import any other room (see the import contracts in
``.importlinter``).
"""
