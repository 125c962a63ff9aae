"""The agent side of a campaign: escalation decisions carried out, answers taken in.

After each stored completion `AgentLoop.after_result` lets the `Escalator` decide and, when
it says propose, starts a proposer call on the `ProposalWorker` with a `ProposalContext`.
`AgentLoop.poll` (at every `suggest` and completion; it never blocks) collects a finished or
timed-out call, records it (failure, report, refused proposals) and turns the accepted
proposals, and the ones submitted from outside, into arms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution

from agent.proposer import Proposal
from search.arms import ArmRegistry
from search.escalation import EscalationDecision
from search.escalator import Escalator, proposal_context
from search.outcomes import Constraint
from search.proposal_worker import FinishedCall, ProposalWorker
from search.proposals import add_proposal_arm, check_proposal
from search.recorder import HistoryRecorder

__all__ = ["AgentLoop"]

logger = logging.getLogger(__name__)


class AgentLoop:
    """Runs the escalator's decisions through the proposal worker (see the module docstring).

    Args:
        worker: the proposer's thread.
        escalator: the decisions and their bookkeeping.
        recorder: where calls, failures and new arms are recorded.
        safety_check: the safety layer's check every proposal passes.
        max_tier: the campaign's highest tier (a proposal above it is refused).
        proposals_per_request: `n` passed to `Proposer.propose`.
        history_chars: length cap of the history text given to the proposer.
        models: built-in models the campaign may try (for the context).
        constraints: the campaign's constraints (for the context).
        campaign: the campaign name as given (None outside a campaign).

    Raises:
        ValueError: `proposals_per_request` < 1.
    """

    def __init__(
        self,
        worker: ProposalWorker,
        escalator: Escalator,
        recorder: HistoryRecorder,
        *,
        safety_check: Callable[[Proposal], Proposal],
        max_tier: int,
        proposals_per_request: int,
        history_chars: int,
        models: Sequence[str],
        constraints: Mapping[str, Constraint],
        campaign: str | None,
    ) -> None:
        if proposals_per_request < 1:
            raise ValueError(f"`proposals_per_request` must be >= 1, got {proposals_per_request}.")
        self.worker = worker
        self.escalator = escalator
        self.recorder = recorder
        self.safety_check = safety_check
        self.max_tier = max_tier
        self.proposals_per_request = proposals_per_request
        self.history_chars = history_chars
        self.models = tuple(models)
        self.constraints = dict(constraints)
        self.campaign = campaign

    def check(self, proposal: Any) -> Proposal:
        """`search.proposals.check_proposal` with this campaign's settings (thread-safe: it
        reads only settings fixed at construction)."""
        return check_proposal(proposal, self.max_tier, self.safety_check)

    def poll(
        self,
        registry: ArmRegistry | None,
        base_space: Mapping[str, BaseDistribution] | None,
        n_results: int,
    ) -> None:
        """Collect a finished (or timed-out) call and add held proposals as arms (once the
        searcher is set up: until then they wait in the worker)."""
        self._collect(self.worker.expire(), n_results)
        self._collect(self.worker.collect(), n_results)
        if registry is None or base_space is None:
            return
        for proposal, checked in self.worker.take():
            if not checked:
                try:
                    proposal = self.check(proposal)
                except ValueError as e:
                    self.recorder.refused(proposal, str(e))
                    continue
                except Exception as e:  # fail closed: a check that cannot finish refuses
                    self.recorder.refused(proposal, f"the check failed ({type(e).__name__}: {e})")
                    continue
            arm = add_proposal_arm(registry, base_space, proposal, self.recorder)
            if arm is not None:
                self.escalator.request_arms.append(arm.name)

    def after_result(
        self,
        registry: ArmRegistry,
        base_space: Mapping[str, BaseDistribution],
        n_results: int,
        *,
        metric: str,
        mode: str,
    ) -> None:
        """Read the recommendation and act on it (after every stored completion)."""
        self._collect(self.worker.expire(), n_results)  # a hung call must not hold things up
        step = self.escalator.step(registry, n_results, in_flight=self.worker.in_flight)
        if step is None:
            return
        decision, history = step
        proposer = self.worker.proposer
        if proposer is None or decision.tier is None or self.escalator.budget_spent(proposer):
            return
        self._request(decision, history, registry, base_space, metric=metric, mode=mode)

    def _request(
        self,
        decision: EscalationDecision,
        history: Any,
        registry: ArmRegistry,
        base_space: Mapping[str, BaseDistribution],
        *,
        metric: str,
        mode: str,
    ) -> None:
        assert decision.tier is not None  # after_result checked
        store = self.recorder.store
        context = proposal_context(
            registry,
            history,
            tier=decision.tier,
            reasons=decision.reasons,
            metric=metric,
            mode=mode,
            campaign=self.campaign,
            base_space=base_space,
            models=self.models,
            max_tier=self.max_tier,
            constraints=self.constraints,
            store_root=str(store.root) if store is not None else None,
        )
        n = self.proposals_per_request
        self.worker.start(
            context, n, store=store, history_chars=self.history_chars, check=self.check
        )
        self.escalator.requested(decision, n)

    def _collect(self, call: FinishedCall | None, n_results: int) -> None:
        """Record a collected call (its failure, its report, its refusals); hold its proposals."""
        if call is None:
            return
        batch, failure = call.batch, call.error
        tier = call.request.tier if call.request else None
        if failure is not None:  # the proposer is untrusted code: any failure is recorded
            name = type(failure).__name__
            logger.warning("The proposer failed (%s: %s); tuning continues.", name, failure)
            self.recorder.event(
                "agent_failure",
                f"{name}: {failure}",
                tier=tier,
                data={
                    "error_type": name,
                    **({"call": batch.report.to_dict()} if batch.report else {}),
                },
            )
        if batch.report is not None:
            self.recorder.agent_call(batch.report, [p.name for p in batch.accepted], tier)
        for proposal, reason in batch.refused:
            self.recorder.refused(proposal, reason)
        self.worker.held.extend((p, True) for p in batch.accepted)
        self.escalator.results_at_request = n_results
