"""The trainer's AAMI-style reporting: per-class Se/PPV in every metrics.jsonl row, the best
epoch's validation results and the test results with both confusion matrices in
summary.json; regression runs are unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from biosignals.data.dataset import SignalDataset, Split
from biosignals.metrics import per_class_from_confusion
from biosignals.trainer import EpochReport, train

T = 64
CLASSES = ["N", "S", "V", "F", "Q"]
PRESENT = 3  # only N, S, V occur: F and Q have no windows in any split
CNN = {"_target_": "biosignals.models.cnn1d.CNN1D", "width": 8, "depth": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _split(rng: np.random.Generator, n: int, task: str) -> Split:
    t = np.arange(T) / T
    y: np.ndarray
    if task == "classification":
        y = rng.integers(0, PRESENT, n)
        freq = np.array([2.0, 5.0, 9.0])[y]
    else:
        freq = rng.uniform(1.0, 10.0, n)
        y = freq * 10.0
    x = np.sin(2 * np.pi * freq[:, None] * t) + 0.3 * rng.normal(size=(n, T))
    y_arr = y.astype(np.int64) if task == "classification" else y.astype(np.float32)
    return Split(x[:, None, :].astype(np.float32), y_arr, np.array(["p"] * n))


def _dataset(task: str = "classification") -> SignalDataset:
    rng = np.random.default_rng(0)
    return SignalDataset(
        name=f"tiny5/{task}",
        task=task,  # type: ignore[arg-type]
        train=_split(rng, 160, task),
        val=_split(rng, 48, task),
        test=_split(rng, 40, task),
        class_names=CLASSES if task == "classification" else [],
        sampling_rate=float(T),
    )


def _cfg(run_dir: Path, epochs: int = 3) -> DictConfig:
    trainer = {"epochs": epochs, "batch_size": 32, "lr": 1e-2, "device": "cpu"}
    return OmegaConf.create({"seed": 0, "run_dir": str(run_dir), "model": CNN, "trainer": trainer})


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _per_class_keys(prefix: str) -> set[str]:
    return {f"{prefix}/{m}_{c}" for m in ("se", "ppv") for c in CLASSES}


def test_rows_and_summary_carry_per_class_metrics_and_confusion(tmp_path: Path) -> None:
    data = _dataset()
    summary = train(_cfg(tmp_path), dataset=data)
    rows = _rows(tmp_path)
    for row in rows:
        assert _per_class_keys("val") <= set(row)
        assert all(0.0 <= row[k] <= 1.0 for k in _per_class_keys("val"))
        # F and Q never occur: no Se (0/0) and no true positive, whatever is predicted
        assert {row[f"val/{m}_{c}"] for m in ("se", "ppv") for c in ("F", "Q")} == {0.0}

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == summary.to_dict()
    best = next(r for r in rows if r["epoch"] == saved["best_epoch"])
    assert saved["val"] == {k: v for k, v in best.items() if k.startswith("val/")}
    assert saved["val"]["val/macro_f1"] == saved["best_value"]
    assert _per_class_keys("test") <= set(saved["test"])

    for split, n in (("val", len(data.val)), ("test", len(data.test))):
        confusion = saved[f"{split}_confusion"]
        assert confusion["classes"] == CLASSES
        matrix = np.array(confusion["matrix"])
        assert matrix.shape == (5, 5) and matrix.sum() == n
        assert matrix[PRESENT:].sum() == 0  # F and Q never occur: their rows are empty
        true_counts = np.bincount(data.split(split).y, minlength=5)
        assert matrix.sum(axis=1).tolist() == true_counts.tolist()
        # the matrix and the per-class numbers describe the same predictions
        block = saved["val"] if split == "val" else saved["test"]
        from_matrix = per_class_from_confusion(matrix, CLASSES)
        assert {f"{split}/{k}": v for k, v in from_matrix.items()} == pytest.approx(
            {k: block[k] for k in _per_class_keys(split)}
        )


def test_epoch_reports_carry_the_row_with_per_class_metrics(tmp_path: Path) -> None:
    seen: list[dict[str, float]] = []

    def callback(report: EpochReport) -> None:
        seen.append(report.metrics)

    train(_cfg(tmp_path, epochs=2), dataset=_dataset(), epoch_callback=callback)
    assert len(seen) == 2 and all(_per_class_keys("val") <= set(m) for m in seen)
    assert not any(k.startswith("test") for m in seen for k in m)


def test_a_resumed_run_reports_the_best_epochs_confusion(tmp_path: Path) -> None:
    """Every epoch ran before the checkpoint: the resumed call evaluates the restored best
    weights again and gets the uninterrupted run's matrices."""
    data = _dataset()
    full = train(_cfg(tmp_path / "full", epochs=2), dataset=data)

    def stop_at_two(report: EpochReport) -> bool:
        if report.epoch == 2:
            report.save_checkpoint(tmp_path / "ckpt")
            return True
        return False

    train(_cfg(tmp_path / "a", epochs=2), dataset=data, epoch_callback=stop_at_two)
    resumed = train(_cfg(tmp_path / "b", epochs=2), dataset=data, resume_from=tmp_path / "ckpt")
    assert resumed.val_confusion == full.val_confusion is not None
    assert resumed.test_confusion == full.test_confusion is not None
    assert resumed.val == pytest.approx(full.val)


def test_regression_runs_have_no_per_class_results(tmp_path: Path) -> None:
    summary = train(_cfg(tmp_path, epochs=2), dataset=_dataset("regression"))
    rows = _rows(tmp_path)
    assert not any("/se_" in k or "/ppv_" in k for r in rows for k in r)
    assert set(summary.test) == {"test/loss", "test/mae", "test/rmse"}
    assert summary.val_confusion is None and summary.test_confusion is None
    assert set(summary.val) == {"val/loss", "val/mae", "val/rmse"}
