"""Escalation policy: a feedback recommendation -> what the searcher does next.

The searcher reads `feedback.signals.recommend(...)` after every finished trial and hands the
action to `EscalationPolicy.decide`, a pure function of its inputs (no I/O), so the ladder can
be tested without Ray, Optuna or an LLM.

The ladder (capped by the campaign's `max_tier`):

=================  ==============================================================
action             decision
=================  ==============================================================
``continue``       keep tuning the existing arms (no request)
``change_lr``      keep tuning: the numeric space already covers the learning rate
                   (stagnation within patience, or drift; on drift within an arm
                   that does not hold the best value the searcher also retires that
                   arm, `ArmRegistry.retire_for_drift`, so its trials go to the others;
                   with `repeats`, every new incumbent is re-evaluated with other
                   seeds, `search.repeats`, so the best is a mean, not one lucky value)
``change_model``   ask the proposer for tier-2 proposals (config variants) while
                   some model in `models` is not yet tuned or `models` is empty;
                   once every listed model was tuned (had `min_trials_per_arm`
                   finished runs, `search.escalator`), ask for tier 3 (generated
                   models) if `max_tier >= 3`, else tier 2 again
``stop``           stop: `suggest` returns FINISHED once running trials are done
=================  ==============================================================

A request is only made when the searcher is *ready* for one: no proposal call is in flight,
every arm added by the previous request has had `min_trials_per_arm` results (so the signal
has seen the new arms), and the request budget (`max_requests`) is not spent. Otherwise the
decision is ``wait`` (keep tuning). `max_tier < 2` turns escalation off (``change_model``
then keeps tuning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["ACTIONS", "EscalationDecision", "EscalationPolicy"]

Action = Literal["continue", "change_lr", "change_model", "stop"]
ACTIONS: tuple[str, ...] = ("continue", "change_lr", "change_model", "stop")

Decision = Literal["tune", "propose", "wait", "stop"]


@dataclass(frozen=True)
class EscalationDecision:
    """What to do after one finished trial.

    Attributes:
        kind: `"tune"` (keep tuning), `"propose"` (ask the proposer for `tier` proposals),
            `"wait"` (an escalation is due but a request cannot be made yet: keep tuning),
            or `"stop"`.
        action: the recommendation's action that led here.
        tier: the tier to ask for when `kind == "propose"`, else None.
        reasons: the recommendation's reasons plus the policy's own.
    """

    kind: Decision
    action: str
    tier: int | None = None
    reasons: tuple[str, ...] = ()


class EscalationPolicy:
    """Maps recommendation actions to decisions (see the module docstring for the ladder).

    Args:
        max_tier: highest tier the campaign allows (0 or 1: no escalation; 2; 3).
        models: built-in models the campaign may try, e.g. `["cnn1d", "resnet1d"]`; empty
            means unknown (tier 2 is then always available).
        max_requests: most proposer calls in the whole campaign (None: unlimited).

    Raises:
        ValueError: `max_tier` outside 0..3 or `max_requests` negative.
    """

    def __init__(
        self,
        *,
        max_tier: int = 2,
        models: Sequence[str] = (),
        max_requests: int | None = None,
    ) -> None:
        if max_tier not in (0, 1, 2, 3):
            raise ValueError(f"`max_tier` must be 0, 1, 2 or 3, got {max_tier!r}.")
        if max_requests is not None and max_requests < 0:
            raise ValueError(f"`max_requests` must be >= 0 or None, got {max_requests!r}.")
        self.max_tier = max_tier
        self.models = tuple(models)
        self.max_requests = max_requests

    def tier_for_model_change(self, tried_models: Sequence[str]) -> int | None:
        """The tier a `change_model` asks for given the models tried, or None (escalation off)."""
        if self.max_tier < 2:
            return None
        untried = [m for m in self.models if m not in set(tried_models)]
        if self.models and not untried and self.max_tier >= 3:
            return 3
        return 2

    def decide(
        self,
        action: str,
        reasons: Sequence[str] = (),
        *,
        tried_models: Sequence[str] = (),
        requests_made: int = 0,
        request_in_flight: bool = False,
        arms_settled: bool = True,
    ) -> EscalationDecision:
        """Decide what follows a recommendation.

        Args:
            action: the recommendation's action (one of `ACTIONS`).
            reasons: the recommendation's reasons.
            tried_models: models already trained in the campaign.
            requests_made: proposer calls made so far.
            request_in_flight: a proposer call is running.
            arms_settled: every arm from the previous request has its minimum trials.

        Raises:
            ValueError: unknown `action`.
        """
        if action not in ACTIONS:
            raise ValueError(
                f"Unknown recommendation action {action!r}; expected one of {ACTIONS}."
            )
        why = tuple(reasons)
        if action == "stop":
            return EscalationDecision("stop", action, None, why)
        if action in ("continue", "change_lr"):
            return EscalationDecision("tune", action, None, why)
        tier = self.tier_for_model_change(tried_models)
        if tier is None:
            return EscalationDecision(
                "tune", action, None, (*why, f"escalation is off (max_tier={self.max_tier})")
            )
        if request_in_flight:
            return EscalationDecision("wait", action, tier, (*why, "a proposal is in flight"))
        if not arms_settled:
            return EscalationDecision(
                "wait", action, tier, (*why, "new arms have not had their trials yet")
            )
        if self.max_requests is not None and requests_made >= self.max_requests:
            return EscalationDecision(
                "tune", action, None, (*why, f"agent request budget spent ({self.max_requests})")
            )
        if tier == 3:
            why = (*why, f"every listed model was tuned ({', '.join(self.models)})")
        return EscalationDecision("propose", action, tier, why)
