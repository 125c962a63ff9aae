"""EncoderClassifier: a small transformer encoder over patches of the window.

The window is cut into non-overlapping patches of `patch_size` samples by a strided
convolution (a linear patch embedding, as in ViT/PatchTST), a learned positional embedding is
added, `num_layers` pre-norm transformer encoder layers mix the patches, and the mean over
patches feeds a linear head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from biosignals.models._common import (
    SIDE_FEATURE_WIDTH,
    ModelConfigError,
    fuse_side_features,
    require_dropout,
    require_positive,
    side_projection,
)


@dataclass(frozen=True)
class EncoderClassifierConfig:
    """Defaults for `EncoderClassifier` (the constructor's keyword defaults come from here)."""

    d_model: int = 64  # token width; ~70k params with 2 layers
    nhead: int = 4  # must divide d_model
    num_layers: int = 2  # shallow: windows are short (tens of tokens)
    patch_size: int = 8  # samples per token: ~22 ms at 360 Hz, 45 tokens for a 1 s window
    mlp_ratio: int = 2  # feed-forward width = mlp_ratio * d_model
    dropout: float = 0.1  # in attention, feed-forward and before the head


class EncoderClassifier(nn.Module):
    """Transformer encoder for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input windows.
        input_length: samples T per window (T >= patch_size; a remainder shorter than a
            patch at the end is dropped).
        num_classes: outputs (class count, or 1 for regression).
        num_features: side features per window (the RR context of a beat), fused with
            the pooled embedding before the head; 0 for none (the trainer sets it).
        d_model: token width.
        nhead: attention heads (divides d_model).
        num_layers: encoder layers.
        patch_size: samples per token.
        mlp_ratio: feed-forward width as a multiple of d_model.
        dropout: dropout probability.

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
        d_model: int = EncoderClassifierConfig.d_model,
        nhead: int = EncoderClassifierConfig.nhead,
        num_layers: int = EncoderClassifierConfig.num_layers,
        patch_size: int = EncoderClassifierConfig.patch_size,
        mlp_ratio: int = EncoderClassifierConfig.mlp_ratio,
        dropout: float = EncoderClassifierConfig.dropout,
    ) -> None:
        super().__init__()
        require_positive(
            in_channels=in_channels,
            input_length=input_length,
            num_classes=num_classes,
            d_model=d_model,
            nhead=nhead,
            num_layers=num_layers,
            patch_size=patch_size,
            mlp_ratio=mlp_ratio,
        )
        require_dropout(dropout)
        if d_model % nhead != 0:
            raise ModelConfigError(
                f"nhead must divide d_model, got d_model={d_model}, nhead={nhead}; "
                "pick e.g. nhead=4 with d_model=64"
            )
        if input_length < patch_size:
            raise ModelConfigError(
                f"patch_size must be <= input_length, got patch_size={patch_size}, "
                f"input_length={input_length}; use a smaller patch_size"
            )
        self.config = EncoderClassifierConfig(
            d_model=d_model,
            nhead=nhead,
            num_layers=num_layers,
            patch_size=patch_size,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
        )
        num_patches = input_length // patch_size
        self.patch_embed = nn.Conv1d(in_channels, d_model, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, d_model))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward=mlp_ratio * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm trains stably without warmup tricks
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.side = side_projection(num_features)
        side_width = SIDE_FEATURE_WIDTH if self.side is not None else 0
        self.head = nn.Linear(d_model + side_width, num_classes)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Map windows (B, C, T) and side features (B, num_features) to scores (B, num_classes)."""
        h = self.patch_embed(x)  # (B, d_model, L) with L = T // patch_size
        h = h.transpose(1, 2) + self.pos_embed  # (B, L, d_model)
        h = self.encoder(h)  # (B, L, d_model)
        h = self.norm(h).mean(dim=1)  # (B, d_model): mean over patches
        h = fuse_side_features(self.dropout(h), self.side, features)  # (B, D [+ 16])
        out: torch.Tensor = self.head(h)  # (B, num_classes)
        return out
