"""ResNet1D: a residual 1D CNN (basic blocks, He et al. 2016, adapted to one time axis).

A stride-2 stem, `stages` stages of `blocks_per_stage` basic blocks (two convs and a skip),
the width doubling and the time axis halving at each stage after the first, then global
average pooling and a linear head. Much stronger than CNN1D at a few hundred thousand
parameters; still trains on a CPU.
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
class ResNet1DConfig:
    """Defaults for `ResNet1D` (the constructor's keyword defaults come from here)."""

    width: int = 16  # stem channels; stage s has width * 2**s (16, 32, 64: ~137k params)
    stages: int = 3  # each stage after the first halves time and doubles channels
    blocks_per_stage: int = 2  # two blocks per stage: the ResNet-18 pattern, shallower
    kernel_size: int = 7  # odd; with 3 stages the receptive field spans ~0.5 s at 360 Hz
    dropout: float = 0.1  # before the head


class BasicBlock1D(nn.Module):
    """conv-bn-relu-conv-bn plus a (projected when shapes differ) skip, then relu."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.skip = nn.Sequential(
                nn.Conv1d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm1d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, T) -> (B, out_ch, T / stride)."""
        h = torch.relu(self.bn1(self.conv1(x)))  # (B, out_ch, T / stride)
        h = self.bn2(self.conv2(h))  # (B, out_ch, T / stride)
        return torch.relu(h + self.skip(x))


class ResNet1D(nn.Module):
    """Residual 1D CNN for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input windows.
        input_length: samples T per window (T >= 2**stages).
        num_classes: outputs (class count, or 1 for regression).
        num_features: side features per window (the RR context of a beat), fused with
            the pooled embedding before the head; 0 for none (the trainer sets it).
        width: stem channels; stage s has width * 2**s.
        stages: number of stages.
        blocks_per_stage: basic blocks per stage.
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
        width: int = ResNet1DConfig.width,
        stages: int = ResNet1DConfig.stages,
        blocks_per_stage: int = ResNet1DConfig.blocks_per_stage,
        kernel_size: int = ResNet1DConfig.kernel_size,
        dropout: float = ResNet1DConfig.dropout,
    ) -> None:
        super().__init__()
        require_positive(
            in_channels=in_channels,
            input_length=input_length,
            num_classes=num_classes,
            width=width,
            stages=stages,
            blocks_per_stage=blocks_per_stage,
            kernel_size=kernel_size,
        )
        require_dropout(dropout)
        require_min_length(input_length, halvings=stages)  # stem /2, then stages-1 halvings
        self.config = ResNet1DConfig(
            width=width,
            stages=stages,
            blocks_per_stage=blocks_per_stage,
            kernel_size=kernel_size,
            dropout=dropout,
        )
        pad = kernel_size // 2
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, width, kernel_size, stride=2, padding=pad, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        channels = width
        for s in range(stages):
            out = width * 2**s
            for b in range(blocks_per_stage):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock1D(channels, out, kernel_size, stride))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.side = side_projection(num_features)
        side_width = SIDE_FEATURE_WIDTH if self.side is not None else 0
        self.head = nn.Linear(channels + side_width, num_classes)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Map windows (B, C, T) and side features (B, num_features) to scores (B, num_classes)."""
        h = self.stem(x)  # (B, width, T/2)
        h = self.blocks(h)  # (B, width * 2**(stages-1), T / 2**stages)
        h = h.mean(dim=-1)  # (B, channels): global average pool over time
        h = fuse_side_features(self.dropout(h), self.side, features)  # (B, D [+ 16])
        out: torch.Tensor = self.head(h)  # (B, num_classes)
        return out
