"""Synthetic feedback stores for the feedback benchmarks (no training)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from feedback import RUNS_SCHEMA, SCHEMA_VERSION, FeedbackStore

STATUSES = ["completed", "pruned", "failed", "diverged", "rejected", "infeasible"]
STATUS_P = [0.80, 0.10, 0.05, 0.03, 0.01, 0.01]


def synthetic_runs(n: int, *, seed: int = 0, campaign: str = "bench", start: int = 0) -> pa.Table:
    """``n`` runs shaped like a long campaign: 50 arms visited in turns, all statuses."""
    rng = np.random.default_rng(seed)
    idx = np.arange(start, start + n)
    arm_no = (idx // 2000) % 50
    status = np.array(STATUSES, dtype=object)[rng.choice(len(STATUSES), size=n, p=STATUS_P)]
    has_value = (status == "completed") | (status == "pruned")
    value = 0.6 + 0.25 * (1 - np.exp(-idx / max(n, 1) * 5)) + rng.normal(0, 0.02, n)
    lr = 10 ** rng.uniform(-4, -2, n)
    width = rng.choice([32, 64, 128, 256], n)
    depth = rng.integers(2, 8, n)
    run_ids = [f"run-{i:08d}" for i in idx]
    params = [
        f'{{"model.depth":{d},"model.width":{w},"trainer.lr":{x:.6g}}}'
        for d, w, x in zip(depth, width, lr, strict=True)
    ]
    flat = [
        s
        for d, w, x in zip(depth, width, lr, strict=True)
        for s in (f"trainer.lr={x:.6g}", f"model.width={w}", f"model.depth={d}")
    ]
    overrides = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)), pa.array(flat, pa.string())
    )
    t0 = 1_735_689_600_000_000  # 2025-01-01 in us
    started = t0 + idx.astype(np.int64) * 60_000_000
    duration = rng.uniform(20, 200, n)
    trained = ~np.isin(status, ["rejected", "infeasible"])
    epochs = np.where(trained, rng.integers(1, 31, n), 0).astype(np.int32)
    error = [("RuntimeError: CUDA out of memory" if s == "failed" else None) for s in status]
    tier = np.array([0, 2, 3], dtype=np.int8)[arm_no % 3]
    columns = {
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int16)),
        "run_id": pa.array(run_ids, pa.string()),
        "campaign": pa.array([campaign] * n, pa.string()),
        "trial_id": pa.array(run_ids, pa.string()),
        "arm": pa.array([f"arm-{a}" for a in arm_no], pa.string()),
        "tier": pa.array(tier),
        "origin": pa.array(np.where(tier == 0, "optuna", "agent").tolist(), pa.string()),
        "overrides": overrides,
        "params": pa.array(params, pa.string()),
        "status": pa.array(status.tolist(), pa.string()),
        "metric": pa.array(["val/macro_f1"] * n, pa.string()),
        "mode": pa.array(["max"] * n, pa.string()),
        "value": pa.array(value, mask=~has_value),
        "best_epoch": pa.array(np.maximum(epochs // 2, 1), mask=~has_value),
        "epochs_run": pa.array(epochs),
        "duration_s": pa.array(duration, mask=~trained),
        "started_at": pa.array(started, pa.timestamp("us", tz="UTC"), mask=~trained),
        "finished_at": pa.array(
            started + (duration * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC"), mask=~trained
        ),
        "error": pa.array(error, pa.string()),
        "model": pa.array([f"model{a % 7}" for a in arm_no], pa.string()),
        "num_params": pa.array(rng.integers(10_000, 2_000_000, n)),
        "approval": pa.array([None if t == 0 else "approved" for t in tier], pa.string()),
        "tokens_in": pa.array(np.where(tier == 0, 0, 3000).astype(np.int64)),
        "tokens_out": pa.array(np.where(tier == 0, 0, 400).astype(np.int64)),
        "dataset": pa.array(["mitbih_synth_aami3"] * n, pa.string()),
        "test_metrics": pa.array(["{}"] * n, pa.string()),
        "rationale": pa.array([None] * n, pa.string()),
        "seed": pa.array(idx.astype(np.int64)),
        "git_commit": pa.array(["0" * 40] * n, pa.string()),
        "dataset_hash": pa.array(["0123456789abcdef"] * n, pa.string()),
        "simulator_version": pa.array(["ecg_synth/2"] * n, pa.string()),
        "write_seq": pa.array(time.time_ns() - (n - idx + start) * 1000, pa.int64()),
    }
    return pa.table(columns, schema=RUNS_SCHEMA)


def lsm_shape(n: int, fanout: int = 32) -> list[tuple[int, int]]:
    """(level, rows) of the files that ``n`` single appends leave with ``fanout``."""
    files: list[tuple[int, int]] = []
    level, size, rest = 0, 1, n
    sizes = []
    while size * fanout <= n:
        size *= fanout
        level += 1
    while rest and level >= 0:
        count, rest = divmod(rest, size)
        sizes += [(level, size)] * count
        level, size = level - 1, size // fanout
    files.extend(sizes)
    return files


def write_store_like_appends(root: Path, n: int, *, fanout: int = 32, seed: int = 0) -> int:
    """Write ``n`` synthetic runs in the file layout ``n`` appends leave; returns the file count.

    Uses the store's private writer so a million runs take seconds, not the hours a million
    real appends would.
    """
    store = FeedbackStore(root, fanout=fanout)
    table = synthetic_runs(n, seed=seed)
    offset = 0
    shape = lsm_shape(n, fanout)
    for level, rows in shape:
        part = table.slice(offset, rows)
        if level > 0:  # merged files are sorted as a merge sorts them
            part = part.sort_by(
                [("campaign", "ascending"), ("arm", "ascending"), ("write_seq", "ascending")]
            )
        store._write_file("runs", part, level=level)
        offset += rows
    return len(shape)
