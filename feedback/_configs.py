"""Configurations evaluated more than once: the best one by its mean, not by one lucky value.

A *configuration* is an arm plus the parameters Optuna chose (the store's ``arm`` and
``params``); its runs differ only in their seed (``RunRecord.seed``). A campaign with
``repeats`` re-evaluates its incumbent with other seeds, so a single lucky validation value
(the winner's curse: the best of many noisy values is biased upwards) cannot stay the
campaign's best unless its repeats confirm it. With every configuration run once, the mean is
the value and the ranking is the ranking of the runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._records import RunRecord

__all__ = ["ConfigResult", "config_key", "params_key", "rank_configs"]


def params_key(params: Mapping[str, Any]) -> str:
    """Canonical JSON of a run's parameters (sorted keys, compact; other types as str)."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)


def config_key(record: RunRecord) -> tuple[str, str]:
    """(arm, `params_key` of params): the identity repeated evaluations share."""
    return record.arm, params_key(record.params)


@dataclass(frozen=True)
class ConfigResult:
    """One configuration's completed evaluations.

    Attributes:
        runs: its completed runs in the order given (at least one).
        mean: mean of their values.
        sd: their sample standard deviation (None with one run).
        best_run: the run with the best value (the representative checkpoint).
    """

    runs: tuple[RunRecord, ...]
    mean: float
    sd: float | None
    best_run: RunRecord

    @property
    def n(self) -> int:
        """How many times the configuration was evaluated."""
        return len(self.runs)

    @property
    def first_run(self) -> RunRecord:
        """Its first evaluation (the one the searcher chose; the others are repeats)."""
        return self.runs[0]

    def describe(self) -> str:
        """E.g. ``0.741 (mean of 3, sd 0.012)`` or ``0.741 (1 run)``."""
        if self.sd is None:
            return f"{self.mean:.4g} (1 run)"
        return f"{self.mean:.4g} (mean of {self.n}, sd {self.sd:.2g})"


def _result(runs: Sequence[RunRecord], mode: str) -> ConfigResult:
    values = [float(r.value) for r in runs if r.value is not None]
    mean = math.fsum(values) / len(values)
    sd = None
    if len(values) >= 2:
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    pick = max if mode == "max" else min
    best_run = pick(runs, key=lambda r: float(r.value))  # type: ignore[arg-type]
    return ConfigResult(runs=tuple(runs), mean=mean, sd=sd, best_run=best_run)


def rank_configs(records: Iterable[RunRecord], mode: str) -> list[ConfigResult]:
    """Completed runs grouped into configurations, best mean first.

    Args:
        records: runs of one metric and mode (other statuses and runs without a value are
            ignored).
        mode: ``max`` or ``min``.

    Returns:
        One entry per configuration; ties keep the order of their first run (earliest
        first), as `FeedbackStore.best` does for runs.

    Raises:
        ValueError: ``mode`` is not ``max`` or ``min``.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"`mode` must be 'max' or 'min', got {mode!r}.")
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        if r.status == "completed" and r.value is not None and math.isfinite(r.value):
            groups.setdefault(config_key(r), []).append(r)
    results = [_result(runs, mode) for runs in groups.values()]
    sign = -1.0 if mode == "max" else 1.0
    return sorted(results, key=lambda c: sign * c.mean)  # sorted() is stable: earliest first
