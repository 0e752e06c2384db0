"""`make bench`: run every benchmark under bench/ and print their tables."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    bench_console,
    bench_delivery,
    bench_import_seed,
    bench_learning,
    bench_load,
    bench_nlu,
    bench_scan,
)

BENCHMARKS = [
    bench_import_seed,
    bench_nlu,
    bench_learning,
    bench_scan,
    bench_delivery,
    bench_console,
    bench_load,
]

if __name__ == "__main__":
    for module in BENCHMARKS:
        print(f"== {module.__name__}: {(module.__doc__ or '').strip().splitlines()[0]}", flush=True)
        module.main()
