"""The trainer on tiny in-memory datasets: learning, artifacts, divergence, stop, resume."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from biosignals.config_safety import UnsafeTargetError
from biosignals.data.dataset import SignalDataset, Split, compute_dataset_hash
from biosignals.metrics import classification_metrics, regression_metrics
from biosignals.trainer import EpochReport, TrainerError, train

T = 64
SUMMARY_KEYS = {
    "status", "metric", "mode", "best_value", "best_epoch", "epochs_run", "num_params",
    "duration_s", "started_at", "finished_at", "model", "model_target", "dataset", "task",
    "test", "error", "seed", "dataset_hash", "simulator_version",
}  # fmt: skip
CNN = {"_target_": "biosignals.models.cnn1d.CNN1D", "width": 8, "depth": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _split(rng: np.random.Generator, n: int, task: str, group: str) -> Split:
    t = np.arange(T) / T
    y: np.ndarray
    if task == "classification":
        y = rng.integers(0, 3, n)
        freq = np.array([2.0, 5.0, 9.0])[y]
    else:
        freq = rng.uniform(1.0, 10.0, n)
        y = freq * 10.0  # "bpm"-like scale: the trainer standardises targets
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.sin(2 * np.pi * freq[:, None] * t + phase) + 0.3 * rng.normal(size=(n, T))
    groups = np.array([f"{group}{i % 4}" for i in range(n)])
    y_arr = y.astype(np.int64) if task == "classification" else y.astype(np.float32)
    return Split(x[:, None, :].astype(np.float32), y_arr, groups)


def tiny_dataset(task: str = "classification", n_train: int = 192, seed: int = 0) -> SignalDataset:
    rng = np.random.default_rng(seed)
    return SignalDataset(
        name=f"tiny/{task}",
        task=task,  # type: ignore[arg-type]
        train=_split(rng, n_train, task, "a"),
        val=_split(rng, 64, task, "b"),
        test=_split(rng, 64, task, "c"),
        class_names=["lo", "mid", "hi"] if task == "classification" else [],
        sampling_rate=float(T),
        target_name="tone" if task == "classification" else "freq",
    )


def make_cfg(run_dir: Path, model: dict[str, Any] | None = None, **trainer: Any) -> DictConfig:
    base = {
        "epochs": 3,
        "batch_size": 32,
        "lr": 1e-2,
        "weight_decay": 0.0,
        "optimizer": {
            "_target_": "torch.optim.AdamW",
            "_partial_": True,
            "lr": "${trainer.lr}",
            "weight_decay": "${trainer.weight_decay}",
        },
        "scheduler": "cosine",
        "warmup_epochs": 0.5,
        "grad_clip": 1.0,
        "device": "cpu",
    }
    base.update(trainer)
    return OmegaConf.create(
        {"seed": 0, "run_dir": str(run_dir), "model": model or dict(CNN), "trainer": base}
    )


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_classification_learns_and_writes_artifacts(tmp_path: Path) -> None:
    summary = train(make_cfg(tmp_path, class_weighted_loss=True), dataset=tiny_dataset())
    rows = read_rows(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert set(r) >= {
            "epoch", "train/loss", "val/loss", "val/macro_f1", "val/accuracy",
            "val/balanced_accuracy", "lr", "time", "epoch_time", "train_time",
        }  # fmt: skip
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rows[-1]["time"] >= rows[0]["time"] > 0

    data = json.loads((tmp_path / "summary.json").read_text())
    assert set(data) >= SUMMARY_KEYS
    assert data == summary.to_dict()
    assert data["status"] == "completed" and data["error"] is None
    assert (data["metric"], data["mode"]) == ("val/macro_f1", "max")
    assert data["best_value"] == max(r["val/macro_f1"] for r in rows)
    assert data["model"] == "cnn1d" and data["task"] == "classification"
    assert data["epochs_run"] == 3 and data["num_params"] > 0
    per_class = {f"test/{m}_{c}" for m in ("se", "ppv") for c in ("lo", "mid", "hi")}
    assert set(data["test"]) == {
        "test/loss",
        "test/macro_f1",
        "test/accuracy",
        "test/balanced_accuracy",
        *per_class,
    }
    assert data["best_value"] > 0.5  # three well-separated tones

    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert saved.trainer.optimizer.lr == 1e-2  # resolved
    assert (tmp_path / "model.pt").is_file()


def test_regression_metrics_and_defaults(tmp_path: Path) -> None:
    summary = train(make_cfg(tmp_path, regression_loss="huber"), dataset=tiny_dataset("regression"))
    rows = read_rows(tmp_path)
    assert {"val/mae", "val/rmse"} <= set(rows[0]) and "val/macro_f1" not in rows[0]
    assert (summary.metric, summary.mode, summary.status) == ("val/mae", "min", "completed")
    assert summary.best_value == min(r["val/mae"] for r in rows)
    assert set(summary.test) == {"test/loss", "test/mae", "test/rmse"}
    assert rows[-1]["val/mae"] < 25.0  # targets span 10..100: better than guessing the mean


def test_nan_loss_ends_as_diverged(tmp_path: Path) -> None:
    data = tiny_dataset()
    data.train.x[:] = np.nan
    summary = train(make_cfg(tmp_path), dataset=data)
    assert summary.status == "diverged"
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["status"] == "diverged" and saved["best_value"] is None
    assert saved["epochs_run"] == 0 and saved["test"] == {}


def test_callback_stops_and_sees_reports(tmp_path: Path) -> None:
    reports: list[EpochReport] = []

    def callback(report: EpochReport) -> bool:
        reports.append(report)
        return report.epoch == 2

    summary = train(make_cfg(tmp_path, epochs=5), dataset=tiny_dataset(), epoch_callback=callback)
    assert summary.status == "stopped" and summary.epochs_run == 2
    assert [r.epoch for r in reports] == [1, 2] and reports[0].is_best
    assert "val/macro_f1" in reports[0].metrics
    assert not any(r.is_last for r in reports)  # stopped before the last planned epoch
    last: list[bool] = []
    train(
        make_cfg(tmp_path / "all", epochs=3),
        dataset=tiny_dataset(),
        epoch_callback=lambda r: last.append(r.is_last),
    )
    assert last == [False, False, True]


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path: Path) -> None:
    data = tiny_dataset()
    full = train(make_cfg(tmp_path / "full", epochs=4), dataset=data)

    def stop_after_two(report: EpochReport) -> bool:
        if report.epoch == 2:
            report.save_checkpoint(tmp_path / "ckpt")
            return True
        return False

    train(make_cfg(tmp_path / "a", epochs=4), dataset=data, epoch_callback=stop_after_two)
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    resumed = train(make_cfg(tmp_path / "b", epochs=4), dataset=data, resume_from=tmp_path / "ckpt")
    rows_full, rows_resumed = read_rows(tmp_path / "full"), read_rows(tmp_path / "b")
    assert [r["epoch"] for r in rows_resumed] == [1, 2, 3, 4]
    for a, b in zip(rows_full, rows_resumed, strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-5)
        assert b["val/loss"] == pytest.approx(a["val/loss"], rel=1e-5)
    assert resumed.best_epoch == full.best_epoch
    assert resumed.best_value == pytest.approx(full.best_value)


def test_resume_from_missing_checkpoint_fails(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="resume_from"):
        train(make_cfg(tmp_path), dataset=tiny_dataset(), resume_from=tmp_path / "nope")
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_early_stopping(tmp_path: Path) -> None:
    encoder = {
        "_target_": "biosignals.models.encoder_classifier.EncoderClassifier",
        "d_model": 16, "nhead": 2, "num_layers": 1, "dropout": 0.0,
    }  # fmt: skip
    cfg = make_cfg(
        tmp_path, encoder, epochs=6, lr=1e-12, early_stopping_patience=2, metric="val/accuracy"
    )
    summary = train(cfg, dataset=tiny_dataset())
    assert summary.status == "completed" and summary.early_stopped
    assert summary.epochs_run == 3 and summary.best_epoch == 1


@pytest.mark.parametrize("scheduler", ["onecycle", "none"])
def test_schedulers(tmp_path: Path, scheduler: str) -> None:
    summary = train(make_cfg(tmp_path, epochs=2, scheduler=scheduler), dataset=tiny_dataset())
    assert summary.status == "completed"
    lrs = [r["lr"] for r in read_rows(tmp_path)]
    if scheduler == "none":
        assert lrs == [pytest.approx(1e-2)] * 2
    else:
        assert lrs[-1] < 1e-3  # one-cycle anneals to ~0


def test_unsafe_target_is_refused_before_instantiation(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, {"_target_": "os.system", "command": "echo pwned"})
    with pytest.raises(UnsafeTargetError, match=r"model\._target_"):
        train(cfg, dataset=tiny_dataset())
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["status"] == "failed" and "UnsafeTargetError" in saved["error"]


@pytest.mark.parametrize(
    ("override", "match"),
    [({"epochs": 0}, "trainer.epochs"), ({"scheduler": "step"}, "trainer.scheduler"),
     ({"metric": "val/mae"}, "trainer.metric")],
)  # fmt: skip
def test_bad_trainer_settings_fail_clearly(
    tmp_path: Path, override: dict[str, Any], match: str
) -> None:
    with pytest.raises(TrainerError, match=match):
        train(make_cfg(tmp_path, **override), dataset=tiny_dataset())


def test_wrong_output_shape_is_reported(tmp_path: Path) -> None:
    # nn.Identity accepts and ignores the contract's kwargs, and returns (B, C, T)
    cfg = make_cfg(tmp_path, {"_target_": "torch.nn.Identity"})
    with pytest.raises(TrainerError, match=r"\(B, num_classes\) = \(2, 3\)"):
        train(cfg, dataset=tiny_dataset())


def test_seeded_runs_repeat(tmp_path: Path) -> None:
    a = train(make_cfg(tmp_path / "a", epochs=2), dataset=tiny_dataset())
    b = train(make_cfg(tmp_path / "b", epochs=2), dataset=tiny_dataset())
    assert a.best_value == b.best_value
    assert (
        read_rows(tmp_path / "a")[-1]["train/loss"] == read_rows(tmp_path / "b")[-1]["train/loss"]
    )


def test_classification_metrics_match_definitions() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    m = classification_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    f1 = [2 * 1 / (2 + 2), 2 * 2 / (2 + 3), 2 * 1 / (2 + 1)]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    # a class absent from both y_true and y_pred does not count (scikit-learn's behaviour)
    assert classification_metrics(y_true, y_pred, 5)["macro_f1"] == pytest.approx(m["macro_f1"])


def test_regression_metrics() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0]))
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))


def test_torch_threads_untouched(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    train(make_cfg(tmp_path, epochs=1), dataset=tiny_dataset())
    assert torch.get_num_threads() == before


def test_unset_model_target_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match=r"model\._target_ is missing"):
        train(make_cfg(tmp_path, {"_target_": "???"}), dataset=tiny_dataset())


# --- provenance (issue 10) ----------------------------------------------------------------


def test_summary_reports_seed_and_dataset_hash(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path / "a", epochs=1)
    cfg.seed = 7
    data = tiny_dataset()
    summary = train(cfg, dataset=data)
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert (saved["seed"], summary.seed) == (7, 7)
    assert saved["dataset_hash"] == summary.dataset_hash == compute_dataset_hash(data)
    assert saved["simulator_version"] is None  # built in memory from no simulator
    assert summary.dataset_hash != compute_dataset_hash(tiny_dataset(seed=1))

    # a dataset from the cache carries its hash and simulator: the trainer passes them on
    stamped = replace(data, dataset_hash="feedc0ffee123456", simulator_version="ecg_synth/2")
    again = train(make_cfg(tmp_path / "b", epochs=1), dataset=stamped)
    assert (again.dataset_hash, again.simulator_version) == ("feedc0ffee123456", "ecg_synth/2")
    assert again.seed == 0


def test_summary_provenance_from_the_dataset_cache(tmp_path: Path) -> None:
    from biosignals.data.cache import load_dataset

    dataset_cfg = {
        "_target_": "biosignals.data.ppg_synth.build_synthetic",
        "n_participants": 5, "minutes_per_participant": 1.0, "val_participants": 1,
        "test_participants": 1,
    }  # fmt: skip
    cfg = make_cfg(tmp_path / "run", epochs=1)
    cfg.dataset = dataset_cfg
    cfg.paths = {"cache_dir": str(tmp_path / "cache")}
    summary = train(cfg)
    loaded = load_dataset(dataset_cfg, tmp_path / "cache")
    assert summary.simulator_version == loaded.simulator_version
    assert summary.simulator_version is not None and summary.simulator_version.startswith(
        "ppg_synth/"
    )
    assert summary.dataset_hash == loaded.dataset_hash == compute_dataset_hash(loaded)


def test_failure_before_the_data_leaves_the_hash_unset(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, {"_target_": "os.system", "command": "echo pwned"})
    with pytest.raises(UnsafeTargetError):
        train(cfg, dataset=tiny_dataset())
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["dataset_hash"] is None and saved["seed"] == 0


def test_feedback_record_reads_the_trainers_provenance(tmp_path: Path) -> None:
    """The key names the trainer writes are the ones `feedback.RunRecord` reads."""
    from feedback import RunRecord

    cfg = make_cfg(tmp_path, epochs=1)
    cfg.seed = 11
    summary = train(cfg, dataset=tiny_dataset())
    record = RunRecord.from_run_dir(
        tmp_path, run_id="r", campaign="c", arm="a", tier=0, origin="optuna",
        git_commit="0" * 40,
    )  # fmt: skip
    assert (record.seed, record.dataset_hash, record.simulator_version) == (
        11, summary.dataset_hash, None,
    )  # fmt: skip
    assert record.git_commit == "0" * 40
