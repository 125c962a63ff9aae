"""DilatedTCN: a temporal convolutional network (Bai et al. 2018) of causal dilated convs.

Each residual block pads on the left only (causal), so the output at t sees inputs up to t;
dilations double per level, giving a receptive field of about kernel_size * 2**levels samples.
The last time step summarises the window.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CausalConv1d(nn.Conv1d):
    """A Conv1d that left-pads by (kernel_size - 1) * dilation: (B, C, T) -> (B, C', T)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))


class TemporalBlock(nn.Module):
    """Two causal convs with weight norm-free ReLU/dropout and a 1x1 residual projection."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, p: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            CausalConv1d(c_in, c_out, kernel_size, dilation),
            nn.ReLU(),
            nn.Dropout(p),
            CausalConv1d(c_out, c_out, kernel_size, dilation),
            nn.ReLU(),
            nn.Dropout(p),
        )
        self.down = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(x) + self.down(x))  # (B, c_out, T)


class DilatedTCN(nn.Module):
    """TCN for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        channels: channels of every level.
        levels: residual blocks; block i has dilation 2**i.
        kernel_size: kernel size of the causal convs.
        dropout: dropout inside the blocks.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        channels: int = 24,
        levels: int = 5,
        kernel_size: int = 3,
        dropout: float = 0.05,
    ) -> None:
        super().__init__()
        self.receptive_field = 1 + 2 * (kernel_size - 1) * (2**levels - 1)
        blocks = [
            TemporalBlock(in_channels if i == 0 else channels, channels, kernel_size, 2**i, dropout)
            for i in range(levels)
        ]
        self.tcn = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tcn(x)  # (B, channels, T)
        out: torch.Tensor = self.head(h[:, :, -1])  # (B, num_classes): the last step sees all
        return out
