"""PooledCNN: a CNN whose forward parameter is called `input` and whose pooling is an Enum.

`Pooling` (an `enum.Enum`) names the global pooling over time; the string hyperparameter
`pooling` is converted with `Pooling(pooling)`. The `input` parameter shadows the builtin,
which generated code may not call, but may use as a local name.
"""

from __future__ import annotations

import enum
from typing import Final

import torch
from torch import nn

STRIDE: Final = 2  # each conv halves the time axis


class Pooling(enum.Enum):
    """Global pooling over the time axis."""

    MEAN = "mean"
    MAX = "max"
    MEAN_MAX = "mean_max"

    @property
    def factor(self) -> int:
        """Features per channel this pooling produces."""
        return 2 if self is Pooling.MEAN_MAX else 1


class PooledCNN(nn.Module):
    """CNN + configurable pooling for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width: conv channels.
        pooling: "mean", "max" or "mean_max".
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 32,
        pooling: str = "mean_max",
    ) -> None:
        super().__init__()
        self.pooling = Pooling(pooling)
        self.conv = nn.Sequential(
            nn.Conv1d(in_channels, width, 9, stride=STRIDE, padding=4),
            nn.ReLU(),
            nn.Conv1d(width, width, 5, stride=STRIDE, padding=2),
            nn.ReLU(),
        )
        self.head = nn.Linear(width * self.pooling.factor, num_classes)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """(B, width, T') -> (B, width * factor)."""
        if self.pooling is Pooling.MEAN:
            return h.mean(dim=-1)
        if self.pooling is Pooling.MAX:
            return h.amax(dim=-1)
        return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1)

    def forward(self, input: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(input)  # (B, width, T / 4)
        if mask is not None:
            h = h * mask
        out: torch.Tensor = self.head(self.pool(h))  # (B, num_classes)
        return out
