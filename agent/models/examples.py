"""An example generated model: the SE-ResNet template the tests, benchmarks and docs use.

`generated_model_source(width, stages, kernel_size)` returns the source of `SEResNet1D`, a
residual 1D CNN with squeeze-and-excitation gates that follows the workload's model contract
(keyword-only `in_channels`, `input_length`, `num_classes` plus scalar hyperparameters with
defaults; `(B, C, T) -> (B, num_classes)`) and imports only torch. It also declares the
contract's optional `num_features: int = 0`: given `forward(x, features)` with per-window side
features (B, F) (ECG: 9 RR-interval features), it fuses `ReLU(Linear(F, 16))` of them with the
pooled embedding before the head. It is what a well-behaved tier-3 proposal looks like; the
offline model writes its own from `agent.models.architectures`.
"""

from __future__ import annotations

__all__ = ["generated_model_source"]

_SE_RESNET_TEMPLATE = '''"""SEResNet1D: residual 1D CNN with squeeze-and-excitation gates.

Each block: conv -> BN -> ReLU -> conv -> BN, scaled per channel by a squeeze-and-excitation
gate, plus the (projected) input; a stride-2 block halves the time axis. With num_features > 0
the per-window side features (B, F) are projected to 16 and concatenated before the head.
"""

import torch
from torch import nn


class SEBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, reduction: int
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        hidden = max(c_out // reduction, 4)
        self.gate = nn.Sequential(
            nn.Linear(c_out, hidden), nn.ReLU(), nn.Linear(hidden, c_out), nn.Sigmoid()
        )
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))  # (B, c_out, T')
        h = self.bn2(self.conv2(h))  # (B, c_out, T')
        w = self.gate(h.mean(dim=-1)).unsqueeze(-1)  # (B, c_out, 1): channel weights
        return torch.relu(h * w + self.skip(x))  # (B, c_out, T')


class SEResNet1D(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        num_features: int = 0,
        width: int = {width},
        stages: int = {stages},
        kernel_size: int = {kernel_size},
        reduction: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if input_length < 2 ** stages:
            raise ValueError(
                f"input_length must be >= 2**stages, got {{input_length}} < {{2 ** stages}}"
            )
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, width, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
        )
        blocks = []
        c = width
        for i in range(stages):
            c_out = width * 2 ** i
            stride = 1 if i == 0 else 2
            blocks.append(SEBlock(c, c_out, kernel_size, stride=stride, reduction=reduction))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.num_features = num_features
        if num_features > 0:  # late fusion of the side features (RR intervals for ECG)
            self.feature_proj = nn.Sequential(nn.Linear(num_features, 16), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c + (16 if num_features > 0 else 0), num_classes)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # (B, width * 2**(stages-1), T / 2**(stages-1))
        h = h.mean(dim=-1)  # (B, C_last)
        if self.num_features > 0:
            if features is None:  # called without side features: zeros stand in for them
                features = h.new_zeros(h.shape[0], self.num_features)  # (B, F)
            h = torch.cat([h, self.feature_proj(features.to(h.dtype))], dim=1)  # (B, C_last + 16)
        return self.head(self.dropout(h))  # (B, num_classes)
'''


def generated_model_source(width: int, stages: int, kernel_size: int) -> str:
    """The tier-3 template filled in: Python source defining `SEResNet1D`.

    Args:
        width: stem channels; stage i has `width * 2**i`.
        stages: residual stages (each after the first halves the time axis).
        kernel_size: odd convolution kernel size.

    Returns:
        The module source; its constructor takes the contract's keyword arguments, the optional
        `num_features: int = 0`, and `width`, `stages`, `kernel_size`, `reduction`, `dropout`.
    """
    return _SE_RESNET_TEMPLATE.format(width=width, stages=stages, kernel_size=kernel_size)
