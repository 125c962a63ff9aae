"""Signals benchmark: drift, stagnation and the recommendation over 100,000 runs.

Run: ``python -m bench.feedback_signals``, or as part of the suite:
``python -m bench --only platform``. Target (issue 3): at most 50 ms.
"""

from __future__ import annotations

import statistics
import time

from bench.feedback_common import synthetic_runs
from feedback import History, SignalThresholds, drift, recommend, stagnation


def _median_s(fn: object, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n: int = 100_000, repeats: int = 15) -> dict[str, float]:
    """Median seconds of each signal over `n` synthetic runs, keyed as the printout."""
    table = synthetic_runs(n)
    th = SignalThresholds(window=20, min_delta=0.001, target=0.99, budget=10 * n)
    recommend(table, th)  # warm-up (imports scipy.stats)
    return {
        "recommend (from the store's pyarrow.Table)": _median_s(
            lambda: recommend(table, th), repeats
        ),
        "History.from_table": _median_s(lambda: History.from_table(table), repeats),
        "drift": _median_s(lambda: drift(table, th), repeats),
        "stagnation": _median_s(lambda: stagnation(table, th), repeats),
    }


def main() -> None:
    """Measure over 100,000 runs and print the figures."""
    n = 100_000
    results = measure(n)
    for name, seconds in results.items():
        print(f"{name} over {n:,} runs: {seconds * 1e3:.1f} ms (median of 15)")
    total = results["recommend (from the store's pyarrow.Table)"]
    print(
        f"signals over {n:,} runs: {total * 1e3:.1f} ms (target <= 50 ms: "
        f"{'PASS' if total <= 0.05 else 'FAIL'})"
    )


if __name__ == "__main__":
    main()
