"""The safety layer's exceptions: one base class, one subclass per kind of input refused.

Every message is one line that an LLM reads: the rule, the value received, and what to try
instead (`"model._target_: overrides may not set _target_; pick a model with model=<name>"`).
Errors that collect several broken rules (model code) keep each one in `reasons`.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.proposer import ProposalError

__all__ = [
    "SafetyError",
    "UnsafeConfigError",
    "UnsafeModelError",
    "UnsafeOverrideError",
]


class SafetyError(ProposalError):
    """Something the agent wrote was refused; nothing was written, imported or launched.

    Attributes:
        reasons: every rule that was broken (the message joins them with "; ").
    """

    def __init__(self, message: str, reasons: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.reasons: tuple[str, ...] = tuple(reasons) if reasons else (message,)


class UnsafeOverrideError(SafetyError):
    """A Hydra override (or a search-space key or value) outside the override policy."""


class UnsafeConfigError(SafetyError):
    """An agent-written config (YAML, `mods`, experiment) outside the config rules."""


class UnsafeModelError(SafetyError):
    """Generated model code rejected by the AST policy or the sandboxed smoke test."""
