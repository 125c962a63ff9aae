"""PatchMixer: an MLP-Mixer (Tolstikhin et al. 2021) over patches, built with einops layers.

`einops.layers.torch.Rearrange` cuts (B, C, T) into (B, N, C * P) patches; each mixer block
mixes across patches (token MLP) and across features (channel MLP), both pre-norm with
residuals; the mean over patches feeds the head.
"""

from __future__ import annotations

import torch
from einops.layers.torch import Rearrange, Reduce
from torch import nn


class MixerBlock(nn.Module):
    """Token mixing then channel mixing: (B, N, D) -> (B, N, D)."""

    def __init__(self, num_patches: int, dim: int, expansion: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(
            Rearrange("b n d -> b d n"),
            nn.Linear(num_patches, expansion * num_patches),
            nn.GELU(),
            nn.Linear(expansion * num_patches, num_patches),
            Rearrange("b d n -> b n d"),
        )
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(
            nn.Linear(dim, expansion * dim), nn.GELU(), nn.Linear(expansion * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x))  # (B, N, D)
        mixed: torch.Tensor = self.channel_mlp(self.norm2(x))  # (B, N, D)
        return x + mixed


class PatchMixer(nn.Module):
    """MLP-Mixer for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window (a multiple of patch_size).
        num_classes: number of outputs.
        patch_size: samples per patch.
        dim: patch embedding width.
        depth: mixer blocks.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        patch_size: int = 12,
        dim: int = 32,
        depth: int = 2,
    ) -> None:
        super().__init__()
        if input_length % patch_size:
            raise ValueError(
                f"input_length must be a multiple of patch_size, got {input_length} % "
                f"{patch_size} = {input_length % patch_size}; pick a divisor of input_length"
            )
        num_patches = input_length // patch_size
        self.to_patches = nn.Sequential(
            Rearrange("b c (n p) -> b n (c p)", p=patch_size),  # (B, N, C * P)
            nn.Linear(in_channels * patch_size, dim),  # (B, N, dim)
        )
        self.mixer = nn.Sequential(*[MixerBlock(num_patches, dim) for _ in range(depth)])
        self.pool = Reduce("b n d -> b d", "mean")
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mixer(self.to_patches(x))  # (B, N, dim)
        out: torch.Tensor = self.head(self.pool(h))  # (B, num_classes)
        return out
