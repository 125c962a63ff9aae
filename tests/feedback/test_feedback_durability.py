"""Kill a writer in the middle of appending; every acknowledged record must survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from feedback import FeedbackStore

# Appends records in a loop and prints each run_id once append() has returned. fanout=3
# makes merges (multi-file rewrites) frequent, so kills also land inside them.
WRITER = """
import sys
from datetime import datetime, timezone
from feedback import FeedbackStore, RunRecord, Event

store = FeedbackStore(sys.argv[1], fanout=3)
print("ready", flush=True)
i = 0
while True:
    rid = f"run-{i:06d}"
    store.append(RunRecord(
        run_id=rid, campaign="c", arm="a", tier=0, origin="optuna", status="completed",
        metric="m", mode="max", value=i / 1000, params={"trainer.lr": 0.001, "i": i},
        overrides=[f"i={i}"], finished_at=datetime.now(timezone.utc),
    ))
    if i % 7 == 0:
        store.append_curve(rid, [{"epoch": 1, "m": 0.1}, {"epoch": 2, "m": 0.2}], campaign="c")
    print(rid, flush=True)
    i += 1
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_writer_loses_nothing_acknowledged(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    root = tmp_path / "history"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    acked: list[str] = []
    stop_after = int(rng.integers(30, 120))
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) >= stop_after:
            break
    time.sleep(float(rng.uniform(0, 0.02)))  # land somewhere inside a later append
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rest = proc.stdout.read()
    acked += [line for line in rest.split("\n")[:-1] if line]  # complete lines only
    proc.stdout.close()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no corrupt fragment may be reported
        store = FeedbackStore(root)
        ids = store.table()["run_id"].to_pylist()
        curves = store.curves()
    assert store.skipped == {}
    assert len(ids) == len(set(ids))
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged records lost: {sorted(missing)[:5]}"
    assert len(ids) - len(acked) <= 1  # at most the append that was killed
    assert set(curves["run_id"].to_pylist()) <= set(ids) | {f"run-{len(ids):06d}"}


def test_reader_in_another_process_sees_a_consistent_growing_store(tmp_path: Path) -> None:
    root = tmp_path / "history"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        counts = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:  # read while the writer appends and merges
                ids = FeedbackStore(root).table()["run_id"].to_pylist()
                assert len(ids) == len(set(ids))
                counts.append(len(ids))
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert counts == sorted(counts) and counts[-1] > counts[0]
