"""Campaign mode's step after every stored completion: read the signals, decide, act.

`Escalator` reads the feedback recommendation over the campaign's history, hands it to the
`EscalationPolicy` (the ladder lives in `search.escalation`), writes a ``recommendation``
event when the action changes, and stops the campaign, retires a drifting arm, or returns
the decision to ask the proposer. It also keeps the request bookkeeping the policy reads:
how many requests were made, and whether the arms of the last one have had their trials.

Tier 3 is asked for once every listed model was *tuned*: each has at least
`min_trials_per_arm` finished runs (completed, pruned, diverged or infeasible: trained to
the end or stopped by the scheduler, not failed or rejected) in the history, or has no
active arm left to give it more (all its arms retired). A model with one running trial, or
only failed ones, still counts as tried for the agent's context, so tier 2 is asked again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from optuna.distributions import BaseDistribution

from agent.proposer import ProposalContext, Proposer
from search.arms import ArmRegistry
from search.escalation import EscalationDecision, EscalationPolicy
from search.outcomes import Constraint
from search.recorder import HistoryRecorder
from search.space import describe_space

__all__ = ["TUNED_STATUSES", "Escalator", "proposal_context", "tried_models", "tuned_models"]

logger = logging.getLogger(__name__)

TUNED_STATUSES = frozenset({"completed", "pruned", "diverged", "infeasible"})
"""Run statuses that count towards a model's minimum trials before tier 3."""


class Escalator:
    """Escalation state and the step after each completion (see the module docstring).

    Args:
        policy: the ladder.
        recorder: where ``recommendation`` and ``escalation`` events go.
        recommender: replaces `feedback.recommend` (see `AgentSearcher`), or None.
        signal_thresholds: a `feedback.SignalThresholds`, a dict of its fields, or None.
        min_trials_per_arm: results each arm of the last request needs before the next
            request, and finished runs each listed model needs before tier 3.
    """

    def __init__(
        self,
        policy: EscalationPolicy,
        *,
        recorder: HistoryRecorder,
        recommender: Callable[[Any], Any] | None,
        signal_thresholds: Any,
        min_trials_per_arm: int,
    ) -> None:
        self.policy = policy
        self.recorder = recorder
        self.recommender = recommender
        self.signal_thresholds = signal_thresholds
        self.min_trials_per_arm = min_trials_per_arm
        self.requests_made = 0
        self.request_arms: list[str] = []  # arms the last request added
        self.results_at_request = 0  # results when the last request's answer arrived
        self.last_action: str | None = None
        self.last_recommendation = ""  # latest recommendation text, for TrialRequest
        self.budget_noted = False  # the "token budget spent" event was written
        self.stopping = False
        self.stop_reasons: tuple[str, ...] = ()

    def step(
        self, registry: ArmRegistry, n_results: int, *, in_flight: bool
    ) -> tuple[EscalationDecision, Any] | None:
        """Read the recommendation and act on it.

        Args:
            registry: the arms.
            n_results: finished trials so far.
            in_flight: a proposer call is running (or not collected yet).

        Returns:
            (decision, history) when the proposer should be asked; None otherwise (tune on,
            wait, stop, or the history could not be read: logged).
        """
        try:
            history = self.recorder.history()
            action, reasons, drift_arm = self._recommendation(history)
            decision = self.policy.decide(
                action,
                reasons,
                tried_models=tuned_models(registry, history, self.min_trials_per_arm),
                requests_made=self.requests_made,
                request_in_flight=in_flight,
                arms_settled=self._settled(registry, n_results),
            )
        except (OSError, ValueError) as e:
            logger.warning("Could not compute the feedback recommendation: %s", e)
            return None
        text = f"{action}: {'; '.join(reasons)}" if reasons else action
        self.last_recommendation = text
        if action != self.last_action:
            self.recorder.event(
                "recommendation",
                text,
                data={"action": action, "reasons": list(reasons), "decision": decision.kind},
            )
            self.last_action = action
        if decision.kind == "stop":
            self.stopping = True
            self.stop_reasons = decision.reasons
            logger.info("Stopping the campaign: %s", "; ".join(decision.reasons))
            return None
        if drift_arm is not None:
            retired = registry.retire_for_drift(drift_arm)
            if retired is not None:
                self.recorder.event("note", retired, arm=drift_arm, data={"signal": "drift"})
        return (decision, history) if decision.kind == "propose" else None

    def stop(self, reason: str) -> None:
        """Stop as the policy's stop does, with `reason` as a ``recommendation`` event."""
        if self.stopping:
            return
        self.stopping = True
        self.stop_reasons = (reason,)
        self.last_action = "stop"
        logger.warning("Stopping the campaign: %s", reason)
        self.recorder.event(
            "recommendation",
            f"stop: {reason}",
            data={"action": "stop", "reasons": [reason], "decision": "stop"},
        )

    def stop_at_trial_budget(self, running: Iterable[str]) -> bool:
        """Stop when the trials recorded in the history and those running reach the trial
        budget (``signal_thresholds.budget``); returns whether the campaign is stopping.

        Tune counts the budget's trials itself, but a resumed campaign's history can hold
        runs recorded after Tune's last experiment snapshot (a driver killed between the
        two): the restored Tune does not know them and would start that many trials more.
        Trials are told apart by id (a rerun of a recorded trial counts once); approval
        rejections (no Tune trial) do not count.
        """
        budget = _threshold(self.signal_thresholds, "budget")
        if self.stopping or budget is None:
            return self.stopping
        try:
            ids = _trial_ids(self.recorder.history()) | set(running)
        except (OSError, ValueError) as e:
            logger.warning("Could not read the history to check the trial budget: %s", e)
            return False
        if len(ids) >= budget:
            self.stop(f"budget spent: {len(ids)} trials recorded or running (budget {budget})")
        return self.stopping

    def budget_spent(self, proposer: Proposer) -> bool:
        """Whether the proposer's token budget is spent; says so in the history once."""
        if not getattr(proposer, "budget_spent", False):
            return False
        if not self.budget_noted:
            self.budget_noted = True
            used = getattr(proposer, "tokens_used", None)
            cap = getattr(proposer, "token_budget", None)
            self.recorder.event(
                "agent_failure",
                f"token budget spent ({used} of {cap} tokens): the agent is not called again; "
                "Optuna keeps tuning the existing arms",
                data={"reason": "token_budget", "tokens_used": used, "token_budget": cap},
            )
        return True

    def requested(self, decision: EscalationDecision, n: int) -> None:
        """Count a request just started, with its ``escalation`` event."""
        self.requests_made += 1
        self.request_arms = []
        self.recorder.event(
            "escalation",
            f"asking the proposer for {n} tier-{decision.tier} proposals: "
            + "; ".join(decision.reasons),
            tier=decision.tier,
            data={"action": decision.action, "reasons": list(decision.reasons), "n": n},
        )

    def _settled(self, registry: ArmRegistry, n_results: int) -> bool:
        """The last request's arms have their trials, and enough results came in since."""
        for name in self.request_arms:
            arm = registry[name]
            if not arm.retired and arm.n_results < self.min_trials_per_arm:
                return False
        cooldown = max(1, self.min_trials_per_arm)
        return self.requests_made == 0 or n_results - self.results_at_request >= cooldown

    def _recommendation(self, history: Any) -> tuple[str, tuple[str, ...], str | None]:
        """(action, reasons, the arm a drift reading names or None) over the history."""
        if self.recommender is not None:
            rec = self.recommender(history)
        else:
            from feedback import SignalThresholds, recommend

            th = self.signal_thresholds
            if th is not None and not isinstance(th, SignalThresholds):
                th = SignalThresholds(**dict(th))
            rec = recommend(history, thresholds=th)
        reading = getattr(rec, "drift", None)
        arm = getattr(reading, "arm", None) if getattr(reading, "drifting", False) else None
        return str(rec.action), tuple(str(r) for r in rec.reasons), arm or None


def _threshold(thresholds: Any, name: str) -> int | None:
    """An integer field of a `SignalThresholds` or of a dict of its fields (None: unset)."""
    value = (
        thresholds.get(name) if isinstance(thresholds, Mapping) else getattr(thresholds, name, None)
    )
    return value if type(value) is int else None


def _trial_ids(history: Any) -> set[str]:
    """Tune trial ids of the history's runs (a pyarrow Table or records), rejections aside."""
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(history, pa.Table):
        pairs = zip(
            history.column("trial_id").to_pylist(),
            history.column("status").to_pylist(),
            strict=True,
        )
    else:
        pairs = ((r.trial_id, r.status) for r in history)
    return {str(t) for t, status in pairs if t and status != "rejected"}


def _model_rows(history: Any) -> Iterable[tuple[Any, Any]]:
    """(model, status) of each run in the history (a pyarrow Table or `RunRecord`s)."""
    if isinstance(history, pa.Table):
        return zip(
            history.column("model").to_pylist(), history.column("status").to_pylist(), strict=True
        )
    return ((r.model, r.status) for r in history)


def tried_models(registry: ArmRegistry, history: Any) -> list[str]:
    """Models with a started trial (an arm's) or a run in the history that was not rejected."""
    tried = registry.tried_models()
    for model, status in _model_rows(history):
        if model and model not in tried and status != "rejected":
            tried.append(model)
    return tried


def tuned_models(registry: ArmRegistry, history: Any, min_trials: int) -> list[str]:
    """Models with at least `min_trials` (at least 1) runs of `TUNED_STATUSES` in the history,
    plus models all of whose arms are retired (they get no more trials), in first-seen order."""
    need = max(1, min_trials)
    counts: Counter[str] = Counter()
    for model, status in _model_rows(history):
        if model and status in TUNED_STATUSES:
            counts[model] += 1
    tuned = [m for m, k in counts.items() if k >= need]
    by_model: dict[str, list[bool]] = {}
    for arm in registry:
        if arm.model:
            by_model.setdefault(arm.model, []).append(arm.retired)
    tuned += [m for m, retired in by_model.items() if all(retired) and m not in tuned]
    return tuned


def proposal_context(
    registry: ArmRegistry,
    history: Any,
    *,
    tier: int,
    reasons: Sequence[str],
    metric: str,
    mode: str,
    campaign: str | None,
    base_space: Mapping[str, BaseDistribution],
    models: Sequence[str],
    max_tier: int,
    constraints: Mapping[str, Constraint],
    store_root: str | None,
) -> ProposalContext:
    """The snapshot handed to `Proposer.propose` (arms best first; the history text is added
    on the worker thread)."""
    arms = sorted(
        registry.arms.values(),
        key=lambda a: (
            a.best_value is None,
            -(a.best_value or 0.0) if mode == "max" else (a.best_value or 0.0),
        ),
    )
    best = registry.best()
    return ProposalContext(
        tier=tier,
        metric=metric,
        mode=mode,
        campaign=campaign,
        reasons=tuple(reasons),
        space=describe_space(base_space),
        arms=tuple(a.summary() for a in arms),
        models=tuple(models),
        tried_models=tuple(tried_models(registry, history)),
        best_value=best.best_value if best else None,
        max_tier=max_tier,
        constraints=dict(constraints),
        store_root=store_root,
    )
