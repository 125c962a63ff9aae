"""Synthetic wrist PPG with a known heart rate: the offline default of the PPG workload.

The task: from an 8 s window of wrist PPG (optionally with a 3-axis accelerometer), regress the
mean heart rate over the window in beats per minute. `build_synthetic` simulates participants,
cuts their recordings into windows and returns a `SignalDataset(task="regression",
target_name="heart_rate_bpm")` split by participant.

What one simulated participant gets (all drawn from a per-participant random stream, so
participant `k` is the same whatever the number of participants):

- Heart rate: a resting rate (50-88 BPM) and a ceiling; an activity schedule of 45-240 s
  segments (rest / light / moderate / vigorous, participant-specific proportions) sets a target
  rate that the heart follows with first-order kinetics (exercise-like ramps and recoveries);
  some rest segments carry a stress bump (a raised rate with no motion); slow drift (HRV) and
  respiratory sinus arrhythmia (weaker during exercise) on top.
- Pulse: each beat is a skewed systolic wave plus a diastolic wave with a dicrotic notch
  between them; the wave timings are fixed in seconds, so the shape compresses at high rates.
  Beat-to-beat amplitude jitter, respiratory amplitude and baseline modulation, slow baseline
  drift, lower perfusion during exercise, white sensor noise.
- Motion: during activity, arm swing at half the step cadence and its harmonics (cadence rises
  with effort, so the artefact sits inside the heart-rate band and often near the true rate)
  plus random transient bursts (gestures) at rest and during activity. The accelerometer sees
  the same motion (plus gravity and its own noise); the PPG artefact is a delayed, partly
  nonlinear projection of it, so accelerometer channels help but do not solve the task and a
  spectral-peak estimator fails on a large share of windows.

Windows (default 8 s every 2 s at 25 Hz, the Galaxy Watch PPG rate): channel 0 is the PPG,
z-scored per window; channels 1-3 (when `include_acc`) are the accelerometer in g with the
window mean (gravity) removed. The label is the true mean instantaneous heart rate over the
window, equal to 60 * (beats elapsed in the window, fractional) / window length.

The windowing helpers here (`window_starts`, `ppg_windows`, `split_participants`,
`assemble_dataset`) are shared with the GalaxyPPG loader (`biosignals.data.galaxyppg`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from biosignals.config_safety import register_dataset_builder
from biosignals.data.dataset import DatasetError, SignalDataset, Split

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SIMULATOR_VERSION = 1
"""Bumped whenever the simulated signals or labels change; part of `build_synthetic`'s dataset
cache key and, as "ppg_synth/<version>", of each run's provenance."""

TARGET_NAME = "heart_rate_bpm"
PPG_CHANNELS: tuple[str, ...] = ("ppg",)
ACC_CHANNELS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z")

# Activity levels (fraction of heart-rate reserve) and their average share of the time.
_LEVELS = np.array([0.0, 0.3, 0.6, 1.0])
_LEVEL_SHARE = np.array([0.35, 0.25, 0.25, 0.15])
# The heart-rate band the task covers; the simulator never leaves it.
HR_MIN_BPM, HR_MAX_BPM = 40.0, 200.0


@dataclass(frozen=True)
class PPGRecording:
    """One simulated participant's continuous recording.

    Attributes:
        participant: participant id, e.g. "S003".
        fs: sampling rate in Hz of every per-sample array.
        ppg: PPG in arbitrary units (unit pulse amplitude), shape (T,).
        acc: wrist acceleration in g including gravity, shape (T, 3).
        hr_bpm: instantaneous heart rate, shape (T,); the label source.
        phase: cardiac phase in beats since an arbitrary origin, shape (T,); a beat starts where
            it crosses an integer, and phase[i] - phase[i-1] == hr_bpm[i] / 60 / fs.
        beat_times: pulse onset times in seconds from the first sample, shape (K,).
        activity: effort level in [0, 1], shape (T,).
        artefact: the motion-artefact component of `ppg`, shape (T,).
    """

    participant: str
    fs: float
    ppg: FloatArray
    acc: FloatArray
    hr_bpm: FloatArray
    phase: FloatArray
    beat_times: FloatArray
    activity: FloatArray
    artefact: FloatArray

    @property
    def duration_s(self) -> float:
        """Recording length in seconds."""
        return len(self.ppg) / self.fs


def _lowpass1(x: FloatArray, tau_samples: float) -> FloatArray:
    """First-order low-pass (time constant `tau_samples`) started at x[0], no start transient."""
    alpha = 1.0 - np.exp(-1.0 / max(tau_samples, 1e-6))
    y, _ = sps.lfilter([alpha], [1.0, alpha - 1.0], x - x[0], zi=[0.0])
    out: FloatArray = np.asarray(y, dtype=np.float64) + x[0]
    return out


def _smooth_noise(rng: np.random.Generator, n: int, tau_samples: float) -> FloatArray:
    """Low-passed white noise with unit standard deviation, shape (n,)."""
    x = _lowpass1(rng.standard_normal(n), tau_samples)
    x = x - x.mean()
    std = float(x.std())
    out: FloatArray = x / std if std > 0 else x
    return out


def _wrap(d: FloatArray) -> FloatArray:
    """Wrap a phase difference to [-0.5, 0.5)."""
    out: FloatArray = (d + 0.5) % 1.0 - 0.5
    return out


def simulate_participant(
    index: int,
    *,
    minutes: float = 20.0,
    fs: float = 25.0,
    seed: int = 0,
    motion_level: float = 1.0,
    noise_level: float = 1.0,
) -> PPGRecording:
    """Simulate one participant's wrist PPG, accelerometer and true heart rate.

    Deterministic in (index, seed, minutes, fs, motion_level, noise_level): the random stream is
    `np.random.default_rng([seed, index])`, independent of how many participants are built.

    Args:
        index: participant number (>= 0); the id is f"S{index:03d}".
        minutes: recording length.
        fs: sampling rate in Hz (>= 10 so the heart-rate band fits below Nyquist).
        seed: generator seed (>= 0).
        motion_level: scales the motion-artefact strength in the PPG and burst frequency
            (0 disables artefacts; 1 is the default difficulty).
        noise_level: scales the white sensor noise.

    Returns:
        The recording; see `PPGRecording`.
    """
    if index < 0 or seed < 0:
        raise DatasetError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    if fs < 10.0:
        raise DatasetError(f"fs must be >= 10 Hz to hold heart rates up to 200 BPM, got fs={fs}")
    n = round(minutes * 60.0 * fs)
    if n < 2:
        raise DatasetError(
            f"minutes * 60 * fs must give at least 2 samples, got {n}; raise minutes"
        )
    if motion_level < 0 or noise_level < 0:
        raise DatasetError(
            f"motion_level and noise_level must be >= 0, got {motion_level}, {noise_level}"
        )
    rng = np.random.default_rng([seed, index])
    t = np.arange(n, dtype=np.float64) / fs

    # --- 1 Hz control grid: activity schedule and heart-rate kinetics -------------------------
    n_sec = int(np.ceil(n / fs)) + 2
    sec = np.arange(n_sec, dtype=np.float64)
    n_seg = n_sec // 45 + 2
    seg_end = np.cumsum(rng.uniform(45.0, 240.0, size=n_seg))
    share = rng.dirichlet(_LEVEL_SHARE * 8.0)  # participant-specific habits
    levels = rng.choice(_LEVELS, size=n_seg, p=share)
    seg = np.minimum(np.searchsorted(seg_end, sec, side="right"), n_seg - 1)
    effort = levels[seg]
    stress = np.where((levels == 0.0) & (rng.random(n_seg) < 0.3), rng.uniform(5, 20, n_seg), 0.0)

    hr_rest = rng.uniform(50.0, 88.0)
    hr_top = min(hr_rest + rng.uniform(50.0, 110.0), 192.0)
    target = hr_rest + effort * (hr_top - hr_rest) + stress[seg]
    hr_sec = _lowpass1(target, rng.uniform(15.0, 50.0))  # ramps, not steps
    hr_sec += rng.uniform(1.5, 4.0) * _smooth_noise(rng, n_sec, 20.0)  # slow HRV drift
    act_sec = _lowpass1(effort, 4.0)
    resp_sec = rng.uniform(0.18, 0.32) + 0.2 * act_sec + 0.02 * _smooth_noise(rng, n_sec, 30.0)

    hr_base = np.interp(t, sec, hr_sec)
    activity = np.clip(np.interp(t, sec, act_sec), 0.0, 1.0)
    resp_phase = rng.random() + np.cumsum(np.clip(np.interp(t, sec, resp_sec), 0.1, 0.6)) / fs
    resp = np.sin(2 * np.pi * resp_phase)

    rsa = rng.uniform(1.0, 5.0) * (1.0 - 0.7 * activity)  # respiratory sinus arrhythmia
    hr = np.clip(hr_base + rsa * resp, HR_MIN_BPM, HR_MAX_BPM)
    phase = rng.random() + np.cumsum(hr / 60.0) / fs

    # Beat onsets: integer crossings of the phase, linearly interpolated between samples.
    cycles = np.floor(phase)
    cross = np.flatnonzero(np.diff(cycles) > 0) + 1
    frac = (cycles[cross] - phase[cross - 1]) / (phase[cross] - phase[cross - 1])
    beat_times = (cross - 1 + frac) / fs

    # --- pulse morphology --------------------------------------------------------------------
    f = hr / 60.0
    theta = phase % 1.0
    c1 = np.clip(rng.uniform(0.10, 0.18) * f, 0.06, 0.40)  # systolic crest
    w1 = np.where(_wrap(theta - c1) < 0, rng.uniform(0.035, 0.06) * f, rng.uniform(0.08, 0.14) * f)
    c2 = np.clip(c1 + rng.uniform(0.20, 0.30) * f, c1 + 0.08, 0.80)  # diastolic wave
    w2 = rng.uniform(0.06, 0.10) * f
    pulse = np.exp(-0.5 * (_wrap(theta - c1) / w1) ** 2)
    pulse += rng.uniform(0.15, 0.55) * np.exp(-0.5 * (_wrap(theta - c2) / w2) ** 2)

    beat_index = (cycles - cycles[0]).astype(np.int64)
    beat_amp = 1.0 + 0.06 * rng.standard_normal(int(beat_index[-1]) + 1)
    amplitude = (
        beat_amp[beat_index]
        * (1.0 + rng.uniform(0.03, 0.2) * resp)  # respiratory amplitude modulation
        * (1.0 - rng.uniform(0.0, 0.4) * activity)  # lower perfusion during exercise
    )
    baseline = rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * (resp_phase + 0.25))
    baseline += rng.uniform(0.2, 1.0) * _smooth_noise(rng, n, 30.0 * fs)

    # --- motion: periodic arm swing / steps, and transient bursts ------------------------------
    cadence = rng.uniform(1.3, 1.6) + 1.3 * activity  # steps per second
    cad_phase = rng.random() + np.cumsum(cadence) / fs + 0.3 * _smooth_noise(rng, n, 3.0 * fs)
    moving = np.clip((activity - 0.1) / 0.2, 0.0, 1.0)
    swing = rng.uniform(0.6, 1.5) * activity * moving  # g
    u = rng.standard_normal((3, 3)) / np.sqrt(3.0)
    acc_dyn = swing[:, None] * (
        np.sin(np.pi * cad_phase)[:, None] * u[0]  # arm swing, half the cadence
        + 0.5 * np.sin(2 * np.pi * cad_phase + rng.uniform(0, 2 * np.pi))[:, None] * u[1]
        + 0.2 * np.sin(4 * np.pi * cad_phase + rng.uniform(0, 2 * np.pi))[:, None] * u[2]
    )
    burst_rate = motion_level * (1.0 / 90.0 + activity[:: max(int(fs), 1)] / 30.0)  # per second
    starts = np.flatnonzero(rng.random(len(burst_rate)) < burst_rate) * max(int(fs), 1)
    envelope = np.zeros(n)
    for s, dur, amp in zip(
        starts,
        rng.uniform(1.0, 6.0, len(starts)),
        rng.uniform(0.3, 1.5, len(starts)),
        strict=True,
    ):
        m = min(max(round(dur * fs), 2), n - int(s))
        if m >= 2:
            envelope[s : s + m] += amp * np.hanning(m)
    low, high = 0.3 / (fs / 2), min(4.0 / (fs / 2), 0.95)
    sos = sps.butter(2, [low, high], btype="band", output="sos")
    burst_src = sps.sosfiltfilt(sos, rng.standard_normal((n, 3)), axis=0)
    burst_src /= burst_src.std(axis=0, keepdims=True) + 1e-12
    acc_dyn = acc_dyn + envelope[:, None] * (burst_src @ (rng.standard_normal((3, 3)) / np.sqrt(3)))

    gravity = rng.standard_normal(3) + 0.4 * np.stack(
        [_smooth_noise(rng, n, 20.0 * fs) for _ in range(3)], axis=1
    )
    gravity /= np.linalg.norm(gravity, axis=-1, keepdims=True)
    acc = gravity + acc_dyn + 0.01 * rng.standard_normal((n, 3))

    # The PPG sees a delayed (tissue/blood pooling), partly nonlinear projection of the motion.
    w_lin, w_quad = rng.standard_normal(3), rng.standard_normal(3)
    w_lin /= np.linalg.norm(w_lin)
    w_quad /= np.linalg.norm(w_quad)
    proj = _lowpass1(acc_dyn @ w_lin, rng.uniform(0.02, 0.08) * fs)
    quad = (acc_dyn @ w_quad) ** 2
    artefact = motion_level * (
        rng.uniform(1.0, 3.0) * proj + rng.uniform(0.3, 1.0) * (quad - quad.mean())
    )
    noise = noise_level * rng.uniform(0.02, 0.12) * rng.standard_normal(n)
    ppg = amplitude * pulse + baseline + artefact + noise

    return PPGRecording(
        participant=f"S{index:03d}",
        fs=float(fs),
        ppg=ppg,
        acc=acc,
        hr_bpm=hr,
        phase=phase,
        beat_times=beat_times,
        activity=activity,
        artefact=artefact,
    )


# --- windowing helpers shared with the GalaxyPPG loader ------------------------------------------


def window_starts(n_samples: int, length: int, stride: int) -> IntArray:
    """Start indices of every full window of `length` samples taken every `stride` samples."""
    if length < 1 or stride < 1:
        raise DatasetError(f"window length and stride must be >= 1 sample, got {length}, {stride}")
    if n_samples < length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - length + 1, stride, dtype=np.int64)


def window_means(x: FloatArray, starts: IntArray, length: int) -> FloatArray:
    """Mean of x over each window [s, s + length), shape (len(starts),)."""
    cs = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    out: FloatArray = (cs[starts + length] - cs[starts]) / length
    return out


def bandpass(x: FloatArray, fs: float, band: Sequence[float]) -> FloatArray:
    """Zero-phase 2nd-order Butterworth band-pass of a continuous signal along axis 0."""
    if len(band) != 2 or not 0 < float(band[0]) < float(band[1]) < fs / 2:
        raise DatasetError(
            f"bandpass_hz must be [low, high] with 0 < low < high < fs/2 = {fs / 2}, got "
            f"{list(band)}; use e.g. [0.5, 4.0] or null to disable it"
        )
    sos = sps.butter(2, [float(band[0]), float(band[1])], btype="band", fs=fs, output="sos")
    out: FloatArray = sps.sosfiltfilt(sos, x, axis=0)
    return out


def ppg_windows(
    ppg: FloatArray,
    acc: FloatArray | None,
    starts: IntArray,
    length: int,
) -> npt.NDArray[np.float32]:
    """Cut windows: PPG z-scored per window, accelerometer (in g) with each window's mean removed.

    Args:
        ppg: continuous PPG, shape (T,).
        acc: continuous acceleration in g, shape (T, 3), or None for PPG only.
        starts: window start indices, shape (N,).
        length: samples per window (L).

    Returns:
        float32 windows, shape (N, C, L) with C = 1 (PPG) or 4 (PPG, acc x/y/z).
    """
    idx = starts[:, None] + np.arange(length)[None, :]  # (N, L)
    p = ppg[idx]  # (N, L)
    p = (p - p.mean(axis=1, keepdims=True)) / (p.std(axis=1, keepdims=True) + 1e-6)
    chans = [p[:, None, :]]
    if acc is not None:
        a = np.transpose(acc[idx], (0, 2, 1))  # (N, 3, L)
        chans.append(a - a.mean(axis=2, keepdims=True))
    return np.concatenate(chans, axis=1).astype(np.float32)


def split_participants(
    ids: Sequence[str],
    val: int | Sequence[str],
    test: int | Sequence[str],
    seed: int,
) -> dict[str, list[str]]:
    """Assign whole participants to train/val/test.

    Args:
        ids: every participant id.
        val, test: a count (participants drawn by a seeded shuffle) or explicit ids.
        seed: shuffle seed.

    Returns:
        {"train": [...], "val": [...], "test": [...]}, each sorted, disjoint, train non-empty.
    """
    pool = sorted(ids)
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    chosen: dict[str, list[str]] = {}
    for name, spec in (("val", val), ("test", test)):
        if isinstance(spec, int):
            if spec < 0:
                raise DatasetError(f"{name}_participants must be >= 0, got {spec}")
            continue
        explicit = [spec] if isinstance(spec, str) else [str(p) for p in spec]
        unknown = sorted(set(explicit) - set(pool))
        if unknown:
            raise DatasetError(
                f"{name}_participants names unknown participants {unknown}; known: {pool}"
            )
        chosen[name] = explicit
    if "val" in chosen and "test" in chosen and set(chosen["val"]) & set(chosen["test"]):
        both = sorted(set(chosen["val"]) & set(chosen["test"]))
        raise DatasetError(f"val and test participants overlap: {both}; list each once")
    for name, spec in (("val", val), ("test", test)):
        if isinstance(spec, int):
            taken = {p for ids_ in chosen.values() for p in ids_}
            chosen[name] = [p for p in order if p not in taken][:spec]
    train = [p for p in pool if p not in set(chosen["val"]) | set(chosen["test"])]
    if not train:
        raise DatasetError(
            f"no participant left for training: {len(pool)} participants, val={chosen['val']}, "
            f"test={chosen['test']}; lower val_participants/test_participants or add participants"
        )
    return {"train": train, "val": sorted(chosen["val"]), "test": sorted(chosen["test"])}


def assemble_dataset(
    name: str,
    windows: Mapping[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]],
    splits: Mapping[str, Sequence[str]],
    *,
    sampling_rate: float,
    meta: dict[str, object],
) -> SignalDataset:
    """Stack per-participant (x (N, C, L), y (N,)) windows into a regression `SignalDataset`."""
    parts: dict[str, Split] = {}
    shape = next(iter(windows.values()))[0].shape[1:]
    for split_name in ("train", "val", "test"):
        ids = list(splits[split_name])
        xs = [windows[p][0] for p in ids]
        ys = [windows[p][1] for p in ids]
        groups = [np.full(len(windows[p][1]), p) for p in ids]
        parts[split_name] = Split(
            x=np.concatenate(xs) if xs else np.zeros((0, *shape), np.float32),
            y=np.concatenate(ys).astype(np.float32) if ys else np.zeros(0, np.float32),
            groups=np.concatenate(groups).astype(np.str_) if groups else np.zeros(0, np.str_),
        )
    meta = dict(meta)
    meta["n_windows"] = {k: len(v) for k, v in parts.items()}
    meta["participants"] = {k: list(v) for k, v in splits.items()}
    y_train = parts["train"].y
    meta["train_label_mean"] = float(y_train.mean()) if len(y_train) else None
    meta["train_label_std"] = float(y_train.std()) if len(y_train) else None
    return SignalDataset(
        name=name,
        task="regression",
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        class_names=[],
        sampling_rate=float(sampling_rate),
        target_name=TARGET_NAME,
        meta=meta,
    )


def window_geometry(fs: float, window_s: float, stride_s: float) -> tuple[int, int]:
    """(length, stride) in samples for a window of `window_s` s every `stride_s` s at `fs` Hz."""
    length, stride = round(window_s * fs), round(stride_s * fs)
    if length < 8 or stride < 1:
        raise DatasetError(
            f"window_s * fs must be >= 8 samples and stride_s * fs >= 1, got window_s={window_s}, "
            f"stride_s={stride_s}, fs={fs}"
        )
    return length, stride


# --- the builder -----------------------------------------------------------------------------


@register_dataset_builder
def build_synthetic(
    n_participants: int = 36,
    minutes_per_participant: float = 20.0,
    fs: float = 25.0,
    window_s: float = 8.0,
    stride_s: float = 2.0,
    seed: int = 0,
    val_participants: int = 6,
    test_participants: int = 6,
    include_acc: bool = True,
    motion_level: float = 1.0,
    noise_level: float = 1.0,
    bandpass_hz: Sequence[float] | None = None,
    cache_dir: str | None = None,
) -> SignalDataset:
    """Simulate participants and return their PPG windows with the true mean heart rate.

    Args:
        n_participants: participants to simulate (ids "S000", "S001", ...).
        minutes_per_participant: recording length of each.
        fs: sampling rate in Hz (25 is the Galaxy Watch PPG rate).
        window_s, stride_s: window length and hop in seconds.
        seed: generator and split seed.
        val_participants, test_participants: participants held out for each split (whole
            participants, drawn by a seeded shuffle).
        include_acc: add the 3 accelerometer channels (C = 4) or give PPG only (C = 1).
        motion_level: motion-artefact strength (0 = none, 1 = default difficulty).
        noise_level: sensor-noise strength.
        bandpass_hz: optional [low, high] zero-phase band-pass of the PPG before windowing.
        cache_dir: accepted for the builder contract; the simulator writes no files.

    Returns:
        `SignalDataset` named "ppg_synth", task "regression", target "heart_rate_bpm";
        x float32 (N, C, round(window_s * fs)), y float32 BPM, groups = participant ids;
        ``simulator_version`` "ppg_synth/<SIMULATOR_VERSION>".
    """
    del cache_dir  # nothing intermediate to store
    if n_participants < 1:
        raise DatasetError(f"n_participants must be >= 1, got {n_participants}")
    length, stride = window_geometry(fs, window_s, stride_s)
    if minutes_per_participant * 60.0 < window_s:
        raise DatasetError(
            f"minutes_per_participant * 60 must be >= window_s, got {minutes_per_participant} "
            f"min and window_s={window_s}"
        )
    t0 = time.perf_counter()
    windows: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
    for k in range(n_participants):
        rec = simulate_participant(
            k,
            minutes=minutes_per_participant,
            fs=fs,
            seed=seed,
            motion_level=motion_level,
            noise_level=noise_level,
        )
        ppg = bandpass(rec.ppg, fs, bandpass_hz) if bandpass_hz is not None else rec.ppg
        starts = window_starts(len(ppg), length, stride)
        x = ppg_windows(ppg, rec.acc if include_acc else None, starts, length)
        y = window_means(rec.hr_bpm, starts, length).astype(np.float32)
        windows[rec.participant] = (x, y)
    splits = split_participants(list(windows), val_participants, test_participants, seed)
    meta: dict[str, object] = {
        "source": "ppg_synth",
        "seed": seed,
        "fs": float(fs),
        "window_s": float(window_s),
        "stride_s": float(stride_s),
        "minutes_per_participant": float(minutes_per_participant),
        "motion_level": float(motion_level),
        "noise_level": float(noise_level),
        "bandpass_hz": None if bandpass_hz is None else [float(v) for v in bandpass_hz],
        "channels": list(PPG_CHANNELS + (ACC_CHANNELS if include_acc else ())),
    }
    ds = assemble_dataset("ppg_synth", windows, splits, sampling_rate=fs, meta=meta)
    ds.simulator_version = f"ppg_synth/{SIMULATOR_VERSION}"
    logger.info(
        "built ppg_synth: %d participants, windows train/val/test = %d/%d/%d, %.2f s",
        n_participants,
        len(ds.train),
        len(ds.val),
        len(ds.test),
        time.perf_counter() - t0,
    )
    return ds
