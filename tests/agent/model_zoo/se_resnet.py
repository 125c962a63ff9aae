"""SEResNet1D: residual blocks gated per channel by squeeze-and-excitation (Hu et al. 2018).

The squeeze is a global average over time, the excitation a two-layer bottleneck MLP with a
sigmoid; the gate rescales the block's output channels before the skip is added.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Channel gate: (B, C, T) -> (B, C, T) scaled by sigmoid(MLP(mean_t x))."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w: torch.Tensor = self.mlp(x.mean(dim=-1)).unsqueeze(-1)  # (B, C, 1)
        return x * w


class SEBlock(nn.Module):
    """Two convs, an SE gate and a (projected) skip: (B, c_in, T) -> (B, c_out, T / stride)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
            nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
            SqueezeExcite(c_out),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))  # (B, c_out, T / stride)


class SEResNet1D(nn.Module):
    """SE-ResNet for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width: channels of the first stage.
        stages: stages; each after the first halves time and doubles width.
        kernel_size: odd conv kernel size.
        dropout: dropout before the head.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 16,
        stages: int = 3,
        kernel_size: int = 7,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv1d(in_channels, width, kernel_size, padding=kernel_size // 2)
        blocks = [
            SEBlock(width * 2 ** max(i - 1, 0), width * 2**i, kernel_size, 1 if i == 0 else 2)
            for i in range(stages)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width * 2 ** (stages - 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # (B, width * 2**(stages-1), T / 2**(stages-1))
        out: torch.Tensor = self.head(self.dropout(h.mean(dim=-1)))  # (B, num_classes)
        return out
