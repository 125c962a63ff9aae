"""PPG heart-rate workload: the simulator, its builder, the GalaxyPPG loader and their configs."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from biosignals.data import galaxyppg, ppg_synth
from biosignals.data.dataset import DatasetError, SignalDataset
from biosignals.data.galaxyppg import (
    build,
    detect_r_peaks,
    read_participant,
    rr_valid,
    write_fake_galaxyppg,
)
from biosignals.data.ppg_synth import (
    build_synthetic,
    simulate_participant,
    split_participants,
    window_means,
    window_starts,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "dataset"
SMALL: dict[str, Any] = {
    "n_participants": 6,
    "minutes_per_participant": 2.0,
    "val_participants": 1,
    "test_participants": 2,
}


def fft_peak_bpm(x: np.ndarray, fs: float) -> np.ndarray:
    """The naive estimator: strongest PPG spectral peak in 40-204 BPM, per window."""
    p = x[:, 0, :] * np.hanning(x.shape[2])
    power = np.abs(np.fft.rfft(p, n=2048)) ** 2
    freqs = np.fft.rfftfreq(2048, 1.0 / fs) * 60.0
    band = (freqs >= 40) & (freqs <= 204)
    return np.asarray(freqs[band][power[:, band].argmax(axis=1)])


# --- simulator -----------------------------------------------------------------------------


def test_simulator_is_deterministic_and_seeded() -> None:
    a = simulate_participant(3, minutes=1.0, seed=5)
    b = simulate_participant(3, minutes=1.0, seed=5)
    c = simulate_participant(3, minutes=1.0, seed=6)
    for field in ("ppg", "acc", "hr_bpm", "beat_times"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.allclose(a.ppg, c.ppg)
    assert a.participant == "S003"
    assert a.ppg.shape == (1500,) and a.acc.shape == (1500, 3)


def test_builder_is_deterministic_and_participants_do_not_depend_on_count() -> None:
    d1 = build_synthetic(**SMALL, seed=1)
    d2 = build_synthetic(**SMALL, seed=1)
    for name in ("train", "val", "test"):
        s1, s2 = d1.split(name), d2.split(name)
        np.testing.assert_array_equal(s1.x, s2.x)
        np.testing.assert_array_equal(s1.y, s2.y)
        np.testing.assert_array_equal(s1.groups, s2.groups)
    assert d1.meta == d2.meta
    # participant S000 is the same recording in a bigger build
    bigger = build_synthetic(**{**SMALL, "n_participants": 7}, seed=1)
    pick = lambda ds: np.concatenate(  # noqa: E731
        [ds.split(n).y[ds.split(n).groups == "S000"] for n in ("train", "val", "test")]
    )
    np.testing.assert_array_equal(pick(d1), pick(bigger))


def test_label_is_mean_heart_rate_of_the_generated_beats() -> None:
    rec = simulate_participant(4, minutes=3.0, seed=0)
    fs, length = rec.fs, 200
    starts = window_starts(len(rec.ppg), length, 50)
    labels = window_means(rec.hr_bpm, starts, length)
    t0, t1 = starts / fs, (starts + length) / fs
    beats = rec.beat_times
    k = np.arange(len(beats), dtype=float)
    # 60 x (fractional) beats elapsed in the window / window length, from the beat times alone
    from_beats = 60.0 * (np.interp(t1, beats, k) - np.interp(t0, beats, k)) / (length / fs)
    inside = (t0 >= beats[0]) & (t1 <= beats[-1])
    assert inside.mean() > 0.9
    np.testing.assert_allclose(labels[inside], from_beats[inside], atol=0.5)
    # and the beat intervals themselves agree with the label (RSA moves single beats a little)
    for s, e, y in zip(t0[inside][::10], t1[inside][::10], labels[inside][::10], strict=True):
        rr = np.diff(beats[(beats >= s) & (beats < e)])
        assert abs(60.0 / np.median(rr) - y) < 8.0
    assert np.all((rec.hr_bpm >= 40) & (rec.hr_bpm <= 200))


def test_shapes_dtypes_and_normalisation() -> None:
    ds = build_synthetic(**SMALL)
    assert isinstance(ds, SignalDataset)
    assert ds.name == "ppg_synth" and ds.task == "regression"
    assert ds.target_name == "heart_rate_bpm" and ds.class_names == []
    assert ds.num_outputs == 1 and ds.in_channels == 4 and ds.input_length == 200
    assert ds.sampling_rate == 25.0
    assert ds.meta["channels"] == ["ppg", "acc_x", "acc_y", "acc_z"]
    for name in ("train", "val", "test"):
        sp = ds.split(name)
        assert sp.x.dtype == np.float32 and sp.y.dtype == np.float32
        assert sp.groups.dtype.kind == "U"
        assert sp.x.shape == (len(sp), 4, 200)
        assert np.isfinite(sp.x).all() and np.isfinite(sp.y).all()
        y = np.asarray(sp.y, dtype=np.float64)
        assert ((y >= 40) & (y <= 200)).all()
        np.testing.assert_allclose(sp.x[:, 0].mean(axis=1), 0.0, atol=1e-4)
        np.testing.assert_allclose(sp.x[:, 0].std(axis=1), 1.0, atol=1e-3)
        np.testing.assert_allclose(sp.x[:, 1:].mean(axis=2), 0.0, atol=1e-4)
    # (2 min - 8 s) / 2 s + 1 = 57 windows per participant
    assert len(ds.train) + len(ds.val) + len(ds.test) == 6 * 57
    ppg_only = build_synthetic(**SMALL, include_acc=False, fs=32.0, window_s=4.0)
    assert ppg_only.train.x.shape[1:] == (1, 128)
    assert ppg_only.meta["channels"] == ["ppg"]


def test_splits_are_by_participant() -> None:
    ds = build_synthetic(**SMALL, seed=3)
    groups = {name: set(ds.split(name).groups.tolist()) for name in ("train", "val", "test")}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert (len(groups["train"]), len(groups["val"]), len(groups["test"])) == (3, 1, 2)
    assert groups["train"] | groups["val"] | groups["test"] == {f"S{k:03d}" for k in range(6)}
    assert {k: set(v) for k, v in ds.meta["participants"].items()} == groups  # type: ignore[attr-defined]


def test_split_participants_counts_and_explicit_ids() -> None:
    ids = [f"P{k:02d}" for k in range(1, 7)]
    s = split_participants(ids, ["P02"], 2, seed=0)
    assert s["val"] == ["P02"] and len(s["test"]) == 2 and "P02" not in s["test"]
    assert sorted(s["train"] + s["val"] + s["test"]) == ids
    with pytest.raises(DatasetError, match="unknown participants"):
        split_participants(ids, ["P99"], 1, seed=0)
    with pytest.raises(DatasetError, match="no participant left for training"):
        split_participants(ids, 3, 3, seed=0)
    with pytest.raises(DatasetError, match="overlap"):
        split_participants(ids, ["P01"], ["P01"], seed=0)


def test_motion_artefacts_defeat_a_spectral_peak_estimator() -> None:
    """The difficulty the workload relies on: without motion an FFT peak nearly solves it."""
    kw = {**SMALL, "n_participants": 6, "minutes_per_participant": 6.0, "seed": 0}
    errors = {}
    for level in (0.0, 1.0):
        ds = build_synthetic(**kw, motion_level=level)
        x = np.concatenate([ds.train.x, ds.val.x, ds.test.x])
        y = np.concatenate([ds.train.y, ds.val.y, ds.test.y])
        errors[level] = np.abs(fft_peak_bpm(x, ds.sampling_rate) - y)
    assert np.median(errors[0.0]) < 2.0 and np.mean(errors[0.0] > 10) < 0.03
    assert np.mean(errors[1.0] > 10) > 2 * max(np.mean(errors[0.0] > 10), 0.02)


def test_bad_builder_arguments_raise_dataset_error() -> None:
    with pytest.raises(DatasetError, match="fs"):
        build_synthetic(**SMALL, fs=5.0)
    with pytest.raises(DatasetError, match="bandpass_hz"):
        build_synthetic(**SMALL, bandpass_hz=[4.0, 0.5])
    band = build_synthetic(**SMALL, bandpass_hz=[0.5, 4.0])
    assert band.meta["bandpass_hz"] == [0.5, 4.0]


# --- configs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ppg_synth", "ppg_synth_quick", "galaxyppg"])
def test_config_keys_are_builder_arguments(name: str) -> None:
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"))
    assert isinstance(cfg, dict)
    target = str(cfg["_target_"])
    module, func = target.rsplit(".", 1)
    builder = {"biosignals.data.ppg_synth": ppg_synth, "biosignals.data.galaxyppg": galaxyppg}[
        module
    ].__dict__[func]
    kwargs = {str(k): v for k, v in cfg.items() if k != "_target_"}
    inspect.signature(builder).bind(**kwargs)


def test_quick_config_instantiates() -> None:
    cfg = OmegaConf.load(CONFIGS / "ppg_synth_quick.yaml")
    ds = instantiate(cfg)
    assert isinstance(ds, SignalDataset)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1422, 474, 474)
    assert ds.train.x.shape[1:] == (4, 200)


def test_galaxyppg_config_reads_env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_galaxyppg(tmp_path, n_participants=3, minutes=1.0)
    monkeypatch.setenv("GALAXYPPG_DIR", str(tmp_path))
    cfg = OmegaConf.load(CONFIGS / "galaxyppg.yaml")
    cfg.val_participants, cfg.test_participants = 1, 1
    ds = instantiate(cfg)
    assert ds.name == "galaxyppg" and ds.in_channels == 4 and ds.input_length == 200


# --- GalaxyPPG loader ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("galaxyppg")
    truth = write_fake_galaxyppg(root, n_participants=4, minutes=1.5, seed=0)
    return root, truth


def test_fake_directory_has_the_documented_layout(
    fake_dir: tuple[Path, dict[str, np.ndarray]],
) -> None:
    root, _ = fake_dir
    p = root / "P01"
    assert list(pd.read_csv(p / "GalaxyWatch" / "PPG.csv").columns) == [
        "dataReceived",
        "timestamp",
        "ppg",
        "status",
    ]
    assert list(pd.read_csv(p / "PolarH10" / "ECG.csv").columns) == [
        "phoneTimestamp",
        "sensorTimestamp",
        "ecg",
    ]
    assert {"x", "y", "z"} <= set(pd.read_csv(p / "GalaxyWatch" / "ACC.csv").columns)
    assert {"phoneTimestamp", "hr"} <= set(pd.read_csv(p / "PolarH10" / "HR.csv").columns)


@pytest.mark.parametrize(("reference", "tolerance"), [("ecg", 0.3), ("hr", 1.0)])
def test_loader_labels_match_the_true_heart_rate(
    fake_dir: tuple[Path, dict[str, np.ndarray]], reference: str, tolerance: float
) -> None:
    root, truth = fake_dir
    pw = read_participant(root / "P02", reference=reference)  # type: ignore[arg-type]
    assert pw is not None and pw.reference == reference
    assert pw.x.shape == (len(pw.y), 4, 200) and pw.x.dtype == np.float32
    # the -999 status run (20-23 s) and the reference's shorter span drop a few windows
    assert 0 < len(pw.y) < pw.n_candidates
    assert not np.any((pw.start_s > 12.5) & (pw.start_s < 23.0))
    starts = np.round(pw.start_s * 25).astype(np.int64)
    expected = window_means(truth["P02"], starts, 200)
    assert np.mean(np.abs(pw.y - expected)) < tolerance


def test_loader_windows_align_with_the_simulated_signals(
    fake_dir: tuple[Path, dict[str, np.ndarray]],
) -> None:
    root, _ = fake_dir
    pw = read_participant(root / "P01")
    assert pw is not None
    rec = simulate_participant(0, minutes=1.5, seed=0)
    starts = np.round(pw.start_s * 25).astype(np.int64)
    sim = ppg_synth.ppg_windows(rec.ppg, rec.acc, starts, 200)
    # PPG is stored as inverted raw counts: perfectly anti-correlated after z-scoring
    corr = np.mean(sim[:, 0] * pw.x[:, 0], axis=1)
    assert np.all(corr < -0.99)
    np.testing.assert_allclose(pw.x[:, 1:], sim[:, 1:], atol=0.05)


def test_build_from_fake_directory(fake_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = fake_dir
    ds = build(str(root), val_participants=["P03"], test_participants=1, seed=0)
    assert ds.name == "galaxyppg" and ds.task == "regression"
    assert ds.target_name == "heart_rate_bpm" and ds.sampling_rate == 25.0
    assert set(ds.val.groups.tolist()) == {"P03"}
    groups = [set(ds.split(n).groups.tolist()) for n in ("train", "val", "test")]
    assert sum(len(g) for g in groups) == 4 and not (groups[0] & groups[2])
    assert ds.meta["reference"] == {f"P0{k}": "ecg" for k in range(1, 5)}
    ppg_only = build(
        root, include_acc=False, reference="hr", val_participants=1, test_participants=1
    )
    assert ppg_only.in_channels == 1
    assert set(ppg_only.meta["reference"].values()) == {"hr"}  # type: ignore[attr-defined]


def test_loader_tolerates_flat_layout_and_missing_ecg(tmp_path: Path) -> None:
    write_fake_galaxyppg(tmp_path, n_participants=3, minutes=1.0, with_ecg=False)
    # P03 in a flat layout with lower-case names
    flat = tmp_path / "P03"
    for sub in ("GalaxyWatch", "PolarH10"):
        for f in (flat / sub).iterdir():
            prefix = "polar_" if sub == "PolarH10" else ""
            shutil.move(str(f), flat / (prefix + f.name.lower()))
        (flat / sub).rmdir()
    (flat / "polar_hr.csv").rename(flat / "hr.csv")
    ds = build(tmp_path, val_participants=1, test_participants=1)
    assert set(ds.meta["reference"].values()) == {"hr"}  # type: ignore[attr-defined]
    assert len(ds.meta["participants"]["train"]) == 1  # type: ignore[index]
    # a wrong explicit clock offset leaves no overlap -> nothing usable -> a clear error
    with pytest.raises(DatasetError, match="gave a labelled window"):
        build(tmp_path, polar_time_offset_ms=0, val_participants=1, test_participants=1)


def test_missing_directory_raises_with_layout_and_fallback(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError) as err:
        build(str(missing))
    msg = str(err.value)
    assert str(missing) in msg and "PPG.csv" in msg and "dataset=ppg_synth" in msg
    with pytest.raises(DatasetError, match="needs data_dir"):
        build(None)
    (tmp_path / "empty" / "P01").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no participant directories") as err:
        build(tmp_path / "empty")
    assert "dataset=ppg_synth" in str(err.value)


def test_missing_columns_name_the_file(tmp_path: Path) -> None:
    write_fake_galaxyppg(tmp_path, n_participants=1, minutes=0.5, with_ecg=False)
    ppg = tmp_path / "P01" / "GalaxyWatch" / "PPG.csv"
    pd.read_csv(ppg).rename(columns={"ppg": "signal"}).to_csv(ppg, index=False)
    with pytest.raises(DatasetError, match="PPG column"):
        read_participant(tmp_path / "P01")


def test_r_peaks_found_on_an_inverted_noisy_ecg() -> None:
    rng = np.random.default_rng(0)
    rr = 0.7 + 0.15 * np.sin(np.linspace(0.0, 6.0, 60)) + 0.02 * rng.standard_normal(60)
    beats = np.cumsum(rr) + 1.0
    t = np.arange(0.0, beats[-1] + 1.0, 1.0 / 130.0)
    ecg = -galaxyppg._synth_ecg(beats, t, rng) + 0.05 * rng.standard_normal(len(t))
    found = t[detect_r_peaks(ecg, 130.0)]
    found = found[(found > beats[0] - 0.1) & (found < t[-1] - 0.5)]  # ignore the record edges
    inner = beats[beats < t[-1] - 0.5]
    nearest = np.abs(found[:, None] - inner[None, :]).min(axis=0)
    assert np.all(nearest < 0.02) and len(found) == len(inner)
    assert rr_valid(found).all()
