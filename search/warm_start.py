"""Results from outside the searcher: evaluated points, a campaign's earlier runs, trusted arms.

These back `AgentSearcher.add_evaluated_point`, `warm_start` and `add_arm`. Nothing here is
written to the store (the runs are already there, or never belonged to it), and nothing
passes the proposal check (the caller vouches for it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution

from search import optuna_bridge
from search.arms import BASE_ARM, Arm, ArmRegistry
from search.contract import RESERVED_KEY
from search.proposals import arm_space
from search.space import flatten_config, hydra_path, is_finite_number

if TYPE_CHECKING:
    from feedback import RunRecord

__all__ = ["add_evaluated", "add_trusted_arm", "replay"]

logger = logging.getLogger(__name__)


def add_trusted_arm(
    registry: ArmRegistry,
    base_space: Mapping[str, BaseDistribution],
    name: str,
    *,
    tier: int,
    overrides: Sequence[str],
    space: Mapping[str, Any] | None = None,
    drop_params: Sequence[str] = (),
    model_source: str | None = None,
    model_config: Mapping[str, Any] | None = None,
    model: str | None = None,
    origin: str = "human",
) -> Arm:
    """Add an arm as given (no proposal check); see `AgentSearcher.add_arm`.

    Raises:
        SearchSpaceError: `space` cannot be converted.
    """
    return registry.add(
        name,
        tier=tier,
        overrides=overrides,
        space=arm_space(base_space, overrides, space, drop_params),
        model_source=model_source,
        model_config=dict(model_config) if model_config else None,
        model=model,
        origin="agent" if origin == "agent" else "human",
    )


def add_evaluated(
    registry: ArmRegistry,
    parameters: Mapping[str, Any],
    value: float | None,
    *,
    error: bool = False,
    pruned: bool = False,
    intermediate_values: Sequence[float] | None = None,
    arm: str | None = None,
    infeasible: bool = False,
) -> None:
    """Add one point to an arm's study and counters; see `AgentSearcher.add_evaluated_point`.

    Raises:
        KeyError: `arm` names no arm.
        ValueError: a parameter lies outside its distribution.
    """
    reserved = parameters.get(RESERVED_KEY)
    if arm is None and isinstance(reserved, Mapping) and reserved.get("arm") in registry:
        arm = str(reserved["arm"])
    target = registry[arm or BASE_ARM]
    flat = flatten_config({k: v for k, v in parameters.items() if k != RESERVED_KEY})
    by_path = {hydra_path(k): k for k in target.space}
    params: dict[str, Any] = {}
    for key, v in flat.items():
        name = key if key in target.space else by_path.get(hydra_path(key))
        if name is not None:
            params[name] = v
    number = float(value) if is_finite_number(value) else None
    status = optuna_bridge.add_point(
        target,
        params,
        number,
        error=error,
        pruned=pruned,
        intermediate_values=intermediate_values,
        infeasible=infeasible,
    )
    registry.record(
        target,
        number if status == "completed" else None,
        params,
        failed=status == "failed" or infeasible,
    )


def replay(
    registry: ArmRegistry,
    base_space: Mapping[str, BaseDistribution],
    records: Iterable[RunRecord],
    model_sources: Mapping[str, str] | None = None,
) -> int:
    """Replay earlier runs into the studies; see `AgentSearcher.warm_start`.

    Returns:
        How many records were added.
    """
    sources = dict(model_sources or {})
    added = 0
    for r in records:
        if r.status == "rejected":
            continue
        if r.arm not in registry:
            source = sources.get(r.arm)
            arm = add_trusted_arm(
                registry,
                base_space,
                r.arm,
                tier=r.tier,
                overrides=r.overrides,
                model_source=source,
                model=r.model,
                origin=r.origin if r.origin in ("agent", "human") else "agent",
            )
            arm.tokens_charged = True  # spent in the earlier session, already recorded
            if r.tier == 3 and source is None:
                arm.retired = True
                logger.warning(
                    "Warm start: tier-3 arm %r has no model source; it is kept retired.", r.arm
                )
        try:
            add_evaluated(
                registry,
                dict(r.params),
                r.value,
                error=r.status in ("failed", "diverged"),
                pruned=r.status == "pruned",
                arm=r.arm,
                infeasible=r.status == "infeasible",
            )
        except ValueError as e:
            logger.warning("Warm start: run %s skipped: %s", r.run_id, e)
            continue
        added += 1
    return added
