"""Validation-record selection of the MIT-BIH inter-patient split (biosignals.data.mitbih)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from biosignals.data import aami
from biosignals.data.dataset import DatasetError
from biosignals.data.ecg_synth import generate_database
from biosignals.data.mitbih import build, select_cv_folds, select_validation_records

DS1 = ["106", "118", "119", "124", "201", "207", "208", "209", "220", "223"]
DS2 = ["100", "232"]


def _pool(seed: int = 0, n: int = 22) -> dict[str, npt.NDArray[np.int64]]:
    """A DS1-like pool: S and V beats concentrated in a few records, many records without."""
    rng = np.random.default_rng(seed)
    counts = {}
    for i in range(n):
        s = int(rng.integers(10, 80)) if i % 5 == 0 else 0
        v = int(rng.integers(5, 200)) if i % 3 == 0 else int(rng.integers(0, 3))
        counts[f"r{i:02d}"] = np.array([int(rng.integers(250, 500)), s, v], dtype=np.int64)
    return counts


def _held(counts: dict[str, npt.NDArray[np.int64]], names: list[str]) -> npt.NDArray[np.int64]:
    held: npt.NDArray[np.int64] = np.sum([counts[r] for r in names], axis=0)
    return held


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 simulated records of 90 s (10 DS1, 2 DS2)."""
    directory = tmp_path_factory.mktemp("mitbih_val")
    generate_database(directory, DS1 + DS2, duration_s=90.0)
    return directory


@pytest.mark.parametrize(("n_val", "min_beats"), [(4, 20), (8, 40), (11, 60)])
def test_every_class_reaches_the_minimum(n_val: int, min_beats: int) -> None:
    counts = _pool()
    val = select_validation_records(counts, n_val, seed=0, min_beats=min_beats)
    held = _held(counts, val)
    assert len(val) == n_val == len(set(val))
    assert (held >= min_beats).all(), held
    rest = _held(counts, [r for r in counts if r not in val])
    assert (rest > 0).all(), rest  # the training records keep every class


def test_minimum_changes_the_choice_only_when_needed() -> None:
    counts = _pool()
    plain = select_validation_records(counts, 4, seed=0)
    assert select_validation_records(counts, 4, seed=0, min_beats=1) == plain
    needy = select_validation_records(counts, 4, seed=0, min_beats=60)
    assert (_held(counts, needy) >= 60).all()


def test_selection_is_seeded() -> None:
    counts = _pool()
    picks = [tuple(select_validation_records(counts, 8, seed=s, min_beats=30)) for s in range(4)]
    again = [tuple(select_validation_records(counts, 8, seed=s, min_beats=30)) for s in range(4)]
    assert picks == again
    assert len(set(picks)) > 1  # the seed matters


def test_unreachable_minimum_warns_and_still_picks(caplog: pytest.LogCaptureFixture) -> None:
    counts = _pool()
    with caplog.at_level(logging.WARNING, logger="biosignals.data.mitbih"):
        val = select_validation_records(counts, 3, seed=0, min_beats=10_000)
    assert len(val) == 3 and "val_min_beats" in caplog.text


def test_bad_arguments_name_the_value() -> None:
    counts = _pool()
    with pytest.raises(DatasetError, match=r"val_min_beats must be >= 0.*-1"):
        select_validation_records(counts, 4, min_beats=-1)
    with pytest.raises(DatasetError, match="22"):
        select_validation_records(counts, 22)
    with pytest.raises(DatasetError, match="cv folds"):
        select_cv_folds(counts, 1)


@pytest.mark.parametrize("k", [3, 4])
def test_cv_folds_partition_the_pool(k: int) -> None:
    counts = _pool()
    folds = select_cv_folds(counts, k, seed=0, min_beats=20)
    assert folds == select_cv_folds(counts, k, seed=0, min_beats=20)
    names = [r for fold in folds for r in fold]
    assert sorted(names) == sorted(counts) and len(names) == len(set(names))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for fold in folds:
        assert (_held(counts, fold) >= 20).all()


def test_build_split_is_inter_patient_with_the_minimum(db_dir: Path) -> None:
    ds = build(db_dir, records=DS1 + DS2, val_fraction=0.4, val_min_beats=5)
    records = ds.meta["records"]
    assert isinstance(records, dict)
    val, train, test = set(records["val"]), set(records["train"]), set(records["test"])
    assert len(val) == 4 and not val & train and val | train == set(DS1)
    assert test == set(DS2) and not val & set(aami.DS2_RECORDS)
    assert set(np.unique(ds.val.groups)) == val and set(np.unique(ds.test.groups)) == test
    pool = ds.class_counts("train") + ds.class_counts("val")
    assert (ds.class_counts("val")[pool > 0] >= 5).all(), ds.meta["class_counts"]
    again = build(db_dir, records=DS1 + DS2, val_fraction=0.4, val_min_beats=5)
    assert again.meta["records"] == records
