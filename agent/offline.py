"""`OfflineProposer`: the proposer a campaign uses when no LLM is configured (`llm.model: offline`).

It needs no API key and no network, and follows fixed, documented rules so that a laptop
campaign escalates the same way every time:

Tier 2 (config variants), in this order, until `n` proposals are made:
    1. every built-in model the campaign allows and has not tried yet (`model=<name>`), started
       at the best trial's shared parameters (learning rate, weight decay, ...);
    2. once all were tried: the best arm's model with its width doubled (`model.width=...`), for
       the models whose config has a width.

Tier 3 (generated models): a squeeze-and-excitation residual CNN written from a template,
one variant per call (kernel size and width vary with the number of arms so far). The source
follows the model contract of the workload (keyword-only `in_channels`, `input_length`,
`num_classes` plus scalar hyperparameters with defaults; `(B, C, T) -> (B, num_classes)`) and
imports only torch.

The smolagents-backed proposer replaces it when a campaign names an LLM; tests replace it with
a scripted one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent.proposer import ArmSummary, Proposal, ProposalContext

logger = logging.getLogger(__name__)

__all__ = ["OfflineProposer", "generated_model_source"]

# Models with a `width` hyperparameter (see configs/model/), and its default there.
_WIDTH_DEFAULTS: Mapping[str, int] = {"cnn1d": 8, "resnet1d": 16}

_SE_RESNET_TEMPLATE = '''"""SEResNet1D: residual 1D CNN with squeeze-and-excitation gates.

Each block: conv -> BN -> ReLU -> conv -> BN, scaled per channel by a squeeze-and-excitation
gate, plus the (projected) input; a stride-2 block halves the time axis.
"""

import torch
from torch import nn


class SEBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, reduction: int
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        hidden = max(c_out // reduction, 4)
        self.gate = nn.Sequential(
            nn.Linear(c_out, hidden), nn.ReLU(), nn.Linear(hidden, c_out), nn.Sigmoid()
        )
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))  # (B, c_out, T')
        h = self.bn2(self.conv2(h))  # (B, c_out, T')
        w = self.gate(h.mean(dim=-1)).unsqueeze(-1)  # (B, c_out, 1): channel weights
        return torch.relu(h * w + self.skip(x))  # (B, c_out, T')


class SEResNet1D(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = {width},
        stages: int = {stages},
        kernel_size: int = {kernel_size},
        reduction: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if input_length < 2 ** stages:
            raise ValueError(
                f"input_length must be >= 2**stages, got {{input_length}} < {{2 ** stages}}"
            )
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, width, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
        )
        blocks = []
        c = width
        for i in range(stages):
            c_out = width * 2 ** i
            stride = 1 if i == 0 else 2
            blocks.append(SEBlock(c, c_out, kernel_size, stride=stride, reduction=reduction))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # (B, width * 2**(stages-1), T / 2**(stages-1))
        return self.head(self.dropout(h.mean(dim=-1)))  # (B, num_classes)
'''


def generated_model_source(width: int, stages: int, kernel_size: int) -> str:
    """The tier-3 template filled in: Python source defining `SEResNet1D`."""
    return _SE_RESNET_TEMPLATE.format(width=width, stages=stages, kernel_size=kernel_size)


def _shared_params(best: ArmSummary | None) -> dict[str, Any]:
    """The best trial's parameters that a different model can reuse (everything not `model.*`)."""
    if best is None:
        return {}
    return {k: v for k, v in best.best_params.items() if not str(k).startswith("model.")}


class OfflineProposer:
    """Rule-based `Proposer` for campaigns without an LLM (see the module docstring).

    Args:
        tier3_width: base width of generated models (kept small to respect param budgets).
    """

    def __init__(self, tier3_width: int = 16) -> None:
        self.tier3_width = tier3_width

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        """Up to `n` proposals for `context.tier` following the rules in the module docstring."""
        best = next((a for a in context.arms if a.best_value is not None), None)
        if context.tier >= 3:
            return self._tier3(context, best)[:n]
        return self._tier2(context, best)[:n]

    def _tier2(self, context: ProposalContext, best: ArmSummary | None) -> list[Proposal]:
        proposals = [
            Proposal(
                name=model,
                tier=2,
                overrides=[f"model={model}"],
                params=_shared_params(best),
                drop_params=[k for k in context.space if k.startswith("model.")],
                model=model,
                rationale=(
                    f"{model} has not been tried; tuning has stalled "
                    f"({'; '.join(context.reasons) or 'escalation requested'})"
                ),
            )
            for model in context.untried_models
        ]
        if proposals or best is None:
            return proposals
        model = best.model or ""
        if model in _WIDTH_DEFAULTS:
            current = best.best_params.get("model.width", _WIDTH_DEFAULTS[model])
            width = int(current) * 2
            proposals.append(
                Proposal(
                    name=f"{model}-w{width}",
                    tier=2,
                    overrides=[*best.overrides, f"model.width={width}"],
                    params=_shared_params(best),
                    drop_params=["model.width"],
                    model=model,
                    rationale=f"every model was tried; widen the best one ({model}) to {width}",
                )
            )
        return proposals

    def _tier3(self, context: ProposalContext, best: ArmSummary | None) -> list[Proposal]:
        variant = sum(1 for a in context.arms if a.tier == 3)
        kernel_size = (7, 9, 5)[variant % 3]
        width = self.tier3_width * (1 + variant // 3)
        source = generated_model_source(width=width, stages=3, kernel_size=kernel_size)
        return [
            Proposal(
                name=f"seresnet-k{kernel_size}-w{width}",
                tier=3,
                # no model= override: the safety layer registers the code (static check and
                # sandboxed smoke test) as a generated model and selects it
                overrides=[],
                params=_shared_params(best),
                drop_params=[k for k in context.space if k.startswith("model.")],
                model_source=source,
                model="seresnet1d",
                rationale=(
                    "every built-in model was tried and tuning stalled; a residual CNN with "
                    f"squeeze-and-excitation gates (kernel {kernel_size}, width {width})"
                ),
            )
        ]
