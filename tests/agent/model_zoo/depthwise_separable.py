"""MobileNet1D: depthwise-separable convolutions (Howard et al. 2017) on one time axis.

Each block is a depthwise conv (one filter per channel, `groups=channels`) followed by a
pointwise 1x1 conv that mixes channels, both with BN and ReLU6; far fewer parameters than a
full conv of the same receptive field.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (16, 32, 48, 64)  # output channels per block
STRIDES = (1, 2, 2, 2)  # time reduction per block


class SeparableBlock(nn.Module):
    """Depthwise kxk then pointwise 1x1: (B, c_in, T) -> (B, c_out, T / stride)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(
            c_in, c_in, kernel_size, stride=stride, padding=kernel_size // 2, groups=c_in
        )
        self.bn1 = nn.BatchNorm1d(c_in)
        self.pointwise = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(self.depthwise(x)))  # (B, c_in, T / stride)
        out: torch.Tensor = self.act(self.bn2(self.pointwise(h)))  # (B, c_out, T / stride)
        return out


class MobileNet1D(nn.Module):
    """Depthwise-separable CNN for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width_multiplier: scales every block's width (MobileNet's alpha).
        kernel_size: odd depthwise kernel size.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width_multiplier: float = 1.0,
        kernel_size: int = 9,
    ) -> None:
        super().__init__()
        widths = [max(8, int(w * width_multiplier)) for w in WIDTHS]
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU6(),
        )
        blocks = [
            SeparableBlock(c_in, c_out, kernel_size, stride)
            for c_in, c_out, stride in zip(widths, widths[1:] + widths[-1:], STRIDES, strict=True)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # (B, widths[-1], T / 8)
        out: torch.Tensor = self.head(h.mean(dim=-1))  # (B, num_classes)
        return out
