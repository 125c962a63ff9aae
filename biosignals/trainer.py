"""The training loop: `train(cfg) -> TrainSummary`, writing run artifacts into `cfg.run_dir`.

One call trains one model on one `SignalDataset` and leaves in the run directory:

* `config.yaml`: the resolved config;
* `metrics.jsonl`: one JSON object per completed epoch: "epoch", "train/loss", "val/loss",
  then "val/macro_f1", "val/accuracy", "val/balanced_accuracy" and, per class, "val/se_<class>"
  and "val/ppv_<class>" (classification; `biosignals.metrics.per_class_metrics`) or "val/mae",
  "val/rmse" (regression, in the target's units), "lr", "time" (s since the run began),
  "epoch_time" (s) and "train_time" (s of it spent training, before validation); non-finite
  numbers are written as null;
* `summary.json`: `TrainSummary.to_dict()` (status, best value/epoch of `trainer.metric`, the
  best epoch's validation metrics in "val", the test metrics of its weights in "test", for
  classification both confusion matrices in "val_confusion" and "test_confusion", parameter
  count, timing, and what reproduces the run: "seed", "dataset_hash", "simulator_version");
* `model.pt`: the best epoch's `state_dict` (when `trainer.save_model`).

A NaN/inf training or validation loss ends the run with status "diverged" (no exception); an
`epoch_callback` returning True ends it with status "stopped"; any exception writes status
"failed" with the error and is re-raised.

Speed: the splits are held as tensors (on the GPU when they fit) and batches are gathered with a
seeded `randperm`, so the per-step cost is the model's, not a DataLoader's; the loss is summed on
the device and read once per 32 steps (divergence check) and once per epoch. Torch's thread
count is left as the caller (e.g. Ray) set it.

Example::

    cfg = compose("config", overrides=["experiment=mitbih_aami3_quick", "run_dir=/tmp/run1"])
    summary = train(cfg, epoch_callback=lambda report: tune.report(report.metrics))
    print(summary.status, summary.best_value)
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from biosignals.config_safety import check_targets
from biosignals.data.dataset import SignalDataset, Split, compute_dataset_hash
from biosignals.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    classification_metrics,
    confusion_matrix,
    per_class_from_confusion,
    regression_metrics,
)
from biosignals.models import count_parameters, model_short_name, takes_side_features

logger = logging.getLogger(__name__)

Status = Literal["completed", "diverged", "stopped", "failed"]
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
_DIVERGENCE_CHECK_EVERY = 32  # steps between loss syncs: cheap, yet stops a NaN run early
_SCHEDULERS = ("cosine", "onecycle", "none")
_REGRESSION_LOSSES = ("mse", "l1", "huber")


class TrainerError(ValueError):
    """A trainer setting or input that cannot be used; the message says why and what to do."""


@dataclass
class EpochReport:
    """What the per-epoch callback receives.

    Attributes:
        epoch: 1-based epoch just finished.
        metrics: the epoch's metrics.jsonl row (non-finite values as NaN, not None).
        is_best: whether this epoch improved the tracked metric.
        save_checkpoint: writes a resumable checkpoint (model, optimizer, scheduler, epoch,
            best state, history) into the given directory; valid during the callback only.
        is_last: this is the last planned epoch (`trainer.epochs`); training ends after it.
    """

    epoch: int
    metrics: dict[str, float]
    is_best: bool
    save_checkpoint: Callable[[Path], None]
    is_last: bool = False


EpochCallback = Callable[[EpochReport], bool | None]
"""Called after every epoch; returning True stops training (status "stopped")."""


@dataclass
class TrainSummary:
    """Outcome of one `train` call; `to_dict()` is the content of summary.json.

    `epochs_run` counts completed epochs (the rows of metrics.jsonl); a diverged epoch is not
    counted. `val` holds the best epoch's validation metrics as metrics.jsonl has them
    ("val/loss", "val/macro_f1", "val/se_S", ...); `test` the test-split metrics of the best
    epoch's weights ("test/loss", "test/macro_f1", "test/se_S", "test/ppv_S", ...); both are
    empty when no epoch completed. For classification, `val_confusion` and `test_confusion`
    are the best weights' confusion matrices, ``{"classes": [...], "matrix": [[...]]}`` with
    rows true and columns predicted (`biosignals.metrics.labelled_confusion`); None otherwise.

    Provenance: `seed` is the seed the run used (``cfg.seed``, default 0); `dataset_hash` the
    `biosignals.data.dataset.compute_dataset_hash` of the data it trained, validated and
    tested on (None only when the run failed before the data was loaded); `simulator_version`
    the generator of that data, e.g. "ecg_synth/2" (None for recorded data).
    """

    status: Status
    metric: str
    mode: str
    best_value: float | None
    best_epoch: int | None
    epochs_run: int
    num_params: int
    duration_s: float
    started_at: str
    finished_at: str
    model: str
    model_target: str
    dataset: str
    task: str
    val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    val_confusion: dict[str, Any] | None = None
    test_confusion: dict[str, Any] | None = None
    error: str | None = None
    seed: int = 0
    early_stopped: bool = False
    run_dir: str = ""
    dataset_hash: str | None = None
    simulator_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite floats become None)."""
        result: dict[str, Any] = _json_safe(asdict(self))
        return result


@dataclass(frozen=True)
class TrainerSettings:
    """The `cfg.trainer` values the loop uses, validated (see configs/trainer/default.yaml)."""

    epochs: int = 20
    batch_size: int = 128
    eval_batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 1e-2
    scheduler: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    class_weighted_loss: bool = False
    regression_loss: str = "mse"
    early_stopping_patience: int | None = None
    grad_clip: float | None = None
    num_workers: int = 0
    device: str = "auto"
    metric: str = ""
    mode: str = ""
    save_model: bool = True

    @classmethod
    def from_cfg(
        cls, trainer_cfg: DictConfig | dict[str, Any] | None, task: str
    ) -> TrainerSettings:
        """Read and check settings; metric/mode default by task.

        Raises:
            TrainerError: a value is out of range, with the key, the value and the fix.
        """
        raw: dict[str, Any] = {}
        if trainer_cfg is not None:
            container = (
                OmegaConf.to_container(trainer_cfg, resolve=True)
                if isinstance(trainer_cfg, DictConfig)
                else dict(trainer_cfg)
            )
            if not isinstance(container, dict):
                raise TrainerError(f"cfg.trainer must be a mapping, got {container!r}")
            raw = {k: v for k, v in container.items() if k in cls.__dataclass_fields__}
        default_metric, default_mode = (
            ("val/macro_f1", "max") if task == "classification" else ("val/mae", "min")
        )
        if not raw.get("metric"):
            raw["metric"] = default_metric
            raw["mode"] = raw.get("mode") or default_mode
        elif not raw.get("mode"):
            raw["mode"] = "min" if raw["metric"] in ("val/loss", "val/mae", "val/rmse") else "max"
        settings = cls(**raw)
        settings._check(task)
        return settings

    def _check(self, task: str) -> None:
        def bad(key: str, rule: str, fix: str) -> TrainerError:
            return TrainerError(f"trainer.{key} {rule}, got {getattr(self, key)!r}; {fix}")

        if self.epochs < 1:
            raise bad("epochs", "must be >= 1", "e.g. trainer.epochs=10")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise TrainerError(
                f"trainer.batch_size and eval_batch_size must be >= 1, got {self.batch_size} "
                f"and {self.eval_batch_size}; e.g. trainer.batch_size=128"
            )
        if not self.lr > 0:
            raise bad("lr", "must be > 0", "e.g. trainer.lr=1e-3")
        if self.weight_decay < 0:
            raise bad("weight_decay", "must be >= 0", "e.g. trainer.weight_decay=0.01")
        if self.scheduler not in _SCHEDULERS:
            raise bad("scheduler", f"must be one of {_SCHEDULERS}", "e.g. trainer.scheduler=cosine")
        if self.warmup_epochs < 0:
            raise bad("warmup_epochs", "must be >= 0", "e.g. trainer.warmup_epochs=1")
        if not 0 <= self.min_lr_ratio <= 1:
            raise bad("min_lr_ratio", "must lie in [0, 1]", "e.g. trainer.min_lr_ratio=0.01")
        if self.regression_loss not in _REGRESSION_LOSSES:
            raise bad("regression_loss", f"must be one of {_REGRESSION_LOSSES}", "e.g. mse")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 0:
            raise bad("early_stopping_patience", "must be >= 0 or null", "0/null disables it")
        if self.grad_clip is not None and self.grad_clip < 0:
            raise bad("grad_clip", "must be >= 0 or null", "0/null disables clipping")
        if self.num_workers < 0:
            raise bad("num_workers", "must be >= 0", "0 batches from in-memory tensors")
        allowed = ["val/loss"] + [
            f"val/{m}"
            for m in (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
        ]
        if self.metric not in allowed:
            raise bad("metric", f"must be one of {allowed} for a {task} dataset", "pick one")
        if self.mode not in ("min", "max"):
            raise bad("mode", "must be 'min' or 'max'", "e.g. trainer.mode=max for val/macro_f1")


# ----------------------------------------------------------------------------- helpers


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats with None, recursively; numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_json_safe(data), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def resolve_run_dir(cfg: DictConfig) -> Path:
    """`cfg.run_dir`, else Hydra's output dir inside `@hydra.main`, else the current directory."""
    run_dir = OmegaConf.select(cfg, "run_dir", default=None)
    if run_dir:
        return Path(str(run_dir))
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise TrainerError(
            f"trainer.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}"
        ) from e


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _tensor(a: npt.NDArray[Any], dtype: torch.dtype) -> torch.Tensor:
    """Zero-copy view of `a` when possible (arrays from Ray's object store are read-only;
    the trainer never writes into them, so torch's writability warning is moot)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(dtype)


@dataclass
class _SplitTensors:
    x: torch.Tensor  # (N, C, T) float32
    f: torch.Tensor  # (N, F) float32 side features; F may be 0
    y: torch.Tensor  # (N,) int64 class or float32 standardised target
    y_raw: npt.NDArray[Any]  # (N,) original targets, for metrics

    def __len__(self) -> int:
        return len(self.y)


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes < free // 4  # leave room for activations of the widest models


def _to_tensors(
    split: Split, task: str, target_mean: float, target_std: float, device: torch.device
) -> _SplitTensors:
    x = _tensor(split.x, torch.float32)
    f = _tensor(split.features, torch.float32)
    if task == "classification":
        y = _tensor(split.y, torch.int64)
    else:
        y = (_tensor(split.y, torch.float32) - target_mean) / target_std
    if _fits_on(device, x.element_size() * x.nelement()):
        x, f, y = x.to(device), f.to(device), y.to(device)
    elif device.type == "cuda":
        x, f, y = x.pin_memory(), f.pin_memory(), y.pin_memory()
    return _SplitTensors(x=x, f=f, y=y, y_raw=np.asarray(split.y))


def _batched_length(n: int, batch_size: int) -> int:
    """Windows used per epoch: all but a lone trailing one (BatchNorm needs two per batch)."""
    return n - 1 if n > 1 and n % batch_size == 1 else n


def _steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(_batched_length(n, batch_size) / batch_size))


def _train_batches(
    data: _SplitTensors,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    num_workers: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Shuffled (x, features, y) batches; a trailing batch of one window is dropped
    (BatchNorm)."""
    n = len(data)
    if num_workers > 0:
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(
            TensorDataset(data.x, data.f, data.y),
            batch_size=batch_size,
            shuffle=True,
            generator=generator,
            num_workers=num_workers,
            drop_last=n % batch_size == 1,
        )
        for xb, fb, yb in loader:
            yield (
                xb.to(device, non_blocking=True),
                fb.to(device, non_blocking=True),
                yb.to(device, non_blocking=True),
            )
        return
    perm = torch.randperm(n, generator=generator).to(data.x.device)
    for i in range(0, _batched_length(n, batch_size), batch_size):
        idx = perm[i : i + batch_size]
        yield (
            data.x[idx].to(device, non_blocking=True),
            data.f[idx].to(device, non_blocking=True),
            data.y[idx].to(device, non_blocking=True),
        )


def _make_scheduler(
    optimizer: torch.optim.Optimizer, s: TrainerSettings, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: linear warmup, then cosine decay to min_lr_ratio, one-cycle or flat."""
    total = max(1, s.epochs * steps_per_epoch)
    warmup = min(round(s.warmup_epochs * steps_per_epoch), total - 1)
    if s.scheduler == "onecycle":
        pct = min(max(warmup / total, 0.05), 0.95)
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total, pct_start=pct
        )
    min_ratio, cosine = s.min_lr_ratio, s.scheduler == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class _LoopState:
    epoch: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_before: float = 0.0  # seconds spent before a resume


def _improved(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _checkpoint_payload(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    state: _LoopState,
    elapsed: float,
) -> dict[str, Any]:
    return {
        "format": 1,
        "epoch": state.epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best_value": state.best_value,
        "best_epoch": state.best_epoch,
        "best_state": state.best_state,
        "bad_epochs": state.bad_epochs,
        "history": state.history,
        "elapsed_s": elapsed,
        "torch_rng": torch.get_rng_state(),
        "generator_rng": generator.get_state(),
    }


def _save_checkpoint(directory: Path, payload: dict[str, Any]) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{CHECKPOINT_FILE}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, directory / CHECKPOINT_FILE)


def _load_checkpoint(path: str | Path, device: torch.device) -> dict[str, Any]:
    path = Path(path)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise TrainerError(
            f"resume_from must be a checkpoint directory holding {CHECKPOINT_FILE} (written by "
            f"EpochReport.save_checkpoint) or that file, got {str(path)!r}; check the path"
        )
    payload: dict[str, Any] = torch.load(file, map_location=device, weights_only=True)
    return payload


# ----------------------------------------------------------------------------- train


def train(
    cfg: DictConfig,
    *,
    dataset: SignalDataset | None = None,
    epoch_callback: EpochCallback | None = None,
    resume_from: str | Path | None = None,
) -> TrainSummary:
    """Train `cfg.model` on `dataset` (or `cfg.dataset`) and write the run artifacts.

    Args:
        cfg: composed config with `model` (a `_target_` following the model contract in
            `biosignals.models`), `trainer` (see configs/trainer/default.yaml), optional `seed`,
            `run_dir`, `dataset` and `paths.cache_dir`.
        dataset: the data; None loads `cfg.dataset` through the dataset cache.
        epoch_callback: called after each epoch with an `EpochReport`; True stops the run.
        resume_from: a directory written by `EpochReport.save_checkpoint`; training continues
            after the checkpoint's epoch with the same schedule (keep `trainer.epochs`).

    Returns:
        The `TrainSummary` also written to summary.json.

    Raises:
        UnsafeTargetError: a `_target_` is outside the allowlist (status "failed" is written).
        TrainerError: a bad trainer setting or checkpoint (status "failed" is written).
        Exception: anything else raised while building or training (status "failed").
    """
    started_at, t_start = _utc_now(), time.perf_counter()
    run_dir = resolve_run_dir(cfg).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(OmegaConf.select(cfg, "seed", default=0) or 0)
    model_target = str(OmegaConf.select(cfg, "model._target_", default="") or "")
    summary = TrainSummary(
        status="failed",
        metric=str(OmegaConf.select(cfg, "trainer.metric", default="") or ""),
        mode=str(OmegaConf.select(cfg, "trainer.mode", default="") or ""),
        best_value=None,
        best_epoch=None,
        epochs_run=0,
        num_params=0,
        duration_s=0.0,
        started_at=started_at,
        finished_at=started_at,
        model=model_short_name(model_target),
        model_target=model_target,
        dataset=dataset.name if dataset is not None else "",
        task=dataset.task if dataset is not None else "",
        seed=seed,
        run_dir=str(run_dir),
    )
    try:
        _write_config(cfg, run_dir)
        check_targets(cfg)
        _run(cfg, run_dir, summary, t_start, dataset, epoch_callback, resume_from)
    except BaseException as e:
        summary.status = "failed"
        summary.error = f"{type(e).__name__}: {e}"
        _finish(summary, run_dir, t_start)
        raise
    _finish(summary, run_dir, t_start)
    return summary


def _write_config(cfg: DictConfig, run_dir: Path) -> None:
    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except Exception as e:  # e.g. a Hydra-only resolver outside Hydra: keep it unresolved
        logger.warning("config.yaml written unresolved: %s", e)
        text = OmegaConf.to_yaml(cfg, resolve=False)
    (run_dir / CONFIG_FILE).write_text(text, encoding="utf-8")


def _finish(summary: TrainSummary, run_dir: Path, t_start: float) -> None:
    summary.finished_at = _utc_now()
    summary.duration_s = round(time.perf_counter() - t_start, 3)
    _write_json_atomic(run_dir / SUMMARY_FILE, summary.to_dict())


def _run(
    cfg: DictConfig,
    run_dir: Path,
    summary: TrainSummary,
    t_start: float,
    dataset: SignalDataset | None,
    epoch_callback: EpochCallback | None,
    resume_from: str | Path | None,
) -> None:
    """The body of `train`; fills `summary` in place (so a failure keeps what is known)."""
    if dataset is None:
        from biosignals.data.cache import load_dataset

        dataset_cfg = OmegaConf.select(cfg, "dataset")
        if dataset_cfg is None:
            raise TrainerError("cfg.dataset is missing and no dataset was passed; add dataset=...")
        dataset = load_dataset(dataset_cfg, OmegaConf.select(cfg, "paths.cache_dir", default=None))
    summary.dataset, summary.task = dataset.name, dataset.task
    # The cache stamped the hash when it built the arrays; a dataset built in memory has none.
    summary.dataset_hash = dataset.dataset_hash or compute_dataset_hash(dataset)
    summary.simulator_version = dataset.simulator_version
    task = dataset.task
    s = TrainerSettings.from_cfg(OmegaConf.select(cfg, "trainer"), task)
    summary.metric, summary.mode = s.metric, s.mode
    for name in ("train", "val"):
        if len(dataset.split(name)) == 0:
            raise TrainerError(f"the {name} split of dataset {dataset.name!r} is empty")

    device = resolve_device(s.device)
    generator = _seed_everything(summary.seed)
    logger.info(
        "run_dir=%s dataset=%s (%s, train/val/test=%d/%d/%d) device=%s threads=%d",
        run_dir,
        dataset.name,
        task,
        len(dataset.train),
        len(dataset.val),
        len(dataset.test),
        device,
        torch.get_num_threads(),
    )

    # model
    if OmegaConf.select(cfg, "model._target_") is None:
        raise TrainerError("cfg.model._target_ is missing; choose a model, e.g. model=cnn1d")
    num_outputs = dataset.num_outputs
    uses_features = takes_side_features(get_object(str(cfg.model._target_)))
    side_args = {"num_features": dataset.num_features} if uses_features else {}
    model: nn.Module = instantiate(
        cfg.model,
        in_channels=dataset.in_channels,
        input_length=dataset.input_length,
        num_classes=num_outputs,
        **side_args,
    )
    if dataset.num_features and not uses_features:
        logger.info(
            "model %s does not declare num_features: its %d side features are not given to it",
            summary.model_target, dataset.num_features,
        )  # fmt: skip
    if not isinstance(model, nn.Module):
        raise TrainerError(
            f"model._target_ {summary.model_target!r} must build a torch.nn.Module, "
            f"got {type(model).__name__}"
        )
    model.to(device)
    summary.num_params = count_parameters(model)
    forward = _forward_fn(model, uses_features)
    _check_output_shape(forward, model, dataset, num_outputs, device)

    # data
    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        y_train = np.asarray(dataset.train.y, dtype=np.float64)
        target_mean = float(y_train.mean())
        target_std = float(y_train.std()) or 1.0
    train_data = _to_tensors(dataset.train, task, target_mean, target_std, device)
    val_data = _to_tensors(dataset.val, task, target_mean, target_std, device)

    # loss
    class_weights: torch.Tensor | None = None
    if task == "classification" and s.class_weighted_loss:
        counts = dataset.class_counts("train").astype(np.float64)
        weights = counts.sum() / (len(counts) * np.maximum(counts, 1.0))  # inverse frequency
        class_weights = torch.tensor(weights, dtype=torch.float32, device=device)

    def criterion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if task == "classification":
            return F.cross_entropy(out, y, weight=class_weights)  # out (B, K), y (B,)
        pred = out.squeeze(-1)  # (B,)
        if s.regression_loss == "l1":
            return F.l1_loss(pred, y)
        if s.regression_loss == "huber":
            return F.smooth_l1_loss(pred, y)
        return F.mse_loss(pred, y)

    class_names = list(dataset.class_names)

    def evaluate(data: _SplitTensors, prefix: str) -> _Evaluation:
        return _evaluate(
            model, forward, data, criterion, task, class_names, s.eval_batch_size, device, prefix,
            (target_mean, target_std),
        )  # fmt: skip

    # optimisation
    optimizer_cfg = OmegaConf.select(cfg, "trainer.optimizer")
    if optimizer_cfg is not None:
        optimizer = instantiate(optimizer_cfg)(model.parameters())
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = _make_scheduler(optimizer, s, _steps_per_epoch(len(train_data), s.batch_size))
    params = [p for p in model.parameters() if p.requires_grad]

    state = _LoopState()
    metrics_path = run_dir / METRICS_FILE
    if resume_from is not None:
        payload = _load_checkpoint(resume_from, device)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["torch_rng"].cpu())
        generator.set_state(payload["generator_rng"].cpu())
        state = _LoopState(
            epoch=int(payload["epoch"]),
            best_value=payload["best_value"],
            best_epoch=payload["best_epoch"],
            best_state=payload["best_state"],
            bad_epochs=int(payload["bad_epochs"]),
            history=list(payload["history"]),
            elapsed_before=float(payload["elapsed_s"]),
        )
        logger.info("resumed from %s after epoch %d", resume_from, state.epoch)
    metrics_path.write_text(
        "".join(json.dumps(_json_safe(row)) + "\n" for row in state.history), encoding="utf-8"
    )

    status: Status = "completed"
    best_val_confusion: npt.NDArray[np.int64] | None = None  # of an epoch of this call
    start_epoch = state.epoch + 1
    for epoch in range(start_epoch, s.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen, diverged = 0, False
        batches = _train_batches(train_data, s.batch_size, generator, device, s.num_workers)
        for step, (xb, fb, yb) in enumerate(batches, start=1):
            out = forward(xb, fb)  # (B, num_outputs)
            loss = criterion(out, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if s.grad_clip:
                nn.utils.clip_grad_norm_(params, s.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(yb)
            seen += len(yb)
            if step % _DIVERGENCE_CHECK_EVERY == 0 and not torch.isfinite(loss_sum).item():
                diverged = True
                break
        train_loss = float((loss_sum / max(seen, 1)).item())
        train_time = time.perf_counter() - t_epoch
        if diverged or not math.isfinite(train_loss):
            status = "diverged"
            logger.warning("epoch %d: training loss is not finite; stopping (diverged)", epoch)
            break
        val_eval = evaluate(val_data, "val")
        val_metrics = val_eval.metrics
        if not math.isfinite(val_metrics["val/loss"]):
            status = "diverged"
            logger.warning("epoch %d: validation loss is not finite; stopping (diverged)", epoch)
            break

        now = time.perf_counter()
        row: dict[str, Any] = {
            "epoch": epoch,
            "train/loss": train_loss,
            **val_metrics,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "time": round(state.elapsed_before + now - t_start, 4),
            "epoch_time": round(now - t_epoch, 4),
            "train_time": round(train_time, 4),
        }
        state.epoch = epoch
        value = float(row[s.metric])
        is_best = _improved(value, state.best_value, s.mode)
        if is_best:
            state.best_value, state.best_epoch, state.bad_epochs = value, epoch, 0
            state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_val_confusion = val_eval.confusion
        else:
            state.bad_epochs += 1
        state.history.append(row)
        with metrics_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(_json_safe(row)) + "\n")
        summary.epochs_run = len(state.history)
        summary.best_value, summary.best_epoch = state.best_value, state.best_epoch
        logger.info(
            "epoch %d/%d train/loss=%.4f val/loss=%.4f %s=%.4f%s (%.1fs)",
            epoch, s.epochs, train_loss, row["val/loss"], s.metric, value,
            " *" if is_best else "", row["epoch_time"],
        )  # fmt: skip

        if epoch_callback is not None:

            def save_checkpoint(directory: Path, _state: _LoopState = state) -> None:
                elapsed = _state.elapsed_before + time.perf_counter() - t_start
                payload = _checkpoint_payload(
                    model, optimizer, scheduler, generator, _state, elapsed
                )
                _save_checkpoint(directory, payload)

            report = EpochReport(
                epoch, dict(row), is_best, save_checkpoint, is_last=epoch == s.epochs
            )
            if epoch_callback(report) is True:
                status = "stopped"
                logger.info("epoch %d: stopped by the epoch callback", epoch)
                break
        patience = s.early_stopping_patience
        if patience and state.bad_epochs >= patience:
            summary.early_stopped = True
            logger.info("epoch %d: no improvement of %s for %d epochs", epoch, s.metric, patience)
            break

    summary.status = status
    summary.epochs_run = len(state.history)
    summary.best_value, summary.best_epoch = state.best_value, state.best_epoch
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
        if s.save_model:
            cpu_state = {k: v.cpu() for k, v in state.best_state.items()}
            torch.save(cpu_state, run_dir / MODEL_FILE)
        best_row = next(r for r in state.history if r["epoch"] == state.best_epoch)
        summary.val = {k: float(v) for k, v in best_row.items() if k.startswith("val/")}
        if task == "classification" and best_val_confusion is None:
            best_val_confusion = evaluate(val_data, "val").confusion  # best epoch before a resume
        if best_val_confusion is not None:
            summary.val_confusion = _labelled(best_val_confusion, class_names)
        if len(dataset.test) > 0:
            test_data = _to_tensors(dataset.test, task, target_mean, target_std, device)
            test_eval = evaluate(test_data, "test")
            summary.test = test_eval.metrics
            if test_eval.confusion is not None:
                summary.test_confusion = _labelled(test_eval.confusion, class_names)


_Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(x (B, C, T), features (B, F)) -> scores (B, num_outputs)."""


def _forward_fn(model: nn.Module, uses_features: bool) -> _Forward:
    """The model's forward as the contract says to call it: with the side features when its
    constructor declares ``num_features``, on the windows alone otherwise."""
    if uses_features:
        return lambda x, f: model(x, f)
    return lambda x, _f: model(x)


def _check_output_shape(
    forward: _Forward,
    model: nn.Module,
    dataset: SignalDataset,
    num_outputs: int,
    device: torch.device,
) -> None:
    """Fail early, with the contract in the message, when forward returns a wrong shape."""
    x = _tensor(dataset.train.x[:2], torch.float32).to(device)  # (2, C, T)
    f = _tensor(dataset.train.features[:2], torch.float32).to(device)  # (2, F)
    model.eval()
    with torch.inference_mode():
        out = forward(x, f)
    model.train()
    expected = (len(x), num_outputs)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TrainerError(
            f"model forward must map (B, C, T) to (B, num_classes) = {expected} for this dataset, "
            f"got {got}; see the model contract in biosignals.models"
        )


@dataclass
class _Evaluation:
    metrics: dict[str, float]  # "<prefix>/loss", "<prefix>/macro_f1", "<prefix>/se_N", ...
    confusion: npt.NDArray[np.int64] | None  # (K, K) rows true, columns predicted; None: regression


def _labelled(cm: npt.NDArray[np.int64], class_names: list[str]) -> dict[str, Any]:
    """summary.json's form of a confusion matrix (`biosignals.metrics.labelled_confusion`)."""
    return {"classes": list(class_names), "matrix": cm.tolist()}


def _evaluate(
    model: nn.Module,
    forward: _Forward,
    data: _SplitTensors,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    task: str,
    class_names: list[str],
    batch_size: int,
    device: torch.device,
    prefix: str,
    target_stats: tuple[float, float],
) -> _Evaluation:
    """Loss and task metrics of `model` on `data`, keys prefixed "<prefix>/"; for
    classification also Se/PPV per class and the confusion matrix."""
    model.eval()
    with torch.inference_mode():
        outs = [
            forward(
                data.x[i : i + batch_size].to(device, non_blocking=True),
                data.f[i : i + batch_size].to(device, non_blocking=True),
            )
            for i in range(0, len(data), batch_size)
        ]
        out = torch.cat(outs)  # (N, num_outputs)
        loss = float(criterion(out, data.y.to(device)).item())
        cm: npt.NDArray[np.int64] | None = None
        if task == "classification":
            pred = out.argmax(dim=1).cpu().numpy()  # (N,)
            y_true = data.y_raw.astype(np.int64)
            metrics = classification_metrics(y_true, pred, len(class_names))
            cm = confusion_matrix(y_true, pred, len(class_names))  # (K, K)
            metrics.update(per_class_from_confusion(cm, class_names))
        else:
            mean, std = target_stats
            pred = (out.squeeze(-1).float() * std + mean).cpu().numpy()  # (N,) target units
            metrics = regression_metrics(data.y_raw.astype(np.float64), pred)
    model.train()
    prefixed = {f"{prefix}/loss": loss, **{f"{prefix}/{k}": v for k, v in metrics.items()}}
    return _Evaluation(prefixed, cm)
