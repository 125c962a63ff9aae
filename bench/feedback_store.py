"""Feedback store benchmarks: append with 100k runs stored; filtered query over 1M runs.

Run: ``python -m bench.feedback_store`` (about a minute; builds stores in a temp dir), or as
part of the suite: ``python -m bench --only platform``. Targets (issue 3): append median
<= 5 ms with 100,000 runs stored; a filtered query over 1,000,000 runs <= 0.5 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.feedback_common import write_store_like_appends
from feedback import FeedbackStore, RunRecord


def _record(i: int) -> RunRecord:
    return RunRecord(
        run_id=f"new-{i:08d}",
        campaign="bench",
        trial_id=f"t{i}",
        arm=f"arm-{i % 50}",
        tier=0,
        origin="optuna",
        overrides=[f"trainer.lr={1e-3 * (1 + i % 5):.3g}", "model.width=64", "model.depth=4"],
        params={"trainer.lr": 1e-3 * (1 + i % 5), "model.width": 64, "model.depth": 4},
        status="completed",
        metric="val/macro_f1",
        mode="max",
        value=0.8,
        best_epoch=10,
        epochs_run=20,
        duration_s=120.0,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        model="cnn1d",
        num_params=100_000,
    )


def bench_append(root: Path, stored: int, appends: int) -> dict[str, float]:
    files = write_store_like_appends(root, stored)
    store = FeedbackStore(root)
    times = []
    for i in range(appends):
        rec = _record(i)
        start = time.perf_counter()
        store.append(rec)
        times.append(time.perf_counter() - start)
    times.sort()
    return {
        "stored": stored,
        "files": files,
        "median_ms": 1e3 * statistics.median(times),
        "p95_ms": 1e3 * times[int(0.95 * len(times))],
        "max_ms": 1e3 * times[-1],
    }


def bench_query(root: Path, stored: int, repeats: int = 3) -> dict[str, float]:
    files = write_store_like_appends(root, stored)
    out: dict[str, float] = {"stored": stored, "files": files}
    cold = []
    for r in range(repeats):
        store = FeedbackStore(root)  # a fresh process's view: nothing cached
        start = time.perf_counter()
        table = store.table(campaign="bench", arm=f"arm-{7 + r}", status="completed")
        cold.append(time.perf_counter() - start)
        out["rows"] = table.num_rows
    out["cold_arm_status_s"] = statistics.median(cold)
    store = FeedbackStore(root)
    start = time.perf_counter()
    full = store.table()
    out["cold_full_read_s"] = time.perf_counter() - start
    out["full_rows"] = full.num_rows
    warm = []
    for r in range(repeats):
        start = time.perf_counter()
        store.table(status="completed", tier=[2, 3], arm=f"arm-{20 + r}")
        warm.append(time.perf_counter() - start)
    out["warm_arm_status_tier_s"] = statistics.median(warm)
    start = time.perf_counter()
    records = store.runs(arm="arm-7", status="completed")
    out["warm_runs_as_records_s"] = time.perf_counter() - start
    out["records"] = len(records)
    return out


def measure(stored: int, appends: int, query_runs: int) -> dict[str, Any]:
    """Both benchmarks in a temporary folder: {"append": ..., "query": ...}."""
    tmp = Path(tempfile.mkdtemp(prefix="agentune-bench-"))
    try:
        return {
            "append": bench_append(tmp / "append", stored, appends),
            "query": bench_query(tmp / "query", query_runs),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Run both benchmarks with the command line's sizes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--query-runs", type=int, default=1_000_000)
    args = parser.parse_args()
    figures = measure(args.stored, args.appends, args.query_runs)
    a, q = figures["append"], figures["query"]
    ok = a["median_ms"] <= 5.0
    print(
        f"append with {a['stored']:,} runs stored ({a['files']:.0f} files): "
        f"median {a['median_ms']:.2f} ms, p95 {a['p95_ms']:.2f} ms, "
        f"max {a['max_ms']:.1f} ms (target median <= 5 ms: {'PASS' if ok else 'FAIL'})"
    )
    ok = q["cold_arm_status_s"] <= 0.5
    print(
        f"query over {q['stored']:,} runs ({q['files']:.0f} files), arm+status filter, "
        f"fresh store object: {q['cold_arm_status_s']:.3f} s, {q['rows']:.0f} rows "
        f"(target <= 0.5 s: {'PASS' if ok else 'FAIL'})"
    )
    print(
        f"  full read of {q['full_rows']:,.0f} runs: {q['cold_full_read_s']:.2f} s; then "
        f"arm+status+tier filter from memory: {q['warm_arm_status_tier_s'] * 1e3:.1f} ms; "
        f"{q['records']:.0f} RunRecord objects: {q['warm_runs_as_records_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
