"""A labelled ECG simulator that writes MIT-BIH-like WFDB records.

The offline default of the ECG task (``dataset=mitbih_synth_aami3``) is a database generated
here and then read by the same loader as the real MIT-BIH Arrhythmia Database
(`biosignals.data.mitbih`), so the code path from .hea/.dat/.atr files to beat windows is one.

Model:
    * One synthetic "patient" per MIT-BIH record name (100 ... 234). A `RecordProfile` table
      copies the real record's rough make-up: beat count in 30 min (so the mean heart rate),
      dominant conduction (normal, left/right bundle-branch block, paced), counts of each
      ectopic beat symbol, noise level and share of atrial fibrillation. The generated database
      therefore has the real class balance (about N 90 %, S 3 %, V 7 % of non-paced beats), the
      same uneven spread of S and V over patients (most S beats in a handful of records, 232
      alone holding most of DS2's), and the standard DS1/DS2 split applies unchanged.
    * Each beat is a sum of seven Gaussian waves (P, Q, R, S, a second R/notch, T, and a spare
      slot for pacing spikes or retrograde P waves) in two leads (MLII, V1), in the spirit of
      McSharry et al.'s ECGSYN but placed in time rather than integrated. Every patient draws
      its own wave offsets, widths and amplitudes (so QRS width, axis and T polarity differ),
      its own ectopic P-wave focus, and 1-3 ventricular foci (multiform PVCs).
    * Rhythm: a sinus RR series with a slow trend, respiratory sinus arrhythmia, a 0.1 Hz
      component and AR(1) noise; atrial fibrillation episodes with irregular RR, no P waves and
      fibrillatory waves; ectopic beats arriving in bursts (bigeminy-like stretches, couplets).
      Supraventricular premature beats (A, a, J, S) come early (patient-specific prematurity
      0.68-0.92 of the sinus RR, against sinus arrhythmia of up to +-12 %), keep a near-normal
      QRS (widened for aberrated 'a') and have an inverted, biphasic or flattened P wave with a
      shorter PR interval (none for junctional 'J'), often on the previous T wave; the next
      sinus beat is reset, not compensated (record 232: long sinus pauses instead). Ventricular
      premature beats (V) come earlier still, have no P wave, a wide bizarre QRS with a
      discordant T wave, and are followed by a full compensatory pause. Escape beats (j, e, E)
      come late; fusion beats (F, f) blend QRS shapes.
    * Noise: baseline wander (respiration plus slow drift), mains interference at 60 Hz,
      bursty muscle noise, electrode-motion transients, slow gain drift, and quantisation to
      the real database's format 212 at 200 ADC units per mV.

Everything is vectorised over beats (waves are evaluated for all beats of a chunk at once and
overlap-added with `np.bincount`), seeded per (seed, record) and deterministic: the same
arguments give the same bytes. About 0.3-0.5 s per 30-minute two-lead record on one core.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from biosignals.data.aami import MITBIH_RECORDS
from biosignals.data.dataset import DatasetError
from biosignals.data.wfdb_io import EcgRecord, write_record

logger = logging.getLogger(__name__)

SIMULATOR_VERSION = 2
"""Bumped whenever the generated signals change; part of every synthetic-record cache key, of
the dataset cache key of `biosignals.data.mitbih.build_synthetic` and, as "ecg_synth/<version>",
of each run's provenance."""

LEAD_NAMES: tuple[str, str] = ("MLII", "V1")
DEFAULT_FS = 360.0  # Hz, the MIT-BIH sampling rate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RecordProfile:
    """The make-up of one synthetic patient, copied roughly from the real MIT-BIH record.

    Attributes:
        name: MIT-BIH record name.
        beats: beats in 30 minutes (sets the mean heart rate).
        rhythm: the dominant beat symbol: "N", "L", "R" (bundle-branch block) or "/" (paced).
        ectopy: other beat symbols -> count per 30 minutes. Conduction variants ("N", "L", "R",
            "/" when not the dominant rhythm) come in episodes; the rest are point events.
        noise: noise level relative to a typical record (105 and 203 are the noisy ones).
        af: fraction of the record in atrial fibrillation.
        pause: range of the RR after a supraventricular premature beat, in sinus RRs (the
            sinus node is reset; record 232's sick sinus gives long pauses instead).
    """

    name: str
    beats: int
    rhythm: str
    ectopy: Mapping[str, int] = field(default_factory=dict)
    noise: float = 1.0
    af: float = 0.0
    pause: tuple[float, float] = (1.0, 1.12)


def _p(
    name: str,
    beats: int,
    rhythm: str,
    noise: float = 1.0,
    af: float = 0.0,
    pause: tuple[float, float] = (1.0, 1.12),
    **ectopy: int,
) -> RecordProfile:
    return RecordProfile(name, beats, rhythm, dict(ectopy), noise, af, pause)


# Approximate beat counts of the real records (MIT-BIH directory, 30 min each).
PROFILES: dict[str, RecordProfile] = {
    p.name: p
    for p in (
        _p("100", 2273, "N", A=33, V=1),
        _p("101", 1865, "N", noise=1.5, A=3, Q=2),
        _p("102", 2187, "/", f=56, N=99, V=4),
        _p("103", 2084, "N", A=2),
        _p("104", 2229, "/", noise=1.5, f=666, N=163, V=2, Q=18),
        _p("105", 2572, "N", noise=3.0, V=41, Q=5),
        _p("106", 2027, "N", V=520),
        _p("107", 2137, "/", V=59),
        _p("108", 1763, "N", noise=2.0, A=4, V=17, F=2, j=1),
        _p("109", 2532, "L", V=38, F=2),
        _p("111", 2124, "L", V=1),
        _p("112", 2539, "N", A=2),
        _p("113", 1795, "N", a=6),
        _p("114", 1879, "N", A=10, J=2, V=43, F=4),
        _p("115", 1953, "N"),
        _p("116", 2412, "N", A=1, V=109),
        _p("117", 1535, "N", A=1),
        _p("118", 2278, "R", A=96, V=16),
        _p("119", 1987, "N", V=444),
        _p("121", 1863, "N", A=1, V=1),
        _p("122", 2476, "N"),
        _p("123", 1518, "N", V=3),
        _p("124", 1619, "R", A=2, J=29, V=47, F=5, j=5),
        _p("200", 2601, "N", A=30, V=826, F=2),
        _p("201", 1963, "N", af=0.3, A=30, a=97, J=1, j=10, V=198, F=2),
        _p("202", 2136, "N", af=0.4, A=36, a=19, V=19, F=1),
        _p("203", 2980, "N", noise=2.5, af=0.9, a=2, V=444, F=1, Q=4),
        _p("205", 2656, "N", A=3, V=71, F=11),
        _p("207", 1860, "L", noise=1.5, R=86, A=107, V=105, E=105),
        _p("208", 2955, "N", S=2, V=992, F=373),
        _p("209", 3005, "N", A=383, V=1),
        _p("210", 2650, "N", af=1.0, a=22, V=194, F=10, E=1),
        _p("212", 2748, "N", R=1825),
        _p("213", 3251, "N", A=25, a=3, V=220, F=362),
        _p("214", 2262, "L", V=256, F=1),
        _p("215", 3363, "N", A=3, V=164, F=1),
        _p("217", 2208, "/", f=260, N=244, V=162),
        _p("219", 2154, "N", af=0.7, A=7, V=64, F=1),
        _p("220", 2048, "N", A=94),
        _p("221", 2427, "N", af=1.0, V=396),
        _p("222", 2483, "N", af=0.2, A=208, j=212, J=1),
        _p("223", 2605, "N", A=72, a=1, V=473, F=14, e=16),
        _p("228", 2053, "N", noise=1.5, A=3, V=362),
        _p("230", 2256, "N", V=1),
        _p("231", 1571, "R", N=314, A=1),
        _p("232", 1780, "R", pause=(1.5, 2.6), A=1382, j=1),
        _p("233", 3079, "N", A=7, V=831, F=11),
        _p("234", 2753, "N", J=50, V=3),
    )
}

_CONDUCTION = frozenset({"N", "L", "R", "/"})
_SUPRAVENTRICULAR = frozenset({"A", "a", "J", "S"})
_ESCAPE = frozenset({"j", "e", "E"})

# Wave slots of a beat template.
P, Q, R, S, R2, T, X = range(7)
K = 7
N_LEADS = len(LEAD_NAMES)


@dataclass
class _Proto:
    """One beat kind: wave offsets (s from the fiducial point), widths (s), amplitudes (mV)."""

    off: FloatArray  # (K,)
    sig: FloatArray  # (K,)
    amp: FloatArray  # (K, N_LEADS)

    def copy(self) -> _Proto:
        return _Proto(self.off.copy(), self.sig.copy(), self.amp.copy())


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _sign(rng: np.random.Generator, p_positive: float = 0.5) -> float:
    return 1.0 if rng.random() < p_positive else -1.0


def _normal_proto(rng: np.random.Generator) -> _Proto:
    """The patient's narrow-QRS sinus beat."""
    qrs = _u(rng, 0.008, 0.015)  # R-wave width: the main QRS-duration knob
    off = np.zeros(K)
    off[P] = -_u(rng, 0.13, 0.22)  # PR interval
    off[Q] = -_u(rng, 1.8, 2.6) * qrs - 0.004
    off[R] = 0.0
    off[S] = _u(rng, 1.8, 2.8) * qrs + 0.004
    off[R2] = 0.05
    off[T] = _u(rng, 0.20, 0.31)
    off[X] = 0.0
    sig = np.array([_u(rng, 0.018, 0.035), _u(rng, 0.005, 0.011), qrs, _u(rng, 0.006, 0.014),
                    0.012, _u(rng, 0.04, 0.075), 0.01])  # fmt: skip
    amp = np.zeros((K, N_LEADS))
    t_ml = _u(rng, 0.1, 0.45) if rng.random() > 0.1 else -_u(rng, 0.05, 0.25)
    amp[:, 0] = [_u(rng, 0.07, 0.25), -_u(rng, 0.0, 0.2), _u(rng, 0.6, 2.0),
                 -_u(rng, 0.05, 0.5), 0.0, t_ml, 0.0]  # fmt: skip
    amp[:, 1] = [_u(rng, -0.06, 0.12), -_u(rng, 0.0, 0.05), _u(rng, 0.08, 0.45),
                 -_u(rng, 0.4, 1.5), 0.0, _u(rng, -0.25, 0.3), 0.0]  # fmt: skip
    return _Proto(off, sig, amp)


def _lbbb(rng: np.random.Generator, base: _Proto) -> _Proto:
    """Left bundle-branch block: broad notched R in MLII, deep QS in V1, discordant T."""
    p = base.copy()
    p.sig[R] = _u(rng, 0.022, 0.032)
    p.off[R] = -_u(rng, 0.008, 0.016)
    p.amp[R, 0] *= _u(rng, 0.6, 0.9)
    p.off[R2], p.sig[R2] = _u(rng, 0.02, 0.035), _u(rng, 0.014, 0.02)
    p.amp[R2] = [p.amp[R, 0] * _u(rng, 0.5, 0.9), 0.0]
    p.amp[Q] = 0.0
    p.amp[S, 0] *= 0.3
    p.off[S], p.sig[S] = _u(rng, 0.02, 0.035), _u(rng, 0.022, 0.03)
    p.amp[S, 1] = -_u(rng, 1.0, 2.0)
    p.amp[R, 1] = _u(rng, 0.0, 0.08)
    p.amp[T] = [-_u(rng, 0.15, 0.4), _u(rng, 0.2, 0.5)]
    p.off[T] += 0.03
    return p


def _rbbb(rng: np.random.Generator, base: _Proto) -> _Proto:
    """Right bundle-branch block: wide slurred S in MLII, rSR' in V1."""
    p = base.copy()
    p.off[S], p.sig[S] = _u(rng, 0.035, 0.05), _u(rng, 0.018, 0.028)
    p.amp[S, 0] = -_u(rng, 0.2, 0.6)
    p.off[R2], p.sig[R2] = _u(rng, 0.05, 0.07), _u(rng, 0.014, 0.022)
    p.amp[R2] = [0.0, _u(rng, 0.4, 1.2)]
    p.amp[S, 1] = -_u(rng, 0.3, 0.8)
    p.off[S] = min(p.off[S], p.off[R2] - 0.02)
    p.amp[T, 1] = -_u(rng, 0.1, 0.3)
    return p


def _paced(rng: np.random.Generator, base: _Proto) -> _Proto:
    """Ventricular pacing: spike, then a wide LBBB-like QRS with discordant T."""
    p = _lbbb(rng, base)
    p.sig[R] = _u(rng, 0.03, 0.04)
    p.off[X], p.sig[X] = -_u(rng, 0.04, 0.06), 0.0025
    p.amp[X] = [_sign(rng) * _u(rng, 1.0, 3.0), _sign(rng) * _u(rng, 0.5, 2.0)]
    return p


def _ventricular(rng: np.random.Generator) -> _Proto:
    """One ectopic ventricular focus: no P, wide bizarre QRS, broad discordant T."""
    s1 = _sign(rng, 0.6)
    off = np.zeros(K)
    sig = np.full(K, 0.02)
    amp = np.zeros((K, N_LEADS))
    off[R], sig[R] = 0.0, _u(rng, 0.022, 0.042)
    amp[R] = [s1 * _u(rng, 0.8, 2.5), _sign(rng) * _u(rng, 0.5, 2.0)]
    off[R2], sig[R2] = _sign(rng) * _u(rng, 0.03, 0.06), _u(rng, 0.02, 0.035)
    amp[R2] = [-s1 * _u(rng, 0.2, 1.0), -np.sign(amp[R, 1]) * _u(rng, 0.1, 0.8)]
    off[Q], sig[Q] = -_u(rng, 0.03, 0.05), 0.015
    amp[Q] = [_sign(rng) * _u(rng, 0.0, 0.3), 0.0]
    off[T], sig[T] = _u(rng, 0.26, 0.36), _u(rng, 0.06, 0.1)
    amp[T] = [-s1 * _u(rng, 0.2, 0.7), -np.sign(amp[R, 1]) * _u(rng, 0.1, 0.5)]
    return _Proto(off, sig, amp)


def _blend(a: _Proto, b: _Proto, alpha: float) -> _Proto:
    """Fusion beat: P of `a`, QRS of `a` scaled by 1-alpha plus the main QRS wave of `b`."""
    p = a.copy()
    p.amp[[Q, R, S]] *= 1.0 - alpha
    p.off[R2], p.sig[R2], p.amp[R2] = b.off[R], b.sig[R], alpha * b.amp[R]
    p.off[X], p.sig[X], p.amp[X] = b.off[R2], b.sig[R2], alpha * b.amp[R2]
    p.off[T] = (1 - alpha) * a.off[T] + alpha * b.off[T]
    p.sig[T] = (1 - alpha) * a.sig[T] + alpha * b.sig[T]
    p.amp[T] = (1 - alpha) * a.amp[T] + alpha * b.amp[T]
    return p


@dataclass
class _Patient:
    """Per-patient draws: beat templates per symbol and rhythm parameters."""

    protos: dict[str, list[_Proto]]
    focus_weights: FloatArray  # V focus frequencies
    prematurity: dict[str, float]  # symbol -> mean RR fraction
    jitter: float  # per-beat amplitude jitter (relative)


def _make_patient(rng: np.random.Generator, profile: RecordProfile) -> _Patient:
    normal = _normal_proto(rng)
    conduction = {"N": normal, "L": _lbbb(rng, normal), "R": _rbbb(rng, normal)}
    conduction["/"] = _paced(rng, normal)
    base = conduction[profile.rhythm if profile.rhythm != "/" else "N"]

    # Ectopic atrial focus: a P wave that is inverted, biphasic or flattened, with a shorter
    # PR interval than the sinus one on average. Small next to the QRS and noise: a model
    # needs some capacity to see it, and prematurity alone overlaps with sinus arrhythmia.
    atrial = base.copy()
    mode = rng.random()
    if mode < 0.4:  # inverted (low atrial focus)
        atrial.amp[P] *= -_u(rng, 0.3, 0.9)
    elif mode < 0.7:  # biphasic: a positive then a negative lobe
        atrial.amp[P] *= _u(rng, 0.3, 0.7)
        atrial.off[X], atrial.sig[X] = 0.0, atrial.sig[P] * _u(rng, 0.8, 1.2)
        atrial.amp[X] = -atrial.amp[P] * _u(rng, 0.6, 1.0)
    else:  # flattened
        atrial.amp[P] *= _u(rng, 0.0, 0.35)
    atrial.amp[P, 1] += _u(rng, -0.05, 0.05)
    atrial.sig[P] *= _u(rng, 0.7, 1.3)
    atrial.off[P] = -_u(rng, 0.08, 0.15)
    if mode >= 0.4 and mode < 0.7:
        atrial.off[X] = atrial.off[P] + 1.5 * atrial.sig[P]
    atrial.amp[[Q, R, S]] *= _u(rng, 0.9, 1.1)
    aberrant = atrial.copy()
    aberrant.sig[R] *= _u(rng, 1.4, 2.0)
    aberrant.off[R2], aberrant.sig[R2] = _u(rng, 0.035, 0.05), _u(rng, 0.012, 0.02)
    aberrant.amp[R2] = [_u(rng, 0.1, 0.4), _u(rng, 0.2, 0.6)]
    junctional = base.copy()
    junctional.amp[P] = 0.0
    if rng.random() < 0.5:  # retrograde P after the QRS
        junctional.off[X], junctional.sig[X] = _u(rng, 0.06, 0.12), 0.02
        junctional.amp[X] = [-_u(rng, 0.05, 0.12), _u(rng, -0.05, 0.05)]

    n_v = profile.ectopy.get("V", 0)
    n_foci = 1 if n_v < 100 else int(rng.integers(1, 4))
    foci = [_ventricular(rng) for _ in range(n_foci)]
    focus_weights = rng.dirichlet(np.full(n_foci, 1.5)) if n_foci > 1 else np.ones(1)
    fusion = _blend(base, foci[0], _u(rng, 0.3, 0.7))
    paced_fusion = _blend(normal, conduction["/"], _u(rng, 0.3, 0.7))
    unclassifiable = _blend(foci[0], base, _u(rng, 0.2, 0.8))
    unclassifiable.amp *= _u(rng, 0.3, 1.5)

    protos: dict[str, list[_Proto]] = {
        **{k: [v] for k, v in conduction.items()},
        "A": [atrial], "S": [atrial], "e": [atrial], "a": [aberrant],
        "J": [junctional], "j": [junctional],
        "V": foci, "E": [foci[0]], "F": [fusion], "f": [paced_fusion], "Q": [unclassifiable],
    }  # fmt: skip
    prem_a = _u(rng, 0.68, 0.92)  # near 0.9 with strong sinus arrhythmia: RR alone fails
    prematurity = {
        "A": prem_a, "S": prem_a, "a": prem_a - 0.05, "J": _u(rng, 0.7, 0.9),
        "V": _u(rng, 0.55, 0.8), "F": _u(rng, 0.88, 1.0), "Q": _u(rng, 0.8, 1.05),
        "f": _u(rng, 0.95, 1.02), "j": _u(rng, 1.15, 1.6), "e": _u(rng, 1.15, 1.5),
        "E": _u(rng, 1.2, 1.6),
    }  # fmt: skip
    return _Patient(protos, focus_weights, prematurity, _u(rng, 0.03, 0.07))


def _smooth_process(rng: np.random.Generator, n: int, block: float) -> FloatArray:
    """Zero-mean, unit-variance random curve over `n` points, correlated over ~`block` points."""
    n_knots = max(2, int(np.ceil(n / block)) + 2)
    knots = rng.standard_normal(n_knots)
    x: FloatArray = np.interp(np.arange(n) / block, np.arange(n_knots), knots)
    x -= x.mean()
    x /= x.std() + 1e-9
    return x


def _episodes(
    rng: np.random.Generator, n: int, n_eff: int, fraction: float, block: float
) -> npt.NDArray[np.bool_]:
    """Boolean mask over `n` beats, True on contiguous stretches covering about `fraction`.

    The fraction holds over the first `n_eff` beats (the ones expected to fit in the record);
    later beats repeat the last value.
    """
    if fraction <= 0:
        return np.zeros(n, dtype=bool)
    if fraction >= 1:
        return np.ones(n, dtype=bool)
    n_eff = min(n, n_eff)
    s = _smooth_process(rng, n_eff, block)
    mask = np.empty(n, dtype=bool)
    mask[:n_eff] = s > np.quantile(s, 1.0 - fraction)
    mask[n_eff:] = mask[n_eff - 1]
    return mask


def _beat_kinds(
    rng: np.random.Generator,
    profile: RecordProfile,
    n: int,
    n_eff: int,
    af: npt.NDArray[np.bool_],
) -> npt.NDArray[np.str_]:
    """The beat symbol sequence, shape (n,): conduction episodes plus bursty ectopic events.

    Counts follow the profile over the first `n_eff` beats (later beats are cut by the caller);
    atrial premature and escape beats are never placed inside AF (`af` True).
    """
    kinds = np.full(n, profile.rhythm, dtype="<U1")
    for sym, count in profile.ectopy.items():
        if sym in _CONDUCTION:
            mask = _episodes(rng, n, n_eff, count / profile.beats, block=_u(rng, 40, 200))
            kinds[mask & (kinds == profile.rhythm)] = sym
    # Point events: a binomial count per symbol, placed by weighted sampling without
    # replacement. Gamma-distributed weights over blocks of ~50 beats make ectopy come in
    # bursts (bigeminy-like stretches); a beat is eligible when both neighbours are conducted
    # beats, except for a random 20 % of positions, which lets couplets and short runs occur.
    n_eff = min(n - 1, n_eff)
    level = np.repeat(rng.gamma(0.6, 1.0 / 0.6, n_eff // 50 + 1), 50)[:n_eff]
    couplet_ok = rng.random(n_eff) < 0.2
    events = sorted(
        ((s, c) for s, c in profile.ectopy.items() if s not in _CONDUCTION), key=lambda e: -e[1]
    )
    for sym, count in events:
        p_sym = min(1.0, count / profile.beats)
        remaining = int(rng.binomial(n_eff, p_sym))
        # Above 40 % of beats (record 232's atrial ectopy) runs are the rhythm itself.
        adjacent_ok = couplet_ok | (p_sym > 0.4)
        for _ in range(3):  # draw, break up runs, top up what was lost
            if remaining <= 0:
                break
            conducted = np.isin(kinds[: n_eff + 1], list(_CONDUCTION))
            eligible = conducted[:n_eff].copy()
            neighbours = conducted[1 : n_eff + 1].copy()
            neighbours[1:] &= conducted[: n_eff - 1]
            eligible &= neighbours | (adjacent_ok & (sym not in _ESCAPE))
            if sym in _SUPRAVENTRICULAR or sym == "e":
                eligible &= ~af[:n_eff]
            eligible[:2] = False
            candidates = np.flatnonzero(eligible)
            k = min(remaining, len(candidates))
            if k == 0:
                break
            w = level[candidates]
            chosen = np.sort(rng.choice(candidates, size=k, replace=False, p=w / w.sum()))
            # Neighbours chosen together form runs; keep alternate beats of each run
            # (bigeminy) unless the position allows a couplet.
            starts = np.ones(len(chosen), dtype=bool)
            starts[1:] = np.diff(chosen) != 1
            first = np.flatnonzero(starts)[np.cumsum(starts) - 1]
            in_run = np.arange(len(chosen)) - first  # position within its run of neighbours
            drop = (in_run % 2 == 1) & ~adjacent_ok[chosen]
            chosen = chosen[~drop]
            kinds[chosen] = sym
            remaining -= len(chosen)
    kinds[:2] = profile.rhythm
    kinds[-2:] = profile.rhythm
    return kinds


def _rr_series(
    rng: np.random.Generator, profile: RecordProfile, n: int, af: npt.NDArray[np.bool_]
) -> FloatArray:
    """Underlying (sinus or AF) RR intervals in seconds, shape (n,)."""
    rr0 = 1800.0 / profile.beats
    t_est = np.arange(n) * rr0
    trend = np.exp(0.07 * _smooth_process(rng, n, block=_u(rng, 150, 600)))
    f_resp = _u(rng, 0.15, 0.35)
    rsa_amp = _u(rng, 0.06, 0.12) if rng.random() < 0.3 else _u(rng, 0.01, 0.05)
    rsa = rsa_amp * np.sin(2 * np.pi * f_resp * t_est + _u(rng, 0, 6.3))
    lf = _u(rng, 0.01, 0.04) * np.sin(2 * np.pi * _u(rng, 0.08, 0.12) * t_est + _u(rng, 0, 6.3))
    ar: FloatArray = lfilter([1.0], [1.0, -_u(rng, 0.5, 0.9)], rng.standard_normal(n))
    ar *= _u(rng, 0.01, 0.03)
    rr: FloatArray = rr0 * trend * (1.0 + rsa + lf + ar)
    if profile.rhythm == "/":
        rr = rr0 * (1.0 + 0.2 * (trend - 1.0) + 0.002 * rng.standard_normal(n))
    if af.any():
        rr_af = rr0 * 0.9 * np.exp(_u(rng, 0.12, 0.25) * rng.standard_normal(n))
        rr = np.where(af, rr_af, rr)
    return np.maximum(rr, 0.3)


def _render(
    n_samples: int,
    fs: float,
    r_samples: IntArray,
    off: FloatArray,
    sig: FloatArray,
    amp: FloatArray,
    chunk: int = 1024,
) -> npt.NDArray[np.float32]:
    """Overlap-add the Gaussian waves of every beat; returns (n_samples, N_LEADS) float32 mV.

    Args:
        r_samples: fiducial sample of each beat, shape (B,).
        off, sig: wave offsets and widths in seconds, shape (B, K).
        amp: wave amplitudes in mV, shape (B, K, N_LEADS).
    """
    w0, w1 = int(0.5 * fs), int(0.75 * fs)
    rel = np.arange(-w0, w1)  # (W,)
    tt = (rel / fs).astype(np.float32)
    ramp = max(2, int(0.05 * fs))
    taper = np.ones(len(rel), dtype=np.float32)
    edge = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))).astype(np.float32)
    taper[:ramp], taper[-ramp:] = edge, edge[::-1]
    out = np.zeros((N_LEADS, n_samples), dtype=np.float64)
    for start in range(0, len(r_samples), chunk):
        sl = slice(start, start + chunk)
        o = off[sl].astype(np.float32)[:, :, None]  # (b, K, 1)
        s = sig[sl].astype(np.float32)[:, :, None]
        z = (tt[None, None, :] - o) / s  # (b, K, W)
        g = np.exp(-0.5 * z * z)
        tmpl = np.einsum("bkw,bkl->blw", g, amp[sl].astype(np.float32)) * taper  # (b, L, W)
        idx = r_samples[sl, None] + rel[None, :]  # (b, W)
        valid = (idx >= 0) & (idx < n_samples)
        flat_idx = idx[valid]
        for lead in range(N_LEADS):
            out[lead] += np.bincount(flat_idx, weights=tmpl[:, lead][valid], minlength=n_samples)
    return out.T.astype(np.float32)


def _noise(
    rng: np.random.Generator, profile: RecordProfile, n: int, fs: float, af: FloatArray
) -> npt.NDArray[np.float32]:
    """Additive noise (n, N_LEADS) in mV: wander, mains, muscle, motion, AF f-waves."""
    t = np.arange(n) / fs
    level = profile.noise * _u(rng, 0.6, 1.4)
    out = np.zeros((n, N_LEADS), dtype=np.float32)
    f_resp = _u(rng, 0.15, 0.35)
    emg_env = 1.0 + np.interp(
        t, np.linspace(0, t[-1], max(2, int(t[-1] / 5))),
        np.where(rng.random(max(2, int(t[-1] / 5))) < 0.08 * level, _u(rng, 2, 6), 0.0),
    )  # fmt: skip
    mains_amp = _u(rng, 0.0, 0.025) if rng.random() < 0.4 else 0.0
    for lead in range(N_LEADS):
        wander = _u(rng, 0.03, 0.15) * level * np.sin(2 * np.pi * f_resp * t + _u(rng, 0, 6.3))
        for _ in range(3):
            wander += (
                _u(rng, 0.02, 0.12) * level
                * np.sin(2 * np.pi * _u(rng, 0.01, 0.3) * t + _u(rng, 0, 6.3))
            )  # fmt: skip
        white = rng.standard_normal(n + 1).astype(np.float32)
        emg = np.diff(white) * (_u(rng, 0.004, 0.02) * level / np.sqrt(2.0))
        mains = mains_amp * np.sin(2 * np.pi * 60.0 * t + _u(rng, 0, 6.3))
        out[:, lead] = wander + mains + emg * emg_env
    # Electrode-motion transients: a few slow bumps, more in noisy records.
    n_events = rng.poisson(2.0 * level**2 * t[-1] / 1800.0)
    for _ in range(n_events):
        c = int(rng.integers(0, n))
        width = _u(rng, 0.1, 0.6) * fs
        lo, hi = max(0, int(c - 4 * width)), min(n, int(c + 4 * width))
        bump = np.exp(-0.5 * ((np.arange(lo, hi) - c) / width) ** 2)
        out[lo:hi] += bump[:, None] * rng.uniform(-1.5, 1.5, N_LEADS) * level
    if af.any():
        f1 = _u(rng, 4.5, 7.0)
        fw = _u(rng, 0.03, 0.1) * np.sin(2 * np.pi * f1 * t + 0.8 * np.sin(2 * np.pi * 0.2 * t))
        out += (fw * af)[:, None] * np.array([1.0, 1.6], dtype=np.float32)
    return out


def simulate_record(
    name: str, duration_s: float = 1800.0, fs: float = DEFAULT_FS, seed: int = 0
) -> EcgRecord:
    """Simulate one two-lead record (MLII, V1) with beat annotations.

    Args:
        name: a MIT-BIH record name ("100" ... "234"); it picks the patient profile.
        duration_s: record length in seconds (the real ones are 1805 s).
        fs: sampling rate in Hz.
        seed: generator seed; the record's stream is seeded by (seed, int(name)).

    Returns:
        An `EcgRecord` with signal (n, 2) in mV and one annotation per beat at its fiducial
        point (the peak of the dominant QRS wave, within a sample or two), symbols as in the
        real database, plus rhythm annotations ("+" with aux "(AFIB" / "(N") around AF.

    Raises:
        DatasetError: `name` is not a MIT-BIH record name, or duration/fs are not positive.
    """
    if name not in PROFILES:
        raise DatasetError(
            f"no synthetic profile for record {name!r}; use MIT-BIH record names 100..234"
        )
    if duration_s < 10 or fs < 50:
        raise DatasetError(
            f"duration_s must be >= 10 and fs >= 50, got duration_s={duration_s}, fs={fs}"
        )
    profile = PROFILES[name]
    rng = np.random.default_rng([seed, int(name)])
    patient = _make_patient(rng, profile)
    n_samples = round(duration_s * fs)
    rr0 = 1800.0 / profile.beats
    n_est = int(duration_s / rr0) + 1  # beats expected in the record
    n_max = 2 * n_est + 10  # drawn, then cut at duration_s

    af = _episodes(rng, n_max, n_est, profile.af, block=_u(rng, 100, 400))
    kinds = _beat_kinds(rng, profile, n_max, n_est, af)
    base_rr = _rr_series(rng, profile, n_max, af)

    factor = np.ones(n_max)
    for sym, mean in patient.prematurity.items():
        m = kinds == sym
        factor[m] = np.maximum(0.4, mean + 0.05 * rng.standard_normal(int(m.sum())))
    rr = base_rr * factor
    prev = np.empty(n_max, dtype="<U1")
    prev[0], prev[1:] = profile.rhythm, kinds[:-1]
    sinus_next = np.isin(kinds, list(_CONDUCTION))
    comp = sinus_next & (prev == "V")  # full compensatory pause after a PVC
    rr[comp] = np.maximum(2.0 * base_rr[comp] - rr[np.flatnonzero(comp) - 1], base_rr[comp])
    reset = sinus_next & np.isin(prev, list(_SUPRAVENTRICULAR))
    rr[reset] = base_rr[reset] * rng.uniform(*profile.pause, int(reset.sum()))
    t_beat = 0.3 + np.cumsum(rr) - rr[0]
    keep = t_beat < duration_s - 0.3
    kinds, rr, t_beat, af = kinds[keep], rr[keep], t_beat[keep], af[keep]
    n_beats = len(kinds)
    r_samples = np.rint(t_beat * fs).astype(np.int64)

    # Per-beat wave parameters from the templates, then jitter and physiology.
    symbols = sorted(set(kinds.tolist()))
    off = np.empty((n_beats, K))
    sig = np.empty((n_beats, K))
    amp = np.empty((n_beats, K, N_LEADS))
    for sym in symbols:
        idx = np.flatnonzero(kinds == sym)
        protos = patient.protos[sym]
        choice = (
            rng.choice(len(protos), size=len(idx), p=patient.focus_weights)
            if sym == "V" and len(protos) > 1
            else np.zeros(len(idx), dtype=np.int64)
        )
        off[idx] = np.stack([p.off for p in protos])[choice]
        sig[idx] = np.stack([p.sig for p in protos])[choice]
        amp[idx] = np.stack([p.amp for p in protos])[choice]
    off[:, [P, T]] += 0.006 * rng.standard_normal((n_beats, 2))
    off[:, [Q, R, S, R2]] += 0.0015 * rng.standard_normal((n_beats, 4))
    sig *= 1.0 + 0.03 * rng.standard_normal((n_beats, K))
    np.maximum(sig, 0.002, out=sig)
    amp *= 1.0 + patient.jitter * rng.standard_normal((n_beats, K, 1))
    # Respiration rotates the electrical axis: QRS amplitude swings, opposite in V1.
    f_resp = _u(rng, 0.15, 0.35)
    swing = _u(rng, 0.03, 0.12) * np.sin(2 * np.pi * f_resp * t_beat + _u(rng, 0, 6.3))
    amp[:, [Q, R, S, R2], 0] *= (1.0 + swing)[:, None]
    amp[:, [Q, R, S, R2], 1] *= (1.0 - swing)[:, None]
    # QT shortens with the preceding RR (Bazett-like, square-root law damped).
    rr_ratio = np.clip(rr / rr0, 0.5, 1.6) ** 0.4
    off[:, T] *= rr_ratio
    amp[af, P] = 0.0
    qm = kinds == "Q"
    if qm.any():
        amp[qm] *= 1.0 + 0.3 * rng.standard_normal((int(qm.sum()), K, 1))

    ecg = _render(n_samples, fs, r_samples, off, sig, amp)
    drift = 1.0 + 0.08 * _smooth_process(rng, int(duration_s) + 2, block=_u(rng, 60, 300))
    gain = np.interp(np.arange(n_samples) / fs, np.arange(len(drift)), drift).astype(np.float32)
    af_curve = np.zeros(n_samples, dtype=np.float64)
    if af.any():
        af_curve = np.interp(np.arange(n_samples), r_samples, af.astype(np.float64))
    signal = ecg * gain[:, None] + _noise(rng, profile, n_samples, fs, af_curve)

    ann_samples = r_samples + np.rint(0.6 * rng.standard_normal(n_beats)).astype(np.int64)
    ann_symbols = kinds.tolist()
    aux = [""] * n_beats
    # Rhythm annotations where AF starts and stops, as in the real .atr files.
    change = np.flatnonzero(np.diff(np.concatenate([[False], af]).astype(np.int8)) != 0)
    rhythm_samples = [max(0, int(r_samples[i]) - int(0.1 * fs)) for i in change]
    rhythm_aux = ["(AFIB" if af[i] else "(N" for i in change]
    if len(change):
        all_samples = np.concatenate([ann_samples, np.asarray(rhythm_samples, dtype=np.int64)])
        order = np.argsort(all_samples, kind="stable")
        ann_samples = all_samples[order]
        ann_symbols = [(ann_symbols + ["+"] * len(change))[i] for i in order]
        aux = [(aux + rhythm_aux)[i] for i in order]
    ann_samples = np.clip(ann_samples, 0, n_samples - 1)
    return EcgRecord(
        name=name,
        signal=signal.astype(np.float32),
        fs=fs,
        sig_names=list(LEAD_NAMES),
        ann_samples=ann_samples,
        ann_symbols=ann_symbols,
        ann_aux=aux,
        comments=[
            f"agentune ecg_synth v{SIMULATOR_VERSION} seed {seed}: rhythm {profile.rhythm}, "
            f"{60.0 / rr0:.0f} bpm mean, noise {profile.noise}, af {profile.af}"
        ],
    )


def _write_one(args: tuple[str, str, float, float, int]) -> str:
    name, directory, duration_s, fs, seed = args
    write_record(simulate_record(name, duration_s, fs, seed), directory)
    return name


def generate_database(
    directory: str | Path,
    records: Sequence[str] | None = None,
    duration_s: float = 1800.0,
    fs: float = DEFAULT_FS,
    seed: int = 0,
    n_jobs: int = 1,
) -> list[str]:
    """Simulate `records` and write them as WFDB files (.hea/.dat/.atr) into `directory`.

    Args:
        directory: output folder (created).
        records: record names; None = all 48 MIT-BIH names.
        duration_s, fs, seed: see `simulate_record`.
        n_jobs: worker processes; 1 generates in this process.

    Returns:
        The record names written, in order.
    """
    names = list(MITBIH_RECORDS if records is None else records)
    unknown = sorted(set(names) - set(PROFILES))
    if unknown:
        raise DatasetError(
            f"no synthetic profile for records {unknown}; use MIT-BIH record names 100..234"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = [(n, str(directory), float(duration_s), float(fs), int(seed)) for n in names]
    if n_jobs > 1 and len(names) > 1:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            done = list(pool.map(_write_one, jobs))
    else:
        done = [_write_one(j) for j in jobs]
    logger.info(
        "generated %d synthetic records of %.0f s in %s in %.1f s",
        len(done), duration_s, directory, time.perf_counter() - started,
    )  # fmt: skip
    return done
