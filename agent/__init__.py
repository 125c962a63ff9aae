"""The agent side of agentune: the smolagents agent, the `Proposer` protocol the searcher
calls with its data types, and the approval hooks that see every trial."""

from __future__ import annotations

from agent.hooks import (
    ApprovalDecision,
    ApprovalError,
    ApprovalHook,
    AutoApprovalHook,
    CallbackApprovalHook,
    TerminalApprovalHook,
    TrialRequest,
    hook_for,
)
from agent.proposer import (
    AgentCallReport,
    AgentError,
    ArmSummary,
    Proposal,
    ProposalContext,
    ProposalError,
    Proposer,
    model_from_overrides,
)
from agent.smolagents_proposer import SmolagentsProposer, proposer_from_settings

__all__ = [
    "AgentCallReport",
    "AgentError",
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalHook",
    "ArmSummary",
    "AutoApprovalHook",
    "CallbackApprovalHook",
    "Proposal",
    "ProposalContext",
    "ProposalError",
    "Proposer",
    "SmolagentsProposer",
    "TerminalApprovalHook",
    "TrialRequest",
    "hook_for",
    "model_from_overrides",
    "proposer_from_settings",
]
