"""FactoryCNN: layers built from `functools.partial` factories and a table of activations.

`Conv` is `nn.Conv1d` without bias (BN follows every conv), `ACTIVATIONS` maps a string
hyperparameter to an activation class; blocks are built from both, so the architecture is
one table away from a variant.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

Conv = partial(nn.Conv1d, bias=False)  # BN follows, so the conv bias is redundant
Norm = functools.partial(nn.BatchNorm1d, momentum=0.05)
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
CHANNELS = (16, 32, 64)  # per block
POOL = 2  # time reduction per block


def conv_block(c_in: int, c_out: int, kernel_size: int, activation: str) -> nn.Sequential:
    """Conv-BN-activation-pool: (B, c_in, T) -> (B, c_out, T // POOL)."""
    return nn.Sequential(
        Conv(c_in, c_out, kernel_size, padding=kernel_size // 2),
        Norm(c_out),
        ACTIVATIONS[activation](),
        nn.AvgPool1d(POOL),
    )


class FactoryCNN(nn.Module):
    """CNN from partial factories for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        activation: one of ACTIVATIONS ("relu", "gelu", "silu").
        kernel_size: odd conv kernel size.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        activation: str = "gelu",
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        widths = (in_channels, *CHANNELS)
        self.features = nn.Sequential(
            *(conv_block(a, b, kernel_size, activation) for a, b in itertools.pairwise(widths))
        )
        self.head = nn.Linear(CHANNELS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, 64, T / 8)
        out: torch.Tensor = self.head(h.amax(dim=-1))  # (B, num_classes): global max pool
        return out
