"""Re-evaluating incumbents with other seeds (the goal's ``repeats``).

The best of many noisy single-seed values is biased upwards (the winner's curse): on the
quick ECG goal one config's validation macro-F1 moves by 0.02-0.03 from seed to seed, about
the gain a campaign's tuning finds. With ``repeats = r``, each completed trial whose value
beats the best configuration's *mean* queues `r` more evaluations of the same arm and
parameters, trained with seeds ``seed + 1 .. seed + r`` (its own seed is the config's, 0 by
default); they run before any other trial (`ArmRegistry.select`, step 0). The campaign's best
configuration is then the one with the best mean over its evaluations
(`feedback.rank_configs`, `FeedbackStore.best_config`), and the repeats give the signals a
measured noise (`feedback.estimate_noise` pools them).

Repeats are trials like any other: they count towards the budget and are told to the arm's
study (the Gaussian-process sampler models noisy values). They need the campaign trainable,
which trains with the seed the reserved ``agentune`` entry names.

The planner also keeps the seeds each configuration has trained with, so no configuration
trains twice with one seed: training is seeded and deterministic, so that trial would only
reproduce a value already known. Samplers do suggest a point again (the Gaussian-process
sampler returns to a corner of the box it believes in: 1-2 trials per quick ECG campaign
were such copies), and `fresh_seed` gives the copy the configuration's next unused
seed, which turns it into one more evaluation of the configuration's mean.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from feedback import params_key
from search.arms import Arm, ArmRegistry

__all__ = ["RepeatPlanner"]

logger = logging.getLogger(__name__)


class RepeatPlanner:
    """Tracks each configuration's values and queues repeats of new incumbents.

    Args:
        repeats: extra evaluations of each new incumbent (0: off).
        mode: ``max`` or ``min``.

    Raises:
        ValueError: `repeats` is negative or `mode` unknown.
    """

    def __init__(self, repeats: int, mode: str) -> None:
        if repeats < 0:
            raise ValueError(f"`repeats` must be >= 0, got {repeats}.")
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max', got {mode!r}.")
        self.repeats = repeats
        self.mode = mode
        self.values: dict[tuple[str, str], list[float]] = {}
        # the seeds each configuration has trained with, is training with or is queued to
        # (a trial without a seed of its own trains with the config's, counted as 0)
        self.seeds: dict[tuple[str, str], set[int]] = {}

    def best_mean(self) -> float | None:
        """The best configuration's mean value so far, or None before any value."""
        means = [sum(v) / len(v) for v in self.values.values() if v]
        if not means:
            return None
        return max(means) if self.mode == "max" else min(means)

    def observe(
        self,
        registry: ArmRegistry,
        arm: Arm,
        params: Mapping[str, Any],
        value: float,
        *,
        origin: str,
        seed: int | None,
    ) -> int:
        """Take one completed trial's value; queue repeats when it is a new incumbent.

        Args:
            registry: the arms (repeats are queued in `arm`'s study there).
            arm: the trial's arm.
            params: the trial's parameters.
            value: its usable, feasible value.
            origin: its origin (a ``repeat`` is counted, never repeated again).
            seed: the seed it trained with (None: the config's, taken as 0).

        Returns:
            How many repeats were queued.
        """
        key = (arm.name, params_key(params))  # the identity `feedback.rank_configs` groups by
        best = self.best_mean()
        self.values.setdefault(key, []).append(value)
        if self.repeats == 0 or origin == "repeat" or arm.retired:
            return 0
        beats = best is None or (value > best if self.mode == "max" else value < best)
        if not beats:
            return 0
        for _ in range(self.repeats):
            registry.enqueue_repeat(arm, params, self._reserve(key, seed or 0))
        logger.info(
            "Arm %r: %.4g beats the best mean %s; %d repeats with other seeds queued.",
            arm.name,
            value,
            "(none yet)" if best is None else f"{best:.4g}",
            self.repeats,
        )
        return self.repeats

    def fresh_seed(self, arm: str, params: Mapping[str, Any], seed: int | None) -> int | None:
        """The seed a new trial of `params` in `arm` trains with, so no config repeats a seed.

        Args:
            arm: the trial's arm name.
            params: its parameters.
            seed: the seed it was given (None: the config's own, counted as 0).

        Returns:
            `seed` when the configuration has not used it; else the configuration's smallest
            unused seed above it (the trial becomes another evaluation of the config, not a
            copy of one). The returned seed counts as used from now on.
        """
        key = (arm, params_key(params))
        used = self.seeds.setdefault(key, set())
        wanted = seed or 0
        if wanted not in used:
            used.add(wanted)
            return seed
        fresh = self._reserve(key, wanted)
        logger.info(
            "Arm %r suggested a configuration that already trained with seed %d; it trains "
            "with seed %d instead (the same seed would repeat the same value).",
            arm,
            wanted,
            fresh,
        )
        return fresh

    def _reserve(self, key: tuple[str, str], after: int) -> int:
        """The smallest seed above `after` that `key` has not used, marked as used."""
        used = self.seeds.setdefault(key, set())
        used.add(after)  # the trial being repeated trained with it
        seed = after + 1
        while seed in used:
            seed += 1
        used.add(seed)
        return seed
