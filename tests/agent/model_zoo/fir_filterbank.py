"""FilterBankNet: a fixed FIR band-pass filter bank (scipy.signal.firwin) before a small CNN.

At construction `scipy.signal.firwin` designs `bands` linear-phase band-pass filters over the
ECG band (0.5-40 Hz at 360 Hz); the taps are registered as a buffer (saved with the model, not
trained) and applied per input channel with a grouped conv; a learned CNN reads the bands.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy import signal
from torch import nn
from torch.nn import functional as F

FS = 360.0  # MIT-BIH sampling rate, Hz
EDGES_HZ = (0.5, 5.0, 10.0, 20.0, 40.0)  # band edges; bands = len(EDGES_HZ) - 1


class FilterBankNet(nn.Module):
    """Fixed FIR bank + CNN for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window.
        num_classes: number of outputs.
        taps: FIR length (odd, linear phase).
        width: channels of the learned conv.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        taps: int = 63,
        width: int = 24,
    ) -> None:
        super().__init__()
        if taps % 2 == 0:
            raise ValueError(f"taps must be odd for a linear-phase FIR, got {taps}; use {taps + 1}")
        bank = np.stack(
            [
                signal.firwin(taps, [lo, hi], pass_zero=False, fs=FS)
                for lo, hi in itertools.pairwise(EDGES_HZ)
            ]
        )  # (bands, taps)
        bands = bank.shape[0]
        weight = torch.tensor(bank, dtype=torch.float32).unsqueeze(1)  # (bands, 1, taps)
        self.register_buffer("fir", weight.repeat(in_channels, 1, 1))  # (C * bands, 1, taps)
        self.in_channels = in_channels
        self.conv = nn.Sequential(
            nn.Conv1d(in_channels * bands, width, 7, stride=2, padding=3),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2),
            nn.ReLU(),
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fir = self.get_buffer("fir")  # (C * bands, 1, taps)
        bands = F.conv1d(x, fir, padding=fir.shape[-1] // 2, groups=self.in_channels)
        h = self.conv(bands)  # (B, width, T / 4); bands was (B, C * bands, T)
        out: torch.Tensor = self.head(h.mean(dim=-1))  # (B, num_classes)
        return out
