"""The searcher's side of the campaign history: run records, epoch curves and events.

`HistoryRecorder` is the one writer `AgentSearcher` uses: every `RunRecord` and every event
(``recommendation``, ``escalation``, ``agent_call``, ``agent_failure``, ``approval``,
``note``) is built here, so their wording lives in one place. Without a store, records are
kept in memory (the recommender then reads those) and events are dropped.

A store that cannot be written never stops the search: the failure is logged and the
record (or event) is lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from search.arms import Arm
from search.contract import EPOCH_KEY, GIT_COMMIT_ENV, RUN_ID_KEY
from search.outcomes import Outcome
from search.space import hydra_path, is_finite_number
from search.trials import PendingTrial

if TYPE_CHECKING:
    from agent.hooks import TrialRequest
    from agent.proposer import AgentCallReport
    from feedback import FeedbackStore, RunRecord

__all__ = ["HistoryRecorder", "epoch_row"]

logger = logging.getLogger(__name__)


class HistoryRecorder:
    """Writes a campaign's runs and events to its `FeedbackStore` (picklable with it).

    Args:
        store: the campaign's store; None keeps records in memory and drops events.
        campaign: campaign name written to records and events.
        recording: whether finished trials become records at all (off for a drop-in
            search without a store).

    Every record carries the project's git commit: ``$AGENTUNE_GIT_COMMIT`` when set (a job
    submitted to a cluster runs in an uploaded copy without ``.git``; `agentune submit` sets
    it), else `feedback.git_commit` of the working directory, read once here (the driver).
    """

    def __init__(self, store: FeedbackStore | None, campaign: str, *, recording: bool) -> None:
        self.store = store
        self.campaign = campaign
        self.recording = recording
        self.git_commit: str | None = None
        if recording:
            from feedback import git_commit

            self.git_commit = os.environ.get(GIT_COMMIT_ENV) or git_commit()
        self.records: list[RunRecord] = []  # session records when there is no store

    def history(self) -> Any:
        """The campaign's runs in finishing order: the store's pyarrow Table, else records."""
        if self.store is not None:
            return self.store.table(campaign=self.campaign)
        return list(self.records)

    # ------------------------------------------------------------------ runs

    def run(
        self,
        trial_id: str,
        arm: Arm,
        pending: PendingTrial,
        outcome: Outcome,
        result: Mapping[str, Any] | None,
        *,
        metric: str,
        mode: str,
        launched: bool = True,
    ) -> RunRecord | None:
        """Store the run of `pending` with its epoch curve; None when not recording or the
        record could not be built or written (logged).

        `launched=False` for a trial the approval hook rejected (no Tune trial: `trial_id` is
        only its run id). The arm's proposal tokens are charged to its first stored record.
        """
        if not self.recording:
            return None
        from feedback import RunRecord

        result = result or {}
        charge = not arm.tokens_charged and arm.origin != "campaign"
        try:
            record = RunRecord.from_tune_result(
                {k: v for k, v in result.items() if k != "config" and not k.startswith("config/")},
                campaign=self.campaign,
                arm=arm.name,
                tier=arm.tier,
                origin=pending.origin,
                metric=metric,
                mode=mode,
                run_id=str(result.get(RUN_ID_KEY) or trial_id),
                status=outcome.status,
                overrides=pending.overrides if pending.overrides is not None else arm.overrides,
                params={hydra_path(k): _param_value(v) for k, v in pending.params.items()},
                value=outcome.value,
                error=outcome.error,
                approval=pending.approval or arm.approval,
                tokens_in=arm.tokens_in if charge else 0,
                tokens_out=arm.tokens_out if charge else 0,
                rationale=arm.rationale or None,
                git_commit=self.git_commit,
            )
            record = replace(
                record,
                value=outcome.value,  # None for failures, whatever the last report said
                trial_id=trial_id if launched else None,
                model=record.model or arm.model,
                dataset=_str_or_none(result.get("dataset")),
                test_metrics={
                    k: float(v)
                    for k, v in result.items()
                    if k.startswith("test/") and is_finite_number(v)
                },
                seed=record.seed if record.seed is not None else pending.seed,
                started_at=record.started_at or pending.started_at,
                finished_at=record.finished_at or datetime.now(UTC),
            )
        except (TypeError, ValueError) as e:  # FeedbackError is a ValueError
            logger.error("Could not build the record of trial %s: %s", trial_id, e)
            return None
        if self.store is None:
            self.records.append(record)
        else:
            try:
                self.store.append(record)
                if pending.curve:
                    self.store.append_curve(record.run_id, pending.curve, campaign=self.campaign)
            except (OSError, ValueError) as e:
                logger.error("Could not write trial %s to the feedback store: %s", trial_id, e)
                return None
        if charge:
            arm.tokens_charged = True
        return record

    # ------------------------------------------------------------------ events

    def event(
        self,
        kind: str,
        message: str,
        *,
        tier: int | None = None,
        arm: str | None = None,
        run_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event (nothing without a store; a write failure is logged)."""
        if self.store is None:
            return
        from feedback import Event

        try:
            event = Event(
                campaign=self.campaign,
                kind=kind,
                message=message,
                tier=tier,
                arm=arm,
                run_id=run_id,
                data=dict(data or {}),
            )
            self.store.append_event(event)
        except (OSError, ValueError) as e:  # FeedbackError is a ValueError
            logger.error("Could not write a %s event to the feedback store: %s", kind, e)

    def approval(
        self, decision: str, request: TrialRequest, run: Sequence[str], reason: str, run_id: str
    ) -> None:
        """An ``approval`` event: the hook's decision on one trial."""
        logger.info(
            "trial %d (%s, arm %s): %s", request.run_num, request.origin, request.arm, decision
        )
        self.event(
            "approval",
            f"trial {request.run_num} ({request.origin}, arm {request.arm}): {decision}"
            + (f": {reason}" if reason else ""),
            tier=request.tier,
            arm=request.arm,
            run_id=run_id,
            data={
                "decision": decision,
                "run_num": request.run_num,
                "origin": request.origin,
                "arm": request.arm,
                "overrides_proposed": list(request.overrides),
                "overrides_run": [] if decision == "rejected" else list(run),
                "reason": reason,
            },
        )

    def agent_call(
        self, report: AgentCallReport, proposed: Sequence[str], tier: int | None
    ) -> None:
        """An ``agent_call`` event: one proposer call's report (tokens, tool calls, outcome)."""
        spent = f"{report.tokens_in + report.tokens_out} tokens"
        if report.token_budget is not None:
            spent += f" ({report.tokens_total} of {report.token_budget} over the campaign)"
        self.event(
            "agent_call",
            f"{report.model}: {report.outcome}, {report.steps} steps, {spent}, "
            f"{len(report.tool_calls)} tool calls"
            + (f"; proposed {', '.join(proposed)}" if proposed else "")
            + (f"; {report.error}" if report.error else ""),
            tier=tier,
            data={**report.to_dict(), "proposals": list(proposed)},
        )

    def refused(self, proposal: Any, reason: str) -> None:
        """Log and record a refused proposal (an ``agent_failure`` event with the reason)."""
        name = getattr(proposal, "name", None)
        tier = getattr(proposal, "tier", None)
        logger.warning("Proposal %r refused: %s", name, reason)
        self.event(
            "agent_failure",
            f"proposal {name!r} refused: {reason}",
            tier=tier if tier in (2, 3) else None,
            data={
                "proposal_id": getattr(proposal, "proposal_id", None),
                "name": name if isinstance(name, str) else None,
                "reason": reason,
                "check": "proposal",
            },
        )


def epoch_row(result: Mapping[str, Any]) -> dict[str, float]:
    """The epoch and the finite metrics with a slash (`train/loss`, `val/macro_f1`) of a result."""
    row = {EPOCH_KEY: float(result[EPOCH_KEY])}
    for key, value in result.items():
        if "/" in key and not key.startswith("config/") and is_finite_number(value):
            row[key] = float(value)
    return row


def _param_value(v: Any) -> float | int | str | bool | None:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if is_finite_number(v):
        return float(v)
    return str(v)


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None
