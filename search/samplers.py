"""The Optuna samplers an arm's study may use, and the hybrid one the drop-in searcher defaults to.

* ``tpe``: `optuna.samplers.TPESampler` (what Tune's `OptunaSearch` uses): ~4 ms per
  suggestion at 100 trials, growing linearly.
* ``gp``: `optuna.samplers.GPSampler`, Gaussian-process Bayesian optimisation: at 20-50 trials
  its final regret is 0.59x TPE's in geometric mean over six test functions
  (`python -m bench --only tpe_settings`), at ~0.1 s per suggestion that grows with the cube
  of the trials. The campaign goals' default (they run 10-64 trials).
* ``auto``: `HybridSampler`, GP for an arm's first `GP_TRIALS` finished trials, where it beats
  TPE, then TPE, whose cost per suggestion stays small in long drop-in searches (thousands of
  trials). The drop-in `AgentSearcher`'s default.
* ``random``: `optuna.samplers.RandomSampler`, independent uniform draws (the baseline every
  other sampler must beat; the escalation benchmark's "random search" arm).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, GPSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

__all__ = ["GP_TRIALS", "SAMPLERS", "HybridSampler", "make_sampler", "samples_with_tpe"]

SAMPLERS: tuple[str, ...] = ("tpe", "gp", "auto", "random")
"""Names an arm's sampler may have (`ArmRegistry`'s and `AgentSearcher`'s `sampler`)."""

GP_TRIALS = 64
"""Finished trials after which `HybridSampler` hands an arm from GP to TPE: the largest
campaign budget measured (64), where GP's lead holds and its cost is still ~0.1-0.3 s."""

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _accepted(cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `kwargs` that `cls`'s constructor takes."""
    names = inspect.signature(cls).parameters
    return {k: v for k, v in kwargs.items() if k in names}


class HybridSampler(BaseSampler):
    """GP for a study's first `switch_at` finished trials, TPE afterwards.

    Both samplers see the whole study (TPE starts from the GP's trials, not from scratch).
    Which one samples a trial is decided when the trial starts, from the finished trials then.

    Args:
        seed: seeds both samplers.
        switch_at: finished trials (complete, pruned or failed) after which TPE takes over.
        **kwargs: constructor arguments of `GPSampler` and/or `TPESampler` (e.g.
            `n_startup_trials`), each given to the samplers that take it.

    Raises:
        ValueError: `switch_at` is negative.
    """

    def __init__(self, *, seed: int | None = None, switch_at: int = GP_TRIALS, **kwargs: Any):
        if switch_at < 0:
            raise ValueError(f"`switch_at` must be >= 0, got {switch_at}.")
        unknown = (
            set(kwargs) - set(_accepted(GPSampler, kwargs)) - set(_accepted(TPESampler, kwargs))
        )
        if unknown:
            raise TypeError(f"Neither GPSampler nor TPESampler takes {sorted(unknown)}.")
        self.switch_at = switch_at
        self._gp = GPSampler(seed=seed, **_accepted(GPSampler, kwargs))
        self._tpe = TPESampler(seed=seed, **_accepted(TPESampler, kwargs))
        self._by_trial: dict[int, BaseSampler] = {}

    def active(self, study: Study, trial: FrozenTrial) -> BaseSampler:
        """The sampler of `trial` (chosen at its start; GP while the study is young)."""
        chosen = self._by_trial.get(trial.number)
        if chosen is None:
            chosen = self._by_trial[trial.number] = self._for_next_trial(study)
        return chosen

    def _for_next_trial(self, study: Study) -> BaseSampler:
        """GP while fewer than `switch_at` trials of `study` have finished, then TPE."""
        finished = len(study.get_trials(deepcopy=False, states=_FINISHED))
        return self._gp if finished < self.switch_at else self._tpe

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.active(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.active(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.active(study, trial).sample_independent(
            study, trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.active(study, trial).before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        chosen = self._by_trial.pop(trial.number, None) or self.active(study, trial)
        chosen.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._gp.reseed_rng()
        self._tpe.reseed_rng()


def samples_with_tpe(study: Study, trial_number: int) -> bool:
    """Whether `study`'s trial `trial_number` is (or would be) sampled by TPE, which ranks
    trials that break a constraint below every feasible one."""
    sampler = study.sampler
    if isinstance(sampler, HybridSampler):
        chosen = sampler._by_trial.get(trial_number) or sampler._for_next_trial(study)
        return isinstance(chosen, TPESampler)
    return isinstance(sampler, TPESampler)


def make_sampler(name: str, seed: int | None, kwargs: Mapping[str, Any]) -> BaseSampler:
    """The sampler `name` (one of `SAMPLERS`), seeded, with `kwargs` for its constructor.

    Raises:
        ValueError: unknown `name`.
    """
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **kwargs)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **kwargs)
    if name == "auto":
        return HybridSampler(seed=seed, **kwargs)
    if name == "random":
        # It has no startup phase or other settings: kwargs meant for GP or TPE are ignored.
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {name!r}.")
