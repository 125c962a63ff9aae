"""WFDB round trip, beat segmentation, inter-patient splits and the MIT-BIH builders."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from biosignals.data import aami
from biosignals.data.cache import load_dataset
from biosignals.data.dataset import DatasetError, SignalDataset
from biosignals.data.ecg_synth import generate_database, simulate_record
from biosignals.data.mitbih import (
    RR_FEATURE_NAMES,
    build,
    build_synthetic,
    segment_record,
    select_validation_records,
    synthetic_records_dir,
)
from biosignals.data.wfdb_io import EcgRecord, read_record, write_record

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "dataset"
DS1_SMALL = ["106", "118", "119", "201", "208", "209", "220", "223"]
DS2_SMALL = ["100", "200", "232", "233"]
RECORDS = [*DS1_SMALL, *DS2_SMALL, "217"]  # 217 is paced: generated, never used


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic database: 13 records of 2 minutes."""
    directory = tmp_path_factory.mktemp("mitbih")
    generate_database(directory, RECORDS, duration_s=120.0)
    return directory


def test_wfdb_round_trip_keeps_beats_labels_and_signal(tmp_path: Path) -> None:
    rec = simulate_record("201", duration_s=40)  # has AF rhythm annotations and S/V beats
    write_record(rec, tmp_path)
    back = read_record(tmp_path, "201")
    np.testing.assert_array_equal(back.ann_samples, rec.ann_samples)
    assert back.ann_symbols == rec.ann_symbols
    assert back.ann_aux == rec.ann_aux
    assert back.sig_names == rec.sig_names and back.fs == rec.fs
    inside = np.abs(rec.signal) < 5.0  # format 212 at 200 adu/mV clips above ~5.1 mV
    err = np.abs(back.signal - rec.signal)[inside]
    assert err.max() <= 0.5 / 200 + 1e-6  # quantisation: half an ADC step
    assert aami.map_symbols(back.ann_symbols, "aami5").tolist() == (
        aami.map_symbols(rec.ann_symbols, "aami5").tolist()
    )


def test_write_record_rejects_mismatched_annotations(tmp_path: Path) -> None:
    rec = EcgRecord("100", np.zeros((100, 1), np.float32), 360.0, ["MLII"],
                    np.array([10, 20]), ["N"])  # fmt: skip
    with pytest.raises(DatasetError, match="2 annotation samples but 1 symbols"):
        write_record(rec, tmp_path)


def test_segment_record_windows_and_labels() -> None:
    rec = simulate_record("208", duration_s=60)
    seg = segment_record(rec, "aami3", before_s=0.25, after_s=0.35)
    assert seg.x.shape[1:] == (1, 216) and seg.x.dtype == np.float32
    assert seg.channels == ["MLII"] and seg.fs == 360.0
    labels = aami.map_symbols(rec.ann_symbols, "aami3")
    assert len(seg.y) <= int((labels >= 0).sum())
    assert set(np.unique(seg.y).tolist()) <= {0, 1, 2}
    # The window is centred where the annotation says: the R wave sits at sample `before`.
    peak = np.abs(seg.x[seg.y == 0, 0]).mean(axis=0).argmax()
    assert abs(int(peak) - 90) <= 3
    # aami5 keeps the fusion beats aami3 drops
    seg5 = segment_record(rec, "aami5")
    assert (seg5.y == 3).sum() > 0 and len(seg5.y) > len(seg.y)


def test_segment_record_options() -> None:
    rec = simulate_record("119", duration_s=60)
    seg = segment_record(
        rec, "aami3", n_leads=2, sampling_rate=180.0, rr_features=True, bandpass_hz=None
    )
    assert seg.channels == ["MLII", "V1"]  # RR context is a side input, not channels
    assert seg.x.shape[1:] == (2, 45 + 63) and seg.fs == 180.0
    assert seg.feature_names == list(RR_FEATURE_NAMES)
    assert seg.features.shape == (len(seg.y), 9) and seg.features.dtype == np.float32
    feats = dict(zip(RR_FEATURE_NAMES, seg.features.T, strict=True))
    # premature ventricular beats: shorter RR before, longer after, than the local rhythm
    pre_local, post_local = feats["log_pre_rr_over_local"], feats["log_post_rr_over_local"]
    assert pre_local[seg.y == 2].mean() < -0.15 < pre_local[seg.y == 0].mean()
    assert post_local[seg.y == 2].mean() > 0.15
    # ... and shorter than the patient's usual RR; one patient RR for the whole record
    pre_patient = feats["log_pre_rr_over_patient"]
    assert pre_patient[seg.y == 2].mean() < pre_patient[seg.y == 0].mean() - 0.15
    assert np.ptp(feats["log_patient_rr_s"]) == 0
    # per-record z-score of the signal channels
    assert abs(float(seg.x[:, 0].std()) - 1.0) < 0.5
    with pytest.raises(DatasetError, match="n_leads must be 1 or 2"):
        segment_record(rec, n_leads=3)


def test_segment_record_without_beats() -> None:
    rec = EcgRecord("100", np.zeros((500, 1), np.float32), 360.0, ["V5"], np.array([5]), ["+"])
    seg = segment_record(rec, rr_features=True, bandpass_hz=None)
    assert seg.x.shape == (0, 1, 216) and seg.y.shape == (0,)
    assert seg.features.shape == (0, 9)
    assert seg.channels == ["V5"]  # no MLII: the first lead stands in


def test_select_validation_records_is_seeded_and_class_aware() -> None:
    counts = {
        "a": np.array([1000, 0, 0]), "b": np.array([1000, 50, 0]), "c": np.array([900, 0, 80]),
        "d": np.array([1000, 40, 30]), "e": np.array([1000, 0, 0]), "f": np.array([800, 30, 90]),
    }  # fmt: skip
    first = select_validation_records(counts, 2, seed=0)
    assert first == select_validation_records(counts, 2, seed=0)
    assert len(first) == 2 and set(first) <= set(counts)
    val = sum(counts[r] for r in first)
    rest = sum(counts[r] for r in counts if r not in first)
    assert np.all(val > 0) and np.all(rest > 0)  # every class on both sides
    with pytest.raises(DatasetError, match="validation records"):
        select_validation_records(counts, 6)


def _assert_no_leakage(ds: SignalDataset) -> None:
    groups = {s: set(ds.split(s).groups.tolist()) for s in ("train", "val", "test")}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert groups["train"] | groups["val"] <= set(aami.DS1_RECORDS)
    assert groups["test"] <= set(aami.DS2_RECORDS)
    assert not (groups["train"] | groups["val"] | groups["test"]) & set(aami.PACED_RECORDS)


def test_build_inter_patient_split(db_dir: Path) -> None:
    ds = build(db_dir, "aami3", records=RECORDS, val_fraction=0.25)
    _assert_no_leakage(ds)
    assert ds.class_names == ["N", "S", "V"] and ds.task == "classification"
    assert (ds.in_channels, ds.input_length, ds.num_outputs) == (1, 216, 3)
    assert sorted(ds.meta["records"]["val"]) == sorted(set(ds.val.groups.tolist()))  # type: ignore[index]
    assert len(ds.meta["records"]["val"]) == 2  # type: ignore[index]
    assert set(ds.test.groups.tolist()) == set(DS2_SMALL)
    for split in ("train", "val", "test"):
        assert np.all(ds.class_counts(split) > 0), split
    again = build(db_dir, "aami3", records=RECORDS, val_fraction=0.25)
    np.testing.assert_array_equal(again.val.groups, ds.val.groups)


def test_build_explicit_validation_and_aami5(db_dir: Path) -> None:
    ds = build(db_dir, "aami5", records=RECORDS, val_records=["208", "209"], rr_features=True)
    _assert_no_leakage(ds)
    assert set(ds.val.groups.tolist()) == {"208", "209"}
    assert ds.class_names == ["N", "S", "V", "F", "Q"] and ds.in_channels == 1
    assert ds.feature_names == list(RR_FEATURE_NAMES) and ds.num_features == 9
    for split in ("train", "val", "test"):
        assert ds.split(split).features.shape == (len(ds.split(split)), 9)
    assert ds.class_counts("val")[3] > 0  # 208 has fusion beats
    with pytest.raises(DatasetError, match="val_records must be"):
        build(db_dir, records=RECORDS, val_records=["100"])


def test_build_errors_name_the_directory(tmp_path: Path, db_dir: Path) -> None:
    with pytest.raises(DatasetError, match=r"data_dir is not set.*mitbih_synth_aami3"):
        build(None)
    with pytest.raises(DatasetError, match="is not a directory"):
        build(tmp_path / "nope")
    with pytest.raises(DatasetError, match=r"no WFDB records \(.hea with .atr\) found in"):
        build(tmp_path)
    with pytest.raises(DatasetError, match=r"lacks records \['101'"):
        build(db_dir)  # the full DS1+DS2 list: most records are missing
    with pytest.raises(DatasetError, match=">= 2 DS1 records"):
        build(db_dir, records=["106", "100"])


def test_build_synthetic_generates_once(tmp_path: Path) -> None:
    kwargs = {"records": RECORDS, "duration_s": 60.0, "cache_dir": tmp_path}
    ds = build_synthetic(**kwargs)  # type: ignore[arg-type]
    _assert_no_leakage(ds)
    assert ds.name == "mitbih_synth/aami3" and ds.meta["generator"]["duration_s"] == 60.0  # type: ignore[index]
    record_dirs = [d for d in (tmp_path / "records").iterdir() if d.is_dir()]
    assert len(record_dirs) == 1 and (record_dirs[0] / "generator.json").is_file()
    stamp = (record_dirs[0] / "100.dat").stat().st_mtime_ns
    ds2 = build_synthetic(**kwargs)  # type: ignore[arg-type]
    assert (record_dirs[0] / "100.dat").stat().st_mtime_ns == stamp  # not regenerated
    np.testing.assert_array_equal(ds.train.x, ds2.train.x)
    other = synthetic_records_dir(RECORDS, 60.0, seed=1, cache_dir=tmp_path)
    assert other != record_dirs[0]


@pytest.mark.parametrize(
    "name",
    ["mitbih_synth_aami3", "mitbih_synth_aami5", "mitbih_synth_quick", "mitbih_aami3",
     "mitbih_aami5"],
)  # fmt: skip
def test_dataset_configs_match_builder_signatures(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MITBIH_DIR", raising=False)
    cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
    assert isinstance(cfg, DictConfig)
    target = str(cfg._target_)
    fn = {"biosignals.data.mitbih.build": build}.get(target, build_synthetic)
    assert target == f"biosignals.data.mitbih.{fn.__name__}"
    assert set(cfg.keys()) - {"_target_"} <= set(inspect.signature(fn).parameters)
    if fn is build:
        assert cfg.data_dir is None  # from $MITBIH_DIR, unset here
        with pytest.raises(DatasetError, match="data_dir is not set"):
            load_dataset(cfg, tmp_path)
