"""Bookkeeping of the trials `AgentSearcher` hands to Tune: sampled, running, claimed, adopted.

A trial is *pending* from `suggest` until its completion. Tune sometimes completes a trial
under an id the searcher never handed out (`Tuner.restore(..., restart_errored=True)` reruns
a trial under a new id): `claim` finds the pending trial whose arm and parameters the result's
config repeats, and `adopt` builds one from the config when none matches, so the run is still
attributed to an arm and recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import optuna

from search.arms import BASE_ARM, Arm, ArmRegistry
from search.contract import RESERVED_KEY
from search.space import flatten_config, snap_to_steps, unflatten_params

__all__ = [
    "PendingTrial",
    "TrialBook",
    "adopt",
    "claim",
    "result_config",
    "sample",
    "suggested_config",
]

logger = logging.getLogger(__name__)


@dataclass
class PendingTrial:
    """A suggested trial that has not finished."""

    arm: str
    # None for adopted and modified trials (added to the study when they finish, not told)
    trial: optuna.Trial | None
    params: dict[str, Any]
    origin: str
    started_at: datetime
    last_step: int = 0
    # per-epoch metrics reported so far (campaign mode), stored as the run's epoch curve
    curve: list[dict[str, float]] = field(default_factory=list)
    # the trial's fixed overrides when the approval hook changed them (else the arm's)
    overrides: tuple[str, ...] | None = None
    approval: str | None = None  # the approval hook's verdict (else the arm's approval)
    seed: int | None = None  # the training seed of a repeat (None: the config's own seed)


def sample(arm: Arm) -> PendingTrial:
    """Ask the arm's study for the next trial (not yet pending anywhere)."""
    trial = arm.study.ask(fixed_distributions=arm.space)
    origin, seed = "optuna", None
    if arm.queued_origins:  # ask() pops the enqueued point first
        origin = arm.queued_origins.pop(0)
        if origin == "repeat":
            seed = arm.repeat_seeds.pop(0)
    elif arm.origin != "campaign" and arm.n_started == 0:
        origin = arm.origin  # the arm itself is the proposal being evaluated
    return PendingTrial(
        arm=arm.name,
        trial=trial,
        params=snap_to_steps(trial.params, arm.space),
        origin=origin,
        started_at=datetime.now(UTC),
        seed=seed,
    )


def suggested_config(pending: PendingTrial, arm: Arm, *, annotate: bool) -> dict[str, Any]:
    """The config Tune gets: the parameters, plus the reserved entry when `annotate`."""
    config = unflatten_params(pending.params)
    if annotate:
        config[RESERVED_KEY] = {
            "arm": arm.name,
            "tier": arm.tier,
            "origin": pending.origin,
            # the approval hook may have changed this trial's fixed overrides
            "overrides": list(
                pending.overrides if pending.overrides is not None else arm.overrides
            ),
            "model": arm.model,
            "model_source": arm.model_source,
            "model_config": arm.model_config,
            "proposal_id": arm.proposal_id,
            "seed": pending.seed,  # set for repeats: the trainable trains with this seed
        }
    return config


def result_config(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The trial config inside a result: `result["config"]`, or the `config/...` keys of the
    flattened results Tune hands to searchers (nested back into dicts); None if absent."""
    if not result:
        return None
    config = result.get("config")
    if isinstance(config, Mapping):
        return dict(config)
    prefix = "config/"
    flat = {k[len(prefix) :]: v for k, v in result.items() if k.startswith(prefix)}
    return unflatten_params(flat) if flat else None


def claim(
    pending: dict[str, PendingTrial], result: Mapping[str, Any] | None
) -> PendingTrial | None:
    """Pop from `pending` the trial whose arm and parameters the result's config repeats (a
    trial Tune restarted under a new id), so its Optuna trial is told, not orphaned."""
    config = result_config(result)
    if config is None or not pending:
        return None
    reserved = config.get(RESERVED_KEY)
    arm_name = reserved.get("arm") if isinstance(reserved, Mapping) else None
    flat = flatten_config({k: v for k, v in config.items() if k != RESERVED_KEY})
    for key, candidate in pending.items():
        if not candidate.params and arm_name is None:
            continue  # nothing to compare
        same_arm = arm_name is None or arm_name == candidate.arm
        if same_arm and all(flat.get(k) == v for k, v in candidate.params.items()):
            return pending.pop(key)
    return None


def adopt(
    registry: ArmRegistry | None, trial_id: str, result: Mapping[str, Any] | None
) -> PendingTrial | None:
    """A pending trial for one this searcher never suggested, from its result's config (the
    arm it names, else the arm with its overrides, else the base arm); None, with a warning,
    when there is no config or no arm yet."""
    config = result_config(result)
    if registry is None or config is None:
        logger.warning(
            "Trial %s finished but was never suggested and its result has no config; "
            "it is not recorded.",
            trial_id,
        )
        return None
    reserved = config.get(RESERVED_KEY)
    arm = registry[BASE_ARM]
    origin, seed = "optuna", None
    if isinstance(reserved, Mapping):
        seed = reserved.get("seed") if type(reserved.get("seed")) is int else None
        named = reserved.get("arm")
        if isinstance(named, str) and named in registry:
            arm = registry[named]
        else:
            found = registry.find(
                list(reserved.get("overrides") or ()), reserved.get("model_source")
            )
            arm = found or arm
        origin = str(reserved.get("origin") or "optuna")
    flat = flatten_config({k: v for k, v in config.items() if k != RESERVED_KEY})
    return PendingTrial(
        arm=arm.name,
        trial=None,
        params={k: flat[k] for k in arm.space if k in flat},
        origin=origin,
        started_at=datetime.now(UTC),
        seed=seed,
    )


class TrialBook:
    """The searcher's running and finished trials, by Tune trial id."""

    def __init__(self) -> None:
        self.pending: dict[str, PendingTrial] = {}
        self.finished: set[str] = set()
        self.n_suggested = 0
        self.peak_pending = 0  # most trials running at once

    def start(self, trial_id: str, pending: PendingTrial, arm: Arm) -> None:
        """Track a trial just handed to Tune."""
        self.pending[trial_id] = pending
        arm.n_pending += 1
        self.n_suggested += 1
        self.peak_pending = max(self.peak_pending, len(self.pending))

    def finish(
        self, trial_id: str, registry: ArmRegistry | None, result: Mapping[str, Any] | None
    ) -> tuple[PendingTrial, Arm] | None:
        """The finished trial and its arm: the pending one, else one `claim`ed or `adopt`ed
        for an id never handed out; None for a second completion or a trial nothing can be
        attributed to (logged)."""
        if trial_id in self.finished:
            logger.debug("Ignoring a second completion of trial %s.", trial_id)
            return None
        pending = self.pending.pop(trial_id, None)
        if pending is None:
            pending = claim(self.pending, result)
        adopted = pending is None
        if pending is None:
            pending = adopt(registry, trial_id, result)
            if pending is None:
                return None
        assert registry is not None  # pending and adopted trials exist only after set-up
        arm = registry[pending.arm]
        if not adopted:
            arm.n_pending = max(0, arm.n_pending - 1)
        self.finished.add(trial_id)
        return pending, arm
