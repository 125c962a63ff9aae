"""Helpers shared by the built-in models: argument checks, parameter counts, names."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

SIDE_FEATURE_WIDTH = 16
"""Width of the projection the built-in models give the side features before the head."""


class ModelConfigError(ValueError):
    """A model hyperparameter outside its valid range; the message says which and what to do."""


def require_positive(**values: int | float) -> None:
    """Raise `ModelConfigError` unless every keyword value is > 0.

    Args:
        **values: name -> value of the hyperparameters to check.
    """
    for name, value in values.items():
        if not value > 0:
            raise ModelConfigError(
                f"{name} must be > 0, got {name}={value!r}; pass a positive value"
            )


def require_dropout(dropout: float) -> None:
    """Raise `ModelConfigError` unless 0 <= dropout < 1."""
    if not 0.0 <= dropout < 1.0:
        raise ModelConfigError(
            f"dropout must satisfy 0 <= dropout < 1, got dropout={dropout!r}; e.g. use 0.1"
        )


def require_min_length(input_length: int, *, halvings: int) -> None:
    """Raise `ModelConfigError` if the window is too short for `halvings` stride-2 reductions."""
    if input_length < 2**halvings:
        raise ModelConfigError(
            f"input_length must be >= 2**{halvings} = {2**halvings} for {halvings} halvings of "
            f"the time axis, got input_length={input_length}; use fewer blocks/stages or longer "
            "windows"
        )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_short_name(target: str) -> str:
    """Short model name from a Hydra `_target_`: the defining module's last segment.

    "biosignals.models.cnn1d.CNN1D" -> "cnn1d"; "generated_models.dilated_tcn.TCN" -> "dilated_tcn".
    A target without a module part is returned unchanged.
    """
    parts = target.split(".")
    return parts[-2] if len(parts) >= 2 else target


def takes_side_features(factory: Callable[..., Any]) -> bool:
    """True when a model class (or factory) declares the optional ``num_features`` keyword.

    Such a model is built with ``num_features=F`` and called as ``forward(x, features)``; any
    other is built without it and called as ``forward(x)`` (the model contract in
    `biosignals.models`). A ``**kwargs`` catch-all does not opt in.
    """
    try:
        param = inspect.signature(factory).parameters.get("num_features")
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return param is not None and param.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def side_projection(num_features: int) -> nn.Module | None:
    """Linear + ReLU from the F side features to `SIDE_FEATURE_WIDTH` units; None when F = 0.

    Raises:
        ModelConfigError: `num_features` is negative.
    """
    if num_features < 0:
        raise ModelConfigError(
            f"num_features must be >= 0, got num_features={num_features}; the trainer sets it "
            "from the dataset, leave it out of the model config"
        )
    if num_features == 0:
        return None
    return nn.Sequential(nn.Linear(num_features, SIDE_FEATURE_WIDTH), nn.ReLU(inplace=True))


def fuse_side_features(
    h: torch.Tensor, projection: nn.Module | None, features: torch.Tensor | None
) -> torch.Tensor:
    """Late fusion: the pooled embedding h (B, D), with the projected features appended.

    Returns:
        (B, D + SIDE_FEATURE_WIDTH) when the model has a projection, else h unchanged.

    Raises:
        ValueError: the model was built with side features and forward got none.
    """
    if projection is None:
        return h
    if features is None:
        raise ValueError(
            "this model was built with num_features > 0: call forward(x, features) with "
            "features of shape (B, num_features), or build it with num_features=0"
        )
    return torch.cat([h, projection(features)], dim=1)  # (B, D + SIDE_FEATURE_WIDTH)
