"""UNet1D: a U-Net-like encoder-decoder (Ronneberger et al. 2015) with a classification head.

The encoder halves time and doubles channels per level; the decoder upsamples with transposed
convs and concatenates the matching encoder features (skip connections); the refined
full-resolution features are pooled for the head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """(conv-BN-ReLU) x 2 at constant length: (B, c_in, T) -> (B, c_out, T)."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, 5, padding=2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv1d(c_out, c_out, 5, padding=2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet1D(nn.Module):
    """U-Net for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        width: channels at full resolution.
        depth: down/up levels.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        width: int = 8,
        depth: int = 3,
    ) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.inc = double_conv(in_channels, widths[0])
        self.down = nn.ModuleList(double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose1d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth)
        )
        self.dec = nn.ModuleList(double_conv(2 * widths[i], widths[i]) for i in range(depth))
        self.head = nn.Linear(widths[0], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]  # [(B, width, T)]
        for down in self.down:
            skips.append(down(F.max_pool1d(skips[-1], 2)))  # (B, width * 2**i, T / 2**i)
        h = skips.pop()  # (B, width * 2**depth, T / 2**depth)
        for i in reversed(range(len(self.up))):
            skip = skips.pop()  # (B, width * 2**i, T / 2**i)
            h = self.up[i](h)
            h = F.pad(h, (0, skip.shape[-1] - h.shape[-1]))  # odd lengths: pad to the skip
            h = self.dec[i](torch.cat([skip, h], dim=1))  # (B, width * 2**i, T / 2**i)
        out: torch.Tensor = self.head(h.mean(dim=-1))  # (B, num_classes)
        return out
