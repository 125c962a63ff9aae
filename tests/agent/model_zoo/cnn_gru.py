"""ConvGRU: a CNN front end followed by a bidirectional GRU over the downsampled sequence.

Two strided conv blocks shorten the window 4x and learn local wave shapes; the GRU reads the
feature sequence both ways and the final hidden states of both directions feed the head.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvGRU(nn.Module):
    """CNN + BiGRU for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        conv_width: channels of the conv front end.
        hidden: GRU hidden size per direction.
        num_layers: stacked GRU layers.
        dropout: dropout before the head.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        conv_width: int = 24,
        hidden: int = 32,
        num_layers: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.frontend = nn.Sequential(
            nn.Conv1d(in_channels, conv_width, 7, stride=2, padding=3),
            nn.BatchNorm1d(conv_width),
            nn.ReLU(),
            nn.Conv1d(conv_width, conv_width, 5, stride=2, padding=2),
            nn.BatchNorm1d(conv_width),
            nn.ReLU(),
        )
        self.gru = nn.GRU(
            conv_width, hidden, num_layers=num_layers, batch_first=True, bidirectional=True
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.frontend(x).transpose(1, 2)  # (B, T / 4, conv_width)
        _, last = self.gru(h)  # last: (num_layers * 2, B, hidden)
        both = torch.cat([last[-2], last[-1]], dim=-1)  # (B, 2 * hidden)
        out: torch.Tensor = self.head(self.dropout(both))  # (B, num_classes)
        return out
