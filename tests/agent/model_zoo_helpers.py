"""Shared helpers for tests over the benign model zoo (`tests/agent/model_zoo/*.py`).

The zoo holds realistic architectures that follow the model contract and must pass the static
model-code check; test modules import these helpers as `from model_zoo_helpers import ...`
(pytest puts `tests/agent` on `sys.path`, as for `tests/search/searcher_fakes.py`).

`build_zoo_model` runs zoo code in-process: the zoo is trusted test code, never agent output.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "ZOO_DIR",
    "ZOO_MODEL_CLASSES",
    "build_zoo_model",
    "count_parameters",
    "forward_backward",
    "load_zoo_module",
    "zoo_sources",
]

ZOO_DIR = Path(__file__).resolve().parent / "model_zoo"

ZOO_MODEL_CLASSES = {
    "attention_pool": "AttentionPoolCNN",
    "biosignals_reuse": "WideResNet",
    "cnn_gru": "ConvGRU",
    "dataclass_config": "ConvLSTM",
    "depthwise_separable": "MobileNet1D",
    "dilated_tcn": "DilatedTCN",
    "einops_attention": "AttentionNet",
    "fir_filterbank": "FilterBankNet",
    "inception_block": "InceptionTime1D",
    "input_param": "PooledCNN",
    "match_walrus": "ConfigurableCNN",
    "partial_factory": "FactoryCNN",
    "patch_transformer": "PatchTransformer",
    "plain_cnn": "PlainCNN",
    "rearrange_mixer": "PatchMixer",
    "resnet_basic": "ResNetBasic1D",
    "se_resnet": "SEResNet1D",
    "unet_encoder": "UNet1D",
    "window_spectral": "SpectroCNN",
}
"""Zoo file stem -> the class the validator must pick as the model."""


def zoo_sources() -> dict[str, str]:
    """Every zoo file's source, keyed by file stem, sorted by stem."""
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(ZOO_DIR.glob("*.py"))}


def load_zoo_module(stem: str) -> types.ModuleType:
    """Execute one zoo file as a fresh module named `model_zoo_<stem>` (trusted test code).

    The module is registered in `sys.modules` (dataclasses and pickling look classes up
    there) and replaced on every call.
    """
    name = f"model_zoo_{stem}"
    path = ZOO_DIR / f"{stem}.py"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    return module


def build_zoo_model(
    stem: str, *, in_channels: int = 1, input_length: int = 216, num_classes: int = 3
) -> nn.Module:
    """Build the zoo file's model class with the contract's keyword arguments."""
    module = load_zoo_module(stem)
    model_class = getattr(module, ZOO_MODEL_CLASSES[stem])
    model = model_class(in_channels=in_channels, input_length=input_length, num_classes=num_classes)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{stem}: {ZOO_MODEL_CLASSES[stem]} is not an nn.Module")
    return model


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_backward(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """One forward and backward pass; returns the (detached) output."""
    out = model(batch)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward returned {type(out).__name__}, not a Tensor")
    out.sum().backward()
    return out.detach()
