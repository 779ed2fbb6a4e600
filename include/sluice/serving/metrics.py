"""The model server's counters, in the Prometheus text format at ``GET /metrics``: requests by status, rows
scored, and values of a category the model never saw, per column (``sluice.serving.categories``)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping


def _label(value: str) -> str:
    """A label value as the text format escapes it (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ServerMetrics:
    """Counters of one server process; safe to update from the event loop and worker threads."""

    def __init__(self, model: str, version: str) -> None:
        self.model, self.version = model, version
        self._lock = threading.Lock()
        self.requests: Counter[int] = Counter()
        self.rows_scored = 0
        self.unknown: Counter[str] = Counter()

    def answered(self, status: int, rows: int = 0, unknown: Mapping[str, int] | None = None) -> None:
        with self._lock:
            self.requests[status] += 1
            self.rows_scored += rows
            self.unknown.update(unknown or {})

    def render(self) -> str:
        base = f'model="{_label(self.model)}",version="{_label(self.version)}"'
        with self._lock:
            requests, rows, unknown = dict(self.requests), self.rows_scored, dict(self.unknown)
        lines = [
            "# HELP sluice_requests_total Scoring requests answered, by HTTP status.",
            "# TYPE sluice_requests_total counter",
            *(f'sluice_requests_total{{{base},status="{s}"}} {n}' for s, n in sorted(requests.items())),
            "# HELP sluice_rows_scored_total Rows scored with a 200 answer.",
            "# TYPE sluice_rows_scored_total counter",
            f"sluice_rows_scored_total{{{base}}} {rows}",
            "# HELP sluice_unknown_category_values_total Values of a category the model never saw, by column.",
            "# TYPE sluice_unknown_category_values_total counter",
            *(
                f'sluice_unknown_category_values_total{{{base},column="{_label(c)}"}} {n}'
                for c, n in sorted(unknown.items())
            ),
        ]
        return "\n".join(lines) + "\n"
