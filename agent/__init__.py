"""The agent side of agentune: the `Proposer` protocol the searcher calls, and its data types."""

from __future__ import annotations

from agent.proposer import (
    AgentError,
    ArmSummary,
    Proposal,
    ProposalContext,
    ProposalError,
    Proposer,
    model_from_overrides,
)

__all__ = [
    "AgentError",
    "ArmSummary",
    "Proposal",
    "ProposalContext",
    "ProposalError",
    "Proposer",
    "model_from_overrides",
]
