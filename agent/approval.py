"""Backwards-compatible names for the approval hooks; their home is `agent.hooks`.

Approval used to apply to agent proposals (an `ApprovingProposer` wrapper); it now applies to
every trial before it is launched, whoever proposed it (`search.AgentSearcher(approval_hook=)`).
`AutoApproval` and `TerminalApproval` are the old names of `AutoApprovalHook` and
`TerminalApprovalHook`.
"""

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

__all__ = [
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalHook",
    "AutoApproval",
    "AutoApprovalHook",
    "CallbackApprovalHook",
    "TerminalApproval",
    "TerminalApprovalHook",
    "TrialRequest",
    "hook_for",
]

AutoApproval = AutoApprovalHook
TerminalApproval = TerminalApprovalHook
