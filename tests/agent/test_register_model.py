"""`agent.tools.register_generated_model`: static check, sandboxed smoke test, then two files."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.models.examples import generated_model_source
from agent.safety import UnsafeConfigError, UnsafeModelError, register_generated_model
from agent.safety.files import GENERATED_MARKER
from biosignals.train import compose_config

DIMS = {"in_channels": 3, "input_length": 216, "num_classes": 3}
SOURCE = generated_model_source(width=4, stages=2, kernel_size=3)


@pytest.fixture
def dirs(writable_configs: tuple[Path, Path]) -> tuple[Path, Path]:
    return writable_configs


def _listing(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in folder.rglob("*"))


def test_accepted_model_is_written_and_composes(dirs: tuple[Path, Path]) -> None:
    configs, generated = dirs
    reg = register_generated_model(
        name="se_small", code=SOURCE, args={"width": 4, "in_channels": 3}
    )
    assert reg.written and reg.class_name == "SEResNet1D"
    assert reg.target == "generated_models.se_small.SEResNet1D"
    assert reg.output_shape == (2, 3) and (reg.num_params or 0) > 0
    source = (generated / "se_small.py").read_text(encoding="utf-8")
    assert source.startswith(GENERATED_MARKER) and SOURCE in source
    config_text = (configs / "model" / "se_small.yaml").read_text(encoding="utf-8")
    assert config_text.startswith(GENERATED_MARKER)
    # in_channels only sized the smoke test; the trainer fills it from the dataset
    assert reg.config == {"_target_": reg.target, "width": 4}
    cfg = compose_config(["experiment=mitbih_aami3_quick", "model=se_small"], configs)
    assert cfg.model._target_ == reg.target and cfg.model.width == 4
    assert "se_small" in str(reg) and "model=se_small" in str(reg)
    # the template declares num_features: smoke-tested with the default 9 features
    assert reg.uses_features is True and "takes the per-window features" in str(reg)


def test_registering_the_same_model_again_is_a_no_op(dirs: tuple[Path, Path]) -> None:
    first = register_generated_model("twice", SOURCE, {"width": 4}, dims=DIMS)
    again = register_generated_model("twice", SOURCE, {"width": 4}, dims=DIMS)
    assert first.written and not again.written and again.source == first.source
    with pytest.raises(UnsafeConfigError, match="never overwritten"):
        register_generated_model("twice", SOURCE, {"width": 8}, dims=DIMS)


OS_SYSTEM = SOURCE.replace("import torch\n", "import os\nimport torch\n", 1).replace(
    "super().__init__()\n        if input_length",
    "super().__init__()\n        os.system('touch /tmp/agentune-pwned')\n        if input_length",
)


@pytest.mark.parametrize(
    ("name", "code", "args", "error", "match"),
    [
        ("pwned", OS_SYSTEM, None, UnsafeModelError, "os"),
        ("evalled", SOURCE + "\nx = eval('1')\n", None, UnsafeModelError, "eval"),
        ("no_model", "import torch\nX = 1\n", None, UnsafeModelError, "nn.Module"),
        ("bad_args", SOURCE, {"width": "${oc.env:HOME}"}, UnsafeModelError, "width"),
        ("bad_args2", SOURCE, {"__class__": 1}, UnsafeModelError, "__class__"),
        ("neg_features", SOURCE, {"num_features": -1}, UnsafeModelError, "num_features"),
        ("unknown_arg", SOURCE, {"no_such_arg": 1}, UnsafeModelError, "smoke test"),
        ("../escape", SOURCE, None, UnsafeConfigError, "must match"),
        ("Upper", SOURCE, None, UnsafeConfigError, "must match"),
        ("cnn1d", SOURCE, None, UnsafeConfigError, "human-authored"),
        ("generated", SOURCE, None, UnsafeConfigError, "reserved"),
    ],
)
def test_refusals_write_nothing(
    dirs: tuple[Path, Path],
    name: str,
    code: str,
    args: dict[str, object] | None,
    error: type[Exception],
    match: str,
) -> None:
    before = _listing(*dirs)
    with pytest.raises(error, match=match) as info:
        register_generated_model(name=name, code=code, args=args, dims=DIMS)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    assert _listing(*dirs) == before
    assert not Path("/tmp/agentune-pwned").exists()


def test_every_static_reason_is_reported(dirs: tuple[Path, Path]) -> None:
    code = "import os\nimport socket\n" + SOURCE + "\nopen('/etc/passwd')\n"
    with pytest.raises(UnsafeModelError) as info:
        register_generated_model("many", code, dims=DIMS)
    reasons = " ".join(info.value.reasons)
    assert "os" in reasons and "socket" in reasons and "open" in reasons
    assert len(info.value.reasons) >= 3


def test_num_features_sizes_the_smoke_test_and_stays_out_of_the_config(
    dirs: tuple[Path, Path],
) -> None:
    none = register_generated_model("f_none", SOURCE, {"width": 4, "num_features": 0}, dims=DIMS)
    nine = register_generated_model(
        "f_nine", SOURCE, {"width": 4}, dims={**DIMS, "num_features": 9}
    )
    assert none.config == {"_target_": none.target, "width": 4}  # the trainer passes F
    assert none.uses_features is True and nine.uses_features is True
    assert none.num_params is not None and nine.num_params is not None
    assert nine.num_params - none.num_params == (9 * 16 + 16) + 16 * 3  # projection + head
    with pytest.raises(ValueError, match="num_features must be an int >= 0"):
        register_generated_model("f_bad", SOURCE, {"width": 4}, dims={**DIMS, "num_features": -2})


def test_args_may_come_as_json_text(dirs: tuple[Path, Path]) -> None:
    reg = register_generated_model("from_json", SOURCE, '{"width": 4, "stages": 2}', dims=DIMS)
    assert reg.config == {"_target_": reg.target, "width": 4, "stages": 2}
