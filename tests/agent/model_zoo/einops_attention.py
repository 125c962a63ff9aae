"""AttentionNet: hand-written multi-head self-attention with einops over conv features.

A conv stem downsamples the window to tokens; each transformer block computes
softmax(Q K^T / sqrt(d)) V per head with `einops.rearrange` for the head split and `@` for the
products, plus a GELU MLP, both pre-norm with residuals.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


class MultiHeadSelfAttention(nn.Module):
    """(B, N, D) -> (B, N, D) scaled dot-product attention over `heads` heads."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"heads must divide dim, got dim={dim}, heads={heads}")
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, H, N, d)
        weights = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)  # (B, H, N, N)
        mixed = rearrange(weights @ v, "b h n d -> b n (h d)")  # (B, N, D)
        out: torch.Tensor = self.proj(mixed)
        return out


class TransformerBlock(nn.Module):
    """Pre-norm attention and MLP with residuals: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, N, D)
        mlp: torch.Tensor = self.fc2(F.gelu(self.fc1(self.norm2(x))))  # (B, N, D)
        return x + mlp


class AttentionNet(nn.Module):
    """Conv tokens + self-attention blocks for (B, C, T) -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        dim: token width.
        heads: attention heads.
        depth: transformer blocks.
        stride: time reduction of the conv stem (tokens = T / stride).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        dim: int = 32,
        heads: int = 4,
        depth: int = 2,
        stride: int = 8,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv1d(in_channels, dim, 2 * stride, stride=stride, padding=stride // 2)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.stem(x), "b d n -> b n d")  # (B, N, dim)
        for block in self.blocks:
            h = block(h)  # (B, N, dim)
        out: torch.Tensor = self.head(self.norm(h).mean(dim=1))  # (B, num_classes)
        return out
