"""Signals read from a campaign's history: noise, drift, stagnation and a recommendation.

Each signal is a pure function of a history (runs in the order they finished) and a
:class:`SignalThresholds`; same input, same output. A history is a :class:`History`, a
``pyarrow.Table`` from :meth:`feedback.FeedbackStore.table`, or a sequence of
:class:`feedback.RunRecord`. Values are oriented internally so that higher is better
(``mode="min"`` values are negated); readings report them in the metric's own units.

Only ``completed`` runs carry values. The runs belong to *arms* (``RunRecord.arm``, the
table's ``arm`` column): the base arm, then the arms the agent adds. Stagnation is read over
the whole campaign (has the best stopped improving, and have the values stopped rising?);
drift within one arm (is this arm getting worse than it was?), so a new arm that is simply
weaker is not drift.

Both signals compare changes with the run-to-run *noise* of one evaluation
(:func:`estimate_noise`): the goal's ``noise`` when it sets one, else repeated evaluations of
one config, else a robust estimate from the campaign's own values. Both are read after every
run, so their constants were chosen by simulating whole campaigns
(``bench/signals_calibration.py``, which measures the false-alarm and detection rates over
64 looks at the noise levels of the biosignal tasks).

Cost is O(n) in numpy plus constant work on the last few windows, so signals over 100,000
runs take milliseconds.

Example::

    thresholds = SignalThresholds(window=10, min_delta=0.002, target=0.9, budget=200)
    rec = recommend(store.table(campaign="ecg"), thresholds)
    rec.action   # "continue" | "change_lr" | "change_model" | "stop"
    rec.reasons  # why, as text
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa

from ._errors import FeedbackError
from ._records import RunRecord

__all__ = [
    "DriftReading",
    "History",
    "NoiseEstimate",
    "Recommendation",
    "RecommendationAction",
    "SignalThresholds",
    "StagnationReading",
    "drift",
    "drift_threshold",
    "estimate_noise",
    "pooled_variance",
    "recommend",
    "stagnation",
]

RecommendationAction = Literal["continue", "change_lr", "change_model", "stop"]

#: Statuses of runs that used training compute (what ``budget`` counts).
TRAINED_STATUSES = frozenset({"completed", "failed", "diverged", "pruned"})
#: Statuses of runs that were attempted (everything but approval rejections).
ATTEMPTED_STATUSES = TRAINED_STATUSES | {"infeasible"}

# --- constants ----------------------------------------------------------------------------
# The noise and drift constants were chosen by simulation (64-run campaigns, iid Gaussian
# values, a 3-sigma drop at run 32, thresholds at 5 % campaign-wide false alarms): the
# winsorised noise estimate needing 8 differences, a reference span of 32, allowance 0.75 and
# clip 3 detect 99.6 % of drops within 6 runs (mean delay 3.3), where the plain MAD estimate
# with 5 differences, span 16, allowance 1 and clip 4 detected 71 % (its noisier scale forced
# a higher threshold). DRIFT_THRESHOLDS was then calibrated for them (see its comment).

#: Most recent completed runs the noise estimate reads.
NOISE_SPAN = 64
#: Fewest within-arm successive differences for the robust (campaign) noise estimate.
MIN_NOISE_DIFFS = 8
#: Degrees of freedom of repeated evaluations at which they alone give the noise; below it
#: their pooled variance is blended with the campaign estimate in proportion ``df / 8``.
REPEAT_FULL_DF = 8
#: Normal consistency factor of the median absolute deviation.
MAD_SCALE = 1.482602218505602
#: Successive differences are winsorised at this many MADs in the campaign noise estimate.
NOISE_CLIP = 2.5
#: ``E[min(Z^2, NOISE_CLIP^2)]`` for a standard normal ``Z``: makes the winsorised RMS
#: consistent for Gaussian noise (``(2 Phi(c) - 1) - 2 c phi(c) + 2 c^2 (1 - Phi(c))``).
NOISE_CLIP_CONSISTENCY = 0.9775599834528066
# The stagnation constants were chosen with bench/signals_calibration.py (64-trial campaigns,
# Gaussian values, read after every trial) and a faster simulation of the same campaigns
# (2,000 per cell): the share of campaigns improving by 2 noise std per window that are ever
# called stagnant, and the share of stalls (the same gain stopping at trial 32) found within
# two windows. "No improvement beyond the bar in the last window" alone is a test repeated
# after every trial: over about 56 looks, even the raw running best is flat in some window of
# 80-99 % of improving campaigns. Adding the trend test (values rising by less than
# ``trend_k`` noise std per window over the last two windows) brings windows 6-8 to 0.6-3.2 %
# with 93-96 % of stalls found (1,000 campaigns), provided stagnation waits for two windows of
# values: from ``window + 1`` on it was 16-20 % (on a few values a trend cannot be told from
# noise). A plain line through the last two windows instead of the hinge (z 1.645) found only
# 86-89 % of stalls at 2-14 % false stagnation. Window 3 (the quick goals) cannot meet both
# targets: its two windows are 6 values, whose trend at 2 noise std per window is about 4
# standard errors; it gives 17-22 % and 77-82 %.

#: Default ``improvement_k``: a gain must beat the best by this many noise standard
#: deviations to count (the bar is ``max(min_delta, improvement_k * noise)``). With the trend
#: test (300 campaigns per cell, windows 6-8): 0.5 finds 86-90 % of stalls within two windows
#: (0-1.7 % false stagnation), 1.0 93-96 % (0.6-3.2 %, 1,000 campaigns), 1.5 96-97 % (0.7-3.3
#: %). Without it (0.5, the earlier default) false stagnation was 80-99 %.
IMPROVEMENT_K = 1.0
#: Default ``trend_k``: the values' fitted trend over the last two windows must gain more
#: than ``max(min_delta, trend_k * noise)`` per window to count as improvement. Windows 6-8
#: (300 campaigns per cell): 0.6 finds 88-92 % of stalls (0-2.7 % false stagnation), 0.8
#: 93-96 % (0.6-3.2 %, 1,000 campaigns), 1.0 96-98 % (2.3-11 %).
TREND_K = 0.8
#: One-sided z the trend's gain must also exceed in standard errors, with the scatter taken
#: as the larger of the noise and the residual standard deviation of the fit: values of an
#: exploring search scatter by more than one config's seed noise, and a trend within that
#: scatter is no evidence of improvement (no effect on the Gaussian benchmark; on values that
#: scatter 5x the goal's noise, 85 % of looks read as stagnant with it, 58 % without).
TREND_Z = 1.645
#: Fewest values before the join of the trend fit (the fit reads the last
#: ``2 * window + max(2 * window, TREND_LEAD)`` values): more of them pin the level the recent
#: slope starts from (simulated, window 6: 2.9 % false stagnation with 12 such values, 2.6 %
#: with 16, 2.5 % with 20).
TREND_LEAD = 16
#: CUSUM allowance (reference value) in noise standard deviations: a drop smaller than this
#: per run does not accumulate. Tuned to detect drops of about 3 noise std fast.
DRIFT_ALLOWANCE = 0.75
#: Standardised innovations are clipped to +-DRIFT_CLIP, so that one bad config of an
#: exploring search adds at most ``DRIFT_CLIP - DRIFT_ALLOWANCE`` to the statistic.
DRIFT_CLIP = 3.0
#: Previous values of the arm (at most) whose mean is the reference of the next value.
DRIFT_REF_SPAN = 32
#: Fewest completed runs of an arm before its drift is tested.
DRIFT_MIN_RUNS = 4
#: ``(alpha, h)``: the CUSUM threshold ``h`` at which a stationary campaign of 64 completed
#: runs (iid Gaussian values, noise estimated by :func:`estimate_noise` from the campaign
#: itself, drift read after every run) raises an alarm at any point with probability
#: ``alpha``. Obtained with ``bench/signals_calibration.py --calibrate --campaigns 40000
#: --seed 0``: the (1 - alpha)-quantiles of each campaign's largest drift statistic over
#: 40,000 simulated campaigns of one arm, and 40,000 of three arms of different means (the
#: larger of the two, rounded up; one arm gave 4.857 at 5 %, three arms 4.683). A known
#: noise (``thresholds.noise``) gives fewer alarms. Interpolated linearly in log(alpha),
#: clamped at both ends.
DRIFT_THRESHOLDS: tuple[tuple[float, float], ...] = (
    (0.005, 8.74),
    (0.01, 7.34),
    (0.02, 6.22),
    (0.05, 4.86),
    (0.1, 3.98),
    (0.2, 3.17),
    (0.5, 2.17),
)


@dataclass(frozen=True)
class SignalThresholds:
    """Thresholds of the signals; the campaign goal fills them.

    Attributes:
        window: Completed runs per window: the campaign is stagnant when the last ``window``
            completed runs did not raise the best and the last two windows show no upward
            trend (see :func:`stagnation`); it is never stagnant before ``2 * window``
            completed runs.
        min_delta: Smallest change of the metric (in its units) that counts: an improvement
            must beat the best by more than ``max(min_delta, improvement_k * noise)``, a
            trend must gain more than ``max(min_delta, trend_k * noise)`` per window, and a
            drift must lose more than this per run.
        patience: Stagnant windows tolerated before changing the model: ``change_model`` once
            the campaign is stagnant and ``patience * window`` completed runs have passed
            since the last credited improvement.
        target: Stop once the best value reaches this (``>=`` for max, ``<=`` for min).
        budget: Stop once this many runs have trained (completed, failed, diverged, pruned).
        time_budget_s: Stop once the runs' summed duration reaches this many seconds.
        token_budget: Stop once the runs' summed LLM tokens (in + out) reach this.
        hopeless_after: Stop once this many completed runs in a row brought no credited
            improvement (None: never for this reason).
        alpha: Campaign-wide false-alarm probability of the drift test: the chance that a
            stationary campaign of 64 completed runs, read after every run, reports drift at
            any point (calibrated for 0.005 ..= 0.5; values outside are clamped).
        noise_k: Unused since the drift test became a CUSUM; kept so stored thresholds load.
        diverge_fraction: Recommend ``change_lr`` when at least this fraction of the last
            ``window`` attempted runs diverged.
        lr_keys: Parameter names (last dotted component) that are learning rates (reported
            in the stagnation reasons).
        noise: Run-to-run standard deviation of one evaluation (metric units, e.g. the seed
            noise measured for the task); None: estimated from the history.
        improvement_k: Noise standard deviations an improvement must exceed.
        trend_k: Noise standard deviations per window the values' recent trend must gain to
            count as improvement (see :func:`stagnation`).
    """

    window: int = 10
    min_delta: float = 0.0
    patience: int = 2
    target: float | None = None
    budget: int | None = None
    time_budget_s: float | None = None
    token_budget: int | None = None
    hopeless_after: int | None = None
    alpha: float = 0.04  # nominal; with the noise estimated the campaign rate runs ~0.5 pt above
    noise_k: float = 3.0
    diverge_fraction: float = 0.5
    lr_keys: tuple[str, ...] = ("lr", "learning_rate")
    noise: float | None = None
    improvement_k: float = IMPROVEMENT_K
    trend_k: float = TREND_K

    def __post_init__(self) -> None:
        def positive_int(name: str, value: object, minimum: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise FeedbackError(f"{name} must be an integer >= {minimum}, but got {value!r}.")

        positive_int("window", self.window, 2)
        positive_int("patience", self.patience, 1)
        for name in ("budget", "token_budget", "hopeless_after"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name), 1)
        for name, low, high in (
            ("alpha", 0.0, 1.0),
            ("diverge_fraction", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not (_is_number(value) and low < value <= high):
                raise FeedbackError(f"{name} must be in ({low}, {high}], but got {value!r}.")
        for name in ("min_delta", "noise_k", "improvement_k", "trend_k"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise FeedbackError(f"{name} must be a finite number >= 0, but got {value!r}.")
        if self.noise is not None and not (
            _is_number(self.noise) and math.isfinite(self.noise) and self.noise > 0
        ):
            raise FeedbackError(
                f"noise must be a finite number > 0 or None, but got {self.noise!r}."
            )
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise FeedbackError(f"time_budget_s must be > 0, but got {self.time_budget_s!r}.")
        if self.target is not None and not math.isfinite(self.target):
            raise FeedbackError(f"target must be finite, but got {self.target!r}.")
        object.__setattr__(self, "lr_keys", tuple(self.lr_keys))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (what ``Event(kind="campaign", data={"thresholds": ...})`` holds)."""
        out = dataclasses.asdict(self)
        out["lr_keys"] = list(self.lr_keys)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalThresholds:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`FeedbackError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FeedbackError(f"unknown threshold(s) {unknown}; known: {sorted(names)}.")
        kwargs = dict(data)
        if "lr_keys" in kwargs:
            kwargs["lr_keys"] = tuple(kwargs["lr_keys"])
        return cls(**kwargs)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class History:
    """Columns of a campaign's runs, in finishing order, as the signals read them.

    Build with :meth:`from_table` or :meth:`from_records` (or pass those directly to the
    signal functions). ``params`` entries are dicts or JSON strings (only the last few are
    ever decoded).

    Attributes:
        mode: ``max`` or ``min``.
        values: float64 (N,), NaN where the run did not complete.
        statuses: Status per run (N,).
        params: Params per run (N,), dict or JSON string.
        durations: float64 (N,) seconds, NaN when unknown.
        tokens: int64 (N,) LLM tokens (in + out).
        arms: Arm name per run (N,), or None: every run belongs to one arm.
    """

    mode: str
    values: np.ndarray
    statuses: np.ndarray
    params: Sequence[Any]
    durations: np.ndarray
    tokens: np.ndarray
    arms: np.ndarray | None = None

    @classmethod
    def from_table(cls, table: pa.Table, mode: str | None = None) -> History:
        """From a runs table (:meth:`feedback.FeedbackStore.table`); ``arm`` is optional."""
        statuses = np.asarray(table["status"].to_numpy(zero_copy_only=False), dtype=object)
        values = table["value"].to_numpy(zero_copy_only=False).astype(np.float64)
        values = np.where(statuses == "completed", values, np.nan)
        modes = table["mode"].unique().to_pylist() if table.num_rows else []
        tokens = (
            table["tokens_in"].to_numpy(zero_copy_only=False)
            + table["tokens_out"].to_numpy(zero_copy_only=False)
        ).astype(np.int64)
        arms = (
            np.asarray(table["arm"].to_numpy(zero_copy_only=False), dtype=object)
            if "arm" in table.column_names
            else None
        )
        return cls(
            mode=_one_mode(modes, mode),
            values=values,
            statuses=statuses,
            params=table["params"],
            durations=table["duration_s"].to_numpy(zero_copy_only=False).astype(np.float64),
            tokens=tokens,
            arms=arms,
        )

    @classmethod
    def from_records(cls, records: Sequence[RunRecord], mode: str | None = None) -> History:
        """From :class:`feedback.RunRecord` objects in finishing order."""
        n = len(records)
        values = np.full(n, np.nan)
        for i, r in enumerate(records):
            if r.status == "completed" and r.value is not None:
                values[i] = r.value
        return cls(
            mode=_one_mode(sorted({r.mode for r in records}), mode),
            values=values,
            statuses=np.array([r.status for r in records], dtype=object),
            params=[r.params for r in records],
            durations=np.array(
                [np.nan if r.duration_s is None else r.duration_s for r in records], dtype=float
            ),
            tokens=np.array([r.tokens_in + r.tokens_out for r in records], dtype=np.int64),
            arms=np.array([r.arm for r in records], dtype=object),
        )

    def oriented(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices of completed runs, their values with higher = better)."""
        idx = np.flatnonzero(~np.isnan(self.values))
        vals = self.values[idx]
        return idx, (vals if self.mode == "max" else -vals)

    def arm_of(self, indices: np.ndarray) -> np.ndarray:
        """Arm names of runs ``indices`` (object array; ``""`` when built without arms)."""
        if self.arms is None:
            return np.full(len(indices), "", dtype=object)
        return np.asarray(self.arms[indices], dtype=object)

    def param_dict(self, i: int) -> dict[str, Any]:
        """The params of run ``i`` as a dict."""
        item = self.params[i]
        if isinstance(item, pa.Scalar):
            item = item.as_py()
        if isinstance(item, str):
            loaded = json.loads(item)
            return loaded if isinstance(loaded, dict) else {}
        return dict(item) if isinstance(item, Mapping) else {}

    def param_key(self, i: int) -> str:
        """The params of run ``i`` as canonical JSON (the store's own spelling)."""
        return self.param_keys(np.array([i]))[0]

    def param_keys(self, indices: np.ndarray) -> list[str]:
        """:meth:`param_key` of each of ``indices`` (one Arrow ``take`` for a table)."""
        params = self.params
        if isinstance(params, pa.ChunkedArray | pa.Array):
            items: list[Any] = params.take(pa.array(indices, pa.int64())).to_pylist()
        else:
            items = [params[int(i)] for i in indices]
        return [item if type(item) is str else _canonical_params(item) for item in items]


def _canonical_params(item: Any) -> str:
    if isinstance(item, pa.Scalar):
        item = item.as_py()
    if isinstance(item, str):
        return item  # the store writes sorted, compact JSON
    mapping = dict(item) if isinstance(item, Mapping) else {}
    return json.dumps(mapping, sort_keys=True, separators=(",", ":"))


def _one_mode(modes: Sequence[str], mode: str | None) -> str:
    if mode is not None:
        if mode not in ("min", "max"):
            raise FeedbackError(f"mode must be 'min' or 'max', but got {mode!r}.")
        return mode
    if len(modes) > 1:
        raise FeedbackError(
            f"signals need one metric direction, but the runs mix modes {list(modes)}; pass "
            "the runs of one campaign (one metric), or mode=."
        )
    return modes[0] if modes else "max"


HistoryLike: TypeAlias = "History | pa.Table | Sequence[RunRecord]"


def as_history(history: HistoryLike, mode: str | None = None) -> History:
    """Coerce a table, a record sequence or a :class:`History` to a :class:`History`."""
    if isinstance(history, History):
        return (
            history
            if mode is None or mode == history.mode
            else dataclasses.replace(history, mode=_one_mode([], mode))
        )
    if isinstance(history, pa.Table):
        return History.from_table(history, mode)
    if isinstance(history, Sequence):
        return History.from_records(history, mode)
    raise TypeError(
        f"a history is a History, a pyarrow.Table or a sequence of RunRecord, but got "
        f"{type(history)!r}."
    )


def _sign(mode: str) -> float:
    return 1.0 if mode == "max" else -1.0


# --- noise --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseEstimate:
    """Result of :func:`estimate_noise`.

    Attributes:
        value: Run-to-run standard deviation of one evaluation (metric units, >= 0), None
            when the history cannot tell yet.
        source: ``goal`` (``thresholds.noise``), ``repeats`` (repeated evaluations alone),
            ``repeats+campaign`` (repeats blended with the campaign estimate), ``campaign``
            (successive differences of the campaign's values) or ``none``.
        repeat_df: Degrees of freedom of the repeated evaluations (0 without repeats).
        diffs: Within-arm successive differences the campaign estimate used.
    """

    value: float | None
    source: str
    repeat_df: int = 0
    diffs: int = 0

    def describe(self) -> str:
        """E.g. ``noise 0.021 (repeats, 6 df)``."""
        if self.value is None:
            return "noise unknown"
        detail = {
            "goal": "from the goal",
            "repeats": f"repeated configs, {self.repeat_df} df",
            "repeats+campaign": f"repeated configs ({self.repeat_df} df) and the campaign",
            "campaign": f"{self.diffs} successive differences",
        }.get(self.source, self.source)
        return f"noise {self.value:.3g} ({detail})"


def pooled_variance(groups: Iterable[Sequence[float]]) -> tuple[float, int]:
    """(pooled within-group variance, its degrees of freedom); NaN and 0 when no group has
    two or more values. Groups of one value add nothing."""
    ss, df = 0.0, 0
    for values in groups:
        if len(values) >= 2:
            arr = np.asarray(values, dtype=float)
            ss += float(np.sum((arr - arr.mean()) ** 2))
            df += len(arr) - 1
    return (ss / df if df else math.nan), df


def _pooled_repeats(keys: Sequence[tuple[str, str]], y: np.ndarray) -> tuple[float, int]:
    """:func:`pooled_variance` over groups of runs with equal keys (repeated configs)."""
    if len(set(keys)) == len(keys):
        return math.nan, 0
    groups: dict[tuple[str, str], list[float]] = {}
    for key, value in zip(keys, y.tolist(), strict=True):
        groups.setdefault(key, []).append(value)
    return pooled_variance(groups.values())


def _median(x: np.ndarray) -> float:
    """Median of a non-empty 1-D array (np.median's overhead dominates at these sizes)."""
    s = np.sort(x)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else 0.5 * float(s[mid - 1] + s[mid])


def _within_arm_diffs(arms: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Differences of successive values of the same arm (each arm's values in order)."""
    if len(y) < 2:
        return np.empty(0)
    if len(set(arms.tolist())) == 1:
        return np.diff(y)
    parts = [np.diff(y[arms == arm]) for arm in dict.fromkeys(arms.tolist())]
    return np.concatenate(parts)


def _diff_noise(diffs: np.ndarray) -> float:
    """Robust noise std from successive differences: a winsorised RMS / sqrt(2).

    The differences are centred at their median, scaled by their normal-consistent MAD,
    clipped to ``+-NOISE_CLIP`` MADs; the RMS of the clipped values, made consistent for
    Gaussian noise (``NOISE_CLIP_CONSISTENCY``) and divided by sqrt(2), is the noise. Far
    more stable than the MAD alone on few values, yet one outlier moves it by at most
    ``NOISE_CLIP`` MADs. When more than half the differences are equal (MAD 0) their plain
    RMS is used.
    """
    centred = diffs - _median(diffs)
    mad = MAD_SCALE * _median(np.abs(centred))
    if mad == 0.0:
        return math.sqrt(float(np.dot(centred, centred)) / len(centred) / 2.0)
    clipped = np.clip(centred / mad, -NOISE_CLIP, NOISE_CLIP)
    mean_square = float(np.dot(clipped, clipped)) / len(clipped)
    return mad * math.sqrt(mean_square / NOISE_CLIP_CONSISTENCY / 2.0)


def estimate_noise(
    history: HistoryLike, thresholds: SignalThresholds | None = None
) -> NoiseEstimate:
    """The run-to-run standard deviation of one evaluation, in metric units.

    In order of preference:

    1. ``thresholds.noise`` when set (source ``goal``).
    2. Repeated evaluations: among the last ``NOISE_SPAN`` (64) completed runs, groups of at
       least two runs of the same arm with identical ``params``; ``s_r^2`` is their pooled
       within-group variance with ``df = sum(n_g - 1)``. With ``df >= REPEAT_FULL_DF`` (8)
       it alone is the noise (``repeats``); with fewer df and a campaign estimate ``s_c``
       (below) the noise is ``sqrt(f * s_r^2 + (1 - f) * s_c^2)``, ``f = df / 8``
       (``repeats+campaign``); without one, ``s_r`` (``repeats``).
    3. The campaign estimate (``campaign``): the differences of successive values *of the
       same arm* over the last 64 completed runs, centred at their median, winsorised at
       ``NOISE_CLIP`` (2.5) normal-consistent MADs; their Gaussian-consistent RMS divided by
       sqrt(2) (:func:`_diff_noise`). It needs ``MIN_NOISE_DIFFS`` (8) differences.
       Differences cancel slow trends and the winsorising bounds single jumps;
       config-to-config variation of a search counts as noise, so it errs on the high side.

    Args:
        history: Runs in finishing order.
        thresholds: Uses ``noise``.

    Returns:
        The estimate, ``value`` None (source ``none``) when none of the above applies.
    """
    th = thresholds or SignalThresholds()
    if th.noise is not None:
        return NoiseEstimate(float(th.noise), "goal")
    h = as_history(history)
    idx, y = h.oriented()
    idx, y = idx[-NOISE_SPAN:], y[-NOISE_SPAN:]
    arms = h.arm_of(idx)
    diffs = _within_arm_diffs(arms, y)
    campaign = _diff_noise(diffs) if len(diffs) >= MIN_NOISE_DIFFS else None
    keys = list(zip(arms.tolist(), h.param_keys(idx), strict=True))
    s2, df = _pooled_repeats(keys, y)
    if df >= REPEAT_FULL_DF or (df > 0 and campaign is None):
        return NoiseEstimate(math.sqrt(s2), "repeats", df, len(diffs))
    if df > 0 and campaign is not None:
        f = df / REPEAT_FULL_DF
        blended = math.sqrt(f * s2 + (1 - f) * campaign**2)
        return NoiseEstimate(blended, "repeats+campaign", df, len(diffs))
    if campaign is not None:
        return NoiseEstimate(campaign, "campaign", 0, len(diffs))
    return NoiseEstimate(None, "none", 0, len(diffs))


# --- stagnation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StagnationReading:
    """Result of :func:`stagnation`.

    Attributes:
        stagnant: At least ``2 * window`` completed runs; the last ``window`` did not raise
            the best by more than the bar; the values' trend over the last two windows does
            not count as improvement; and the last ``window`` runs tried more than one config.
        runs_without_improvement: Completed runs since the last credited improvement
            (:func:`credited_improvements`; what ``patience`` and ``hopeless_after`` count).
        best: Best value so far (metric units), None without completed runs.
        improvement: How much the last ``window`` runs raised the raw best (metric units,
            >= 0), None with fewer than ``window + 1`` completed runs.
        distinct_configs: Distinct params among the last ``window`` completed runs.
        reason: One sentence.
        noise: The noise estimate used (metric units), None when unknown.
        threshold: The effective bar ``max(min_delta, improvement_k * noise)`` (metric units).
        trend: The fitted gain per window of the values over the last two windows (metric
            units; positive = better, in either mode), None with fewer than ``2 * window``
            completed runs.
        trend_threshold: What ``trend`` had to exceed to count as improvement (metric units
            per window), None when ``trend`` is None.
    """

    stagnant: bool
    runs_without_improvement: int
    best: float | None
    improvement: float | None
    distinct_configs: int
    reason: str
    noise: float | None = None
    threshold: float = 0.0
    trend: float | None = None
    trend_threshold: float | None = None


def improvement_bar(noise: float | None, thresholds: SignalThresholds) -> float:
    """``max(min_delta, improvement_k * noise)`` (``min_delta`` when the noise is unknown)."""
    if noise is None:
        return float(thresholds.min_delta)
    return max(float(thresholds.min_delta), thresholds.improvement_k * noise)


def credited_improvements(y: np.ndarray, bar: float) -> np.ndarray:
    """Indices of the credited improvements of ``y`` (higher = better), starting with 0.

    The credited best ``c`` starts at ``y[0]``; ``y[j]`` is credited (and becomes ``c``) iff
    ``y[j] > c + bar``. A value within ``bar`` of the credited best never resets it, however
    often it happens, so one lucky value must beat the best by the whole bar to count.

    Args:
        y: Values in finishing order, higher = better, no NaN.
        bar: The margin (>= 0).

    Returns:
        int64 indices, increasing; empty when ``y`` is empty.
    """
    if len(y) == 0:
        return np.empty(0, dtype=np.int64)
    # A credited value beats c + bar >= every value since c, so it is a record of the raw
    # running maximum: scan only those (O(log n) of them for noise around a plateau).
    records = np.flatnonzero(y[1:] > np.maximum.accumulate(y)[:-1]) + 1
    found, c = [0], float(y[0])
    for j, value in zip(records.tolist(), y[records].tolist(), strict=True):
        if value > c + bar:
            found.append(j)
            c = value
    return np.asarray(found, dtype=np.int64)


@dataclass(frozen=True)
class RecentTrend:
    """Result of :func:`recent_trend`.

    Attributes:
        gain: Fitted gain per window over the last ``2 * window`` values (units of ``y``).
        threshold: What ``gain`` must exceed to count as improvement:
            ``max(min_delta, trend_k * noise, TREND_Z * se * window)``.
        se: Standard error of the fitted slope per run.
        span: Values the fit read.
    """

    gain: float
    threshold: float
    se: float
    span: int

    @property
    def improving(self) -> bool:
        """The trend counts as improvement (``gain > threshold``)."""
        return self.gain > self.threshold


def recent_trend(
    y: np.ndarray,
    window: int,
    noise: float | None,
    *,
    min_delta: float = 0.0,
    trend_k: float = TREND_K,
) -> RecentTrend:
    """The slope of the last two windows of ``y`` (higher = better), fitted as a hinge.

    Reads the last ``L = min(len(y), 2 * window + max(2 * window, TREND_LEAD))`` values and
    fits, by least squares, a line that may bend where the last ``2 * window`` values begin
    (``a + b t + d (t - j)_+``, ``j`` the last earlier value): the earlier values fix the
    level the recent slope ``b + d`` starts from, which gives it 1.3-1.5x the power of a
    line through the recent values alone; a curve that flattens (a stall) shows as a recent
    slope near 0. With fewer than two earlier values a plain line is fitted. The scatter is
    ``s = max(noise, residual std)`` (the noise alone without residual degrees of freedom;
    the residual std alone when the noise is unknown), and the trend counts as improvement
    iff the gain per window ``(b + d) * window`` exceeds both ``max(min_delta, trend_k *
    noise)`` (it must be large enough to matter) and ``TREND_Z * se * window`` (and be told
    apart from the scatter).

    Args:
        y: Completed values in finishing order, higher = better, at least 3.
        window: The window (>= 2).
        noise: Run-to-run noise of one evaluation (units of ``y``), None when unknown.
        min_delta: Smallest gain per window that counts.
        trend_k: Noise standard deviations per window the gain must exceed.

    Returns:
        The fitted gain per window and what it had to exceed.
    """
    recent = 2 * window
    x = np.asarray(y[-(recent + max(recent, TREND_LEAD)) :], dtype=np.float64)
    x = x - x.mean()  # same slope; equal values then fit to exactly 0, not a rounding error
    n = len(x)
    t = np.arange(n, dtype=np.float64)
    lead = n - min(recent, n)
    if lead >= 2:
        # columns 1, t, (t - j)+ with j the last earlier value; recent slope = b + d
        design = np.column_stack([np.ones(n), t, np.maximum(t - (lead - 1), 0.0)])
        contrast = np.array([0.0, 1.0, 1.0])
    else:
        design = np.column_stack([np.ones(n), t])
        contrast = np.array([0.0, 1.0])
    gram_inv = np.linalg.inv(design.T @ design)
    coef = gram_inv @ (design.T @ x)
    slope = float(contrast @ coef)
    df = n - design.shape[1]
    residual = x - design @ coef
    spread = math.sqrt(float(residual @ residual) / df) if df > 0 else None
    scales = [v for v in (noise, spread) if v is not None]
    s = max(scales) if scales else 0.0
    se = s * math.sqrt(float(contrast @ gram_inv @ contrast))
    floor = max(min_delta, trend_k * noise) if noise is not None else min_delta
    threshold = max(floor, TREND_Z * se * window)
    return RecentTrend(slope * window, threshold, se, n)


def stagnation(
    history: HistoryLike, thresholds: SignalThresholds | None = None
) -> StagnationReading:
    """Is the search stuck?

    Rule: with ``y`` the completed values in finishing order (higher = better, all arms),
    ``w = window`` and the bar ``b = max(min_delta, improvement_k * noise)`` (``noise`` from
    :func:`estimate_noise`; ``b = min_delta`` while it is unknown), the campaign is stagnant
    iff all of:

    1. at least ``2 * w`` completed runs (on fewer a trend cannot be told from noise);
    2. the last ``w`` values do not beat the best value before them by more than ``b``
       (so one lucky value within the noise does not count as progress);
    3. the values are not still rising: the trend of the last two windows
       (:func:`recent_trend`, a hinge fit over up to ``2 * w + max(2 * w, 16)`` values)
       gains at most ``max(min_delta, trend_k * noise)`` per window, or not more than
       ``TREND_Z`` (1.645) standard errors of itself;
    4. the last ``w`` completed runs used at least two distinct ``params`` (a repeated
       config is not a stagnating search).

    Rule 2 alone is a test repeated after every run: a campaign still improving by 2 noise
    std per window has a flat window somewhere in 64 trials most of the time. Rule 3 is what
    keeps such campaigns going (bench/signals_calibration.py measures both rates).

    ``runs_without_improvement`` counts the completed runs after the last *credited*
    improvement (:func:`credited_improvements`: the credited best moves to ``y[j]`` only when
    ``y[j] > credited best + b``, so a steady gain is credited once it adds up to more than
    ``b``); ``patience`` and ``hopeless_after`` read it.

    Args:
        history: Runs in finishing order.
        thresholds: Uses ``window``, ``min_delta``, ``improvement_k``, ``trend_k`` and
            ``noise``.
    """
    th = thresholds or SignalThresholds()
    h = as_history(history)
    return _stagnation(h, th, estimate_noise(h, th))


def _stagnation(h: History, th: SignalThresholds, noise: NoiseEstimate) -> StagnationReading:
    idx, y = h.oriented()
    n = len(y)
    w = th.window
    bar = improvement_bar(noise.value, th)
    if n == 0:
        return StagnationReading(False, 0, None, None, 0, "no completed run yet", None, bar)
    credits = credited_improvements(y, bar)
    without = n - 1 - int(credits[-1])
    best = float(np.max(y))
    configs = len(set(h.param_keys(idx[-w:])))
    best_metric = _sign(h.mode) * best
    improvement = max(float(best - np.max(y[: n - w])), 0.0) if n > w else None
    trend = None
    if n >= 2 * w:
        trend = recent_trend(y, w, noise.value, min_delta=th.min_delta, trend_k=th.trend_k)

    def reading(stagnant: bool, reason: str) -> StagnationReading:
        return StagnationReading(
            stagnant,
            without,
            best_metric,
            improvement,
            configs,
            reason,
            noise.value,
            bar,
            None if trend is None else trend.gain,
            None if trend is None else trend.threshold,
        )

    if trend is None or improvement is None:
        return reading(
            False, f"{n} completed runs; stagnation needs two windows, 2 x {w} = {2 * w}"
        )
    bar_text = f"the bar {bar:.3g} = max(min_delta {th.min_delta:g}, {th.improvement_k:g} x "
    bar_text += f"{noise.describe()})"
    trend_text = (
        f"their trend over the last {trend.span} completed runs gains {trend.gain:.3g} per "
        f"window of {w} (needed > {trend.threshold:.3g}: max(min_delta, {th.trend_k:g} x "
        f"noise) and {TREND_Z:g} standard errors)"
    )
    if improvement > bar:
        return reading(
            False,
            f"the last {w} completed runs improved the best by {improvement:.3g}, more than "
            f"{bar_text}",
        )
    if trend.improving:
        return reading(False, f"the values are still rising: {trend_text}")
    if configs < 2:
        return reading(
            False,
            f"no improvement over the last {w} completed runs, but they all ran the same "
            "config (not a stagnating search)",
        )
    return reading(
        True,
        f"no improvement of the best ({best_metric:.4g}) by more than {bar_text} in the last "
        f"{w} completed runs ({without} since the last credited one; {configs} distinct "
        f"configs), and the values are not rising: {trend_text}",
    )


# --- drift --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReading:
    """Result of :func:`drift`.

    Attributes:
        drifting: The CUSUM statistic of the latest run's arm exceeds the threshold
            (``statistic > threshold``); equal to ``regression``.
        trend: Always False: there is no separate trend test any more (kept for readers).
        regression: The arm's recent values fell below its own earlier values by more than
            the noise allows (the sequential test fired).
        tau: None (the Kendall trend test was replaced; kept for readers).
        p_value: None (likewise).
        slope: None (likewise).
        gap: The arm's best minus the best of its last ``window`` values (oriented, >= 0),
            None with ``window`` or fewer values in the arm.
        noise: Run-to-run noise (metric units) the values are standardised with.
        reason: One sentence naming the arm.
        arm: The arm tested: the arm of the most recent completed run (``""`` for a history
            without arms), None without completed runs.
        statistic: The one-sided CUSUM statistic after the arm's latest value (noise units),
            None when the test could not run.
        threshold: The alarm threshold ``h`` for ``alpha`` (:func:`drift_threshold`).
    """

    drifting: bool
    trend: bool
    regression: bool
    tau: float | None
    p_value: float | None
    slope: float | None
    gap: float | None
    noise: float | None
    reason: str
    arm: str | None = None
    statistic: float | None = None
    threshold: float | None = None


def drift_threshold(alpha: float) -> float:
    """The CUSUM threshold ``h`` for a campaign-wide false-alarm probability ``alpha``.

    Interpolates :data:`DRIFT_THRESHOLDS` linearly in ``log(alpha)``; clamped outside the
    calibrated range.
    """
    alphas = np.log([a for a, _ in DRIFT_THRESHOLDS])
    hs = np.array([h for _, h in DRIFT_THRESHOLDS])
    return float(np.interp(math.log(alpha), alphas, hs))


def cusum_drop(
    x: np.ndarray,
    sigma: float,
    allowance: float,
    *,
    ref_span: int = DRIFT_REF_SPAN,
    clip: float = DRIFT_CLIP,
) -> float:
    """One-sided CUSUM statistic for a drop, after the last of ``x`` (higher = better).

    For ``t >= 1``, with ``r_t`` the mean of the up to ``ref_span`` values before ``x[t]`` and
    ``m_t`` their count, the innovation is ``u_t = (x[t] - r_t) / (sigma * sqrt(1 + 1/m_t))``
    (standard normal for iid Gaussian values of standard deviation ``sigma``), and
    ``S_t = max(0, S_{t-1} - clip(u_t, -clip, clip) - allowance)``, ``S_0 = 0``.

    Args:
        x: The arm's values in finishing order.
        sigma: Noise standard deviation (> 0).
        allowance: Drop per run (noise units) that does not accumulate.
        ref_span: Most previous values in the reference mean.
        clip: Bound of the standardised innovations.

    Returns:
        ``S`` after the last value (0 with fewer than two values).
    """
    m = len(x)
    if m < 2:
        return 0.0
    c = np.concatenate([[0.0], np.cumsum(x)])
    t = np.arange(1, m)
    lo = np.maximum(0, t - ref_span)
    count = t - lo
    ref = (c[t] - c[lo]) / count
    u = (x[t] - ref) / (sigma * np.sqrt(1.0 + 1.0 / count))
    g = np.cumsum(-np.clip(u, -clip, clip) - allowance)
    return float(g[-1] - min(0.0, float(g.min())))


def _arm_name(arm: str) -> str:
    return f"arm {arm!r}" if arm else "the campaign (a history without arms)"


def drift(history: HistoryLike, thresholds: SignalThresholds | None = None) -> DriftReading:
    """Is the latest run's arm getting worse than it was?

    A one-sided CUSUM (:func:`cusum_drop`) over the completed values of the arm of the most
    recent completed run, in their order (higher = better), standardised by the noise
    ``sigma`` of :func:`estimate_noise`: each value is compared with the mean of the arm's
    up to ``DRIFT_REF_SPAN`` (32) values before it, innovations are clipped to
    ``+-DRIFT_CLIP`` (3) and the allowance is ``max(DRIFT_ALLOWANCE (0.75), min_delta /
    sigma)`` noise std per run. The arm drifts iff it has at least ``DRIFT_MIN_RUNS`` (4)
    completed values, ``sigma > 0`` is known, and the statistic after its latest value
    exceeds ``h = drift_threshold(alpha)``, the threshold at which a stationary 64-run
    campaign read after every run raises an alarm at any point with probability ``alpha``.

    Other arms are not compared: a new arm that is weaker than the base arm is not drift.

    Args:
        history: Runs in finishing order.
        thresholds: Uses ``window`` (for ``gap``), ``min_delta``, ``alpha`` and ``noise``.
    """
    th = thresholds or SignalThresholds()
    h = as_history(history)
    return _drift(h, th, estimate_noise(h, th))


def _drift(h: History, th: SignalThresholds, noise: NoiseEstimate) -> DriftReading:
    idx, y = h.oriented()
    threshold = drift_threshold(th.alpha)

    def reading(
        arm: str | None,
        reason: str,
        *,
        regression: bool = False,
        gap: float | None = None,
        statistic: float | None = None,
    ) -> DriftReading:
        return DriftReading(
            drifting=regression,
            trend=False,
            regression=regression,
            tau=None,
            p_value=None,
            slope=None,
            gap=gap,
            noise=noise.value,
            reason=reason,
            arm=arm,
            statistic=statistic,
            threshold=threshold,
        )

    if len(y) == 0:
        return reading(None, f"0 completed runs; drift needs {DRIFT_MIN_RUNS} in one arm")
    arms = h.arm_of(idx)
    arm = str(arms[-1])
    x = y[arms == arm] if h.arms is not None else y
    name = _arm_name(arm)
    gap = float(np.max(x) - np.max(x[-th.window :])) if len(x) > th.window else None
    if len(x) < DRIFT_MIN_RUNS:
        return reading(arm, f"{len(x)} completed runs in {name}; drift needs {DRIFT_MIN_RUNS}")
    sigma = noise.value
    if sigma is None:
        return reading(arm, f"no drift test for {name} yet: {noise.describe()}", gap=gap)
    if sigma == 0.0:
        return reading(arm, f"no drift in {name}: the values do not vary", gap=gap, statistic=0.0)
    allowance = max(DRIFT_ALLOWANCE, th.min_delta / sigma)
    s = cusum_drop(x, sigma, allowance)
    if s > threshold:
        reason = (
            f"{name} is getting worse: its last values fell below its earlier ones (CUSUM "
            f"{s:.1f} > {threshold:.1f} for alpha {th.alpha:g}; {noise.describe()})"
        )
        return reading(arm, reason, regression=True, gap=gap, statistic=s)
    reason = (
        f"no drift in {name} (CUSUM {s:.1f} <= {threshold:.1f} for alpha {th.alpha:g}; "
        f"{noise.describe()})"
    )
    return reading(arm, reason, gap=gap, statistic=s)


# --- recommendation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """Result of :func:`recommend`.

    Attributes:
        action: ``continue``, ``change_lr``, ``change_model`` or ``stop``.
        reasons: Why, as text (the rule that fired first, then supporting facts).
        drift: The drift reading it used.
        stagnation: The stagnation reading it used.
    """

    action: RecommendationAction
    reasons: list[str] = field(default_factory=list)
    drift: DriftReading | None = None
    stagnation: StagnationReading | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return dataclasses.asdict(self)


def _status_mask(statuses: np.ndarray, wanted: frozenset[str]) -> np.ndarray:
    mask = np.zeros(len(statuses), dtype=bool)
    for status in wanted:  # a few == on an object array beat np.isin's sort
        mask |= statuses == status
    return mask


def _lr_values(h: History, indices: np.ndarray, keys: tuple[str, ...]) -> set[float]:
    found: set[float] = set()
    for i in indices:
        for name, value in h.param_dict(int(i)).items():
            if name.rsplit(".", 1)[-1] in keys and isinstance(value, int | float):
                found.add(float(value))
    return found


def recommend(history: HistoryLike, thresholds: SignalThresholds | None = None) -> Recommendation:
    """What the search should do next. Rules, in order; the first that holds decides:

    1. ``stop``, target reached: ``target`` is set and the best completed value reaches it
       (``>=`` for max, ``<=`` for min).
    2. ``stop``, budget spent: runs that trained (completed, failed, diverged, pruned) >=
       ``budget``, or summed ``duration_s`` >= ``time_budget_s``, or summed LLM tokens >=
       ``token_budget``.
    3. ``stop``, hopeless: at least ``window`` runs were attempted (all but ``rejected``)
       and none completed; or ``hopeless_after`` is set and ``runs_without_improvement``
       (:func:`stagnation`) >= ``hopeless_after``.
    4. ``change_model``: :func:`stagnation` is stagnant and ``runs_without_improvement >=
       patience * window`` (patience exhausted; whatever the learning rates tried).
    5. ``change_lr`` (keep tuning): stagnant with patience not exhausted (the reason says
       how many more stagnant runs until a model change); or :func:`drift` reports drift in
       the latest run's arm (the reason names the arm); or at least ``diverge_fraction`` of
       the last ``window`` attempted runs diverged.
    6. ``continue``.

    Args:
        history: Runs in finishing order (all statuses).
        thresholds: The campaign's thresholds (defaults: :class:`SignalThresholds`).

    Returns:
        The action with its reasons and the readings behind it.
    """
    th = thresholds or SignalThresholds()
    h = as_history(history)
    noise = estimate_noise(h, th)
    st = _stagnation(h, th, noise)
    dr = _drift(h, th, noise)
    drift_note = f"drift: {dr.reason}" if dr.drifting else ""

    def done(action: RecommendationAction, *reasons: str) -> Recommendation:
        return Recommendation(action, [r for r in reasons if r], dr, st)

    completed_idx, _ = h.oriented()
    # 1. target
    if th.target is not None and st.best is not None:
        reached = st.best >= th.target if h.mode == "max" else st.best <= th.target
        if reached:
            return done("stop", f"target reached: best {st.best:.4g} vs target {th.target:g}")
    # 2. budget
    trained = int(_status_mask(h.statuses, TRAINED_STATUSES).sum())
    if th.budget is not None and trained >= th.budget:
        return done("stop", f"budget spent: {trained} runs trained (budget {th.budget})")
    spent_s = float(np.nansum(h.durations))
    if th.time_budget_s is not None and spent_s >= th.time_budget_s:
        return done(
            "stop", f"time budget spent: {spent_s:.0f} s of {th.time_budget_s:.0f} s trained"
        )
    tokens = int(h.tokens.sum())
    if th.token_budget is not None and tokens >= th.token_budget:
        return done("stop", f"token budget spent: {tokens} of {th.token_budget} tokens")
    # 3. hopeless
    attempted = np.flatnonzero(_status_mask(h.statuses, ATTEMPTED_STATUSES))
    if len(attempted) >= th.window and len(completed_idx) == 0:
        return done("stop", f"hopeless: {len(attempted)} runs attempted and none completed")
    if th.hopeless_after is not None and st.runs_without_improvement >= th.hopeless_after:
        return done(
            "stop",
            f"hopeless: {st.runs_without_improvement} completed runs without improving the "
            f"best by more than {st.threshold:.3g} (hopeless_after {th.hopeless_after})",
        )
    # 4. change_model
    needed = th.patience * th.window
    if st.stagnant and st.runs_without_improvement >= needed:
        return done(
            "change_model",
            f"stagnant: {st.reason}",
            f"patience exhausted ({st.runs_without_improvement} >= patience {th.patience} x "
            f"window {th.window})",
            drift_note,
        )
    # 5. change_lr
    if st.stagnant:
        lrs = _lr_values(h, completed_idx[-th.window :], th.lr_keys)
        left = needed - st.runs_without_improvement
        return done(
            "change_lr",
            f"stagnant: {st.reason}",
            f"{left} more stagnant completed run{'s' if left != 1 else ''} until a model "
            f"change (patience {th.patience} x window {th.window} = {needed}); keep tuning "
            f"({len(lrs)} learning rate value{'s' if len(lrs) != 1 else ''} in the last "
            f"{th.window} runs)",
            drift_note,
        )
    if dr.drifting:
        return done("change_lr", f"drift: {dr.reason}")  # the reason names the arm
    recent = attempted[-th.window :]
    if len(recent):
        diverged = int((h.statuses[recent] == "diverged").sum())
        if diverged / len(recent) >= th.diverge_fraction and diverged > 0:
            return done(
                "change_lr",
                f"{diverged} of the last {len(recent)} attempted runs diverged "
                f"(>= {th.diverge_fraction:.0%}): the learning rate is likely too high",
            )
    # 6. continue
    return done("continue", st.reason, dr.reason)
