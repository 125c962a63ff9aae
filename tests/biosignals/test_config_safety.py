"""The `_target_` allowlist checked before Hydra instantiates anything."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from biosignals.config_safety import UnsafeTargetError, check_targets, find_targets


@pytest.mark.parametrize(
    "target",
    [
        "biosignals.models.cnn1d.CNN1D",
        "generated_models.tcn.TCN",
        "torch.optim.AdamW",
        "torch.nn.Identity",
    ],
)
def test_allowed_targets_pass(target: str) -> None:
    check_targets(OmegaConf.create({"model": {"_target_": target}}))


@pytest.mark.parametrize(
    "target",
    [
        "os.system",
        "subprocess.run",
        "builtins.eval",
        "biosignalsx.evil",  # prefix must end at a dot
        "torch.hub.load",
        "torch.load",
        "torch.utils.cpp_extension.load_inline",
        "torch._C._dummy",
    ],
)
def test_disallowed_targets_raise(target: str) -> None:
    cfg = OmegaConf.create({"trainer": {"optimizer": {"_target_": target, "_partial_": True}}})
    with pytest.raises(UnsafeTargetError, match=r"trainer\.optimizer\._target_"):
        check_targets(cfg)


def test_nested_lists_plain_dicts_and_interpolations() -> None:
    cfg = OmegaConf.create(
        {
            "evil": "os.system",
            "callbacks": [{"_target_": "torch.nn.Identity"}, {"x": {"_target_": "${evil}"}}],
            "when": "${now:%Y}",  # a Hydra-only resolver elsewhere must not break the check
        }
    )
    assert find_targets(cfg)["callbacks[0]._target_"] == "torch.nn.Identity"
    with pytest.raises(UnsafeTargetError, match=r"callbacks\[1\]\.x\._target_='os.system'"):
        check_targets(cfg)
    with pytest.raises(UnsafeTargetError):
        check_targets({"model": {"_target_": "shutil.rmtree"}})


def test_callable_and_non_string_targets() -> None:
    import torch

    check_targets({"m": {"_target_": torch.nn.Identity}})
    with pytest.raises(UnsafeTargetError, match="dotted path"):
        check_targets({"m": {"_target_": 42}})


def test_unset_target_is_skipped() -> None:
    assert find_targets(OmegaConf.create({"model": {"_target_": "???"}})) == {}
