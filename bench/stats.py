"""Paired comparisons for benchmarks: ratios of two methods measured on the same seeds.

A ratio from one run holds on a noisy machine and across problems of different scale, so
every comparison of the suite is the geometric mean of per-seed ratios, with a t interval
on the log ratios (paired: seed s of method A against seed s of method B).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


@dataclass(frozen=True)
class PairedRatio:
    """The paired ratio A/B over seeds.

    Attributes:
        n: number of seeds (pairs).
        ratio: geometric mean of the per-seed ratios a_s / b_s.
        low: lower end of its 95 % interval (None with fewer than 2 pairs).
        high: upper end (None with fewer than 2 pairs).
        share_better: share of seeds where a_s < b_s (A better when lower is better).
        share_worse: share of seeds where a_s > b_s.
    """

    n: int
    ratio: float
    low: float | None
    high: float | None
    share_better: float
    share_worse: float

    @property
    def verdict(self) -> str:
        """ "better" (interval entirely below 1), "worse" (entirely above), else "tie"."""
        if self.high is not None and self.high < 1.0:
            return "better"
        if self.low is not None and self.low > 1.0:
            return "worse"
        return "tie"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the verdict."""
        return asdict(self) | {"verdict": self.verdict}


def paired_ratio(
    a: ArrayLike, b: ArrayLike, *, floor: float = 1e-12, confidence: float = 0.95
) -> PairedRatio:
    """Geometric-mean ratio of `a` to `b` over pairs, with a t interval on the log ratios.

    Args:
        a: per-seed values of method A (e.g. final regret), lower is better.
        b: per-seed values of method B, same seeds in the same order.
        floor: values below it are raised to it before taking logs (a regret of exactly 0
            would give an infinite log ratio); choose it below any difference that matters.
        confidence: coverage of the interval.

    Raises:
        ValueError: `a` and `b` differ in length, are empty, or hold a NaN or a negative value.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(
            f"paired_ratio needs two equally long, non-empty 1-D sequences; got {x.shape} and "
            f"{y.shape}. Pass one value per seed for each method."
        )
    if np.isnan(x).any() or np.isnan(y).any() or (x < 0).any() or (y < 0).any():
        raise ValueError(
            "paired_ratio takes non-negative, non-NaN values (regrets, latencies); got "
            f"a={x.tolist()}, b={y.tolist()}."
        )
    d = np.log(np.maximum(x, floor)) - np.log(np.maximum(y, floor))
    mean = float(d.mean())
    low = high = None
    if d.size >= 2:
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1)) * sd / math.sqrt(d.size)
        low, high = math.exp(mean - half), math.exp(mean + half)
    return PairedRatio(
        n=int(d.size),
        ratio=math.exp(mean),
        low=low,
        high=high,
        share_better=float(np.mean(x < y)),
        share_worse=float(np.mean(x > y)),
    )


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> dict[str, Any]:
    """Mean of a_s - b_s over pairs with a t interval.

    Returns:
        ``n``, ``mean`` (None without pairs), ``low`` and ``high`` (None with fewer than 2
        pairs), and ``verdict``: "higher"/"lower" when the interval excludes 0, else "tie".
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(d.mean()) if d.size else None
    low = high = None
    if mean is not None and d.size >= 2:
        half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1)) * float(d.std(ddof=1))
        half /= math.sqrt(d.size)
        low, high = mean - half, mean + half
    verdict = "tie"
    if low is not None and high is not None and (low > 0 or high < 0):
        verdict = "higher" if low > 0 else "lower"
    return {"n": int(d.size), "mean": mean, "low": low, "high": high, "verdict": verdict}


def median_p95(values: Sequence[float]) -> dict[str, float]:
    """Median, 95th percentile (nearest rank) and maximum of `values`.

    Raises:
        ValueError: `values` is empty.
    """
    if not values:
        raise ValueError("median_p95 needs at least one value; got none.")
    ordered = sorted(values)
    return {
        "median": float(np.median(ordered)),
        "p95": float(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]),
        "max": float(ordered[-1]),
    }
