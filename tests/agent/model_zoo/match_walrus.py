"""ConfigurableCNN: a CNN whose norm and activation are picked by `match` on string options.

`norm` ("batch", "group", "none") and `activation` ("relu", "gelu", "elu") are plain string
hyperparameters (tunable by override path); `match` maps them to layers, and the walrus
operator keeps the computed padding and group count readable.
"""

from __future__ import annotations

import torch
from torch import nn

from biosignals.models import ModelConfigError


def make_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation layer named by `kind` for `channels` channels."""
    match kind:
        case "batch":
            return nn.BatchNorm1d(channels)
        case "group":
            return nn.GroupNorm(groups if (groups := min(4, channels)) else 1, channels)
        case "none":
            return nn.Identity()
        case _:
            raise ModelConfigError(
                f"norm must be 'batch', 'group' or 'none', got {kind!r}; pick one of those"
            )


def make_activation(kind: str) -> nn.Module:
    """The activation named by `kind`."""
    match kind:
        case "relu":
            return nn.ReLU()
        case "gelu":
            return nn.GELU()
        case "elu":
            return nn.ELU(alpha=1.0)
        case other:
            raise ModelConfigError(f"activation must be relu, gelu or elu, got {other!r}")


class ConfigurableCNN(nn.Module):
    """CNN with string-selected layers for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width: conv channels.
        depth: conv layers (each halves time).
        kernel_size: odd conv kernel size.
        norm: "batch", "group" or "none".
        activation: "relu", "gelu" or "elu".
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 24,
        depth: int = 3,
        kernel_size: int = 7,
        norm: str = "group",
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if (pad := kernel_size // 2) * 2 + 1 != kernel_size:
            raise ModelConfigError(f"kernel_size must be odd, got {kernel_size}; use {pad * 2 + 1}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers.append(nn.Conv1d(channels, width, kernel_size, stride=2, padding=pad))
            layers += [make_norm(norm, width), make_activation(activation)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (length := x.shape[-1]) < 2:
            raise ValueError(f"windows need at least 2 samples, got {length}")
        h = self.features(x)  # (B, width, T / 2**depth)
        out: torch.Tensor = self.head(h.mean(dim=-1))  # (B, num_classes)
        return out
