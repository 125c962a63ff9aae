"""The search side of agentune: the Ray Tune searcher, its arms, spaces and escalation policy.

`AgentSearcher` is a drop-in Tune searcher (per-arm Optuna TPE studies) that asks an
`agent.Proposer` for new experiment configs when the feedback signals say tuning has stalled.

Names are imported lazily (PEP 562) so `import search.cli` does not pay for Ray and Optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.arms import BASE_ARM, Arm, ArmRegistry
    from search.contract import FINAL_KEY, RESERVED_KEY, RUN_ID_KEY
    from search.escalation import EscalationDecision, EscalationPolicy
    from search.searcher import AgentSearcher
    from search.space import SearchSpaceError, convert_search_space

_EXPORTS = {
    "BASE_ARM": "search.arms",
    "Arm": "search.arms",
    "ArmRegistry": "search.arms",
    "EscalationDecision": "search.escalation",
    "EscalationPolicy": "search.escalation",
    "FINAL_KEY": "search.contract",
    "RESERVED_KEY": "search.contract",
    "RUN_ID_KEY": "search.contract",
    "AgentSearcher": "search.searcher",
    "SearchSpaceError": "search.space",
    "convert_search_space": "search.space",
}

__all__ = [
    "BASE_ARM",
    "FINAL_KEY",
    "RESERVED_KEY",
    "RUN_ID_KEY",
    "AgentSearcher",
    "Arm",
    "ArmRegistry",
    "EscalationDecision",
    "EscalationPolicy",
    "SearchSpaceError",
    "convert_search_space",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
