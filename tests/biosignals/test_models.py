"""Built-in models: output shapes for classification and regression, sizes, argument checks."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import nn

from biosignals.models import (
    CNN1D,
    EncoderClassifier,
    ModelConfigError,
    ResNet1D,
    count_parameters,
    model_short_name,
)

MODELS: list[type[nn.Module]] = [CNN1D, ResNet1D, EncoderClassifier]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("model_cls", MODELS)
@pytest.mark.parametrize(("in_channels", "input_length", "num_classes"), [(1, 64, 3), (2, 250, 1)])
def test_output_shape(
    model_cls: type[nn.Module], in_channels: int, input_length: int, num_classes: int
) -> None:
    torch.manual_seed(0)
    model = model_cls(in_channels=in_channels, input_length=input_length, num_classes=num_classes)
    x = torch.randn(5, in_channels, input_length)  # (B, C, T)
    out = model(x)
    assert out.shape == (5, num_classes)
    assert out.dtype == torch.float32
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("model_cls", MODELS)
def test_constructor_follows_contract(model_cls: type[nn.Module]) -> None:
    """Keyword-only in_channels/input_length/num_classes plus scalar kwargs with defaults."""
    params = inspect.signature(model_cls.__init__).parameters
    for name in ("in_channels", "input_length", "num_classes"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    extra = [
        p
        for n, p in params.items()
        if n not in ("self", "in_channels", "input_length", "num_classes")
    ]
    assert extra, "a model exposes tunable hyperparameters"
    for p in extra:
        assert p.default is not inspect.Parameter.empty, p.name
        assert isinstance(p.default, int | float | bool | str), p.name


def test_cnn1d_is_small_and_others_larger() -> None:
    kwargs = {"in_channels": 1, "input_length": 256, "num_classes": 3}
    small = count_parameters(CNN1D(**kwargs))
    assert 1_000 <= small <= 10_000
    assert count_parameters(ResNet1D(**kwargs)) > 10 * small
    assert count_parameters(EncoderClassifier(**kwargs)) > 10 * small


def test_hyperparameters_change_the_model() -> None:
    kwargs = {"in_channels": 1, "input_length": 128, "num_classes": 3}
    assert count_parameters(CNN1D(**kwargs, width=16)) > count_parameters(CNN1D(**kwargs))
    deeper = EncoderClassifier(**kwargs, num_layers=3, d_model=32, nhead=2, patch_size=16)
    assert deeper(torch.randn(2, 1, 128)).shape == (2, 3)


@pytest.mark.parametrize(
    ("model_cls", "kwargs", "match"),
    [
        (CNN1D, {"width": 0}, "width must be > 0"),
        (CNN1D, {"dropout": 1.5}, "dropout"),
        (CNN1D, {"depth": 8}, "input_length must be >= 2\\*\\*8"),
        (ResNet1D, {"stages": 0}, "stages must be > 0"),
        (EncoderClassifier, {"d_model": 30, "nhead": 4}, "nhead must divide d_model"),
        (EncoderClassifier, {"patch_size": 128}, "patch_size must be <= input_length"),
    ],
)
def test_bad_hyperparameters_raise(
    model_cls: type[nn.Module], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ModelConfigError, match=match):
        model_cls(in_channels=1, input_length=64, num_classes=3, **kwargs)


def test_model_short_name() -> None:
    assert model_short_name("biosignals.models.cnn1d.CNN1D") == "cnn1d"
    assert model_short_name("generated_models.dilated_tcn.TCN") == "dilated_tcn"
    assert model_short_name("Thing") == "Thing"
