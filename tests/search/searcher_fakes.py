"""Fakes for searcher tests: they replace only the LLM (the proposer) and the signal.

Everything else in the tests is real: Optuna studies, the feedback store, Ray Tune.
All fakes are picklable, as the searcher's contract requires of a proposer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent import AgentError, Proposal, ProposalContext

# Gates live outside the (pickled) proposer: a threading.Event is not picklable.
_GATES: dict[str, threading.Event] = {}


class ScriptedProposer:
    """Returns fixed proposals, one scripted batch per call (the last batch repeats).

    Args:
        batches: one list of proposals per call; an exception instance in place of a list
            is raised by that call instead.
        gate: name of a gate (see `open_gate`): `propose` blocks until it is opened, which
            lets a test observe the searcher while a proposal is pending.
    """

    def __init__(
        self, batches: Sequence[Sequence[Proposal] | BaseException], gate: str | None = None
    ) -> None:
        self.batches = list(batches)
        self.gate = gate
        self.contexts: list[ProposalContext] = []
        self.calls = 0
        if gate is not None:
            _GATES.setdefault(gate, threading.Event())

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        self.contexts.append(context)
        self.calls += 1
        if self.gate is not None and not _GATES[self.gate].wait(timeout=30):
            raise AgentError("test gate never opened")
        batch = self.batches[min(self.calls - 1, len(self.batches) - 1)]
        if isinstance(batch, BaseException):
            raise batch
        return list(batch)[:n]


def open_gate(name: str) -> None:
    """Release every `propose` call waiting on gate `name`."""
    _GATES.setdefault(name, threading.Event()).set()


def close_gate(name: str) -> None:
    """(Re)arm gate `name`."""
    _GATES[name] = threading.Event()


@dataclass
class FakeRecommendation:
    action: str
    reasons: list[str] = field(default_factory=list)


class ScriptedRecommender:
    """Replaces `feedback.recommend`: returns `actions[i]` for the i-th call (last repeats).

    Attributes:
        seen: number of runs in the history at each call.
    """

    def __init__(self, actions: Sequence[str]) -> None:
        self.actions = list(actions)
        self.calls = 0
        self.seen: list[int] = []

    def __call__(self, history: Any) -> FakeRecommendation:
        self.seen.append(history.num_rows if hasattr(history, "num_rows") else len(history))
        action = self.actions[min(self.calls, len(self.actions) - 1)]
        self.calls += 1
        return FakeRecommendation(action, [f"scripted {action}"])


def final_result(metric: str, value: Any, **extra: Any) -> dict[str, Any]:
    """A campaign trainable's last report: metric value plus `agentune_final: True`."""
    return {metric: value, "agentune_final": True, "training_iteration": 3, **extra}


TINY_MODEL_SOURCE = '''\
"""A generated model (test fixture)."""
import torch


class TinyNet(torch.nn.Module):
    def __init__(self, in_channels: int, input_length: int, num_classes: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, K)
        return self.head(x.mean(dim=-1))
'''
