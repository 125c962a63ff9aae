"""SpectroCNN: a short-time Fourier magnitude front end with a numpy Hann window, then a 2D CNN.

The Hann window comes from `np.hanning` at construction and is registered as a buffer; the
forward pass frames the window with `unfold`, applies the window, takes `torch.fft.rfft`
magnitudes (log-compressed) and classifies the (frequency, frame) image with a small 2D CNN.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SpectroCNN(nn.Module):
    """STFT magnitudes + 2D CNN for (B, C, T) windows -> (B, num_classes).

    Args:
        in_channels: channels C of the input.
        input_length: samples T per window (>= frame).
        num_classes: number of outputs.
        frame: samples per STFT frame.
        hop: samples between frames.
        width: channels of the 2D convs.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        frame: int = 32,
        hop: int = 8,
        width: int = 16,
    ) -> None:
        super().__init__()
        if input_length < frame:
            raise ValueError(f"input_length must be >= frame, got {input_length} < {frame}")
        window = np.hanning(frame).astype(np.float32)  # (frame,)
        self.register_buffer("window", torch.from_numpy(window))
        self.frame, self.hop = frame, hop
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.unfold(-1, self.frame, self.hop)  # (B, C, frames, frame)
        window = self.get_buffer("window")  # (frame,)
        spectrum = torch.fft.rfft(frames * window, dim=-1).abs()  # (B, C, frames, frame/2+1)
        image = torch.log1p(spectrum).transpose(-1, -2)  # (B, C, freq, frames)
        h = self.cnn(image).flatten(1)  # (B, 2 * width)
        out: torch.Tensor = self.head(h)  # (B, num_classes)
        return out
