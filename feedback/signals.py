"""Signals read from a campaign's history: drift, stagnation and a recommendation.

Each signal is a pure function of a history (runs in the order they finished) and a
:class:`SignalThresholds`; same input, same output. A history is a :class:`History`, a
``pyarrow.Table`` from :meth:`feedback.FeedbackStore.table`, or a sequence of
:class:`feedback.RunRecord`. Values are oriented internally so that higher is better
(``mode="min"`` values are negated); readings report them in the metric's own units.

Only ``completed`` runs carry values. Cost is O(n) in numpy plus constant work on the last
few windows, so signals over 100,000 runs take milliseconds.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa

from ._errors import FeedbackError
from ._records import RunRecord

__all__ = [
    "DriftReading",
    "History",
    "Recommendation",
    "RecommendationAction",
    "SignalThresholds",
    "StagnationReading",
    "drift",
    "recommend",
    "stagnation",
]

RecommendationAction = Literal["continue", "change_lr", "change_model", "stop"]

#: Statuses of runs that used training compute (what ``budget`` counts).
TRAINED_STATUSES = frozenset({"completed", "failed", "diverged", "pruned"})
#: Statuses of runs that were attempted (everything but approval rejections).
ATTEMPTED_STATUSES = TRAINED_STATUSES | {"infeasible"}


@dataclass(frozen=True)
class SignalThresholds:
    """Thresholds of the signals; the campaign goal fills them.

    Attributes:
        window: Completed runs per window: stagnation looks at the last ``window`` completed
            runs, the drift trend at the last ``2 * window``, the regression check compares
            the last ``window`` with the ``4 * window`` before them.
        min_delta: Smallest change of the metric (in its units) that counts: the running best
            must improve by more than this, and a drift must lose more than this.
        patience: Stagnant stretches of ``window`` runs tolerated before changing the model
            even if the learning rate was never varied (``patience * window`` runs).
        target: Stop once the best value reaches this (``>=`` for max, ``<=`` for min).
        budget: Stop once this many runs have trained (completed, failed, diverged, pruned).
        time_budget_s: Stop once the runs' summed duration reaches this many seconds.
        token_budget: Stop once the runs' summed LLM tokens (in + out) reach this.
        hopeless_after: Stop once this many completed runs in a row did not improve the best
            by more than ``min_delta`` (None: never for this reason).
        alpha: Significance level of the drift tests (Kendall's tau, Mann-Whitney U).
        noise_k: A regression from the best must exceed ``noise_k`` times the run-to-run noise.
        diverge_fraction: Recommend ``change_lr`` when at least this fraction of the last
            ``window`` attempted runs diverged.
        lr_keys: Parameter names (last dotted component) that are learning rates.
    """

    window: int = 10
    min_delta: float = 0.0
    patience: int = 2
    target: float | None = None
    budget: int | None = None
    time_budget_s: float | None = None
    token_budget: int | None = None
    hopeless_after: int | None = None
    alpha: float = 0.01
    noise_k: float = 3.0
    diverge_fraction: float = 0.5
    lr_keys: tuple[str, ...] = ("lr", "learning_rate")

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
            if not (isinstance(value, int | float) and low < value <= high):
                raise FeedbackError(f"{name} must be in ({low}, {high}], but got {value!r}.")
        for name in ("min_delta", "noise_k"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise FeedbackError(f"{name} must be a finite number >= 0, but got {value!r}.")
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
    """

    mode: str
    values: np.ndarray
    statuses: np.ndarray
    params: Sequence[Any]
    durations: np.ndarray
    tokens: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table, mode: str | None = None) -> History:
        """From a runs table (:meth:`feedback.FeedbackStore.table`)."""
        statuses = np.asarray(table["status"].to_numpy(zero_copy_only=False), dtype=object)
        values = table["value"].to_numpy(zero_copy_only=False).astype(np.float64)
        values = np.where(statuses == "completed", values, np.nan)
        modes = table["mode"].unique().to_pylist() if table.num_rows else []
        tokens = (
            table["tokens_in"].to_numpy(zero_copy_only=False)
            + table["tokens_out"].to_numpy(zero_copy_only=False)
        ).astype(np.int64)
        return cls(
            mode=_one_mode(modes, mode),
            values=values,
            statuses=statuses,
            params=table["params"],
            durations=table["duration_s"].to_numpy(zero_copy_only=False).astype(np.float64),
            tokens=tokens,
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
        )

    def oriented(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices of completed runs, their values with higher = better)."""
        idx = np.flatnonzero(~np.isnan(self.values))
        vals = self.values[idx]
        return idx, (vals if self.mode == "max" else -vals)

    def param_dict(self, i: int) -> dict[str, Any]:
        """The params of run ``i`` as a dict."""
        item = self.params[i]
        if isinstance(item, pa.Scalar):
            item = item.as_py()
        if isinstance(item, str):
            loaded = json.loads(item)
            return loaded if isinstance(loaded, dict) else {}
        return dict(item) if isinstance(item, Mapping) else {}


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


# --- stagnation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StagnationReading:
    """Result of :func:`stagnation`.

    Attributes:
        stagnant: The running best improved by at most ``min_delta`` over the last ``window``
            completed runs, and those runs tried more than one config.
        runs_without_improvement: Completed runs since the running best last improved by
            more than ``min_delta`` (counted against the best as it stands now).
        best: Best value so far (metric units), None without completed runs.
        improvement: How much the last ``window`` runs improved the best (metric units,
            >= 0), None with fewer than ``window + 1`` completed runs.
        distinct_configs: Distinct params among the last ``window`` completed runs.
        reason: One sentence.
    """

    stagnant: bool
    runs_without_improvement: int
    best: float | None
    improvement: float | None
    distinct_configs: int
    reason: str


def stagnation(
    history: HistoryLike, thresholds: SignalThresholds | None = None
) -> StagnationReading:
    """Is the search stuck?

    Rule: with ``y`` the completed values (higher = better) and ``m`` their running maximum,
    the campaign is stagnant iff there are at least ``window + 1`` completed runs,
    ``m[-1] - m[-window - 1] <= min_delta`` (the last ``window`` runs did not raise the best
    by more than ``min_delta``), and those ``window`` runs used at least two distinct
    ``params`` (the configs were changed; a repeated config is not a stagnating search).
    ``runs_without_improvement`` is the largest ``k`` with ``m[-1] - m[-k - 1] <= min_delta``.

    Args:
        history: Runs in finishing order.
        thresholds: Uses ``window`` and ``min_delta``.
    """
    th = thresholds or SignalThresholds()
    h = as_history(history)
    idx, y = h.oriented()
    n = len(y)
    if n == 0:
        return StagnationReading(False, 0, None, None, 0, "no completed run yet")
    running = np.maximum.accumulate(y)
    best = float(running[-1])
    # m is non-decreasing: the first position within min_delta of the final best.
    first_close = int(np.searchsorted(running, best - th.min_delta, side="left"))
    without = n - 1 - first_close
    recent = idx[-th.window :]
    configs = {json.dumps(h.param_dict(int(i)), sort_keys=True) for i in recent}
    best_metric = _sign(h.mode) * best
    if n < th.window + 1:
        return StagnationReading(
            False,
            without,
            best_metric,
            None,
            len(configs),
            f"{n} completed runs; stagnation needs window + 1 = {th.window + 1}",
        )
    improvement = float(best - running[-th.window - 1])
    if improvement > th.min_delta:
        reason = (
            f"the last {th.window} completed runs improved the best by {improvement:.4g} "
            f"(> min_delta {th.min_delta:g})"
        )
        return StagnationReading(False, without, best_metric, improvement, len(configs), reason)
    if len(configs) < 2:
        reason = (
            f"no improvement over the last {th.window} completed runs, but they all ran the "
            "same config (not a stagnating search)"
        )
        return StagnationReading(False, without, best_metric, improvement, 1, reason)
    reason = (
        f"no improvement of the best ({best_metric:.4g}) by more than {th.min_delta:g} for "
        f"{without} completed runs ({len(configs)} distinct configs in the last {th.window})"
    )
    return StagnationReading(True, without, best_metric, improvement, len(configs), reason)


# --- drift --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReading:
    """Result of :func:`drift`.

    Attributes:
        drifting: ``trend or regression``.
        trend: Recent runs show a significant degrading trend.
        regression: The recent window fell below the best by more than the noise allows.
        tau: Kendall's tau of the last ``2 * window`` values (oriented: negative = getting
            worse) against their order, None with too few runs.
        p_value: One-sided p-value of that tau (degrading direction).
        slope: Theil-Sen slope of the metric per run over the same values (metric units).
        gap: Best value minus the best of the last ``window`` runs (oriented, >= 0).
        noise: Robust run-to-run noise (metric units) the gap is compared with.
        reason: One sentence.
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


def drift(history: HistoryLike, thresholds: SignalThresholds | None = None) -> DriftReading:
    """Are recent runs getting worse than earlier ones?

    With ``y`` the completed values (higher = better) and ``w = window``:

    * **trend**: over the last ``2w`` values (at least ``max(6, w)`` needed), Kendall's tau
      against run order is negative with one-sided p < ``alpha``
      (``scipy.stats.kendalltau``), and the Theil-Sen line (``scipy.stats.theilslopes``)
      loses more than ``max(min_delta, noise)`` across those runs.
    * **regression from the best**: needs ``2w`` values; the best of the last ``w`` values is
      below the best so far by more than ``min_delta + noise_k * noise``, and a one-sided
      Mann-Whitney U test (``scipy.stats.mannwhitneyu``) finds the last ``w`` values lower
      than the up to ``4w`` before them (p < ``alpha``).

    ``noise`` is the run-to-run noise: the normal-consistent median absolute deviation of
    successive differences over the last ``5w`` values, divided by sqrt(2). Differences
    cancel slow trends and the median ignores single jumps, so a plateau of noisy runs is
    not mistaken for drift; comparing the *best* of the recent window (not its median) with
    the best so far keeps the bias of the maximum of many noisy runs out of the test.

    Args:
        history: Runs in finishing order.
        thresholds: Uses ``window``, ``min_delta``, ``alpha`` and ``noise_k``.
    """
    from scipy import stats  # imported here: scipy.stats takes ~0.5 s to import

    th = thresholds or SignalThresholds()
    h = as_history(history)
    _, y = h.oriented()
    w = th.window
    sign = _sign(h.mode)
    need = max(6, w)
    if len(y) < need:
        return DriftReading(
            False,
            False,
            False,
            None,
            None,
            None,
            None,
            None,
            f"{len(y)} completed runs; drift needs {need}",
        )
    span = y[-5 * w :]
    noise = float(stats.median_abs_deviation(np.diff(span), scale="normal") / math.sqrt(2))
    recent = y[-2 * w :]
    order = np.arange(len(recent), dtype=float)
    if np.ptp(recent) == 0:
        tau, p_value, slope = 0.0, 1.0, 0.0
    else:
        res = stats.kendalltau(order, recent, alternative="less")
        tau, p_value = float(res.statistic), float(res.pvalue)
        slope = float(stats.theilslopes(recent, order).slope)
    loss = -slope * (len(recent) - 1)
    trend = p_value < th.alpha and loss > max(th.min_delta, noise)

    regression = False
    gap: float | None = None
    if len(y) >= 2 * w:
        gap = float(np.max(y) - np.max(y[-w:]))
        if gap > th.min_delta + th.noise_k * noise:
            earlier = y[-5 * w : -w]
            if np.ptp(np.concatenate([earlier, y[-w:]])) > 0:
                mw = stats.mannwhitneyu(y[-w:], earlier, alternative="less")
                regression = float(mw.pvalue) < th.alpha
    parts = []
    if trend:
        parts.append(
            f"degrading trend over the last {len(recent)} completed runs (Kendall tau "
            f"{tau:.2f}, p={p_value:.2g}; Theil-Sen {sign * slope:+.3g} per run)"
        )
    if regression and gap is not None:
        parts.append(
            f"the last {w} runs' best is {gap:.3g} below the best so far "
            f"(> {th.noise_k:g} x noise {noise:.3g} + min_delta), confirmed by Mann-Whitney U"
        )
    reason = "; ".join(parts) or (
        f"no drift (Kendall tau {tau:.2f}, p={p_value:.2g}; gap to best "
        f"{'n/a' if gap is None else f'{gap:.3g}'} vs noise {noise:.3g})"
    )
    return DriftReading(
        drifting=trend or regression,
        trend=trend,
        regression=regression,
        tau=tau,
        p_value=p_value,
        slope=sign * slope,
        gap=gap,
        noise=noise,
        reason=reason,
    )


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
       and none completed; or ``hopeless_after`` is set and that many completed runs in a
       row did not improve the best by more than ``min_delta``.
    4. ``change_model``: :func:`stagnation` is stagnant, and either the learning rate was
       already varied (at least two distinct values of a param named in ``lr_keys`` among the
       last ``window`` completed runs) or the stagnation has lasted ``patience * window``
       completed runs.
    5. ``change_lr``: stagnant (with the learning rate not yet varied); or :func:`drift`
       reports drift; or at least ``diverge_fraction`` of the last ``window`` attempted runs
       diverged.
    6. ``continue``.

    Args:
        history: Runs in finishing order (all statuses).
        thresholds: The campaign's thresholds (defaults: :class:`SignalThresholds`).

    Returns:
        The action with its reasons and the readings behind it.
    """
    th = thresholds or SignalThresholds()
    h = as_history(history)
    st = stagnation(h, th)
    dr = drift(h, th)

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
            f"best by more than {th.min_delta:g} (hopeless_after {th.hopeless_after})",
        )
    # 4. change_model
    lrs = _lr_values(h, completed_idx[-th.window :], th.lr_keys) if st.stagnant else set()
    if st.stagnant and len(lrs) >= 2:
        return done(
            "change_model",
            f"stagnant: {st.reason}",
            f"the learning rate was already varied ({len(lrs)} values in the last "
            f"{th.window} runs)",
            f"drift: {dr.reason}" if dr.drifting else "",
        )
    if st.stagnant and st.runs_without_improvement >= th.patience * th.window:
        return done(
            "change_model",
            f"stagnant: {st.reason}",
            f"patience exhausted ({st.runs_without_improvement} >= patience {th.patience} x "
            f"window {th.window})",
            f"drift: {dr.reason}" if dr.drifting else "",
        )
    # 5. change_lr
    if st.stagnant:
        return done(
            "change_lr",
            f"stagnant: {st.reason}",
            "the learning rate has not been varied yet",
            f"drift: {dr.reason}" if dr.drifting else "",
        )
    if dr.drifting:
        return done("change_lr", f"drift: {dr.reason}")
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
