"""From a proposal to an arm: the proposal contract, the safety check, and adding the arm.

`check_proposal` runs on the proposer's worker thread for the agent's proposals (it reads
only settings fixed at construction) and on the searcher's thread for proposals submitted
from outside; `add_proposal_arm` then turns a checked proposal into an arm (or enqueues its
parameters on the arm it repeats). A refused proposal never becomes an arm: the caller
records it as an ``agent_failure`` event with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from optuna.distributions import BaseDistribution

from agent.proposer import Proposal, ProposalError, model_from_overrides, override_key
from search.arms import Arm, ArmRegistry
from search.recorder import HistoryRecorder
from search.space import (
    SearchSpaceError,
    convert_search_space,
    flatten_config,
    hydra_path,
    merge_spaces,
)

__all__ = ["add_proposal_arm", "arm_space", "check_proposal", "flat_params", "proposal_problem"]

logger = logging.getLogger(__name__)


def proposal_problem(p: Any, max_tier: int) -> str | None:
    """What breaks the proposal contract, or None (the safety layer's check comes after)."""
    if not isinstance(p, Proposal):
        return f"expected an agent.Proposal, got {type(p).__name__}"
    if p.tier not in (2, 3):
        return f"tier must be 2 or 3, got {p.tier!r}"
    if isinstance(p.overrides, str) or not all(isinstance(o, str) for o in p.overrides):
        return f"overrides must be a list of Hydra override strings, got {p.overrides!r}"
    bad = [o for o in p.overrides if override_key(o) is None and not o.startswith("~")]
    if bad:
        return f"overrides must look like key=value, got {bad!r}"
    has_source = isinstance(p.model_source, str) and bool(p.model_source.strip())
    if (
        p.tier == 3
        and not has_source
        and (p.model_source is not None or model_from_overrides(p.overrides) is None)
    ):
        return (
            "a tier-3 proposal needs model_source (the generated model's code) or "
            "model=<a registered generated model>"
        )
    if p.tier == 2 and p.model_source is not None:
        return "a tier-2 proposal cannot carry model_source; use tier 3"
    if not p.overrides and p.model_source is None:
        return "a proposal needs overrides or model_source (it would repeat the base arm)"
    if p.tier > max_tier:
        return f"tier {p.tier} exceeds the campaign's max_tier={max_tier}"
    return None


def check_proposal(
    proposal: Any, max_tier: int, safety_check: Callable[[Proposal], Proposal]
) -> Proposal:
    """The proposal contract, the space conversion and the safety layer's check, in order.

    Returns:
        The checked proposal (its space converted to Optuna distributions).

    Raises:
        ValueError: a `ProposalError`/`SafetyError`/`SearchSpaceError` naming the rule.
    """
    problem = proposal_problem(proposal, max_tier)
    if problem is not None:
        raise ProposalError(f"invalid proposal: {problem}")
    p: Proposal = proposal
    if p.approval == "rejected":  # never becomes an arm: nothing to check or register
        return p
    if p.space:
        try:
            p = replace(p, space=convert_search_space(p.space))
        except SearchSpaceError as e:
            raise ProposalError(f"invalid proposal space: {e}") from e
    return safety_check(p)


def fixed_keys(overrides: Iterable[str]) -> list[str]:
    """The keys an arm's overrides fix (they leave the tuned space)."""
    return [k for k in (override_key(o) for o in overrides) if k]


def arm_space(
    base: Mapping[str, BaseDistribution],
    overrides: Iterable[str],
    space: Mapping[str, Any] | None = None,
    drop: Iterable[str] = (),
) -> dict[str, BaseDistribution]:
    """An arm's space: the base space with `space` merged in, minus the keys `drop` names
    and the keys its `overrides` fix.

    Raises:
        SearchSpaceError: `space` cannot be converted.
    """
    return merge_spaces(base, space, [*drop, *fixed_keys(overrides)])


def flat_params(arm: Arm, params: Mapping[str, Any]) -> dict[str, Any]:
    """A proposal's parameters, flat and keyed like the arm's space (by Hydra path)."""
    by_path = {hydra_path(k): k for k in arm.space}
    return {by_path.get(hydra_path(k), k): v for k, v in flatten_config(params).items()}


def add_proposal_arm(
    registry: ArmRegistry,
    base_space: Mapping[str, BaseDistribution],
    p: Proposal,
    recorder: HistoryRecorder,
) -> Arm | None:
    """Add a checked proposal as an arm, with a ``note`` event.

    A proposal that repeats an arm (same overrides and model code) enqueues its parameters
    there instead; one whose approval was rejected is skipped.

    Returns:
        The new arm, or None when none was created (repeated, skipped, or its space refused:
        recorded as an ``agent_failure``).
    """
    if p.approval == "rejected":
        logger.info("Skipping proposal %r: its approval was rejected.", p.name)
        return None
    existing = registry.find(p.overrides, p.model_source)
    if existing is not None:
        if p.params:
            registry.enqueue(existing, flat_params(existing, p.params), p.origin)
        recorder.event(
            "note",
            f"proposal {p.name!r} repeats arm {existing.name!r}",
            arm=existing.name,
            data={"proposal_id": p.proposal_id},
        )
        return None
    try:
        space = arm_space(base_space, p.overrides, p.space, p.drop_params)
    except SearchSpaceError as e:
        recorder.refused(p, f"invalid proposal space: {e}")
        return None
    arm = registry.add(
        p.name,
        tier=p.tier,
        overrides=p.overrides,
        space=space,
        model_source=p.model_source,
        model_config=dict(p.model_config) if p.model_config else None,
        origin=p.origin,
        model=p.model_name(),
        proposal_id=p.proposal_id,
        rationale=p.rationale,
        approval=p.approval,
        tokens_in=p.tokens_in,
        tokens_out=p.tokens_out,
    )
    if p.params:
        registry.enqueue(arm, flat_params(arm, p.params), p.origin)
    recorder.event(
        "note",
        f"new arm {arm.name!r} (tier {arm.tier}) from {p.origin}: {' '.join(arm.overrides)}",
        tier=arm.tier,
        arm=arm.name,
        data={
            "proposal_id": p.proposal_id,
            "overrides": list(arm.overrides),
            "rationale": p.rationale,
            "tokens_in": p.tokens_in,
            "tokens_out": p.tokens_out,
            "tool_calls": list(p.tool_calls),
        },
    )
    return arm
