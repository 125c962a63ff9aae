"""Human approval of agent proposals: approve, modify or reject each one before it is trained.

`ApprovingProposer(inner, hook)` wraps any `Proposer`: every proposal the inner one returns is
shown to the `ApprovalHook`, which answers approve (kept as is), modify (kept with the human's
extra overrides) or reject (dropped). Each decision is written to the campaign's history as an
``approval`` event when the wrapper knows the store, so the dashboard's approval timeline shows
who decided what. Hooks:

* `AutoApproval`: approves everything (unattended campaigns, `--approval auto`).
* `TerminalApproval`: asks at the terminal (`--approval terminal`); needs an interactive stdin.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from agent.proposer import AgentError, Proposal, ProposalContext, Proposer

logger = logging.getLogger(__name__)

__all__ = [
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalHook",
    "ApprovingProposer",
    "AutoApproval",
    "TerminalApproval",
    "hook_for",
]

Verdict = Literal["approved", "modified", "rejected", "auto"]


class ApprovalError(AgentError, ValueError):
    """An approval setting that cannot work here (e.g. a terminal prompt without a terminal)."""


@dataclass(frozen=True)
class ApprovalDecision:
    """A hook's answer: the verdict, the proposal to train (None when rejected) and a note."""

    verdict: Verdict
    proposal: Proposal | None
    note: str = ""


class ApprovalHook(Protocol):
    """Decides on one proposal; called on the searcher's background thread, one at a time."""

    def review(self, proposal: Proposal, context: ProposalContext) -> ApprovalDecision:
        """Return the decision for `proposal`."""
        ...


class AutoApproval:
    """Approves every proposal unchanged (verdict "auto")."""

    def review(self, proposal: Proposal, context: ProposalContext) -> ApprovalDecision:
        """Approve `proposal` as it is."""
        return ApprovalDecision("auto", replace(proposal, approval="auto"))


def describe_proposal(proposal: Proposal) -> str:
    """A few readable lines about a proposal, for prompts and logs."""
    lines = [
        f"proposal {proposal.name!r} (tier {proposal.tier}, from {proposal.origin})",
        f"  overrides: {' '.join(proposal.overrides) or '(none)'}",
    ]
    if proposal.params:
        lines.append("  start at: " + ", ".join(f"{k}={v}" for k, v in proposal.params.items()))
    if proposal.model_source:
        lines.append(f"  generated model: {len(proposal.model_source.splitlines())} lines of code")
    if proposal.rationale:
        lines.append(f"  why: {proposal.rationale}")
    return "\n".join(lines)


class TerminalApproval:
    """Asks at the terminal: [a]pprove, [m]odify (add Hydra overrides) or [r]eject.

    Args:
        ask: reads one answer for a prompt (default `input`); tests pass a scripted one.
        show: writes text for the human (default: print to stderr, away from result lines).

    Raises:
        ApprovalError: with the default `ask`, when stdin is not an interactive terminal.
    """

    def __init__(
        self,
        ask: Callable[[str], str] | None = None,
        show: Callable[[str], None] | None = None,
    ) -> None:
        if ask is None and not sys.stdin.isatty():
            raise ApprovalError(
                "--approval terminal needs an interactive terminal on stdin; use "
                "--approval auto for unattended runs (ray job submit, CI)"
            )
        self._ask = ask
        self._show = show

    def _prompt(self, text: str) -> str:
        return (self._ask or input)(text).strip()

    def _print(self, text: str) -> None:
        if self._show is not None:
            self._show(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def review(self, proposal: Proposal, context: ProposalContext) -> ApprovalDecision:
        """Show the proposal and ask until the answer is a, m or r."""
        self._print(describe_proposal(proposal))
        while True:
            answer = self._prompt("approve, modify or reject? [a/m/r] ").lower()
            if answer in ("a", "approve", "y", "yes"):
                return ApprovalDecision("approved", replace(proposal, approval="approved"))
            if answer in ("r", "reject", "n", "no"):
                note = self._prompt("reason (optional): ")
                return ApprovalDecision("rejected", None, note)
            if answer in ("m", "modify"):
                extra = self._prompt(
                    "extra Hydra overrides (e.g. model.width=32 trainer.lr=1e-3): "
                )
                overrides = [*proposal.overrides, *extra.split()]
                modified = replace(proposal, overrides=overrides, approval="modified")
                return ApprovalDecision("modified", modified, f"added: {extra}")
            self._print(f"answer a, m or r, got {answer!r}")


def hook_for(name: str) -> ApprovalHook:
    """The hook for `--approval NAME` ("auto" or "terminal").

    Raises:
        ApprovalError: an unknown name, or "terminal" without a terminal.
    """
    if name == "auto":
        return AutoApproval()
    if name == "terminal":
        return TerminalApproval()
    raise ApprovalError(f"--approval must be 'auto' or 'terminal', got {name!r}")


class ApprovingProposer:
    """A `Proposer` that passes the inner proposer's proposals through an `ApprovalHook`.

    Args:
        inner: the proposer that writes proposals (LLM, offline rules, ...).
        hook: decides on each proposal.
        store_root: the campaign's `history/` folder; decisions are written there as
            ``approval`` events (None: only logged).
        campaign: campaign name for those events.
    """

    def __init__(
        self,
        inner: Proposer,
        hook: ApprovalHook,
        store_root: str | Path | None = None,
        campaign: str | None = None,
    ) -> None:
        self.inner = inner
        self.hook = hook
        self.store_root = None if store_root is None else str(store_root)
        self.campaign = campaign

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        """The inner proposals that the hook approved (possibly modified), at most `n`."""
        kept: list[Proposal] = []
        for proposal in self.inner.propose(context, n)[:n]:
            decision = self.hook.review(proposal, context)
            self._record(proposal, decision, context)
            if decision.proposal is not None:
                kept.append(decision.proposal)
        return kept

    def _record(
        self, proposal: Proposal, decision: ApprovalDecision, context: ProposalContext
    ) -> None:
        logger.info("proposal %s: %s %s", proposal.name, decision.verdict, decision.note)
        if self.store_root is None:
            return
        from feedback import Event, FeedbackStore

        FeedbackStore(self.store_root).append_event(
            Event(
                campaign=self.campaign or context.campaign or "default",
                kind="approval",
                message=f"{proposal.name}: {decision.verdict}"
                + (f" ({decision.note})" if decision.note else ""),
                tier=proposal.tier,
                arm=proposal.name,
                data={
                    "decision": decision.verdict,
                    "overrides": list((decision.proposal or proposal).overrides),
                    "rationale": proposal.rationale,
                },
            )
        )
