"""Registering a generated model: validate, smoke-test in a sandbox, then write its two files.

`register_generated_model(name, code, args)` is the only way tier-3 code reaches disk:

1. the static check (`agent.safety.code_policy`): imports, names, attributes, what runs at
   import, one `nn.Module` subclass with `forward()`;
2. the smoke test (`agent.safety.smoke`): a separate process with CPU-time and memory limits
   and the runtime guard imports the module, builds the class with the model contract's keyword
   arguments plus `args`, and runs forward and backward on a dummy batch `(2, C, T)` (plus
   features `(2, num_features)` for a class that declares the optional `num_features`);
3. only then `generated_models/<name>.py` (the code, under a generated-file header) and
   `configs/model/<name>.yaml` (`_target_: generated_models.<name>.<Class>` plus `args`).

A rejected model writes, imports and launches nothing in this process; the `UnsafeModelError`
lists every reason. Registering the same name with the same code and args again is a no-op;
the same name with anything else is refused (an arm that trains a model never sees it change).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.safety.errors import UnsafeConfigError, UnsafeModelError
from agent.safety.files import (
    GENERATED_MARKER,
    check_name,
    config_dir,
    generated_dir,
    is_generated_text,
    refuse_human_file,
    target_path,
    write_generated_file,
)
from agent.safety.policy import (
    CONTRACT_KWARGS,
    DEFAULT_SMOKE_DIMS,
    FEATURES_KWARG,
    GENERATED_PACKAGE,
    smoke_dim_problem,
)

__all__ = [
    "RegisteredModel",
    "generated_model_files",
    "parse_model_args",
    "register_generated_model",
    "registered_model",
]

logger = logging.getLogger(__name__)

Scalar = bool | int | float | str
# `generated` is the package's own name: a model of that name would read as a placeholder
_RESERVED_NAMES = frozenset({"generated"})
_SOURCE_HEADER = (
    "{marker} (tier 3): model {name!r}, class {cls}; passed the safety layer's static check\n"
    "# and sandboxed smoke test. Do not edit by hand: workers validate this code again.\n"
)
_CONFIG_HEADER = "{marker} (tier 3): config of generated_models/{name}.py\n"


@dataclass(frozen=True)
class RegisteredModel:
    """A generated model that passed the safety layer and is on disk.

    Attributes:
        name: the model name (`model=<name>` selects it).
        class_name: the class the config builds.
        target: `generated_models.<name>.<Class>`.
        source_path: `generated_models/<name>.py`.
        config_path: `configs/model/<name>.yaml`.
        source: the module text as written (what travels with every trial).
        config: the model config as written (`_target_` plus the hyperparameters).
        num_params: trainable parameters at the smoke test's dimensions.
        output_shape: the smoke test's output shape, `(2, num_classes)`.
        written: False when the same registration already existed.
        uses_features: the class declares `num_features` and takes `forward(x, features)`;
            None when not known (a registration read back from disk).
    """

    name: str
    class_name: str
    target: str
    source_path: Path
    config_path: Path
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    num_params: int | None = None
    output_shape: tuple[int, ...] | None = None
    written: bool = True
    uses_features: bool | None = None

    def __str__(self) -> str:
        params = f"{self.num_params:,} parameters" if self.num_params is not None else "?"
        features = ", takes the per-window features" if self.uses_features else ""
        return (
            f"registered model {self.name!r}: class {self.class_name} in "
            f"generated_models/{self.name}.py ({params}, output {self.output_shape}{features}); "
            f"train it with the override model={self.name}"
        )


def parse_model_args(args: Mapping[str, Any] | str | None) -> dict[str, Scalar]:
    """`args` as a dict of scalar constructor arguments (a JSON object string is accepted).

    Raises:
        UnsafeModelError: not a mapping, a key that is not a public identifier, or a value that
            is not a finite number, a bool or a short plain string.
    """
    if args is None:
        return {}
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            raise UnsafeModelError(
                f"args must be a mapping of constructor arguments, got text that is not JSON "
                f"({e.msg}); pass e.g. {{'width': 32, 'depth': 3}}"
            ) from e
    if not isinstance(args, Mapping):
        raise UnsafeModelError(
            f"args must be a mapping of constructor arguments, got {type(args).__name__}; "
            "pass e.g. {'width': 32, 'depth': 3}"
        )
    out: dict[str, Scalar] = {}
    for key, value in args.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise UnsafeModelError(
                f"args key {key!r} is not a public identifier; use the constructor's keyword "
                "names such as 'width'"
            )
        out[key] = _scalar(key, value)
    return out


def _scalar(key: str, value: Any) -> Scalar:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise UnsafeModelError(f"args[{key!r}] must be finite, got {value!r}")
        return value
    if isinstance(value, str) and len(value) <= 128 and value.isprintable() and "${" not in value:
        return value
    raise UnsafeModelError(
        f"args[{key!r}] must be a bool, a finite number or a short plain string, got "
        f"{value!r}; model hyperparameters are scalars (see the model contract)"
    )


def generated_model_files(
    name: str, *, configs: Path | None = None, generated: Path | None = None
) -> tuple[Path, Path]:
    """(`generated_models/<name>.py`, `configs/model/<name>.yaml`) for `name` (checked)."""
    check_name(name, "model name")
    source_path = target_path(generated or generated_dir(), name, ".py", "model name")
    config_path = target_path((configs or config_dir()) / "model", name, ".yaml", "model name")
    return source_path, config_path


def registered_model(
    name: str, *, configs: Path | None = None, generated: Path | None = None
) -> RegisteredModel | None:
    """The registration of `name` on disk, or None when `name` is not a generated model.

    Both files must exist and carry the generated marker, and the config's `_target_` must be
    `generated_models.<name>.<Class>`; the code is not validated here (callers do).
    """
    from agent.safety.yaml_io import safe_load_yaml

    source_path, config_path = generated_model_files(name, configs=configs, generated=generated)
    try:
        source = source_path.read_text(encoding="utf-8")
        config_text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not (is_generated_text(source) and is_generated_text(config_text)):
        return None
    config = safe_load_yaml(config_text, source=str(config_path))
    target = config.get("_target_") if isinstance(config, dict) else None
    prefix = f"{GENERATED_PACKAGE}.{name}."
    if not isinstance(target, str) or not target.startswith(prefix):
        return None
    return RegisteredModel(
        name=name,
        class_name=target.removeprefix(prefix),
        target=target,
        source_path=source_path,
        config_path=config_path,
        source=source,
        config=dict(config),
        written=False,
    )


def _smoke_dims(args: dict[str, Scalar], dims: Mapping[str, int] | None) -> dict[str, int]:
    """Contract dimensions for the smoke test: `DEFAULT_SMOKE_DIMS`, overridden by `dims`, then
    by contract keys (and `num_features`) in `args`, which are removed from `args`."""
    out = dict(DEFAULT_SMOKE_DIMS)
    out.update(dims or {})
    for key in (*CONTRACT_KWARGS, FEATURES_KWARG):
        if key in args:
            value = args.pop(key)
            problem = smoke_dim_problem(key, value)
            if problem is not None:
                raise UnsafeModelError(f"args[{key!r}] must be {problem}, got {value!r}")
            out[key] = int(value)  # an int already: smoke_dim_problem checked it
    return out


def register_generated_model(
    name: str,
    code: str,
    args: Mapping[str, Any] | str | None = None,
    *,
    class_name: str | None = None,
    dims: Mapping[str, int] | None = None,
    configs: str | Path | None = None,
    generated: str | Path | None = None,
) -> RegisteredModel:
    """Validate and smoke-test `code`, then write `generated_models/<name>.py` and its config.

    Args:
        name: the model name, `^[a-z][a-z0-9_]{0,63}$` (becomes `model=<name>`).
        code: the module source; it must define an `nn.Module` subclass following the model
            contract (keyword-only `in_channels`, `input_length`, `num_classes` plus scalar
            hyperparameters with defaults; `forward` maps `(B, C, T)` to `(B, num_classes)`;
            a constructor that also declares `num_features` gets `forward(x, features)` with
            features `(B, num_features)`).
        args: scalar hyperparameters written into the config (and passed to the smoke test);
            `in_channels`/`input_length`/`num_classes`/`num_features` here only set the smoke
            test's dimensions. A JSON object string is accepted.
        class_name: the class to build; default the last contract-following class defined.
        dims: smoke-test dimensions (`in_channels`, `input_length`, `num_classes`, optional
            `num_features`); default one lead of 216 samples, 3 classes, 9 features.
        configs: the Hydra config folder (default `$AGENTUNE_CONFIG_DIR` or `configs/`).
        generated: the generated-model folder (default `$AGENTUNE_GENERATED_DIR` or
            `generated_models/`).

    Returns:
        The `RegisteredModel` (`str()` of it is a one-line summary for the agent).

    Raises:
        UnsafeModelError: the code failed the static check or the smoke test (every reason in
            `.reasons`), or bad args; nothing is written.
        ValueError: a bad dimension in `dims` (caller error); nothing is written.
        UnsafeConfigError: a bad name, or the name is taken by other content; nothing written.
    """
    from agent.safety.code_policy import require_valid_model_source
    from agent.safety.smoke import smoke_test
    from agent.safety.yaml_io import dump_yaml

    configs_root = Path(configs) if configs is not None else config_dir()
    generated_root = Path(generated) if generated is not None else generated_dir()
    if name in _RESERVED_NAMES:
        raise UnsafeConfigError(f"model name {name!r} is reserved; choose another name")
    source_path, config_path = generated_model_files(
        name, configs=configs_root, generated=generated_root
    )
    if not isinstance(code, str) or not code.strip():
        raise UnsafeModelError("code must be the model module's Python source, got nothing")
    kwargs = parse_model_args(args)
    smoke_dims = _smoke_dims(kwargs, dims)
    refuse_human_file(config_path)
    refuse_human_file(source_path)

    report = require_valid_model_source(code, class_name=class_name)
    assert report.model_class is not None  # an accepted report names its model class
    module_name = f"{GENERATED_PACKAGE}.{name}"
    result = smoke_test(
        code,
        class_name=report.model_class,
        kwargs=kwargs,
        module_name=module_name,
        in_channels=smoke_dims["in_channels"],
        input_length=smoke_dims["input_length"],
        num_classes=smoke_dims["num_classes"],
        num_features=smoke_dims[FEATURES_KWARG],
    )
    if not result.accepted:
        raise UnsafeModelError(
            "model code rejected by the smoke test: " + "; ".join(result.reasons), result.reasons
        )

    target = f"{module_name}.{report.model_class}"
    marker = GENERATED_MARKER
    source = _SOURCE_HEADER.format(marker=marker, name=name, cls=report.model_class) + code
    if not source.endswith("\n"):
        source += "\n"
    config: dict[str, Any] = {"_target_": target, **kwargs}
    config_text = _CONFIG_HEADER.format(marker=marker, name=name) + dump_yaml(config)
    wrote_source = write_generated_file(source_path, source)
    try:
        wrote_config = write_generated_file(config_path, config_text)
    except Exception:
        if wrote_source:
            source_path.unlink(missing_ok=True)
        raise
    logger.info("registered generated model %s (%s)", name, target)
    return RegisteredModel(
        name=name,
        class_name=report.model_class,
        target=target,
        source_path=source_path,
        config_path=config_path,
        source=source,
        config=config,
        num_params=result.num_params,
        output_shape=result.output_shape,
        written=wrote_source or wrote_config,
        uses_features=result.uses_features,
    )
