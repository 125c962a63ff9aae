"""ResNetBasic1D: a residual 1D CNN with basic blocks (two convs plus an identity or 1x1 skip).

A stride-2 stem, then stages of basic blocks; each stage after the first halves the time axis
and doubles the width. Global average pooling and a linear head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a skip, then ReLU: (B, c_in, T) -> (B, c_out, T / stride)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))  # (B, c_out, T / stride)
        h = self.bn2(self.conv2(h))  # (B, c_out, T / stride)
        return F.relu(h + self.skip(x))


class ResNetBasic1D(nn.Module):
    """Residual network for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width: stem channels.
        stages: number of stages (stage s has width * 2**s channels).
        kernel_size: odd conv kernel size.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 12,
        stages: int = 3,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if width <= 0 or stages <= 0:
            raise ValueError(f"width and stages must be > 0, got {width=}, {stages=}")
        self.input_length = input_length
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        channels = width
        for s in range(stages):
            out = width * 2**s
            blocks.append(BasicBlock(channels, out, kernel_size, stride=1 if s == 0 else 2))
            blocks.append(BasicBlock(out, out, kernel_size))
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # (B, width * 2**(stages-1), T / 2**stages)
        out: torch.Tensor = self.head(h.mean(dim=-1))  # (B, num_classes)
        return out
