"""The approval step: every sampled trial is put to the approval hook before Tune runs it.

`TrialReviewer` is called in `AgentSearcher.suggest` (on Tune's driver thread; the hook may
block while a person answers) with each trial sampled from the selected arm:

* approve: the trial runs (record approval ``approved``, or ``auto`` for an automatic one);
* modify: the decision's overrides are merged by key over the proposed ones; keys of the
  arm's space become the trial's parameters, other keys are fixed for this trial only; the
  result passes the proposal check like a proposal (a refusal rejects the trial) and is
  recorded ``modified``; the asked Optuna trial is closed as FAIL and the finished run is
  added to the arm's study with its actual parameters when they fit its distributions;
* reject (also: a hook that raises or returns something else): the trial is not launched;
  it is recorded with status ``rejected``, told to the arm's study as a constraint violation
  (TPE learns to avoid it), counts against the arm like a failure, and another trial is
  sampled, until `max_consecutive_rejections` in a row stop the campaign.

Every decision is an ``approval`` event. The stateless parts (a trial as overrides, a
modification back into parameters) are in `search.approvals`.

Pickling keeps the hook when it pickles; one that does not stays with the live object only,
and a copy unpickled without it stops the campaign rather than run trials nobody approved.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agent.hooks import ApprovalDecision, ApprovalHook, TrialRequest, merge_overrides
from agent.proposer import Proposal
from search import optuna_bridge
from search.approvals import split_modified, trial_overrides
from search.arms import Arm, ArmRegistry
from search.outcomes import Outcome
from search.recorder import HistoryRecorder
from search.space import hydra_path
from search.trials import PendingTrial, sample

__all__ = ["StopCampaign", "TrialReviewer"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StopCampaign:
    """The approval step's answer when no trial may run: the campaign stops for `reason`."""

    reason: str


class TrialReviewer:
    """Samples trials and puts each to the approval hook (see the module docstring).

    Args:
        hook: the approval hook, or None (every trial runs).
        proposal_check: the safety check a modification passes, like a proposal.
        recorder: where rejected runs and ``approval`` events go.
        max_consecutive_rejections: rejections in a row that stop the campaign.

    Raises:
        TypeError: `hook` has no `review` method.
        ValueError: `max_consecutive_rejections` < 1.
    """

    def __init__(
        self,
        hook: ApprovalHook | None,
        *,
        proposal_check: Callable[[Proposal], Proposal],
        recorder: HistoryRecorder,
        max_consecutive_rejections: int,
    ) -> None:
        if hook is not None and not callable(getattr(hook, "review", None)):
            raise TypeError(
                "`approval_hook` must have a review(request) method (an agent.hooks."
                f"ApprovalHook), got {type(hook).__name__}."
            )
        if max_consecutive_rejections < 1:
            raise ValueError(
                f"`max_consecutive_rejections` must be >= 1, got {max_consecutive_rejections}."
            )
        self.hook = hook
        self.expected = hook is not None  # a copy that lost the hook must not run trials
        self.proposal_check = proposal_check
        self.recorder = recorder
        self.max_consecutive_rejections = max_consecutive_rejections
        self.runs = 0  # trials put to the hook (TrialRequest.run_num)
        self.consecutive_rejections = 0
        self._warned = False  # "the hook cannot be pickled" was logged (live object only)

    def attach(self, hook: ApprovalHook | None) -> None:
        """Attach (or re-attach after unpickling) the hook; None turns approval off."""
        self.hook = hook
        self.expected = hook is not None

    def next_trial(
        self, registry: ArmRegistry, trial_id: str, *, metric: str, mode: str, recommendation: str
    ) -> PendingTrial | StopCampaign:
        """Sample trials until the hook lets one run (the first one without a hook).

        Args:
            registry: the arms (the trial's arm is selected there).
            trial_id: Tune's id for the trial (rejected runs are stored under
                ``<trial_id>-rejected-<run_num>``).
            metric: the campaign's metric (for rejected records).
            mode: its mode.
            recommendation: the latest recommendation text, shown to the hook.
        """
        if self.hook is None and self.expected:
            return StopCampaign(
                "the approval hook did not survive pickling (it could not be pickled), so no "
                "trial can be approved; re-attach it (searcher.approval_hook = hook) or use a "
                "picklable hook (a module-level callback)"
            )
        while True:
            arm = registry.select()
            pending = sample(arm)
            if self.hook is None:
                return pending
            approved = self._review(registry, arm, pending, trial_id, metric, mode, recommendation)
            if approved is not None:
                self.consecutive_rejections = 0
                return approved
            self.consecutive_rejections += 1
            if self.consecutive_rejections >= self.max_consecutive_rejections:
                return StopCampaign(
                    f"{self.consecutive_rejections} trials in a row were rejected by the "
                    "approval hook"
                )

    def _review(
        self,
        registry: ArmRegistry,
        arm: Arm,
        pending: PendingTrial,
        trial_id: str,
        metric: str,
        mode: str,
        recommendation: str,
    ) -> PendingTrial | None:
        """Put one sampled trial to the hook; the trial to launch, or None when rejected."""
        hook = self.hook
        assert hook is not None  # next_trial checked
        self.runs += 1
        proposed = trial_overrides(arm.overrides, pending.params)
        request = TrialRequest(
            overrides=tuple(proposed),
            run_num=self.runs,
            arm=arm.name,
            tier=arm.tier,
            origin=pending.origin,
            campaign=self.recorder.campaign,
            store=self.recorder.store,
            rationale=arm.rationale,
            model_source=arm.model_source,
            recommendation=recommendation,
        )
        decision = _ask(hook, request)
        if decision.action == "modify":
            try:
                modified = self._modified(arm, pending, proposed, decision)
            except ValueError as e:  # ProposalError, SafetyError, a value of the wrong type
                decision = ApprovalDecision.reject(f"modification refused: {e}")
            except Exception as e:  # fail closed: a check that cannot finish refuses
                decision = ApprovalDecision.reject(
                    f"modification refused: the check failed ({type(e).__name__}: {e})"
                )
            else:
                verdict = "modified" if modified is not pending else "approved"
                fixed = modified.overrides if modified.overrides is not None else arm.overrides
                modified.approval = verdict
                run = trial_overrides(fixed, modified.params)
                self.recorder.approval(verdict, request, run, decision.reason, trial_id)
                return modified
        if decision.action == "approve":
            pending.approval = "auto" if decision.auto else "approved"
            self.recorder.approval(pending.approval, request, proposed, decision.reason, trial_id)
            return pending
        reason = decision.reason or "rejected by the approval hook"
        run_id = f"{trial_id}-rejected-{request.run_num}"
        # Fed back like a failure: Optuna learns to avoid it, the arm counts it.
        optuna_bridge.tell_rejected(arm, pending.trial)
        registry.record(arm, None, pending.params, failed=True)
        pending.approval = "rejected"
        outcome = Outcome("rejected", None, reason)
        self.recorder.run(
            run_id, arm, pending, outcome, None, metric=metric, mode=mode, launched=False
        )
        self.recorder.approval("rejected", request, proposed, reason, run_id)
        return None

    def _modified(
        self, arm: Arm, pending: PendingTrial, proposed: list[str], decision: ApprovalDecision
    ) -> PendingTrial:
        """The trial a modification asks for, checked like a proposal (`pending` itself when
        the modification changes nothing).

        Raises:
            ValueError: a value of the wrong type, or the proposal check's refusal.
        """
        merged = merge_overrides(proposed, decision.overrides or ())
        if merged == proposed:
            return pending
        params, fixed = split_modified(merged, arm.space)
        proposal = Proposal(
            name=arm.name,
            tier=max(arm.tier, 2),
            overrides=fixed,
            params={hydra_path(k): v for k, v in params.items()},
            model_source=arm.model_source,
            model_config=arm.model_config,
            origin="human",
        )
        checked = self.proposal_check(proposal)
        optuna_bridge.close(arm, pending.trial)  # the study learns the actual params at the end
        return replace(pending, trial=None, params=params, overrides=tuple(checked.overrides))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_warned"] = False
        if self.hook is not None and not _picklable(self.hook):
            # The live object keeps its hook; a copy made from this state stops the campaign
            # instead of launching trials nobody approved (see the module docstring).
            state["hook"] = None
            if not self._warned:
                self._warned = True
                logger.warning(
                    "The approval hook %s cannot be pickled: it stays with this searcher "
                    "object, and a copy restored from a checkpoint stops the campaign until "
                    "one is re-attached (searcher.approval_hook = hook).",
                    type(self.hook).__name__,
                )
        return state


def _ask(hook: ApprovalHook, request: TrialRequest) -> ApprovalDecision:
    """The hook's decision; a hook that raises or answers something else rejects (fail closed)."""
    try:
        decision = hook.review(request)
    except Exception as e:
        logger.warning("The approval hook raised on trial %d: %s", request.run_num, e)
        return ApprovalDecision.reject(f"the approval hook raised {type(e).__name__}: {e}")
    if not isinstance(decision, ApprovalDecision):
        return ApprovalDecision.reject(
            f"the approval hook returned {type(decision).__name__}, not an ApprovalDecision"
        )
    return decision


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError):
        return False
    return True
