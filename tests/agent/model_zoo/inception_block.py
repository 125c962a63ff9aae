"""InceptionTime1D: Inception-style blocks (Fawaz et al. 2020) with parallel kernel sizes.

Each block applies a 1x1 bottleneck, then three convs of different kernel sizes in parallel,
plus a max-pool branch, and concatenates them on the channel axis; two blocks share a
residual shortcut.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class InceptionModule(nn.Module):
    """(B, c_in, T) -> (B, 4 * branch, T): bottleneck, three kernels and a pool branch."""

    def __init__(self, c_in: int, branch: int, kernel_sizes: Sequence[int] = (9, 19, 39)) -> None:
        super().__init__()
        self.bottleneck = nn.Conv1d(c_in, branch, 1, bias=False) if c_in > 1 else nn.Identity()
        first = branch if c_in > 1 else c_in
        self.convs = nn.ModuleList(
            nn.Conv1d(first, branch, k, padding=k // 2, bias=False) for k in kernel_sizes
        )
        self.pool_branch = nn.Sequential(
            nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(c_in, branch, 1, bias=False)
        )
        self.bn = nn.BatchNorm1d(branch * (len(kernel_sizes) + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)  # (B, branch, T)
        branches = [conv(z) for conv in self.convs] + [self.pool_branch(x)]
        return torch.relu(self.bn(torch.cat(branches, dim=1)))  # (B, 4 * branch, T)


class InceptionTime1D(nn.Module):
    """Two Inception modules with a residual shortcut, then GAP and a linear head.

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        branch: channels per branch (the block outputs 4 * branch).
    """

    def __init__(
        self, *, in_channels: int, input_length: int, num_classes: int, branch: int = 8
    ) -> None:
        super().__init__()
        out = 4 * branch
        self.block1 = InceptionModule(in_channels, branch)
        self.block2 = InceptionModule(out, branch)
        self.shortcut = nn.Sequential(
            nn.Conv1d(in_channels, out, 1, bias=False), nn.BatchNorm1d(out)
        )
        self.head = nn.Linear(out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(x))  # (B, 4 * branch, T)
        h = torch.relu(h + self.shortcut(x))  # (B, 4 * branch, T)
        out: torch.Tensor = self.head(h.mean(dim=-1))  # (B, num_classes)
        return out
