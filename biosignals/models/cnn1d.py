"""CNN1D: a deliberately small convolutional baseline (a few thousand parameters).

It is the reference point a search should beat: a few conv -> batchnorm -> ReLU -> max-pool
blocks whose width doubles per block, global average pooling and a linear head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from biosignals.models._common import (
    SIDE_FEATURE_WIDTH,
    fuse_side_features,
    require_dropout,
    require_min_length,
    require_positive,
    side_projection,
)


@dataclass(frozen=True)
class CNN1DConfig:
    """Defaults for `CNN1D` (the constructor's keyword defaults come from here)."""

    width: int = 8  # channels of the first block; doubles per block (8, 16, 32: ~4.6k params)
    depth: int = 3  # conv blocks; each halves the time axis
    kernel_size: int = 7  # ~20 ms at 360 Hz: wide enough for a QRS slope, small enough to stay tiny
    dropout: float = 0.1  # before the head only; the model is too small to overfit much


class CNN1D(nn.Module):
    """Small 1D CNN for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input windows.
        input_length: samples T per window (must allow `depth` halvings: T >= 2**depth).
        num_classes: outputs (class count, or 1 for regression).
        num_features: side features per window (the RR context of a beat), fused with
            the pooled embedding before the head; 0 for none (the trainer sets it).
        width: channels of the first conv block; block i has width * 2**i.
        depth: number of conv blocks.
        kernel_size: odd conv kernel size.
        dropout: dropout probability before the linear head.

    Raises:
        ModelConfigError: a hyperparameter is out of range.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        num_features: int = 0,
        width: int = CNN1DConfig.width,
        depth: int = CNN1DConfig.depth,
        kernel_size: int = CNN1DConfig.kernel_size,
        dropout: float = CNN1DConfig.dropout,
    ) -> None:
        super().__init__()
        require_positive(
            in_channels=in_channels,
            input_length=input_length,
            num_classes=num_classes,
            width=width,
            depth=depth,
            kernel_size=kernel_size,
        )
        require_dropout(dropout)
        require_min_length(input_length, halvings=depth)
        self.config = CNN1DConfig(
            width=width, depth=depth, kernel_size=kernel_size, dropout=dropout
        )
        blocks: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out = width * 2**i
            blocks += [
                nn.Conv1d(channels, out, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),
            ]
            channels = out
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.side = side_projection(num_features)
        side_width = SIDE_FEATURE_WIDTH if self.side is not None else 0
        self.head = nn.Linear(channels + side_width, num_classes)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Map windows (B, C, T) and side features (B, num_features) to scores (B, num_classes)."""
        h = self.features(x)  # (B, width * 2**(depth-1), T / 2**depth)
        h = h.mean(dim=-1)  # (B, channels): global average pool over time
        h = fuse_side_features(self.dropout(h), self.side, features)  # (B, D [+ 16])
        out: torch.Tensor = self.head(h)  # (B, num_classes)
        return out
