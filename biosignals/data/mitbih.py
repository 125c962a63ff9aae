"""MIT-BIH Arrhythmia beat classification: WFDB loader, beat segmentation, inter-patient splits.

One code path reads every ECG database of the project: `build` reads a directory of WFDB
records (.hea/.dat/.atr), real ones from PhysioNet or the simulator's (`build_synthetic`
generates them once into the cache and then calls the same reader). Nothing goes to the network.

Pipeline, per record:
    1. Read it (`biosignals.data.wfdb_io.read_record`). Lead MLII comes first (column 0 when a
       record has no MLII); ``n_leads=2`` adds the record's other lead (V1 in most records, V2,
       V4 or V5 in a few real ones).
    2. Band-pass filter (zero-phase Butterworth, `bandpass_hz`, default 0.5-45 Hz: removes
       baseline wander and mains), optionally resample to `sampling_rate`.
    3. Z-score each lead over the whole record, so a patient's amplitude does not identify it.
    4. Cut one window per annotated beat: `before_s` seconds before the annotation (the R peak)
       to `after_s` after it; beats whose window leaves the record are dropped. Labels are the
       AAMI classes of the beat symbols (`biosignals.data.aami`); non-beat annotations and, for
       "aami3", F and Q beats are dropped.
    5. Optionally (`rr_features=True`) compute each beat's RR-interval context from the
       annotated R-peak positions of all beats of the record (de Chazal et al. 2004), as a
       side-feature vector beside the window (`RR_FEATURE_NAMES`, F = 9), not as channels:
       pre-RR and post-RR (to the previous and next beat), local RR (mean pre-RR of the
       `_LOCAL_RR_BEATS` centred beats) and patient RR (the record's median RR), given as
       log ratios normalised per patient (pre/patient, post/patient, local/patient), log
       ratios to the local rhythm (pre/local, post/local, pre/post) and log seconds
       (pre, post, patient), each clipped to +-`_LOG_RR_CLIP`. Prematurity is what tells most S
       beats from N beats, and their morphology alone barely differs; the absolute terms let a
       model tell a record where premature beats are the rhythm (record 232) from sinus rhythm.

Splits (de Chazal et al. 2004, the inter-patient protocol): test = DS2 records, train = DS1
records minus a validation set of whole DS1 records. The validation records are drawn with
`val_seed` among many random subsets of size ``round(val_fraction * len(DS1))``, preferring one
that holds at least `val_min_beats` beats of every class present in DS1, then one whose class
mix is closest to DS1's and whose rare classes come from several patients
(`select_validation_records`). `select_cv_folds` partitions DS1 into patient-grouped folds the
same way, for cross-validation. Paced records
(102, 104, 107, 217) are left out, as AAMI EC57 asks. `groups` holds the record name of each
window, so no patient appears in two splits (records 201 and 202 are the same person in the
real database; the standard split still puts them in DS1 and DS2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, resample_poly, sosfiltfilt

from biosignals.config_safety import register_dataset_builder
from biosignals.data import aami
from biosignals.data.cache import build_once, resolve_cache_dir
from biosignals.data.dataset import DatasetError, SignalDataset, Split
from biosignals.data.ecg_synth import DEFAULT_FS, SIMULATOR_VERSION, generate_database
from biosignals.data.wfdb_io import EcgRecord, list_records, read_record

logger = logging.getLogger(__name__)

DATASET_VERSION = 3  # 3: RR context as side features, not channels
"""Bumped when the windows built from the same config change; part of the dataset cache key."""

_LOCAL_RR_BEATS = 21  # beats in the centred window that defines the local RR
_LOG_RR_CLIP = 3.0  # |log ratio| cap: a gap in the annotations must not make a huge input

RR_FEATURE_NAMES: tuple[str, ...] = (
    "log_pre_rr_over_patient",
    "log_post_rr_over_patient",
    "log_local_rr_over_patient",
    "log_pre_rr_over_local",
    "log_post_rr_over_local",
    "log_pre_rr_over_post",
    "log_pre_rr_s",
    "log_post_rr_s",
    "log_patient_rr_s",
)
"""Side features of each beat with ``rr_features=True``, in column order (module docstring)."""


@dataclass
class SegmentedRecord:
    """Beat windows of one record.

    Attributes:
        name: record name (the patient/group id).
        x: float32 windows, shape (n_beats, C, T).
        y: int64 class indices, shape (n_beats,).
        channels: channel names, length C (e.g. ["MLII", "V1"]).
        fs: sampling rate of the windows in Hz.
        features: float32 side features, shape (n_beats, F); F = 0 without RR features.
        feature_names: names of the feature columns, length F.
        symbol_counts: windows per beat symbol ("N", "L", "A", ...).
    """

    name: str
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    channels: list[str]
    fs: float
    features: npt.NDArray[np.float32]
    feature_names: list[str] = field(default_factory=list)
    symbol_counts: dict[str, int] = field(default_factory=dict)


def _local_mean(values: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    """Centred moving average with shrinking windows at the ends, shape of `values`."""
    n = len(values)
    half = width // 2
    csum = np.concatenate([[0.0], np.cumsum(values)])
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    result: npt.NDArray[np.float64] = (csum[hi] - csum[lo]) / (hi - lo)
    return result


def rr_features_of(beat_pos: npt.NDArray[np.int64], fs: float) -> npt.NDArray[np.float32]:
    """RR-interval context of each beat (`RR_FEATURE_NAMES`), shape (n_beats, 9).

    Args:
        beat_pos: sample index of every beat's R peak (all beat classes), ascending, shape (n,).
        fs: the rate `beat_pos` counts in, Hz.

    Returns:
        float32 features; the first beat's pre-RR is its post-RR and the last beat's post-RR
        its pre-RR; a record with fewer than two beats gets a 1 s rhythm (all ratios 0).
    """
    n = len(beat_pos)
    if n >= 2:
        rr = np.maximum(np.diff(beat_pos).astype(np.float64) / fs, 1e-3)  # (n-1,) seconds
        pre = np.concatenate([[rr[0]], rr])  # (n,)
        post = np.concatenate([rr, [rr[-1]]])  # (n,)
        patient = float(np.median(rr))
    else:
        pre = post = np.ones(n)
        patient = 1.0
    local = _local_mean(pre, _LOCAL_RR_BEATS)  # (n,)
    columns = [
        pre / patient, post / patient, local / patient,
        pre / local, post / local, pre / post,
        pre, post, np.full(n, patient),
    ]  # fmt: skip
    logs = np.clip(np.log(np.stack(columns, axis=1)), -_LOG_RR_CLIP, _LOG_RR_CLIP)  # (n, 9)
    result: npt.NDArray[np.float32] = logs.astype(np.float32)
    return result


def segment_record(
    record: EcgRecord,
    classes: str = "aami3",
    *,
    before_s: float = 0.25,
    after_s: float = 0.35,
    n_leads: int = 1,
    sampling_rate: float | None = None,
    bandpass_hz: Sequence[float] | None = (0.5, 45.0),
    rr_features: bool = False,
) -> SegmentedRecord:
    """Cut one window per labelled beat of `record` (steps 1-5 of the module docstring).

    Args:
        record: a record with beat annotations.
        classes: "aami3" or "aami5".
        before_s, after_s: window extent around the annotation, in seconds; the window has
            ``round(before_s * fs) + round(after_s * fs)`` samples at the output rate.
        n_leads: 1 (MLII) or 2 (MLII and the record's other lead).
        sampling_rate: output rate in Hz; None keeps the record's rate.
        bandpass_hz: (low, high) pass band in Hz, or None for no filtering.
        rr_features: compute the RR-interval side features (`RR_FEATURE_NAMES`).

    Returns:
        The record's windows and labels; zero windows if it has no usable beat.

    Raises:
        DatasetError: an argument is out of range.
    """
    if n_leads not in (1, 2):
        raise DatasetError(f"n_leads must be 1 or 2, got {n_leads}")
    if before_s < 0 or after_s <= 0:
        raise DatasetError(f"before_s must be >= 0 and after_s > 0, got {before_s}, {after_s}")
    table = aami.symbol_to_class_index(classes)
    fs_in = record.fs
    mlii = record.sig_names.index("MLII") if "MLII" in record.sig_names else 0
    others = [c for c in range(record.signal.shape[1]) if c != mlii]
    cols = [mlii, *others[: n_leads - 1]]
    if len(cols) < n_leads:
        raise DatasetError(f"record {record.name} has {len(cols)} lead(s); n_leads={n_leads}")
    sig = record.signal[:, cols].T.astype(np.float64)  # (C, n)
    channels = [record.sig_names[c] for c in cols]

    if bandpass_hz is not None:
        lo, hi = float(bandpass_hz[0]), min(float(bandpass_hz[1]), 0.45 * fs_in)
        if not 0 < lo < hi:
            raise DatasetError(
                f"bandpass_hz must be (low, high) with 0 < low < high, got {bandpass_hz}"
            )
        sos = butter(2, [lo, hi], btype="bandpass", fs=fs_in, output="sos")
        sig = sosfiltfilt(sos, sig, axis=-1)
    fs = fs_in
    samples = record.ann_samples.astype(np.float64)
    if sampling_rate is not None and abs(sampling_rate - fs_in) > 1e-6:
        ratio = Fraction(sampling_rate / fs_in).limit_denominator(1000)
        sig = resample_poly(sig, ratio.numerator, ratio.denominator, axis=-1)
        fs = fs_in * ratio.numerator / ratio.denominator
        samples = samples * (ratio.numerator / ratio.denominator)
    sig = (sig - sig.mean(axis=-1, keepdims=True)) / (sig.std(axis=-1, keepdims=True) + 1e-6)

    is_beat = np.fromiter((s in aami.SYMBOL_TO_AAMI for s in record.ann_symbols), dtype=bool)
    beat_pos = np.rint(samples[is_beat]).astype(np.int64)
    beat_syms = [s for s, b in zip(record.ann_symbols, is_beat, strict=True) if b]
    labels = np.fromiter((table.get(s, -1) for s in beat_syms), dtype=np.int64)
    before, after = round(before_s * fs), round(after_s * fs)
    width = before + after
    n = sig.shape[1]
    keep = (labels >= 0) & (beat_pos - before >= 0) & (beat_pos + after <= n)

    pos = beat_pos[keep]
    x = np.empty((len(pos), len(channels), width), dtype=np.float32)
    if len(pos):
        windows = np.lib.stride_tricks.sliding_window_view(sig, width, axis=-1)  # (C, n-w+1, w)
        x[:] = windows[:, pos - before].transpose(1, 0, 2)
    if rr_features:
        features, feature_names = rr_features_of(beat_pos, fs)[keep], list(RR_FEATURE_NAMES)
    else:
        features, feature_names = np.zeros((len(pos), 0), np.float32), []
    kept_symbols = Counter(s for s, k in zip(beat_syms, keep, strict=True) if k)
    return SegmentedRecord(
        record.name, x, labels[keep], channels, fs, features, feature_names, dict(kept_symbols)
    )


def _class_counts(seg: SegmentedRecord, n_classes: int) -> npt.NDArray[np.int64]:
    return np.bincount(seg.y, minlength=n_classes).astype(np.int64)


def _subset_score(
    sub: npt.NDArray[np.float64], total: npt.NDArray[np.float64], min_beats: int
) -> tuple[int, float]:
    """(classes short of `min_beats` in the subset, soft score) of one candidate subset.

    The soft score adds 1 per class present in the pool but missing from the subset or from the
    rest, the L1 distance between the subset's class mix and the pool's, and per class 1 / the
    effective number of subset records holding it (inverse Simpson index).
    """
    present = total > 0
    val = sub.sum(axis=0)  # (K,)
    rest = total - val
    short = int(np.sum(present & (val < min_beats))) if min_beats > 0 else 0
    score = float(np.sum(present & (val == 0)) + np.sum(present & (rest == 0)))
    score += float(np.abs(val / max(val.sum(), 1.0) - total / max(total.sum(), 1.0)).sum())
    held = val > 0
    effective = val[held] ** 2 / (sub[:, held] ** 2).sum(axis=0)  # records per class
    score += float((1.0 / effective).sum())
    return short, score


def _check_min_beats(min_beats: int) -> None:
    if min_beats < 0:
        raise DatasetError(f"val_min_beats must be >= 0 (0 disables it), got {min_beats}")


def select_validation_records(
    counts: dict[str, npt.NDArray[np.int64]],
    n_val: int,
    seed: int = 0,
    n_draws: int = 512,
    min_beats: int = 0,
) -> list[str]:
    """Pick `n_val` whole records for validation out of `counts` (the training pool).

    Among `n_draws` random subsets (seeded), keep the best by two keys, in order: first the
    number of classes present in the pool of which the subset holds fewer than `min_beats`
    beats (0 when every class reaches the minimum; this key is what makes the minimum a
    requirement whenever some drawn subset meets it); then the soft score, the sum of 1 per
    class present in the pool but missing from the subset or from the rest, the L1 distance
    between the subset's class mix and the pool's, and per class 1 / the effective number of
    subset records holding it (inverse Simpson index), so that a rare class in validation
    comes from several patients rather than one patient's quirks. Deterministic for a given
    seed; with ``min_beats=0`` the choice is the soft score's alone.

    Args:
        counts: record name -> windows per class, shape (num_classes,).
        n_val: records to hold out, 1 <= n_val < len(counts).
        seed: selection seed.
        n_draws: random subsets to score.
        min_beats: beats of every present class the subset should hold (0: no minimum).

    Returns:
        The chosen record names, sorted.

    Raises:
        DatasetError: `n_val` or `min_beats` is out of range.
    """
    names = sorted(counts)
    if not 1 <= n_val < len(names):
        raise DatasetError(
            f"need 1 <= validation records < training-pool records, got {n_val} of {len(names)}; "
            "change val_fraction or add DS1 records"
        )
    _check_min_beats(min_beats)
    table = np.stack([counts[n] for n in names]).astype(np.float64)  # (R, K)
    total = table.sum(axis=0)
    rng = np.random.default_rng(seed)
    best_key, best_pick = (len(total) + 1, np.inf), list(range(n_val))
    for _ in range(n_draws):
        pick = np.sort(rng.choice(len(names), size=n_val, replace=False))
        key = _subset_score(table[pick], total, min_beats)
        if key < best_key:
            best_key, best_pick = key, pick.tolist()
    if best_key[0]:
        logger.warning(
            "no validation subset of %d records among %d draws holds >= %d beats of every "
            "class (pool per class: %s); %d class(es) fall short: raise val_fraction or lower "
            "val_min_beats",
            n_val, n_draws, min_beats, total.astype(int).tolist(), best_key[0],
        )  # fmt: skip
    return [names[i] for i in best_pick]


def select_cv_folds(
    counts: dict[str, npt.NDArray[np.int64]],
    n_folds: int,
    seed: int = 0,
    n_draws: int = 512,
    min_beats: int = 0,
) -> list[list[str]]:
    """Partition the records of `counts` into `n_folds` patient-grouped validation folds.

    Among `n_draws` seeded random partitions into folds of near-equal size, keep the one whose
    worst fold is best by the keys of `select_validation_records` (classes short of
    `min_beats`, then the soft score), ties broken by the mean soft score. Fold i is the
    validation set of the i-th cross-validation run; the other records train it.

    Args:
        counts: record name -> windows per class, shape (num_classes,).
        n_folds: 2 <= n_folds <= len(counts).
        seed: selection seed.
        n_draws: random partitions to score.
        min_beats: beats of every present class each fold should hold (0: no minimum).

    Returns:
        `n_folds` sorted lists of record names, disjoint, together all of `counts`.

    Raises:
        DatasetError: `n_folds` or `min_beats` is out of range.
    """
    names = sorted(counts)
    if not 2 <= n_folds <= len(names):
        raise DatasetError(
            f"need 2 <= cv folds <= training-pool records, got {n_folds} folds of "
            f"{len(names)} records; lower dataset.cv_folds"
        )
    _check_min_beats(min_beats)
    table = np.stack([counts[n] for n in names]).astype(np.float64)  # (R, K)
    total = table.sum(axis=0)
    fold_of = np.arange(len(names)) % n_folds
    rng = np.random.default_rng(seed)
    best_key: tuple[int, float, float] = (len(total) * n_folds + 1, np.inf, np.inf)
    best_assign = fold_of
    for _ in range(n_draws):
        assign = rng.permutation(fold_of)
        keys = [_subset_score(table[assign == f], total, min_beats) for f in range(n_folds)]
        key = (
            sum(k[0] for k in keys),
            max(k[1] for k in keys),
            float(np.mean([k[1] for k in keys])),
        )
        if key < best_key:
            best_key, best_assign = key, assign
    if best_key[0]:
        logger.warning(
            "no partition into %d folds among %d draws gives every fold >= %d beats of every "
            "class (pool per class: %s); lower cv_folds or val_min_beats",
            n_folds, n_draws, min_beats, total.astype(int).tolist(),
        )  # fmt: skip
    return [[names[i] for i in np.flatnonzero(best_assign == f)] for f in range(n_folds)]


def _concat(parts: list[SegmentedRecord], channels: int, width: int, n_features: int) -> Split:
    if not parts:
        return Split(
            np.zeros((0, channels, width), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, dtype="<U8"),
            np.zeros((0, n_features), np.float32),
        )
    return Split(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        np.concatenate([np.full(len(p.y), p.name, dtype="<U8") for p in parts]),
        np.concatenate([p.features for p in parts]),
    )


@register_dataset_builder
def build(
    data_dir: str | Path | None,
    classes: str = "aami3",
    *,
    records: Sequence[str] | None = None,
    before_s: float = 0.25,
    after_s: float = 0.35,
    n_leads: int = 1,
    sampling_rate: float | None = None,
    bandpass_hz: Sequence[float] | None = (0.5, 45.0),
    rr_features: bool = False,
    val_fraction: float = 0.2,
    val_records: Sequence[str] | None = None,
    val_seed: int = 0,
    val_min_beats: int = 0,
    cache_dir: str | Path | None = None,
    name: str | None = None,
) -> SignalDataset:
    """Build the inter-patient beat-classification dataset from a directory of WFDB records.

    Args:
        data_dir: directory holding MIT-BIH records (100.hea, 100.dat, 100.atr, ...).
        classes: "aami3" (N, S, V) or "aami5" (N, S, V, F, Q).
        records: records to use; None = the 44 records of DS1 and DS2 (all must exist).
            Records in neither DS1 nor DS2 (the paced ones) are ignored.
        before_s, after_s, n_leads, sampling_rate, bandpass_hz, rr_features: see
            `segment_record`.
        val_fraction: share of the DS1 records held out for validation (whole records).
        val_records: explicit validation records (DS1 names); overrides val_fraction.
        val_seed: seed of the validation-record choice.
        val_min_beats: beats of every class present in DS1 that the chosen validation records
            must hold (a requirement whenever a drawn subset meets it; 0: no minimum; see
            `select_validation_records`). Unused with val_records.
        cache_dir: unused (real records are read in place); accepted for the builder contract.
        name: dataset name; default "mitbih/<classes>".

    Returns:
        A classification `SignalDataset`, x of shape (N, C, T): C = n_leads,
        T = round(before_s*fs) + round(after_s*fs); with rr_features, side features of shape
        (N, 9) named `RR_FEATURE_NAMES`.

    Raises:
        DatasetError: `data_dir` is unset, missing or lacks the needed records, or an argument
            is out of range.
    """
    del cache_dir
    started = time.perf_counter()
    class_names = aami.class_names(classes)
    directory = _check_data_dir(data_dir)
    available = set(list_records(directory))
    wanted = (
        list(aami.DS1_RECORDS + aami.DS2_RECORDS) if records is None else [str(r) for r in records]
    )
    missing = sorted(set(wanted) - available)
    if missing:
        raise DatasetError(
            f"{directory} lacks records {missing} (each needs .hea, .dat and .atr); "
            "download the whole MIT-BIH Arrhythmia Database there, or pass dataset.records"
        )
    ignored = sorted(set(wanted) - set(aami.DS1_RECORDS) - set(aami.DS2_RECORDS))
    if ignored:
        logger.info("records %s are in neither DS1 nor DS2 (paced or unknown): ignored", ignored)
    ds1 = [r for r in wanted if r in aami.DS1_RECORDS]
    ds2 = [r for r in wanted if r in aami.DS2_RECORDS]
    if len(ds1) < 2 or not ds2:
        raise DatasetError(
            f"the inter-patient split needs >= 2 DS1 records and >= 1 DS2 record, got DS1 {ds1} "
            f"and DS2 {ds2}; DS1 = {list(aami.DS1_RECORDS)}, DS2 = {list(aami.DS2_RECORDS)}"
        )
    seg_args = {
        "before_s": before_s, "after_s": after_s, "n_leads": n_leads,
        "sampling_rate": sampling_rate, "bandpass_hz": bandpass_hz, "rr_features": rr_features,
    }  # fmt: skip
    segs = {
        r: segment_record(read_record(directory, r), classes, **seg_args)  # type: ignore[arg-type]
        for r in ds1 + ds2
    }
    n_classes = len(class_names)
    if val_records is not None:
        val = sorted(str(r) for r in val_records)
        bad = sorted(set(val) - set(ds1))
        if bad or not val or len(val) >= len(ds1):
            raise DatasetError(
                f"val_records must be a non-empty proper subset of the DS1 records in use "
                f"{ds1}, got {val}"
            )
    else:
        n_val = min(max(1, round(val_fraction * len(ds1))), len(ds1) - 1)
        val = select_validation_records(
            {r: _class_counts(segs[r], n_classes) for r in ds1},
            n_val,
            seed=val_seed,
            min_beats=val_min_beats,
        )
    train = [r for r in ds1 if r not in val]
    first = segs[ds1[0]]
    n_ch, width, n_feat = first.x.shape[1], first.x.shape[2], first.features.shape[1]
    dataset = SignalDataset(
        name=name or f"mitbih/{classes}",
        task="classification",
        train=_concat([segs[r] for r in train], n_ch, width, n_feat),
        val=_concat([segs[r] for r in val], n_ch, width, n_feat),
        test=_concat([segs[r] for r in ds2], n_ch, width, n_feat),
        class_names=class_names,
        sampling_rate=float(first.fs),
        target_name="aami_class",
        feature_names=list(first.feature_names),
        meta={
            "source": str(directory),
            "records": {"train": train, "val": val, "test": ds2},
            "channels": first.channels,
            "window": {"before_s": before_s, "after_s": after_s, "samples": width},
            "bandpass_hz": list(bandpass_hz) if bandpass_hz is not None else None,
            "rr_features": rr_features,
        },
    )
    dataset.meta["class_counts"] = {
        s: dict(zip(class_names, dataset.class_counts(s).tolist(), strict=True))
        for s in ("train", "val", "test")
    }
    logger.info(
        "built %s from %s in %.1f s: train %d, val %d, test %d windows of shape %s",
        dataset.name, directory, time.perf_counter() - started, len(dataset.train),
        len(dataset.val), len(dataset.test), (n_ch, width),
    )  # fmt: skip
    return dataset


def _check_data_dir(data_dir: str | Path | None) -> Path:
    hint = (
        "point dataset.data_dir (or the MITBIH_DIR environment variable) at a copy of the "
        "MIT-BIH Arrhythmia Database (100.hea, 100.dat, 100.atr, ...), or use the offline "
        "simulator: dataset=mitbih_synth_aami3"
    )
    if data_dir is None or str(data_dir).strip() in ("", "None", "null"):
        raise DatasetError(f"dataset.data_dir is not set; {hint}")
    directory = Path(data_dir).expanduser()
    if not directory.is_dir():
        raise DatasetError(f"dataset.data_dir {directory} is not a directory; {hint}")
    if not list_records(directory):
        raise DatasetError(f"no WFDB records (.hea with .atr) found in {directory}; {hint}")
    return directory


def synthetic_records_dir(
    records: Sequence[str] | None = None,
    duration_s: float = 1800.0,
    seed: int = 0,
    fs: float = DEFAULT_FS,
    cache_dir: str | Path | None = None,
    n_jobs: int = 1,
) -> Path:
    """Generate the simulator's WFDB records once and return their directory.

    The directory is ``<cache_dir>/records/mitbih_synth-<hash>`` where the hash covers the
    simulator version and the arguments (not `n_jobs`); a second call, from any process, reads
    what the first one wrote. Generation happens in a temporary directory renamed into place,
    under a file lock, so concurrent trials never see half a database.
    """
    names = sorted(aami.MITBIH_RECORDS if records is None else {str(r) for r in records})
    spec = {
        "simulator_version": SIMULATOR_VERSION,
        "records": names,
        "duration_s": float(duration_s),
        "seed": int(seed),
        "fs": float(fs),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
    final = resolve_cache_dir(cache_dir) / "records" / f"mitbih_synth-{digest}"

    def generate(tmp: Path) -> None:
        generate_database(tmp, names, duration_s=duration_s, fs=fs, seed=seed, n_jobs=n_jobs)
        (tmp / "generator.json").write_text(json.dumps(spec, indent=2))

    return build_once(final, generate)


@register_dataset_builder
def build_synthetic(
    classes: str = "aami3",
    *,
    records: Sequence[str] | None = None,
    duration_s: float = 1800.0,
    seed: int = 0,
    fs: float = DEFAULT_FS,
    before_s: float = 0.25,
    after_s: float = 0.35,
    n_leads: int = 1,
    sampling_rate: float | None = None,
    bandpass_hz: Sequence[float] | None = (0.5, 45.0),
    rr_features: bool = False,
    val_fraction: float = 0.2,
    val_records: Sequence[str] | None = None,
    val_seed: int = 0,
    val_min_beats: int = 0,
    cache_dir: str | Path | None = None,
    n_jobs: int = 1,
) -> SignalDataset:
    """The offline ECG dataset: simulate MIT-BIH-like records, then `build` from them.

    Args:
        classes: "aami3" or "aami5".
        records: MIT-BIH record names to simulate; None = all 48 (the paced four are generated
            but, as in the real protocol, not used).
        duration_s: seconds per record (1800 = the real database's length).
        seed: simulator seed.
        fs: simulated sampling rate (360 Hz like MIT-BIH).
        before_s, after_s, n_leads, sampling_rate, bandpass_hz, rr_features, val_fraction,
            val_records, val_seed, val_min_beats: see `build`.
        cache_dir: where the records go (`synthetic_records_dir`); None = the default cache.
        n_jobs: processes used to generate the records the first time.

    Returns:
        A `SignalDataset` named "mitbih_synth/<classes>", ``simulator_version``
        "ecg_synth/<SIMULATOR_VERSION>" (this module's `SIMULATOR_VERSION`, from
        `biosignals.data.ecg_synth`, is also part of its dataset cache key).
    """
    directory = synthetic_records_dir(records, duration_s, seed, fs, cache_dir, n_jobs)
    dataset = build(
        directory,
        classes,
        records=sorted(
            set(aami.MITBIH_RECORDS if records is None else map(str, records))
            - set(aami.PACED_RECORDS)
        ),
        before_s=before_s,
        after_s=after_s,
        n_leads=n_leads,
        sampling_rate=sampling_rate,
        bandpass_hz=bandpass_hz,
        rr_features=rr_features,
        val_fraction=val_fraction,
        val_records=val_records,
        val_seed=val_seed,
        val_min_beats=val_min_beats,
        name=f"mitbih_synth/{classes}",
    )
    dataset.meta["generator"] = {
        "simulator_version": SIMULATOR_VERSION,
        "duration_s": duration_s,
        "seed": seed,
        "fs": fs,
    }
    dataset.simulator_version = f"ecg_synth/{SIMULATOR_VERSION}"
    return dataset
