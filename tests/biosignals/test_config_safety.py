"""The `_target_` rules checked before Hydra instantiates anything: resolution, not text."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
import torch
from omegaconf import OmegaConf

from biosignals.config_safety import (
    UnsafeTargetError,
    check_targets,
    dataset_builders,
    find_targets,
    is_allowed_target,
    register_dataset_builder,
    resolve_target,
)


@pytest.mark.parametrize(
    "target",
    [
        "biosignals.models.cnn1d.CNN1D",
        "biosignals.models.CNN1D",  # re-exported by the package: same class
        "torch.optim.AdamW",
        "torch.optim.lr_scheduler.CosineAnnealingLR",
        "torch.nn.Identity",
        "torch.nn.modules.conv.Conv1d",
        "biosignals.data.mitbih.build_synthetic",
        "biosignals.data.ppg_synth.build_synthetic",
    ],
)
def test_allowed_targets_pass(target: str) -> None:
    check_targets(OmegaConf.create({"model": {"_target_": target}}))
    assert resolve_target(target) is not None


@pytest.mark.parametrize(
    ("target", "why"),
    [
        # the attacks measured on main: each passed the old text-prefix check
        ("biosignals.data.cache.os.system", "another module's attribute"),
        ("biosignals.data.cache.shutil.rmtree", "another module's attribute"),
        ("torch.os.system", "another module's attribute"),
        ("torch.builtins.eval", "another module's attribute"),
        ("torch.utils.model_zoo.load_url", "outside the modules a target may import"),
        ("torch.distributed.run.main", "outside the modules a target may import"),
        # more detours and wrong kinds
        ("biosignals.models.cnn1d.torch.nn.Conv1d", "another module's attribute"),
        ("biosignals.data.mitbih.np.load", "another module's attribute"),
        ("os.system", "allowed roots"),
        ("subprocess.run", "allowed roots"),
        ("builtins.eval", "allowed roots"),
        ("biosignalsx.evil", "allowed roots"),
        ("torch.hub.load", "defined in module 'torch.hub'"),
        ("torch.load", "defined in module 'torch.serialization'"),
        ("torch.Tensor", "defined in module 'torch'"),
        ("torch.utils.cpp_extension.load_inline", "outside the modules a target may import"),
        ("torch._C._dummy", "private"),
        ("torch.nn.modules.module.Module.__init__", "dunder"),
        ("biosignals.data.cache.load_dataset", "is a function"),
        ("biosignals.trainer.train", "is a function"),
        ("torch.nn.functional.relu", "is a function"),
        ("torch.optim.Optimizer.load_state_dict", "is a function"),
        ("torch.nn", "is a module"),
        ("torch.nn.NoSuchLayer", "does not exist"),
        ("generated_models.never_loaded.Net", "not loaded"),
        ("torch", "dotted path"),
        ("torch..nn", "dotted path"),
        ("torch.nn.Conv1d; import os", "dotted path"),
    ],
)
def test_disallowed_targets_raise_naming_key_target_and_rule(target: str, why: str) -> None:
    cfg = OmegaConf.create({"trainer": {"optimizer": {"_target_": target, "_partial_": True}}})
    with pytest.raises(UnsafeTargetError) as info:
        check_targets(cfg)
    message = str(info.value)
    assert message.startswith(f"trainer.optimizer._target_={target!r} is not an allowed")
    assert why in message
    assert "allowed: nn.Module subclasses" in message
    assert "\n" not in message
    assert not is_allowed_target(target)


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


def test_targets_inside_instantiate_args_are_checked() -> None:
    cfg = {
        "model": {
            "_target_": "torch.nn.Sequential",
            "_args_": [{"_target_": "torch.nn.Identity"}, {"_target_": "torch.os.system"}],
        }
    }
    with pytest.raises(UnsafeTargetError, match=r"model\._args_\[1\]\._target_"):
        check_targets(cfg)


def test_callable_and_non_string_targets() -> None:
    check_targets({"m": {"_target_": torch.nn.Identity}})
    with pytest.raises(UnsafeTargetError, match="dotted path"):
        check_targets({"m": {"_target_": 42}})
    with pytest.raises(UnsafeTargetError, match=r"allowed roots"):
        import os

        check_targets({"m": {"_target_": os.system}})


def test_unset_target_is_skipped() -> None:
    assert find_targets(OmegaConf.create({"model": {"_target_": "???"}})) == {}


@pytest.fixture
def loaded_generated_module() -> Iterator[str]:
    """A `generated_models.<name>` module as the safety layer leaves it: in sys.modules and
    set on the package (its source is trusted test code here)."""
    import importlib

    package = importlib.import_module("generated_models")
    module = types.ModuleType("generated_models.cs_probe")

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    Probe.__module__ = module.__name__
    module.Probe = Probe  # type: ignore[attr-defined]
    module.helper = lambda: None  # type: ignore[attr-defined]
    module.os = __import__("os")  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    package.cs_probe = module  # type: ignore[attr-defined]
    yield module.__name__
    del sys.modules[module.__name__]
    del package.cs_probe


def test_loaded_generated_model_resolves_and_its_detours_do_not(
    loaded_generated_module: str,
) -> None:
    assert resolve_target(f"{loaded_generated_module}.Probe").__name__ == "Probe"
    for bad, why in [("helper", "defined in module"), ("os.system", "another module's attribute")]:
        with pytest.raises(UnsafeTargetError, match=why):
            resolve_target(f"{loaded_generated_module}.{bad}")


def test_registered_generated_target_is_vouched_for_without_loading() -> None:
    target = "generated_models.not_loaded_yet.Net"
    assert resolve_target(target, registered={target}) is None
    check_targets({"model": {"_target_": target}}, registered={target})
    assert "generated_models.not_loaded_yet" not in sys.modules
    with pytest.raises(UnsafeTargetError, match="not loaded"):
        check_targets({"model": {"_target_": target}}, registered={"generated_models.x.Net"})
    # vouching covers generated models only, never another root
    with pytest.raises(UnsafeTargetError):
        check_targets({"m": {"_target_": "os.system"}}, registered={"os.system"})


def test_dataset_builders_are_registered_and_only_under_biosignals_data() -> None:
    import biosignals.data.mitbih  # noqa: F401  (registers its builders)

    assert "biosignals.data.mitbih.build_synthetic" in dataset_builders()

    def rogue() -> None: ...

    with pytest.raises(ValueError, match=r"biosignals\.data\."):
        register_dataset_builder(rogue)
