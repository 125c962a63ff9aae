"""PlainCNN: a VGG-style 1D CNN (conv-BN-ReLU-maxpool blocks, global average pool, linear).

Each block keeps the time axis with "same" padding, then halves it with a max pool; the
width doubles per block. The smallest useful baseline for beat classification.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """conv -> BN -> ReLU -> maxpool(2): (B, c_in, T) -> (B, c_out, T // 2)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.pool = nn.MaxPool1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))  # (B, c_out, T)
        out: torch.Tensor = self.pool(h)  # (B, c_out, T // 2)
        return out


class PlainCNN(nn.Module):
    """Stacked conv blocks for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window (T >= 2**blocks).
        num_classes: number of outputs.
        width: channels of the first block; block i has width * 2**i.
        blocks: number of conv blocks.
        kernel_size: odd kernel size of every conv.
        dropout: dropout before the head.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 16,
        blocks: int = 3,
        kernel_size: int = 7,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if input_length < 2**blocks:
            raise ValueError(
                f"input_length must be >= 2**blocks = {2**blocks}, got {input_length}; "
                "use fewer blocks"
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(blocks):
            layers.append(ConvBlock(channels, width * 2**i, kernel_size))
            channels = width * 2**i
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, width * 2**(blocks-1), T / 2**blocks)
        h = h.mean(dim=-1)  # (B, channels): global average pool
        out: torch.Tensor = self.head(self.dropout(h))  # (B, num_classes)
        return out
