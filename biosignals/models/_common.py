"""Helpers shared by the built-in models: argument checks, parameter counts, names."""

from __future__ import annotations

from torch import nn


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
