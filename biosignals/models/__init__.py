"""Models for fixed-length biosignal windows, and the contract every model follows.

The model contract (built-in models here and agent-generated ones in `generated_models/`):

* A `torch.nn.Module` subclass whose constructor takes keyword arguments only:
  ``in_channels: int``, ``input_length: int``, ``num_classes: int`` (1 for regression), plus
  any number of *scalar* hyperparameters (int, float, bool, str) that all have defaults,
  e.g. ``width: int = 16, depth: int = 3, dropout: float = 0.1``. The trainer fills the first
  three from the dataset; the rest come from the Hydra config ``configs/model/<name>.yaml``
  (``_target_: biosignals.models.cnn1d.CNN1D``), so a search can tune them by override path
  (``model.width=32``).
* ``forward(x)``: x is float32 of shape (B, C, T) with C == in_channels and T == input_length;
  it returns raw scores of shape (B, num_classes): logits for classification (the trainer
  applies cross-entropy), a single unscaled value per window for regression (the trainer
  standardises targets, so the model need not know their scale).
* Side input (optional): a dataset may carry a vector of F features per window beside it
  (`SignalDataset.feature_names`; for MIT-BIH with ``rr_features: true`` the 9 RR-interval
  features of `biosignals.data.mitbih.RR_FEATURE_NAMES`: pre-, post-, local and patient RR as
  log ratios and log seconds; the PPG tasks have none). A model opts in by declaring the
  keyword ``num_features: int`` (with a default, e.g. 0) in its constructor: the trainer then
  passes ``num_features=F`` (F may be 0) and calls ``forward(x, features)`` with features
  float32 of shape (B, F). A model that does not declare it is built without it and called as
  ``forward(x)``; the features are simply not given to it (`takes_side_features` decides).
  The built-in models fuse them late: the pooled embedding (B, D) is concatenated with a
  Linear+ReLU projection of the features (B, 16) before the linear head.
* Invalid hyperparameters raise `ModelConfigError` (a ValueError) naming the rule, the value
  received and what to change, not an assert or a shape error deep in forward.

A minimal conforming model::

    class TinyNet(nn.Module):
        def __init__(self, *, in_channels: int, input_length: int, num_classes: int,
                     width: int = 8) -> None:
            super().__init__()
            self.conv = nn.Conv1d(in_channels, width, kernel_size=5, padding=2)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x))  # (B, width, T)
            return self.head(h.mean(dim=-1))  # (B, num_classes)

and one that uses the side features::

    class TinyRRNet(nn.Module):
        def __init__(self, *, in_channels: int, input_length: int, num_classes: int,
                     num_features: int = 0, width: int = 8) -> None:
            super().__init__()
            self.conv = nn.Conv1d(in_channels, width, kernel_size=5, padding=2)
            self.head = nn.Linear(width + num_features, num_classes)

        def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x)).mean(dim=-1)  # (B, width)
            return self.head(torch.cat([h, features], dim=1))  # (B, num_classes)

The built-in models keep a small config dataclass beside the module (nanoGPT style) that holds
the defaults and their reasons; that is a convention, not part of the contract.
"""

from __future__ import annotations

from biosignals.models._common import (
    SIDE_FEATURE_WIDTH,
    ModelConfigError,
    count_parameters,
    model_short_name,
    takes_side_features,
)
from biosignals.models.cnn1d import CNN1D, CNN1DConfig
from biosignals.models.encoder_classifier import EncoderClassifier, EncoderClassifierConfig
from biosignals.models.resnet1d import ResNet1D, ResNet1DConfig

__all__ = [
    "CNN1D",
    "SIDE_FEATURE_WIDTH",
    "CNN1DConfig",
    "EncoderClassifier",
    "EncoderClassifierConfig",
    "ModelConfigError",
    "ResNet1D",
    "ResNet1DConfig",
    "count_parameters",
    "model_short_name",
    "takes_side_features",
]
