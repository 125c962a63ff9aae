"""GalaxyPPG (Galaxy Watch 5 wrist PPG + Polar H10 chest ECG) windows to heart rate in BPM.

The public GalaxyPPG dataset (KAIST IC Lab, Scientific Data 2025; 24 participants, a ~1 h
protocol of rest, stress tasks, typing, walking, jogging and running) is not downloadable here:
point `data_dir` (or the env var GALAXYPPG_DIR used by `configs/dataset/galaxyppg.yaml`) at the
unpacked dataset. Without it use the offline simulator: `dataset=ppg_synth`.

Expected layout (the dataset's own; file and column names are matched case-insensitively,
extra files and columns are ignored)::

    <data_dir>/
      P01/
        GalaxyWatch/PPG.csv    timestamp (ms, Unix epoch), ppg (raw counts), status (0 = valid)
                               (+ dataReceived, ignored). 25 Hz.
        GalaxyWatch/ACC.csv    timestamp (ms), x, y, z (any unit; rescaled so |gravity| = 1 g).
                               25 Hz. Needed only with include_acc=True.
        PolarH10/ECG.csv       phoneTimestamp (ms), sensorTimestamp (ns, optional), ecg (uV).
                               130 Hz. The heart-rate reference (preferred).
        PolarH10/HR.csv        phoneTimestamp (ms), hr (BPM), hrv. 1 Hz. Fallback reference.
        Event.csv              protocol events (ignored).
      P02/ ...

A participant directory is any sub-directory of `data_dir` holding a PPG file; besides the
layout above, `PPG.csv` / `ACC.csv` / `ECG.csv` / `HR.csv` directly inside the participant
directory are accepted. The watch's own `GalaxyWatch/HR.csv` is never used as a reference.
Time columns are recognised by name (timestamp, phoneTimestamp, time, ...); their unit (s, ms,
us or ns) is inferred from the span and sample count. Polar phone timestamps in the public
release run 9 h (KST) ahead of the watch clock; the offset (0 or +-9 h) that best overlaps the
PPG is chosen per participant unless `polar_time_offset_ms` fixes it.

Processing per participant:

1. PPG samples with status != 0 or non-finite values are dropped; the rest is linearly
   interpolated onto a uniform `fs` grid spanning the overlap of PPG and reference; a grid
   sample is covered when the valid raw samples around it are at most `max_gap_s` apart.
   Accelerometer likewise, then divided by the gravity magnitude (median norm of its 2 s
   moving average), i.e. expressed in g.
2. Reference heart rate, from the ECG when present (reference="auto" or "ecg"): band-pass
   5-20 Hz, polarity fixed so R peaks point up, `scipy.signal.find_peaks` with a 0.27 s
   refractory distance and a height threshold of 0.35 x the local (10 s median) beat amplitude;
   an RR interval is invalid outside 0.27-2.0 s or when it deviates > 25 % from the median of
   its 9 neighbours (missed or extra beats, noise). The window label is 60 x the (fractional,
   linearly interpolated) number of beats in the window / window length, i.e. the mean
   instantaneous heart rate, the same definition as the simulator's; windows touching an
   invalid RR interval are dropped. From HR.csv instead (reference="hr", or "auto" without an
   ECG): the mean of the 30-230 BPM samples in the window, needing at least half the expected
   sample count.
3. Windows of `window_s` every `stride_s`; kept only when fully covered by PPG (and accelerometer)
   and labelled. x is shaped like the simulator's: PPG z-scored per window (+ accelerometer in
   g with the window mean removed), see `biosignals.data.ppg_synth.ppg_windows`.

Splits are by participant (`Split.groups` holds the directory names). `write_fake_galaxyppg`
writes a small simulated dataset in this layout (tests, demos).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage
from scipy import signal as sps

from biosignals.config_safety import register_dataset_builder
from biosignals.data.dataset import DatasetError, SignalDataset
from biosignals.data.ppg_synth import (
    ACC_CHANNELS,
    PPG_CHANNELS,
    assemble_dataset,
    bandpass,
    ppg_windows,
    simulate_participant,
    split_participants,
    window_geometry,
    window_starts,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Reference = Literal["auto", "ecg", "hr"]

GALAXY_PPG_FS = 25.0
POLAR_ECG_FS = 130.0
KST_OFFSET_MS = 9 * 3600 * 1000
# Valid reference heart rates (BPM).
_HR_RANGE = (30.0, 230.0)

_PPG_FILES = ("galaxywatch/ppg.csv", "ppg.csv")
_ACC_FILES = ("galaxywatch/acc.csv", "acc.csv")
_ECG_FILES = ("polarh10/ecg.csv", "ecg.csv")
_HR_FILES = ("polarh10/hr.csv", "hr.csv")

_TIME_COLS = ("timestamp", "phonetimestamp", "time", "ts", "time_ms", "timestamp_ms")
_PPG_COLS = ("ppg", "ppggreen", "green", "value")
_ECG_COLS = ("ecg", "value", "voltage")
_HR_COLS = ("hr", "heartrate", "heart_rate", "bpm", "value")

EXPECTED_LAYOUT = (
    "<data_dir>/P01/GalaxyWatch/PPG.csv (timestamp [ms], ppg, status), optional "
    "GalaxyWatch/ACC.csv (timestamp, x, y, z), and a reference: PolarH10/ECG.csv "
    "(phoneTimestamp [ms], ecg) or PolarH10/HR.csv (phoneTimestamp [ms], hr); one directory "
    "per participant (P01, P02, ...)"
)


@dataclass(frozen=True)
class ParticipantWindows:
    """One participant's labelled windows.

    Attributes:
        participant: the directory name, e.g. "P01".
        x: float32 windows, shape (N, C, L).
        y: float32 mean heart rate per window in BPM, shape (N,).
        start_s: window start in seconds after the first PPG sample, shape (N,).
        reference: "ecg" or "hr", the label source used.
        n_candidates: windows on the grid before dropping uncovered/unlabelled ones.
    """

    participant: str
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.float32]
    start_s: FloatArray
    reference: str
    n_candidates: int


# --- file discovery and CSV reading ------------------------------------------------------------


def _file_index(pdir: Path) -> dict[str, Path]:
    """Lower-cased relative path -> path, for files up to two levels below `pdir`."""
    index: dict[str, Path] = {}
    for p in sorted(pdir.iterdir()):
        if p.is_file():
            index.setdefault(p.name.lower(), p)
        elif p.is_dir():
            for q in sorted(p.iterdir()):
                if q.is_file():
                    index.setdefault(f"{p.name.lower()}/{q.name.lower()}", q)
    return index


def _find(index: dict[str, Path], candidates: Sequence[str]) -> Path | None:
    for c in candidates:
        if c in index:
            return index[c]
    return None


def find_participants(data_dir: str | os.PathLike[str]) -> list[Path]:
    """Participant directories under `data_dir` (those holding a PPG file), sorted by name."""
    root = Path(data_dir)
    return [
        d
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".") and _find(_file_index(d), _PPG_FILES)
    ]


def _column(df: pd.DataFrame, candidates: Sequence[str], path: Path, what: str) -> str:
    lower = {str(c).strip().lower(): str(c) for c in df.columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise DatasetError(
        f"{path}: no {what} column; expected one of {list(candidates)} (case-insensitive), "
        f"found {list(df.columns)}"
    )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DatasetError(f"cannot read {path} as CSV: {e}") from e
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _seconds_per_unit(ts: FloatArray, nominal_fs: float) -> float:
    """Seconds per timestamp unit (1, 1e-3, 1e-6 or 1e-9), inferred from span / sample count."""
    if len(ts) < 2:
        return 1e-3
    step = (float(np.nanmax(ts)) - float(np.nanmin(ts))) / (len(ts) - 1)
    if step <= 0:
        return 1e-3
    units = np.array([1.0, 1e-3, 1e-6, 1e-9])
    # the unit under which the mean step is closest (in log) to the nominal sampling period
    return float(units[np.argmin(np.abs(np.log10(step * units * nominal_fs)))])


def _time_seconds(df: pd.DataFrame, path: Path, nominal_fs: float) -> FloatArray:
    col = _column(df, _TIME_COLS, path, "time")
    ts: FloatArray = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    out: FloatArray = ts * _seconds_per_unit(ts, nominal_fs)
    return out


def _clean_series(t: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Drop non-finite samples, sort by time, keep the first of duplicate times."""
    ok = np.isfinite(t) & np.all(np.isfinite(v.reshape(len(v), -1)), axis=1)
    t, v = t[ok], v[ok]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    _, first = np.unique(t, return_index=True)
    return t[first], v[first]


def _ecg_times(df: pd.DataFrame, path: Path, ecg_fs: float) -> FloatArray:
    """Per-sample ECG times in seconds on the phone clock.

    Polar phone timestamps arrive per packet (many samples share one); the sensor clock (when
    present) gives the spacing and the phone clock the anchor (its low envelope: the latest
    sample of each packet is the one stamped on arrival).
    """
    t_phone = _time_seconds(df, path, ecg_fs)
    lower = {c.lower(): c for c in df.columns}
    if "sensortimestamp" in lower and "phonetimestamp" in lower:
        sensor = pd.to_numeric(df[lower["sensortimestamp"]], errors="coerce").to_numpy(np.float64)
        if np.all(np.isfinite(sensor)) and np.all(np.diff(sensor) > 0):
            rel = (sensor - sensor[0]) * _seconds_per_unit(sensor, ecg_fs)
            anchor = float(np.nanpercentile(t_phone - rel, 1.0))
            out: FloatArray = rel + anchor
            return out
    if len(t_phone) > 1 and np.mean(np.diff(t_phone) == 0) > 0.5:
        # packets without a sensor clock: spread each packet back from its stamp at ecg_fs
        new_packet = np.r_[True, np.diff(t_phone) != 0]
        packet_id = np.cumsum(new_packet) - 1
        sizes = np.bincount(packet_id)
        first_of_packet = np.flatnonzero(new_packet)
        pos_from_end = sizes[packet_id] - 1 - (np.arange(len(t_phone)) - first_of_packet[packet_id])
        spread: FloatArray = t_phone - pos_from_end / ecg_fs
        return spread
    return t_phone


# --- reference heart rate ----------------------------------------------------------------------


def detect_r_peaks(ecg: FloatArray, fs: float) -> IntArray:
    """R-peak sample indices of a single-lead ECG (see the module docstring for the method)."""
    if len(ecg) < int(2 * fs):
        return np.zeros(0, dtype=np.int64)
    high = min(20.0, 0.45 * fs)
    sos = sps.butter(2, [5.0, high], btype="band", fs=fs, output="sos")
    y = sps.sosfiltfilt(sos, ecg - np.median(ecg))
    if abs(np.percentile(y, 0.5)) > abs(np.percentile(y, 99.5)):
        y = -y  # inverted lead: make R peaks positive
    # local beat amplitude: max per 1 s block, then a running median over ~10 blocks
    block = max(int(fs), 1)
    n_blocks = len(y) // block
    maxima = y[: n_blocks * block].reshape(n_blocks, block).max(axis=1)
    level = ndimage.median_filter(maxima, size=min(11, n_blocks), mode="nearest")
    height = 0.35 * np.repeat(level, block)
    height = np.concatenate([height, np.full(len(y) - len(height), height[-1])])
    peaks, _ = sps.find_peaks(y, height=height, distance=max(int(0.27 * fs), 1))
    out: IntArray = np.asarray(peaks, dtype=np.int64)
    return out


def rr_valid(beat_times: FloatArray) -> npt.NDArray[np.bool_]:
    """Which RR intervals (shape (K-1,)) are physiologically plausible and locally consistent."""
    rr = np.diff(beat_times)
    if len(rr) == 0:
        return np.zeros(0, dtype=bool)
    local = ndimage.median_filter(rr, size=min(9, len(rr)), mode="nearest")
    ok: npt.NDArray[np.bool_] = (rr >= 0.27) & (rr <= 2.0) & (np.abs(rr - local) <= 0.25 * local)
    return ok


def beat_window_labels(
    beat_times: FloatArray,
    valid_rr: npt.NDArray[np.bool_],
    t0: FloatArray,
    window_s: float,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Mean heart rate over windows [t0, t0 + window_s) from beat times.

    Returns:
        (labels in BPM, usable) each shape (len(t0),); a window is usable when it lies inside
        the beat series and every RR interval it touches is valid.
    """
    t1 = t0 + window_s
    if len(beat_times) < 2:
        return np.zeros(len(t0)), np.zeros(len(t0), dtype=bool)
    k = np.arange(len(beat_times), dtype=np.float64)
    beats_elapsed = np.interp(t1, beat_times, k) - np.interp(t0, beat_times, k)
    labels: FloatArray = 60.0 * beats_elapsed / window_s
    inside = (t0 >= beat_times[0]) & (t1 <= beat_times[-1])
    first = np.clip(np.searchsorted(beat_times, t0, side="right") - 1, 0, len(valid_rr) - 1)
    last = np.clip(np.searchsorted(beat_times, t1, side="left") - 1, 0, len(valid_rr) - 1)
    bad = np.concatenate([[0], np.cumsum(~valid_rr)])
    usable = inside & (bad[last + 1] - bad[first] == 0)
    return labels, usable


def hr_window_labels(
    t_hr: FloatArray, hr: FloatArray, t0: FloatArray, window_s: float
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Mean of the valid reference HR samples in each window, and whether there were enough."""
    ok = (hr >= _HR_RANGE[0]) & (hr <= _HR_RANGE[1])
    rate = (len(t_hr) - 1) / max(float(t_hr[-1] - t_hr[0]), 1e-9) if len(t_hr) > 1 else 1.0
    t_ok, hr_ok = t_hr[ok], hr[ok]
    cs = np.concatenate([[0.0], np.cumsum(hr_ok)])
    a = np.searchsorted(t_ok, t0, side="left")
    b = np.searchsorted(t_ok, t0 + window_s, side="left")
    count = b - a
    labels: FloatArray = (cs[b] - cs[a]) / np.maximum(count, 1)
    usable = count >= max(1.0, 0.5 * window_s * rate)
    return labels, usable


# --- per-participant reading -------------------------------------------------------------------


def _resample(
    t_raw: FloatArray, v_raw: FloatArray, grid: FloatArray, max_gap_s: float
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Linear interpolation of v_raw (T_raw,) or (T_raw, D) onto grid, and a coverage mask."""
    if v_raw.ndim == 1:
        out = np.interp(grid, t_raw, v_raw)
    else:
        out = np.stack([np.interp(grid, t_raw, v_raw[:, j]) for j in range(v_raw.shape[1])], 1)
    i = np.searchsorted(t_raw, grid, side="left")
    exact = (i < len(t_raw)) & (t_raw[np.minimum(i, len(t_raw) - 1)] == grid)
    inner = (i > 0) & (i < len(t_raw))
    gap = np.full(len(grid), np.inf)
    gap[inner] = t_raw[i[inner]] - t_raw[i[inner] - 1]
    covered: npt.NDArray[np.bool_] = exact | (gap <= max_gap_s)
    return out, covered


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def read_participant(
    pdir: str | os.PathLike[str],
    *,
    fs: float = GALAXY_PPG_FS,
    window_s: float = 8.0,
    stride_s: float = 2.0,
    include_acc: bool = True,
    reference: Reference = "auto",
    polar_time_offset_ms: float | None = None,
    max_gap_s: float = 0.25,
    bandpass_hz: Sequence[float] | None = None,
    ecg_fs: float = POLAR_ECG_FS,
) -> ParticipantWindows | None:
    """Read one participant directory into labelled windows.

    Returns None (with a warning) when a file the options need is missing or the PPG and the
    reference do not overlap; raises `DatasetError` for unreadable files or missing columns.
    """
    pdir = Path(pdir)
    name = pdir.name
    index = _file_index(pdir)
    ppg_path = _find(index, _PPG_FILES)
    if ppg_path is None:
        logger.warning("%s: no PPG file (%s); skipped", pdir, " or ".join(_PPG_FILES))
        return None
    ecg_path, hr_path = _find(index, _ECG_FILES), _find(index, _HR_FILES)
    if reference not in ("auto", "ecg", "hr"):
        raise DatasetError(f"reference must be 'auto', 'ecg' or 'hr', got {reference!r}")
    use = "ecg" if reference == "ecg" or (reference == "auto" and ecg_path) else "hr"
    ref_path = ecg_path if use == "ecg" else hr_path
    if ref_path is None:
        logger.warning("%s: no %s reference file; skipped", pdir, use.upper())
        return None
    acc_path = _find(index, _ACC_FILES) if include_acc else None
    if include_acc and acc_path is None:
        logger.warning("%s: no ACC file and include_acc=True; skipped", pdir)
        return None

    ppg_df = _read_csv(ppg_path)
    t_ppg = _time_seconds(ppg_df, ppg_path, GALAXY_PPG_FS)
    v_ppg = pd.to_numeric(
        ppg_df[_column(ppg_df, _PPG_COLS, ppg_path, "PPG")], errors="coerce"
    ).to_numpy(np.float64)
    status_col = {c.lower(): c for c in ppg_df.columns}.get("status")
    if status_col is not None:
        status = pd.to_numeric(ppg_df[status_col], errors="coerce").to_numpy(np.float64)
        v_ppg = np.where(status == 0, v_ppg, np.nan)
    t_ppg, v_ppg = _clean_series(t_ppg, v_ppg)
    if len(t_ppg) < 2:
        logger.warning("%s: fewer than 2 valid PPG samples; skipped", ppg_path)
        return None
    origin = float(t_ppg[0])

    # reference, on the phone clock; aligned to the watch clock below
    ref_df = _read_csv(ref_path)
    if use == "ecg":
        t_ref = _ecg_times(ref_df, ref_path, ecg_fs)
        v_ref = pd.to_numeric(
            ref_df[_column(ref_df, _ECG_COLS, ref_path, "ECG")], errors="coerce"
        ).to_numpy(np.float64)
    else:
        t_ref = _time_seconds(ref_df, ref_path, 1.0)
        v_ref = pd.to_numeric(
            ref_df[_column(ref_df, _HR_COLS, ref_path, "heart-rate")], errors="coerce"
        ).to_numpy(np.float64)
    t_ref, v_ref = _clean_series(t_ref, v_ref)
    if len(t_ref) < 2:
        logger.warning("%s: fewer than 2 valid reference samples; skipped", ref_path)
        return None
    span_ppg = (float(t_ppg[0]), float(t_ppg[-1]))
    if polar_time_offset_ms is not None:
        offset = float(polar_time_offset_ms) / 1000.0
    else:
        offsets = [0.0, -KST_OFFSET_MS / 1000.0, KST_OFFSET_MS / 1000.0]
        offset = max(offsets, key=lambda o: _overlap(span_ppg, (t_ref[0] + o, t_ref[-1] + o)))
    t_ref = t_ref + offset
    start, end = max(span_ppg[0], float(t_ref[0])), min(span_ppg[1], float(t_ref[-1]))
    if end - start < window_s:
        logger.warning(
            "%s: PPG (%.0f-%.0f s) and %s reference (%.0f-%.0f s, offset %.0f s) overlap by less "
            "than one window; skipped (set polar_time_offset_ms if the clocks differ)",
            pdir,
            span_ppg[0],
            span_ppg[1],
            use.upper(),
            t_ref[0],
            t_ref[-1],
            offset,
        )
        return None

    length, stride = window_geometry(fs, window_s, stride_s)
    first = int(np.ceil((start - origin) * fs - 1e-6))  # the grid keeps the PPG's sample clock
    grid = origin + (first + np.arange(int(np.floor((end - origin) * fs + 1e-6)) - first + 1)) / fs
    ppg, covered = _resample(t_ppg, v_ppg, grid, max_gap_s)
    if bandpass_hz is not None:
        ppg = bandpass(ppg, fs, bandpass_hz)
    acc: FloatArray | None = None
    if acc_path is not None:
        acc_df = _read_csv(acc_path)
        t_acc = _time_seconds(acc_df, acc_path, GALAXY_PPG_FS)
        cols = [_column(acc_df, (axis,), acc_path, f"accelerometer {axis}") for axis in "xyz"]
        v_acc = acc_df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        t_acc, v_acc = _clean_series(t_acc, v_acc)
        if len(t_acc) < 2:
            logger.warning("%s: fewer than 2 valid accelerometer samples; skipped", acc_path)
            return None
        acc, acc_cov = _resample(t_acc, v_acc, grid, max_gap_s)
        # gravity: the median norm of the 2 s moving average (motion averages out, gravity not)
        smooth = ndimage.uniform_filter1d(acc, size=max(int(2 * fs), 1), axis=0, mode="nearest")
        g = float(np.median(np.linalg.norm(smooth, axis=1)))
        acc = acc / (g if g > 0 else 1.0)  # in g
        covered &= acc_cov

    starts = window_starts(len(grid), length, stride)
    t0 = grid[starts]
    gaps = np.concatenate([[0], np.cumsum(~covered)])
    usable = gaps[starts + length] - gaps[starts] == 0
    if use == "ecg":
        fs_ecg = 1.0 / float(np.median(np.diff(t_ref)))  # robust to recording gaps
        peaks = detect_r_peaks(v_ref, fs_ecg)
        beats = t_ref[peaks]
        labels, ok = beat_window_labels(beats, rr_valid(beats), t0, window_s)
    else:
        labels, ok = hr_window_labels(t_ref, v_ref, t0, window_s)
    usable &= ok & (labels >= _HR_RANGE[0]) & (labels <= _HR_RANGE[1])
    keep = starts[usable]
    if len(starts) and not usable.any():
        logger.warning("%s: none of %d windows is covered and labelled", pdir, len(starts))
    return ParticipantWindows(
        participant=name,
        x=ppg_windows(ppg, acc, keep, length),
        y=labels[usable].astype(np.float32),
        start_s=t0[usable] - origin,
        reference=use,
        n_candidates=len(starts),
    )


# --- the builder -------------------------------------------------------------------------------


@register_dataset_builder
def build(
    data_dir: str | os.PathLike[str] | None,
    fs: float = GALAXY_PPG_FS,
    window_s: float = 8.0,
    stride_s: float = 2.0,
    include_acc: bool = True,
    reference: Reference = "auto",
    val_participants: int | Sequence[str] = 4,
    test_participants: int | Sequence[str] = 4,
    participants: Sequence[str] | None = None,
    seed: int = 0,
    polar_time_offset_ms: float | None = None,
    max_gap_s: float = 0.25,
    bandpass_hz: Sequence[float] | None = None,
    cache_dir: str | None = None,
) -> SignalDataset:
    """Build GalaxyPPG heart-rate windows from a directory in the layout of the module docstring.

    Args:
        data_dir: the dataset root (holding P01/, P02/, ...). Required.
        fs: output sampling rate in Hz (the watch PPG is 25 Hz; other rates resample).
        window_s, stride_s: window length and hop in seconds (the dataset paper uses 8 s / 2 s).
        include_acc: add the watch accelerometer (C = 4) or give PPG only (C = 1).
        reference: label source: "ecg" (Polar ECG R peaks), "hr" (Polar HR.csv) or "auto"
            (ECG when the participant has one, else HR).
        val_participants, test_participants: a count (seeded shuffle) or explicit directory names.
        participants: restrict to these directory names (default: all found).
        seed: split seed.
        polar_time_offset_ms: added to Polar timestamps; None picks 0 or +-9 h automatically.
        max_gap_s: largest gap between valid raw samples interpolated across.
        bandpass_hz: optional [low, high] zero-phase band-pass of the PPG before windowing.
        cache_dir: accepted for the builder contract; nothing is cached here.

    Returns:
        `SignalDataset` named "galaxyppg", task "regression", target "heart_rate_bpm".

    Raises:
        DatasetError: data_dir missing or holding no usable participant, too few participants for
            the splits, unreadable files or missing columns.
    """
    del cache_dir
    hint = (
        f"expected layout: {EXPECTED_LAYOUT}. Set data_dir (or GALAXYPPG_DIR) to the unpacked "
        "GalaxyPPG dataset, or use the offline simulator: dataset=ppg_synth"
    )
    if data_dir is None or str(data_dir) == "":
        raise DatasetError(f"galaxyppg needs data_dir, got {data_dir!r}; {hint}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"galaxyppg data_dir {str(root)!r} is not a directory; {hint}")
    t_start = time.perf_counter()
    dirs = find_participants(root)
    if participants is not None:
        wanted = {str(p) for p in participants}
        missing = sorted(wanted - {d.name for d in dirs})
        if missing:
            raise DatasetError(
                f"participants {missing} not found under {str(root)!r} "
                f"(found {[d.name for d in dirs]})"
            )
        dirs = [d for d in dirs if d.name in wanted]
    if not dirs:
        raise DatasetError(
            f"no participant directories with a PPG file under {str(root)!r}; {hint}"
        )

    windows: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
    refs: dict[str, str] = {}
    dropped: dict[str, int] = {}
    for d in dirs:
        pw = read_participant(
            d,
            fs=fs,
            window_s=window_s,
            stride_s=stride_s,
            include_acc=include_acc,
            reference=reference,
            polar_time_offset_ms=polar_time_offset_ms,
            max_gap_s=max_gap_s,
            bandpass_hz=bandpass_hz,
        )
        if pw is None or len(pw.y) == 0:
            continue
        windows[pw.participant] = (pw.x, pw.y)
        refs[pw.participant] = pw.reference
        dropped[pw.participant] = pw.n_candidates - len(pw.y)
    if not windows:
        raise DatasetError(
            f"none of the {len(dirs)} participant directories under {str(root)!r} gave a "
            f"labelled window (see the warnings above); {hint}"
        )
    splits = split_participants(list(windows), val_participants, test_participants, seed)
    meta: dict[str, object] = {
        "source": "galaxyppg",
        "data_dir": str(root),
        "seed": seed,
        "fs": float(fs),
        "window_s": float(window_s),
        "stride_s": float(stride_s),
        "reference": refs,
        "dropped_windows": dropped,
        "bandpass_hz": None if bandpass_hz is None else [float(v) for v in bandpass_hz],
        "channels": list(PPG_CHANNELS + (ACC_CHANNELS if include_acc else ())),
    }
    ds = assemble_dataset("galaxyppg", windows, splits, sampling_rate=fs, meta=meta)
    logger.info(
        "built galaxyppg from %s: %d participants, windows train/val/test = %d/%d/%d, %.2f s",
        root,
        len(windows),
        len(ds.train),
        len(ds.val),
        len(ds.test),
        time.perf_counter() - t_start,
    )
    return ds


# --- a simulated dataset in the GalaxyPPG layout -----------------------------------------------


def _synth_ecg(beat_times: FloatArray, t: FloatArray, rng: np.random.Generator) -> FloatArray:
    """A single-lead ECG (mV) with P, QRS and T waves at the given beat times, sampled at t."""
    nxt = np.clip(np.searchsorted(beat_times, t), 1, len(beat_times) - 1)
    d_prev = t - beat_times[nxt - 1]  # >= 0 mostly: time since the previous beat
    d_next = t - beat_times[nxt]  # <= 0 mostly: time to the next beat

    def wave(d: FloatArray, centre: float, width: float, amp: float) -> FloatArray:
        out: FloatArray = amp * np.exp(-0.5 * ((d - centre) / width) ** 2)
        return out

    ecg = np.zeros_like(t)
    for d in (d_prev, d_next):
        ecg += wave(d, 0.0, 0.012, 1.0) + wave(d, -0.025, 0.01, -0.15) + wave(d, 0.03, 0.012, -0.2)
    ecg += wave(d_prev, 0.26, 0.045, 0.3) + wave(d_next, -0.16, 0.025, 0.12)
    ecg += 0.15 * np.sin(2 * np.pi * 0.25 * t) + 0.02 * rng.standard_normal(len(t))
    return ecg


def write_fake_galaxyppg(
    root: str | os.PathLike[str],
    n_participants: int = 3,
    minutes: float = 2.0,
    seed: int = 0,
    *,
    with_ecg: bool = True,
    with_hr: bool = True,
    with_acc: bool = True,
    polar_offset_ms: int = KST_OFFSET_MS,
) -> dict[str, FloatArray]:
    """Write simulated participants P01, P02, ... in the GalaxyPPG layout under `root`.

    PPG and accelerometer come from `ppg_synth.simulate_participant` at 25 Hz (PPG as inverted
    raw counts with a short status=-999 run, ACC in m/s^2); the Polar ECG (130 Hz, packets of 73
    samples stamped on arrival, plus a sensor clock in ns) is synthesised at the simulator's
    beat times and starts 3 s after and ends 2 s before the watch; Polar HR.csv holds 1 Hz
    rounded heart rates. Polar phone timestamps are shifted by `polar_offset_ms`, like the
    public release.

    Returns:
        participant name -> true instantaneous heart rate (BPM) at 25 Hz from the first PPG sample.
    """
    root = Path(root)
    truth: dict[str, FloatArray] = {}
    fs = GALAXY_PPG_FS
    epoch_2000_ms = 946_684_800_000
    for k in range(n_participants):
        name = f"P{k + 1:02d}"
        rec = simulate_participant(k, minutes=minutes, fs=fs, seed=seed)
        rng = np.random.default_rng([seed, k, 7])
        n = len(rec.ppg)
        t0_ms = 1_700_000_000_000 + k * 3_600_000
        t_ms = t0_ms + np.round(np.arange(n) * 1000.0 / fs).astype(np.int64)
        watch, polar = root / name / "GalaxyWatch", root / name / "PolarH10"
        watch.mkdir(parents=True, exist_ok=True)
        polar.mkdir(parents=True, exist_ok=True)
        received = t_ms + 500 - (t_ms - t0_ms) % 500
        status = np.zeros(n, dtype=np.int64)
        if n > 40 * fs:
            status[int(20 * fs) : int(23 * fs)] = -999  # higher-priority sensor took over
        pd.DataFrame(
            {
                "dataReceived": received,
                "timestamp": t_ms,
                "ppg": np.round(2_000_000 - 40_000 * rec.ppg).astype(np.int64),
                "status": status,
            }
        ).to_csv(watch / "PPG.csv", index=False)
        if with_acc:
            acc = np.round(rec.acc * 9.80665, 4)
            pd.DataFrame(
                {
                    "dataReceived": received,
                    "timestamp": t_ms,
                    "x": acc[:, 0],
                    "y": acc[:, 1],
                    "z": acc[:, 2],
                }
            ).to_csv(watch / "ACC.csv", index=False)
        t_rel = np.arange(n) / fs
        if with_ecg:
            te = np.arange(3.0, rec.duration_s - 2.0, 1.0 / POLAR_ECG_FS)
            ecg_uv = np.round(1000 * _synth_ecg(rec.beat_times, te, rng)).astype(np.int64)
            true_ms = t0_ms + te * 1000.0
            packet_end = (np.arange(len(te)) // 73) * 73 + 72
            arrival = true_ms[np.minimum(packet_end, len(te) - 1)] + 20.0
            pd.DataFrame(
                {
                    "phoneTimestamp": np.round(arrival).astype(np.int64) + polar_offset_ms,
                    "sensorTimestamp": np.round((true_ms - epoch_2000_ms) * 1e6).astype(np.int64),
                    "ecg": ecg_uv,
                }
            ).to_csv(polar / "ECG.csv", index=False)
        if with_hr:
            th = np.arange(4.0, rec.duration_s - 2.0, 1.0)
            hr = np.interp(th, t_rel, np.convolve(rec.hr_bpm, np.ones(25) / 25, mode="same"))
            pd.DataFrame(
                {
                    "phoneTimestamp": np.round(t0_ms + th * 1000).astype(np.int64)
                    + polar_offset_ms,
                    "hr": np.round(hr).astype(np.int64),
                    "hrv": np.round(rng.uniform(20, 80, len(th)), 1),
                }
            ).to_csv(polar / "HR.csv", index=False)
        pd.DataFrame(
            {
                "timestamp": [t0_ms, t_ms[-1]],
                "session": ["baseline", "baseline"],
                "status": ["ENTER", "EXIT"],
            }
        ).to_csv(root / name / "Event.csv", index=False)
        truth[name] = rec.hr_bpm
    return truth
