"""PatchTransformer: a ViT-style transformer encoder over patches with a CLS token.

A strided conv cuts the window into patches (linear patch embedding), a learned CLS token is
prepended, a learned positional embedding is added, `nn.TransformerEncoder` mixes the tokens
and the CLS token's final state feeds the head.
"""

from __future__ import annotations

import torch
from torch import nn

from biosignals.models._common import ModelConfigError


class PatchTransformer(nn.Module):
    """Transformer encoder for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window (>= patch_size).
        num_classes: number of outputs.
        patch_size: samples per token.
        d_model: token width.
        nhead: attention heads; must divide d_model.
        num_layers: encoder layers.
        dropout: dropout in the encoder.

    Raises:
        ModelConfigError: nhead does not divide d_model, or the window is shorter than a patch.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        patch_size: int = 12,
        d_model: int = 32,
        nhead: int = 4,
        num_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if d_model % nhead:
            raise ModelConfigError(
                f"nhead must divide d_model, got d_model={d_model}, nhead={nhead}; "
                "pick nhead in the divisors of d_model"
            )
        if input_length < patch_size:
            raise ModelConfigError(
                f"input_length must be >= patch_size, got {input_length} < {patch_size}"
            )
        num_patches = input_length // patch_size
        self.embed = nn.Conv1d(in_channels, d_model, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos_embedding = nn.Parameter(torch.zeros(1, num_patches + 1, d_model))
        nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward=2 * d_model,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).transpose(1, 2)  # (B, N, d_model)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, d_model)
        h = torch.cat([cls, tokens], dim=1) + self.pos_embedding  # (B, N + 1, d_model)
        h = self.encoder(h)  # (B, N + 1, d_model)
        out: torch.Tensor = self.head(self.norm(h[:, 0]))  # (B, num_classes)
        return out
