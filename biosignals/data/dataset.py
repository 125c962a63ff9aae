"""The in-memory dataset every biosignals task hands to the trainer.

A `SignalDataset` is three splits of fixed-length windows, each window with an optional
vector of side features (the RR-interval context of a heart beat, for example), plus what the
trainer needs to build a model and a loss for them. Builders (`biosignals.data.mitbih.build`,
`biosignals.data.galaxyppg.build`, ...) return one; `biosignals.data.cache` stores it on disk
keyed by the dataset config, and Ray ships it to trials through the object store, so it is a
plain dataclass of NumPy arrays (cheap to pickle, zero-copy in Plasma).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Task = Literal["classification", "regression"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


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
