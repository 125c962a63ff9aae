"""The ECG simulator: determinism, class balance, prematurity, morphology, WFDB output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from biosignals.data import aami, ecg_synth
from biosignals.data.dataset import DatasetError
from biosignals.data.ecg_synth import PROFILES, generate_database, simulate_record
from biosignals.data.wfdb_io import EcgRecord, list_records, read_record


def _beats(record: EcgRecord) -> tuple[np.ndarray, np.ndarray]:
    """Beat positions and symbols (rhythm annotations removed)."""
    keep = np.array([s in aami.SYMBOL_TO_AAMI for s in record.ann_symbols])
    return record.ann_samples[keep], np.array(record.ann_symbols)[keep]


def test_profiles_cover_the_48_records() -> None:
    assert set(PROFILES) == set(aami.MITBIH_RECORDS)
    for profile in PROFILES.values():
        assert set(profile.ectopy) <= set(aami.SYMBOL_TO_AAMI), profile.name
        assert profile.rhythm in ("N", "L", "R", "/")


def test_deterministic_and_seeded() -> None:
    a = simulate_record("208", duration_s=60)
    b = simulate_record("208", duration_s=60)
    np.testing.assert_array_equal(a.signal, b.signal)
    np.testing.assert_array_equal(a.ann_samples, b.ann_samples)
    assert a.ann_symbols == b.ann_symbols
    c = simulate_record("208", duration_s=60, seed=1)
    assert c.signal.shape == a.signal.shape and not np.array_equal(a.signal, c.signal)


def test_record_shape_and_annotations() -> None:
    rec = simulate_record("119", duration_s=60, fs=360.0)
    assert rec.signal.shape == (21600, 2) and rec.signal.dtype == np.float32
    assert rec.sig_names == ["MLII", "V1"] and rec.fs == 360.0
    assert np.all(np.diff(rec.ann_samples) >= 0)
    assert rec.ann_samples.min() >= 0 and rec.ann_samples.max() < 21600
    assert len(rec.ann_aux) == len(rec.ann_symbols)
    pos, _ = _beats(rec)
    assert 0.3 < np.diff(pos).mean() / 360.0 < 1.5  # plausible heart rate


def test_class_balance_close_to_mitbih() -> None:
    counts = Counter[str]()
    for name in aami.DS1_RECORDS + aami.DS2_RECORDS:
        _, symbols = _beats(simulate_record(name, duration_s=200))
        counts.update(aami.SYMBOL_TO_AAMI[s] for s in symbols)
    n_sv = counts["N"] + counts["S"] + counts["V"]
    assert 0.87 < counts["N"] / n_sv < 0.93
    assert 0.015 < counts["S"] / n_sv < 0.045
    assert 0.05 < counts["V"] / n_sv < 0.09


def test_ectopy_follows_the_profiles_unevenly() -> None:
    """S and V concentrate in few patients, as in the real database."""
    v_share = {}
    for name in ("115", "122", "119", "208", "232", "209"):
        _, symbols = _beats(simulate_record(name, duration_s=300))
        c = Counter(aami.SYMBOL_TO_AAMI[s] for s in symbols)
        v_share[name] = (c["S"] / len(symbols), c["V"] / len(symbols))
    assert v_share["115"] == (0.0, 0.0) and v_share["122"] == (0.0, 0.0)
    assert v_share["119"][1] > 0.12 and v_share["208"][1] > 0.2
    assert v_share["232"][0] > 0.5 and v_share["209"][0] > 0.05


def _relative_rr(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pre-RR, post-RR and a 21-beat moving-average RR for beats 1 .. n-2."""
    rr = np.diff(pos).astype(float)
    local = np.convolve(rr, np.ones(21) / 21, mode="same")
    return rr[:-1], rr[1:], local[:-1]


@pytest.mark.parametrize("name", ["209", "223"])
def test_premature_beats(name: str) -> None:
    pos, symbols = _beats(simulate_record(name, duration_s=600))
    pre, post, local = _relative_rr(pos)
    kind = symbols[1:-1]
    n = np.isin(kind, ["N"]) & np.isin(symbols[:-2], ["N"])
    s = kind == "A"
    v = kind == "V"
    pre_n, pre_s = np.median(pre[n] / local[n]), np.median(pre[s] / local[s])
    assert pre_s < 0.95 * pre_n  # supraventricular beats come early
    if v.sum() > 20:
        pre_v = np.median(pre[v] / local[v])
        assert pre_v < 0.85 * pre_n  # ventricular ones earlier still
        # full compensatory pause: the two RR intervals around a PVC add up to ~2 sinus RR
        pair = (pre[v] + post[v]) / local[v]
        assert np.median(post[v] / local[v]) > 1.1
        assert 1.8 < np.median(pair) < 2.3


def _qrs_width(x: np.ndarray, centre: int, fs: float) -> float:
    """Samples within +-80 ms of the fiducial point above half the peak |deviation|."""
    half = int(0.08 * fs)
    seg = x[centre - half : centre + half]
    seg = np.abs(seg - np.median(x[centre - int(0.3 * fs) : centre + int(0.3 * fs)]))
    return float((seg > 0.5 * seg.max()).sum()) / fs


def test_ventricular_beats_are_wide_and_supraventricular_narrow() -> None:
    rec = simulate_record("223", duration_s=600)
    pos, symbols = _beats(rec)
    mlii = rec.lead("MLII")
    inner = (pos > 200) & (pos < len(mlii) - 200)
    width = {
        k: np.median([_qrs_width(mlii, p, rec.fs) for p in pos[inner & (symbols == k)]])
        for k in ("N", "A", "V")
    }
    assert width["V"] > 1.5 * width["N"]
    assert width["A"] < 1.3 * width["N"]


def test_patients_differ() -> None:
    """Heart rate and beat morphology vary across synthetic patients."""
    hr, templates = [], []
    for name in ("100", "106", "115", "122", "209", "215"):
        rec = simulate_record(name, duration_s=120)
        pos, symbols = _beats(rec)
        hr.append(60 * rec.fs / np.diff(pos).mean())
        normal = pos[(symbols == "N") & (pos > 200) & (pos < len(rec.signal) - 200)]
        templates.append(np.mean([rec.lead(0)[p - 90 : p + 126] for p in normal], axis=0))
    assert np.ptp(hr) > 20
    corr = np.corrcoef(np.stack(templates))
    assert corr[np.triu_indices(len(templates), 1)].min() < 0.95


def test_unknown_record_name() -> None:
    with pytest.raises(DatasetError, match=r"no synthetic profile.*'999'"):
        simulate_record("999")
    with pytest.raises(DatasetError, match="duration_s"):
        simulate_record("100", duration_s=1)


def test_generate_database_writes_wfdb(tmp_path: Path) -> None:
    names = generate_database(tmp_path, ["100", "201"], duration_s=30, n_jobs=1)
    assert names == ["100", "201"] == list_records(tmp_path)
    original = simulate_record("201", duration_s=30)
    back = read_record(tmp_path, "201")
    np.testing.assert_array_equal(back.ann_samples, original.ann_samples)
    assert back.ann_symbols == original.ann_symbols
    header = (tmp_path / "201.hea").read_text()
    assert "212" in header and "MLII" in header and f"v{ecg_synth.SIMULATOR_VERSION}" in header
