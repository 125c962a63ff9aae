"""The in-memory dataset every biosignals task hands to the trainer.

A `SignalDataset` is three splits of fixed-length windows, each window with an optional
vector of side features (the RR-interval context of a heart beat, for example), plus what the
trainer needs to build a model and a loss for them. Builders (`biosignals.data.mitbih.build`,
`biosignals.data.galaxyppg.build`, ...) return one; `biosignals.data.cache` stores it on disk
keyed by the dataset config, and Ray ships it to trials through the object store, so it is a
plain dataclass of NumPy arrays (cheap to pickle, zero-copy in Plasma).

`compute_dataset_hash` fingerprints what a dataset holds (its arrays, not its config), so a
run can record exactly which windows it trained on (`SignalDataset.dataset_hash`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Task = Literal["classification", "regression"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
DATASET_HASH_CHARS = 16  # hex characters of `compute_dataset_hash` (64 bits)
_HASH_SCHEME = b"agentune.dataset_hash/1\n"  # bump if what the hash covers changes


class DatasetError(ValueError):
    """A dataset directory, config or array set that cannot be used; the message says why."""


@dataclass
class Split:
    """One split of windows.

    Attributes:
        x: float32 windows, shape (N, C, T).
        y: int64 class indices (classification) or float32 targets (regression), shape (N,).
        groups: the patient/participant id of each window, shape (N,), so leakage is checkable.
        features: float32 side features of each window, shape (N, F); F is 0 when the dataset
            has none (None at construction means F = 0).
    """

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.generic]
    groups: npt.NDArray[np.str_]
    features: npt.NDArray[np.float32] = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.x.ndim != 3:
            raise DatasetError(f"Split.x must have shape (N, C, T), got shape {self.x.shape}")
        if self.features is None:
            self.features = np.zeros((len(self.x), 0), dtype=np.float32)
        if self.features.ndim != 2:
            raise DatasetError(
                f"Split.features must have shape (N, F), got shape {self.features.shape}"
            )
        if not (len(self.x) == len(self.y) == len(self.groups) == len(self.features)):
            raise DatasetError(
                "Split.x, y, groups and features must have the same length, got "
                f"{len(self.x)}, {len(self.y)}, {len(self.groups)}, {len(self.features)}"
            )

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class SignalDataset:
    """Train/val/test windows for one task.

    Attributes:
        name: short dataset identity, e.g. "mitbih_synth/aami3".
        task: "classification" or "regression".
        train, val, test: the splits; no group (patient) appears in two of them.
        class_names: class labels in index order (classification), empty for regression.
        sampling_rate: Hz of the windows' time axis.
        target_name: what y measures, e.g. "aami_class" or "heart_rate_bpm".
        feature_names: names of the side features in column order, length F (empty: none).
        meta: free-form provenance (records used, generator seed, ...), JSON-serialisable.
        dataset_hash: `compute_dataset_hash` of the arrays, set by the dataset cache when it
            built or loaded them (None for a dataset built in memory: compute it).
        simulator_version: the simulator that generated the signals and its version, e.g.
            "ecg_synth/2" (set by the simulator builders); None for recorded data.
    """

    name: str
    task: Task
    train: Split
    val: Split
    test: Split
    class_names: list[str] = field(default_factory=list)
    sampling_rate: float = 0.0
    target_name: str = ""
    feature_names: list[str] = field(default_factory=list)
    meta: dict[str, object] = field(default_factory=dict)
    dataset_hash: str | None = None
    simulator_version: str | None = None

    def __post_init__(self) -> None:
        for name in SPLITS:
            width = self.split(name).features.shape[1]
            if width != len(self.feature_names):
                raise DatasetError(
                    f"dataset {self.name}: the {name} split has {width} side feature(s), "
                    f"feature_names names {len(self.feature_names)}"
                )

    @property
    def in_channels(self) -> int:
        """Channels per window (C)."""
        return int(self.train.x.shape[1])

    @property
    def input_length(self) -> int:
        """Samples per window (T)."""
        return int(self.train.x.shape[2])

    @property
    def num_features(self) -> int:
        """Side features per window (F); 0 when the dataset has none."""
        return len(self.feature_names)

    @property
    def num_outputs(self) -> int:
        """Model outputs: the class count for classification, 1 for regression."""
        return len(self.class_names) if self.task == "classification" else 1

    def split(self, name: str) -> Split:
        """Return the split called `name` ("train", "val" or "test")."""
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; expected one of {SPLITS}")
        result: Split = getattr(self, name)
        return result

    def class_counts(self, split: str = "train") -> npt.NDArray[np.int64]:
        """Windows per class in `split` (classification only), shape (num_classes,)."""
        if self.task != "classification":
            raise DatasetError(
                f"class_counts needs a classification dataset, {self.name} is a {self.task} dataset"
            )
        y = self.split(split).y.astype(np.int64)
        return np.bincount(y, minlength=len(self.class_names)).astype(np.int64)


def compute_dataset_hash(dataset: SignalDataset) -> str:
    """A short SHA-256 (`DATASET_HASH_CHARS` hex characters) of what `dataset` holds.

    The hash covers, in order: the task, the class names and the feature names (they say what
    y and the feature columns mean), then for each split in `SPLITS` its x and features as
    float32, y as stored (dtype, shape and bytes of each) and its groups (the record or
    participant id of every window). Name, meta and sampling rate are not covered. Two
    datasets with the same hash hold the same windows, labels and splits; the values are
    those the dataset cache stores, so a dataset hashes the same before and after a cache
    round trip. About 0.1 s per 100 MB of arrays.
    """
    digest = hashlib.sha256(_HASH_SCHEME)
    header = {
        "task": dataset.task,
        "class_names": list(dataset.class_names),
        "feature_names": list(dataset.feature_names),
    }
    digest.update(json.dumps(header, sort_keys=True).encode() + b"\n")
    for name in SPLITS:
        split = dataset.split(name)
        arrays = {
            "x": np.ascontiguousarray(split.x, dtype=np.float32),
            "y": np.ascontiguousarray(split.y),
            "features": np.ascontiguousarray(split.features, dtype=np.float32),
        }
        for key, array in arrays.items():
            digest.update(f"{name}/{key} {array.dtype.str} {array.shape}\n".encode())
            digest.update(array.reshape(-1).view(np.uint8).data)  # the raw bytes, no copy
        groups = "\x00".join(str(g) for g in np.asarray(split.groups).tolist())
        digest.update(f"{name}/groups {len(split.groups)}\n".encode())
        digest.update(groups.encode("utf-8"))
    return digest.hexdigest()[:DATASET_HASH_CHARS]
