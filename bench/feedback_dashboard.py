"""Dashboard benchmark: 1,000 runs with 20-epoch curves -> one HTML file.

Run: ``python -m bench.feedback_dashboard``, or as part of the suite:
``python -m bench --only platform``. Targets (issue 3): generated in at most 3 s, file at most
5 MB. The time includes reading the store and importing matplotlib (unless an earlier part of
the same process imported it).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.feedback_common import synthetic_runs
from feedback import Event, FeedbackStore, write_dashboard


def build(campaign_dir: Path, n: int = 1000, epochs: int = 20) -> None:
    store = FeedbackStore(campaign_dir / "history")
    table = synthetic_runs(n)
    store._write_file("runs", table, level=1)
    rng = np.random.default_rng(0)
    for i, (run_id, best) in enumerate(
        zip(table["run_id"].to_pylist(), table["value"].to_pylist(), strict=True)
    ):
        if best is None:
            continue
        e = np.arange(1, epochs + 1)
        f1 = best - (best - 0.3) * np.exp(-e / 4) + rng.normal(0, 0.004, epochs)
        loss = 1.1 * np.exp(-e / 5) + 0.25 + rng.normal(0, 0.01, epochs)
        store.append_curve(
            run_id,
            [
                {
                    "epoch": int(k),
                    "val/macro_f1": float(a),
                    "val/loss": float(b),
                    "train/loss": float(b) - 0.1,
                }
                for k, a, b in zip(e, f1, loss, strict=True)
            ],
            campaign="bench",
        )
        if i % 250 == 0:
            store.append_event(Event(campaign="bench", kind="escalation", tier=2 + i % 2))
            store.append_event(
                Event(campaign="bench", kind="approval", data={"decision": "approved"})
            )
    store.append_event(Event(campaign="bench", kind="agent_summary", message="summary " * 200))


def measure(n: int = 1000, epochs: int = 20) -> dict[str, float]:
    """Dashboard of `n` runs: {"cold_s", "warm_s", "bytes"} (cold: the first call)."""
    tmp = Path(tempfile.mkdtemp(prefix="agentune-bench-"))
    try:
        build(tmp, n, epochs)
        start = time.perf_counter()
        out = write_dashboard(tmp)  # first call: includes importing matplotlib
        first = time.perf_counter() - start
        start = time.perf_counter()
        write_dashboard(tmp, tmp / "again.html")
        again = time.perf_counter() - start
        return {"runs": n, "cold_s": first, "warm_s": again, "bytes": out.stat().st_size}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Measure the 1,000-run dashboard and print the figures."""
    figures = measure()
    first, again, size = figures["cold_s"], figures["warm_s"], figures["bytes"]
    ok = first <= 3.0 and size <= 5_000_000
    print(
        f"dashboard for 1,000 runs (20-epoch curves): {first:.2f} s cold, {again:.2f} s "
        f"warm, {size / 1e6:.2f} MB (targets <= 3 s, <= 5 MB: {'PASS' if ok else 'FAIL'})"
    )


if __name__ == "__main__":
    main()
