"""ConvLSTM: a conv front end and an LSTM, with its defaults in a config dataclass (nanoGPT style).

`ConvLSTMConfig` holds every hyperparameter with a one-line reason; the model's keyword
defaults read from it, and the instance keeps the resolved config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class ConvLSTMConfig:
    """Defaults for `ConvLSTM`."""

    conv_width: int = 16  # local wave-shape detectors
    kernel_sizes: tuple[int, ...] = field(default=(7, 5))  # one strided conv per entry
    hidden: int = 48  # LSTM state: enough for one or two beats of context
    dropout: float = 0.1  # before the head


class ConvLSTM(nn.Module):
    """Conv + LSTM for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        conv_width: conv channels.
        hidden: LSTM hidden size.
        dropout: dropout before the head.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        conv_width: int = ConvLSTMConfig.conv_width,
        hidden: int = ConvLSTMConfig.hidden,
        dropout: float = ConvLSTMConfig.dropout,
    ) -> None:
        super().__init__()
        self.config = ConvLSTMConfig(conv_width=conv_width, hidden=hidden, dropout=dropout)
        layers: list[nn.Module] = []
        channels = in_channels
        for k in self.config.kernel_sizes:
            layers += [nn.Conv1d(channels, conv_width, k, stride=2, padding=k // 2), nn.GELU()]
            channels = conv_width
        self.frontend = nn.Sequential(*layers)
        self.lstm = nn.LSTM(conv_width, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.frontend(x).transpose(1, 2)  # (B, T / 4, conv_width)
        seq, _ = self.lstm(h)  # (B, T / 4, hidden)
        out: torch.Tensor = self.head(self.dropout(seq.mean(dim=1)))  # (B, num_classes)
        return out
