"""The response headers a model server sets and the router passes on (no imports: the router stays light)."""

from __future__ import annotations

#: The model version that answered.
VERSION_HEADER = "X-Sluice-Model-Version"
#: Per column, how many values of the request are a category the model never saw: ``col=n,col=n``.
UNKNOWN_HEADER = "X-Sluice-Unknown-Categories"
