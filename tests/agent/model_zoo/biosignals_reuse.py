"""WideResNet: the built-in `biosignals.models.ResNet1D` subclassed with a deeper head.

The backbone (stem and residual stages) and the linear head are reused unchanged from the
project's model; the subclass adds a `BasicBlock1D` (from the same module) at full resolution
before the stem and a hidden GELU layer before the head.
"""

from __future__ import annotations

import torch
from torch import nn

from biosignals.models import ResNet1D
from biosignals.models._common import ModelConfigError
from biosignals.models.resnet1d import BasicBlock1D


class WideResNet(ResNet1D):
    """ResNet1D backbone + hidden layer for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width: stem channels of the backbone.
        stages: backbone stages.
        pre_kernel: kernel size of the full-resolution block.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 8,
        stages: int = 3,
        pre_kernel: int = 5,
    ) -> None:
        if pre_kernel % 2 == 0:
            raise ModelConfigError(
                f"pre_kernel must be odd, got {pre_kernel}; use {pre_kernel + 1}"
            )
        super().__init__(
            in_channels=in_channels,
            input_length=input_length,
            num_classes=num_classes,
            width=width,
            stages=stages,
            blocks_per_stage=1,
        )
        channels = width * 2 ** (stages - 1)
        self.pre = BasicBlock1D(in_channels, in_channels, pre_kernel, 1)
        self.hidden = nn.Sequential(nn.Linear(channels, channels), nn.GELU())

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        del features  # no num_features in __init__: the trainer calls forward(x)
        h = self.stem(self.pre(x))  # (B, width, T / 2)
        h = self.blocks(h).mean(dim=-1)  # (B, width * 2**(stages-1))
        out: torch.Tensor = self.head(self.dropout(self.hidden(h)))  # (B, num_classes)
        return out
