"""AttentionPoolCNN: a conv encoder with an attention-pooling head (Ilse et al. 2018 style).

Instead of averaging over time, a small MLP scores every time step, a softmax over time turns
the scores into weights, and the weighted sum of the features feeds the head; the weights
show which part of the beat drove the decision.
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionPool(nn.Module):
    """(B, D, T) -> (B, D): softmax-weighted sum over time with learned scores."""

    def __init__(self, dim: int, hidden: int = 16) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        seq = h.transpose(1, 2)  # (B, T, D)
        weights = torch.softmax(self.score(seq), dim=1)  # (B, T, 1)
        return (weights * seq).sum(dim=1)  # (B, D)


class AttentionPoolCNN(nn.Module):
    """Conv encoder + attention pooling for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width: encoder channels.
        layers: conv layers (each halves time).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 32,
        layers: int = 3,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [
                nn.Conv1d(in_channels if i == 0 else width, width, 5, stride=2, padding=2),
                nn.BatchNorm1d(width),
                nn.ReLU(),
            ]
        self.encoder = nn.Sequential(*blocks)
        self.pool = AttentionPool(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)  # (B, width, T / 2**layers)
        out: torch.Tensor = self.head(self.pool(h))  # (B, num_classes)
        return out
