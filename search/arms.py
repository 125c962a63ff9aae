"""Arms: the experiment configs a campaign can train, each with its own Optuna study.

An *arm* is a fixed set of Hydra overrides (`["model=resnet1d", "model.width=64"]`, or none for
the campaign's base config) plus the numeric/categorical space Optuna tunes inside it. The base
config is arm `"base"` (tier 0); every accepted agent or human proposal adds an arm (tier 2 or
3). `ArmRegistry.select` decides which arm the next trial uses.

Selection rule (seeded, documented so runs can be reasoned about):
    0. An arm with a queued repeat (another seed of an incumbent, `search.repeats`) goes first.
    1. Active arms whose started trials (finished + running) number fewer than
       `min_trials_per_arm` go first: the one with the fewest started trials, ties broken by
       creation order. New arms therefore get their trials as soon as they exist.
    2. Otherwise, with probability `exploit_prob`, *Thompson sampling on each arm's top-k*:
       each arm with values gets one draw from a normal centred on the mean of its best
       `top_k` values (3 by default; fewer when it has fewer) with standard deviation
       `noise / sqrt(m)` (`m` values in that mean; `noise` is the goal's noise when set, else
       the pooled within-arm standard deviation of the campaign's values), and the best draw
       wins (`search.bandit`). One lucky value moves an arm's top-3 mean by a third of its
       luck, so it cannot lock the campaign in, and an arm close to the leader keeps a share
       of the trials in proportion to how likely it is to be better. Until some arm has two
       values (no spread to draw with) the best mean wins.
    3. Otherwise (or before any arm has a value), *explore*: the arm with the fewest
       started trials, ties broken by the seeded RNG (a round robin over the least-tried arms).

A new arm starts from what earlier arms learned about the parameters it shares with them
(`trainer.lr`, `trainer.batch_size`, `trainer.weight_decay`, ...): its first trial takes the
best arm's values of the shared parameters that lie inside its own space (its sampler draws
the rest), unless the proposal that created it already queued a trial, whose missing shared
parameters are filled the same way.

An arm is *retired* (never selected again) after `max_arm_failures` consecutive failed trials
without a single usable value, or when the drift signal finds its own values degrading while
another arm holds the best value (`retire_for_drift`). The base arm is never retired: it is the
fallback when every other arm is.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution

from agent.proposer import ArmSummary, model_from_overrides
from search.bandit import thompson_pick
from search.samplers import SAMPLERS, make_sampler
from search.space import within

__all__ = ["BASE_ARM", "Arm", "ArmOrigin", "ArmRegistry"]

logger = logging.getLogger(__name__)

BASE_ARM = "base"
ArmOrigin = Literal["campaign", "agent", "human"]


@dataclass
class Arm:
    """One trainable experiment config and its Optuna study.

    Attributes:
        name: unique name (`"base"` for the campaign's own config).
        tier: 0 for the base config, 2 for config variants, 3 for generated models.
        overrides: Hydra override strings fixed for every trial of the arm.
        space: flat parameter name -> Optuna distribution tuned inside the arm.
        model_source: generated model code (tier 3), shipped in every suggested config.
        model_config: the generated model's registered config (tier 3), shipped likewise.
        origin: who created the arm.
        model: short model name, when known (from a `model=` override by default).
        proposal_id: id of the proposal that created it, or None.
        rationale: the proposer's reason, or "".
        approval: approval outcome of the proposal, or None.
        tokens_in: LLM tokens of the proposal (charged to the arm's first stored record).
        tokens_out: LLM tokens of the proposal (charged to the arm's first stored record).
        seed: the seed of the arm's TPE sampler.
        study: the arm's Optuna study (in memory; pickled with the searcher).
        n_pending: trials suggested and not yet finished.
        n_results: finished trials of any status.
        n_completed: finished trials with a usable, feasible value.
        consecutive_failures: failed trials since the last usable value.
        best_value: best usable value, or None.
        best_params: parameters of the best trial.
        retired: never selected again when True.
        tokens_charged: whether the proposal's tokens were already written to a record.
        queued_origins: the recorded origin of each trial queued in the study, oldest first.
        values: usable, feasible values of the finished trials, in finishing order.
        repeat_seeds: the seed of each queued ``repeat`` trial, oldest first.
        warm_params: the best arm's values of the shared parameters when this arm was created
            (the start of its first trial; empty for the first arm).
    """

    name: str
    tier: int
    overrides: tuple[str, ...]
    space: dict[str, BaseDistribution]
    study: optuna.Study
    seed: int | None
    model_source: str | None = None
    model_config: dict[str, Any] | None = None
    origin: ArmOrigin = "campaign"
    model: str | None = None
    proposal_id: str | None = None
    rationale: str = ""
    approval: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    n_pending: int = 0
    n_results: int = 0
    n_completed: int = 0
    consecutive_failures: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    retired: bool = False
    tokens_charged: bool = False
    queued_origins: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    repeat_seeds: list[int] = field(default_factory=list)
    warm_params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_started(self) -> int:
        """Finished plus running trials."""
        return self.n_results + self.n_pending

    def summary(self) -> ArmSummary:
        """Plain-data view for a `ProposalContext`."""
        return ArmSummary(
            name=self.name,
            tier=self.tier,
            overrides=self.overrides,
            model=self.model,
            n_results=self.n_results,
            n_completed=self.n_completed,
            best_value=self.best_value,
            best_params=dict(self.best_params),
        )


def _better(a: float, b: float | None, mode: str) -> bool:
    if b is None:
        return True
    return a > b if mode == "max" else a < b


def fitted_startup_trials(budget: int) -> int:
    """Random trials an arm's sampler starts with in a campaign of `budget` trials.

    Optuna's default (10) suits long studies; a campaign's arms share its budget, and an arm
    with fewer trials than that never leaves random search. A fifth of the budget, between 2
    and 10: at 20 trials the GP sampler does as well with 4 as with 10 (0.60x vs 0.59x TPE's
    regret, `bench/tpe_settings.py`), and the quick goals' arms then model their results.
    """
    return max(2, min(10, budget // 5))


class ArmRegistry:
    """Ordered collection of arms plus the selection rule (see the module docstring).

    Args:
        mode: `"min"` or `"max"`, the direction of every arm's study.
        seed: base seed; arm `i` (creation order) gets a TPE sampler seeded `seed + i`
            (None: unseeded).
        min_trials_per_arm: trials each arm gets before exploitation may skip it.
        exploit_prob: probability that the choice, once every arm had its trials, is the
            Thompson draw on the arms' top-k means (else the least-tried arm).
        top_k: how many of an arm's best values its Thompson draw is centred on.
        noise: standard deviation of one evaluation (the goal's `escalation.noise`), the
            spread of the Thompson draws; None estimates it from the arms' values.
        max_arm_failures: consecutive failures (with no usable value) that retire an arm.
        tpe_kwargs: extra keyword arguments for every sampler (`TPESampler` or `GPSampler`).
        sampler: each arm's Optuna sampler, one of `search.samplers.SAMPLERS` ("tpe", "gp",
            "auto"; see that module for what each costs and gains).
    """

    def __init__(
        self,
        *,
        mode: str,
        seed: int | None = None,
        min_trials_per_arm: int = 3,
        exploit_prob: float = 0.7,
        max_arm_failures: int = 3,
        tpe_kwargs: Mapping[str, Any] | None = None,
        sampler: str = "tpe",
        top_k: int = 3,
        noise: float | None = None,
    ) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}.")
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max', got {mode!r}.")
        if min_trials_per_arm < 0:
            raise ValueError(f"`min_trials_per_arm` must be >= 0, got {min_trials_per_arm}.")
        if not 0.0 <= exploit_prob <= 1.0:
            raise ValueError(f"`exploit_prob` must lie in [0, 1], got {exploit_prob}.")
        if top_k < 1:
            raise ValueError(f"`top_k` must be >= 1, got {top_k}.")
        if noise is not None and not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"`noise` must be a finite number >= 0 or None, got {noise}.")
        if max_arm_failures < 1:
            raise ValueError(f"`max_arm_failures` must be >= 1, got {max_arm_failures}.")
        self.mode = mode
        self.seed = seed
        self.min_trials_per_arm = min_trials_per_arm
        self.exploit_prob = exploit_prob
        self.max_arm_failures = max_arm_failures
        self.tpe_kwargs = dict(tpe_kwargs or {})
        self.sampler = sampler
        self.top_k = top_k
        self.noise = noise
        self.arms: dict[str, Arm] = {}
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.arms)

    def __contains__(self, name: object) -> bool:
        return name in self.arms

    def __getitem__(self, name: str) -> Arm:
        return self.arms[name]

    def __iter__(self) -> Iterator[Arm]:
        return iter(self.arms.values())

    def unique_name(self, name: str) -> str:
        """`name` if free, else `name-2`, `name-3`, ..."""
        base = name.strip() or "arm"
        candidate, i = base, 2
        while candidate in self.arms:
            candidate, i = f"{base}-{i}", i + 1
        return candidate

    def find(self, overrides: Sequence[str], model_source: str | None = None) -> Arm | None:
        """The arm with the same overrides (order-insensitive) and model code, or None."""
        key = tuple(sorted(o.strip() for o in overrides))
        for arm in self.arms.values():
            if tuple(sorted(arm.overrides)) == key and arm.model_source == model_source:
                return arm
        return None

    def add(
        self,
        name: str,
        *,
        tier: int,
        overrides: Sequence[str],
        space: Mapping[str, BaseDistribution],
        model_source: str | None = None,
        model_config: Mapping[str, Any] | None = None,
        origin: ArmOrigin = "campaign",
        model: str | None = None,
        proposal_id: str | None = None,
        rationale: str = "",
        approval: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
    ) -> Arm:
        """Create an arm with a fresh seeded study; `name` is made unique.

        Raises:
            ValueError: `tier` is not 0, 2 or 3.
        """
        if tier not in (0, 2, 3):
            raise ValueError(f"An arm's tier must be 0, 2 or 3, got {tier!r}.")
        seed = None if self.seed is None else self.seed + len(self.arms)
        sampler = make_sampler(self.sampler, seed, self.tpe_kwargs)
        unique = self.unique_name(name)
        study = optuna.create_study(
            study_name=f"arm-{unique}",
            direction="maximize" if self.mode == "max" else "minimize",
            sampler=sampler,
            pruner=optuna.pruners.NopPruner(),
        )
        arm = Arm(
            name=unique,
            tier=tier,
            overrides=tuple(o.strip() for o in overrides),
            space=dict(space),
            study=study,
            seed=seed,
            model_source=model_source,
            model_config=dict(model_config) if model_config else None,
            origin=origin,
            model=model or model_from_overrides(overrides),
            proposal_id=proposal_id,
            rationale=rationale,
            approval=approval,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
        )
        arm.warm_params = self.shared_best_params(arm.space)
        self.arms[arm.name] = arm
        logger.info("New arm %r (tier %d): %s", arm.name, tier, list(arm.overrides))
        return arm

    def shared_best_params(self, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        """The best arm's values of the parameters of `space` it shares (inside `space`).

        Empty before any arm has a value. A value outside the new space (another range, a
        choice the new arm lacks) is left for the new arm's sampler.
        """
        best = self.best()
        if best is None:
            return {}
        return {k: v for k, v in best.best_params.items() if k in space and within(space[k], v)}

    def enqueue_repeat(self, arm: Arm, params: Mapping[str, Any], seed: int) -> None:
        """Queue another evaluation of `params` in `arm`, trained with `seed`; it runs next."""
        arm.study.enqueue_trial(dict(params), skip_if_exists=False)
        arm.queued_origins.append("repeat")
        arm.repeat_seeds.append(seed)

    def enqueue(self, arm: Arm, params: Mapping[str, Any], origin: str) -> None:
        """Make `params` (restricted to the arm's space) the arm's next Optuna suggestion.

        Args:
            arm: target arm.
            params: flat parameter name -> value; names outside the arm's space are dropped
                with a warning.
            origin: the `origin` the resulting trial is recorded with.
        """
        fixed = {k: v for k, v in params.items() if k in arm.space}
        unknown = sorted(set(params) - set(fixed))
        if unknown:
            logger.warning("Arm %r: ignoring parameters outside its space: %s", arm.name, unknown)
        if arm.n_started == 0 and not arm.queued_origins:
            # The arm's first trial: shared parameters the proposal left open start where the
            # best arm found them.
            fixed = {**{k: v for k, v in arm.warm_params.items() if k not in fixed}, **fixed}
        if not fixed:
            return
        arm.study.enqueue_trial(fixed, skip_if_exists=False)
        arm.queued_origins.append(origin)

    def record(
        self, arm: Arm, value: float | None, params: Mapping[str, Any], *, failed: bool
    ) -> None:
        """Update counters after a finished trial.

        Args:
            arm: the trial's arm.
            value: the usable, feasible value of a completed trial, else None.
            params: the trial's parameters.
            failed: the trial failed, diverged or was infeasible (pruned trials are not
                failures).
        """
        arm.n_results += 1
        if value is None:
            if not failed:
                return
            arm.consecutive_failures += 1
            if (
                arm.name != BASE_ARM
                and arm.n_completed == 0
                and arm.consecutive_failures >= self.max_arm_failures
                and not arm.retired
            ):
                arm.retired = True
                logger.warning(
                    "Arm %r retired after %d failed trials without a usable value.",
                    arm.name,
                    arm.consecutive_failures,
                )
            return
        arm.consecutive_failures = 0
        arm.n_completed += 1
        arm.values.append(value)
        if _better(value, arm.best_value, self.mode):
            arm.best_value = value
            arm.best_params = dict(params)

    def best(self) -> Arm | None:
        """The arm with the best value (active or not), or None before any value."""
        best: Arm | None = None
        for arm in self.arms.values():
            if arm.best_value is not None and (
                best is None or _better(arm.best_value, best.best_value, self.mode)
            ):
                best = arm
        return best

    def retire_for_drift(self, name: str) -> str | None:
        """Retire arm `name` because its values degrade (a drift reading on that arm).

        The trials it would get go back to the other arms, the best one first (exploitation).
        The base arm and the arm holding the best value are kept: for the incumbent a drift
        reading means the later trials of its region are worse, and tuning it goes on.

        Returns:
            Why the arm was retired, or None when it was kept (unknown, already retired, the
            base arm or the best arm).
        """
        arm = self.arms.get(name)
        best = self.best()
        if arm is None or arm.retired or arm.name == BASE_ARM or best is None or best is arm:
            return None
        arm.retired = True
        logger.info("Arm %r retired: its values degrade while %r holds the best.", name, best.name)
        return (
            f"arm {name!r} retired: the drift signal found its values degrading while arm "
            f"{best.name!r} holds the best value ({best.best_value:.4g})"
        )

    def active(self) -> list[Arm]:
        """Arms that may be selected, in creation order (the base arm when all are retired)."""
        arms = [a for a in self.arms.values() if not a.retired]
        if not arms and BASE_ARM in self.arms:
            arms = [self.arms[BASE_ARM]]
        return arms

    def select(self) -> Arm:
        """The arm the next trial uses (see the module docstring for the rule).

        Raises:
            LookupError: the registry has no arm.
        """
        arms = self.active()
        if not arms:
            raise LookupError("No arm to select: the registry is empty.")
        repeating = [a for a in arms if "repeat" in a.queued_origins]
        if repeating:  # re-evaluations of an incumbent run first: they settle the best
            return repeating[0]
        needy = [a for a in arms if a.n_started < self.min_trials_per_arm]
        if needy:
            return self._started(min(needy, key=lambda a: a.n_started))  # ties: creation order
        if self.rng.random() < self.exploit_prob:
            drawn = thompson_pick(
                arms,
                self.arms.values(),
                mode=self.mode,
                top_k=self.top_k,
                noise=self.noise,
                rng=self.rng,
            )
            if drawn is not None:
                return self._started(drawn)
        fewest = min(a.n_started for a in arms)
        return self._started(self.rng.choice([a for a in arms if a.n_started == fewest]))

    def _started(self, arm: Arm) -> Arm:
        """`arm`, its warm start queued when it is about to run its very first trial."""
        if arm.n_started == 0 and not arm.queued_origins and arm.warm_params:
            arm.study.enqueue_trial(dict(arm.warm_params), skip_if_exists=False)
            arm.queued_origins.append("optuna")
            logger.info("Arm %r starts from the best arm's %s.", arm.name, arm.warm_params)
        return arm

    def tried_models(self) -> list[str]:
        """Models of arms that have at least one started trial, in creation order."""
        seen: list[str] = []
        for arm in self.arms.values():
            if arm.model and arm.n_started > 0 and arm.model not in seen:
                seen.append(arm.model)
        return seen
