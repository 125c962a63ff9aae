"""Side features per window (the RR-interval context of a beat): computing them, carrying them
through datasets and the cache, and giving them to the models whose contract asks for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import biosignals.models
from biosignals.data.cache import read_dataset, save_dataset
from biosignals.data.dataset import DatasetError, SignalDataset, Split
from biosignals.data.mitbih import RR_FEATURE_NAMES, rr_features_of
from biosignals.models import (
    CNN1D,
    EncoderClassifier,
    ModelConfigError,
    ResNet1D,
    takes_side_features,
)
from biosignals.trainer import train

T, F = 32, 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rr_features_of_a_known_rhythm() -> None:
    # 1 s sinus rhythm at fs=100 with one premature beat (0.6 s early, 1.4 s pause after it)
    pos = np.array([0, 100, 200, 300, 360, 500, 600, 700, 800])
    feats = dict(zip(RR_FEATURE_NAMES, rr_features_of(pos, 100.0).T, strict=True))
    assert rr_features_of(pos, 100.0).shape == (9, 9)
    premature = 4
    np.testing.assert_allclose(feats["log_pre_rr_s"][premature], np.log(0.6), atol=1e-6)
    np.testing.assert_allclose(feats["log_post_rr_s"][premature], np.log(1.4), atol=1e-6)
    np.testing.assert_allclose(feats["log_pre_rr_over_post"][premature], np.log(0.6 / 1.4), 1e-5)
    # the patient's RR is the median (1 s), so the premature beat reads short against it
    np.testing.assert_allclose(feats["log_patient_rr_s"], 0.0, atol=1e-6)
    np.testing.assert_allclose(feats["log_pre_rr_over_patient"][premature], np.log(0.6), 1e-5)
    assert feats["log_pre_rr_over_patient"][2] == pytest.approx(0.0, abs=1e-6)
    # the first beat borrows its post-RR, the last its pre-RR
    assert feats["log_pre_rr_s"][0] == feats["log_post_rr_s"][0]
    assert feats["log_post_rr_s"][-1] == feats["log_pre_rr_s"][-1]


def test_rr_features_are_bounded_and_defined_for_tiny_records() -> None:
    gap = rr_features_of(np.array([0, 100, 100_000_000]), 100.0)  # an annotation gap
    assert np.all(np.abs(gap) <= 3.0) and np.all(np.isfinite(gap))
    assert rr_features_of(np.array([7]), 360.0).tolist() == [[0.0] * 9]
    assert rr_features_of(np.zeros(0, np.int64), 360.0).shape == (0, 9)


def test_split_and_dataset_check_feature_shapes() -> None:
    x, y, g = np.zeros((3, 1, 8), np.float32), np.zeros(3, np.int64), np.full(3, "a")
    assert Split(x, y, g).features.shape == (3, 0)
    with pytest.raises(DatasetError, match="same length"):
        Split(x, y, g, np.zeros((2, 4), np.float32))
    with pytest.raises(DatasetError, match=r"shape \(N, F\)"):
        Split(x, y, g, np.zeros(3, np.float32))
    split = Split(x, y, g, np.zeros((3, 4), np.float32))
    with pytest.raises(DatasetError, match="feature_names names 0"):
        SignalDataset("d", "classification", split, split, split, class_names=["N"])


def _features_only_split(rng: np.random.Generator, n: int, group: str) -> Split:
    """Labels that only the side features tell: the windows are noise."""
    y = rng.integers(0, 3, n)
    feats = rng.normal(0.0, 0.3, (n, F)).astype(np.float32)
    feats[np.arange(n), y] += 2.0  # class k lifts feature k
    x = rng.normal(size=(n, 1, T)).astype(np.float32)
    return Split(x, y.astype(np.int64), np.full(n, group), feats)


def _features_only_dataset(seed: int = 0) -> SignalDataset:
    rng = np.random.default_rng(seed)
    return SignalDataset(
        name="side/features", task="classification",
        train=_features_only_split(rng, 256, "a"), val=_features_only_split(rng, 96, "b"),
        test=_features_only_split(rng, 96, "c"), class_names=["k0", "k1", "k2"],
        sampling_rate=float(T), feature_names=[f"f{i}" for i in range(F)],
    )  # fmt: skip


class WindowsOnlyNet(nn.Module):
    """A model that does not declare num_features: the trainer must call forward(x)."""

    def __init__(self, *, in_channels: int, input_length: int, num_classes: int) -> None:
        super().__init__()
        del input_length
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(x.mean(dim=-1))  # (B, num_classes)
        return out


WindowsOnlyNet.__module__ = "biosignals.models"  # where the trainer's target check looks


def _train(tmp_path: Path, model: dict[str, Any]) -> dict[str, Any]:
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "run_dir": str(tmp_path),
            "model": model,
            "trainer": {"epochs": 6, "batch_size": 32, "lr": 1e-2, "device": "cpu"},
        }
    )
    train(cfg, dataset=_features_only_dataset())
    data: dict[str, Any] = json.loads((tmp_path / "summary.json").read_text())
    return data


def test_trainer_gives_features_only_to_models_that_declare_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_features = _train(
        tmp_path / "cnn", {"_target_": "biosignals.models.cnn1d.CNN1D", "width": 4, "depth": 1}
    )
    assert with_features["status"] == "completed"
    assert with_features["best_value"] > 0.9  # the features carry the labels
    assert with_features["test"]["test/macro_f1"] > 0.9

    monkeypatch.setattr(biosignals.models, "WindowsOnlyNet", WindowsOnlyNet, raising=False)
    windows_only = _train(tmp_path / "xonly", {"_target_": "biosignals.models.WindowsOnlyNet"})
    assert windows_only["status"] == "completed", windows_only["error"]
    assert windows_only["best_value"] < 0.6  # noise windows alone: near chance


@pytest.mark.parametrize("cls", [CNN1D, ResNet1D, EncoderClassifier])
def test_built_in_models_fuse_side_features(cls: type[nn.Module]) -> None:
    assert takes_side_features(cls)
    model = cls(in_channels=2, input_length=64, num_classes=3, num_features=9)
    x, f = torch.randn(4, 2, 64), torch.randn(4, 9)
    out = model(x, f)
    assert out.shape == (4, 3)
    assert not torch.allclose(out, model(x, f + 1.0))  # the features reach the scores
    with pytest.raises(ValueError, match=r"forward\(x, features\)"):
        model(x)
    plain = cls(in_channels=2, input_length=64, num_classes=3)
    assert plain(x).shape == plain(x, torch.zeros(4, 0)).shape == (4, 3)
    with pytest.raises(ModelConfigError, match="num_features must be >= 0"):
        cls(in_channels=2, input_length=64, num_classes=3, num_features=-1)


def test_takes_side_features_needs_the_named_keyword() -> None:
    class Catchall(nn.Module):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__()

    assert not takes_side_features(WindowsOnlyNet)
    assert not takes_side_features(Catchall)
    assert not takes_side_features(nn.Identity)
    assert not takes_side_features(len)


def test_cache_keeps_features_and_their_names(tmp_path: Path) -> None:
    ds = _features_only_dataset()
    save_dataset(ds, tmp_path / "entry")
    back = read_dataset(tmp_path / "entry")
    assert back.feature_names == ds.feature_names and back.num_features == F
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(back.split(name).features, ds.split(name).features)
