"""Run every benchmark (``./dev bench``): each prints a table with ratios against a baseline
measured in the same run. ``--quick`` shrinks the workloads; ``NAME...`` picks benchmarks.

    ./dev bench                 # all, full size
    ./dev bench --quick jobs    # one, small
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")]
    sys.path.insert(0, str(HERE))
    found = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    chosen = names or found
    unknown = [n for n in chosen if n not in found]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(found)}", file=sys.stderr)
        return 2
    worst = 0
    for name in chosen:
        print(f"\n=== benchmark: {name}{' (quick)' if quick else ''}")
        started = time.perf_counter()
        module = importlib.import_module(f"bench_{name}")
        code = module.main(["--quick"] if quick else [])
        print(f"--- {name}: {'met its target' if not code else 'MISSED its target'} "
              f"({time.perf_counter() - started:.1f} s)")
        worst = max(worst, int(code or 0))
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
