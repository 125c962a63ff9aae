"""The arm-choice bandit: Thompson sampling on each arm's top-k mean (see `search.arms`).

Each arm with values gets one draw from a normal centred on the mean of its best `top_k`
values with standard deviation `noise / sqrt(m)` (`m` values in that mean); the best draw wins.
Centring on the top-k mean, not the single best value, is what keeps one lucky value from
locking a campaign in; the draws give an arm close to the leader trials in proportion to how
likely it is to be better.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from feedback.signals import pooled_variance

if TYPE_CHECKING:
    from search.arms import Arm

__all__ = ["pooled_within_sd", "thompson_pick", "top_k_mean"]


def top_k_mean(values: Sequence[float], k: int, mode: str) -> tuple[float, int]:
    """Mean of the best `k` of `values` (fewer when there are fewer) and how many it used."""
    best = sorted(values, reverse=mode == "max")[:k]
    return sum(best) / len(best), len(best)


def pooled_within_sd(groups: Iterable[Sequence[float]]) -> float | None:
    """Pooled within-group standard deviation (`feedback.signals.pooled_variance`), or None
    with no group of two or more values."""
    variance, df = pooled_variance(groups)
    return math.sqrt(variance) if df else None


def thompson_pick(
    candidates: Sequence[Arm],
    all_arms: Iterable[Arm],
    *,
    mode: str,
    top_k: int,
    noise: float | None,
    rng: random.Random,
) -> Arm | None:
    """The candidate with the best draw around its top-k mean, or None before any value.

    Args:
        candidates: the arms that may be chosen (active ones).
        all_arms: every arm, retired ones too: the noise estimate pools them all.
        mode: ``max`` or ``min``.
        top_k: how many of an arm's best values the draw is centred on.
        noise: one evaluation's standard deviation; None estimates it (pooled within-arm
            standard deviation). Until some arm has two values there is no spread to draw
            with, and the best mean wins.
        rng: the registry's seeded generator.
    """
    with_values = [a for a in candidates if a.values]
    if not with_values:
        return None
    if noise is None:
        noise = pooled_within_sd([a.values for a in all_arms]) or 0.0
    best: Arm | None = None
    best_draw = 0.0
    for arm in with_values:
        mean, m = top_k_mean(arm.values, top_k, mode)
        draw = rng.gauss(mean, noise / math.sqrt(m))
        if best is None or (draw > best_draw if mode == "max" else draw < best_draw):
            best, best_draw = arm, draw
    return best
