"""Run every benchmark; ``python -m benchmarks [name ...]`` runs a subset (e.g. ``batch serving``)."""

from __future__ import annotations

import sys
import time

from benchmarks import batch, cold_start, drift, drift_quality, gate, parse, serving, training, validation

BENCHES = {
    "parse": parse.main,
    "validation": validation.main,
    "gate": gate.main,
    "training": training.main,
    "batch": batch.main,
    "serving": serving.main,
    "cold_start": cold_start.main,
    "drift": drift.main,
    "drift_quality": drift_quality.main,
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        t0 = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        if not BENCHES[name]():
            failed.append(name)
        print(f"--- {name}: {time.monotonic() - t0:.0f}s", flush=True)
    print(f"\nbudgets {'missed: ' + ', '.join(failed) if failed else 'all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
