"""Tiers 2 and 3: the tools that write, each a thin wrapper over the safety layer.

* Tier 2 (YAML): `create_config_variant`, `compose_experiment_config`
  (`agent.safety.configs`).
* Tier 3 (Python): `read_model_source` (read-only: the source of an existing architecture)
  and `register_generated_model` (`agent.safety.models`: static check, sandboxed smoke test,
  then the two files).

They write into the active context's `config_dir` / `generated_dir` (defaults:
`$AGENTUNE_CONFIG_DIR` / `$AGENTUNE_GENERATED_DIR`, else the project's folders), and a
refusal is the safety layer's one-line `SafetyError` (a `ValueError`), which says what to try.

What they return reaches the agent's code, which may call any method of it: paths are
therefore `PurePosixPath` objects (no `write_text`, `unlink`, `open`; `Path(p)` gives a
real path to trusted callers), also inside the returned `RegisteredModel`. A `pathlib.Path`
handed to the agent would be a way around every check of the safety layer.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, cast

from smolagents import tool

from agent.safety.models import RegisteredModel
from agent.tools._context import ToolContext, ToolError, clip, current_context, log_call

__all__ = [
    "compose_experiment_config",
    "create_config_variant",
    "read_model_source",
    "register_generated_model",
]

logger = logging.getLogger(__name__)

_SOURCE_PACKAGE = "biosignals"  # built-in model sources are read from this package only


# --- tier 2 ---------------------------------------------------------------------------------


def inert(path: Path) -> PurePosixPath:
    """`path` as a pure path: the agent's code can read its parts but not touch the file."""
    return PurePosixPath(path)


@tool
def create_config_variant(group: str, base: str, name: str, mods: dict[str, Any]) -> PurePath:
    """Write a new config that is a copy of an existing one with some existing values changed
    (tier 2), e.g. a wider cnn1d. Only existing keys can change (no new keys, never _target_);
    values are type- and range-checked and the file must compose. Returns the path of the
    written file (configs/<group>/<name>.yaml); select it afterwards with the override
    "<group>=<name>". Example: `p = create_config_variant("model", "cnn1d", "cnn1d_wide",
    {"width": 32, "depth": 4}); print(p)` then propose overrides ["model=cnn1d_wide"].

    Args:
        group: the config group, one of "model", "trainer" or "dataset".
        base: an existing config of the group to start from, e.g. "cnn1d" (see
            list_available_configs()).
        name: the new config's name, lower-case letters, digits and _ (e.g. "cnn1d_wide"); not the
            base's name.
        mods: the values to change, a nested dict of existing keys, e.g. {"width": 32} or
            {"optimizer": {"betas": [0.9, 0.99]}}.
    """
    from agent.safety.configs import create_config_variant as write_variant

    ctx = current_context()
    log_call(ctx, "create_config_variant", group, base, name, mods)
    return inert(write_variant(group, base, name, mods, config_dir=ctx.config_root()))


@tool
def compose_experiment_config(
    name: str, components: list, overrides: list | None = None
) -> PurePath:
    """Write a new experiment config that selects one config per group and sets existing values
    (tier 2). Returns the path of the written file (configs/experiment/<name>.yaml); train it
    with the override "experiment=<name>". Example: `p = compose_experiment_config("exp_wide",
    ["model=cnn1d_wide", "trainer=quick"], ["trainer.lr=0.001"]); print(p)`.

    Args:
        name: the experiment's name, lower-case letters, digits and _ (e.g. "exp_wide").
        components: the configs to select, a list such as ["model=cnn1d_wide", "trainer=default"] (a
            dict {"model": "cnn1d_wide"} works too).
        overrides: Hydra overrides of existing keys, e.g. ["trainer.lr=0.001", "model.dropout=0.2"];
            may be empty.
    """
    from agent.safety.configs import compose_experiment_config as write_experiment

    ctx = current_context()
    log_call(ctx, "compose_experiment_config", name, components, overrides)
    path = write_experiment(name, components, list(overrides or []), config_dir=ctx.config_root())
    return inert(path)


# --- tier 3 ---------------------------------------------------------------------------------


def model_source(ctx: ToolContext, model_name: object) -> str:
    """The source text of model `model_name` (see `read_model_source`)."""
    from agent.safety.errors import SafetyError
    from agent.safety.files import check_name
    from agent.safety.models import registered_model
    from agent.safety.yaml_io import safe_load_yaml

    try:
        name = check_name(model_name, "model_name")
    except SafetyError as e:
        raise ToolError(f"{e} (a model config name from list_available_configs()['model'])") from e
    configs = ctx.config_root()
    folder = configs / "model"
    config_path = folder / f"{name}.yaml"
    if config_path.is_symlink() or not config_path.is_file():
        options = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ToolError(
            f"no model config {name!r} in {folder}; choose one of {', '.join(options) or '(none)'}"
        )
    reg = registered_model(name, configs=configs, generated=ctx.generated_root())
    if reg is not None:
        return reg.source
    try:
        config = safe_load_yaml(config_path.read_text(encoding="utf-8"), source=str(config_path))
    except SafetyError as e:
        raise ToolError(f"{e}; read another model's source") from e
    target = config.get("_target_") if isinstance(config, dict) else None
    if not isinstance(target, str) or "." not in target:
        raise ToolError(
            f"model/{name}.yaml has no _target_ class (is it a generated model whose code is "
            "missing?); read another model's source"
        )
    module = target.rsplit(".", 1)[0]
    if module.split(".")[0] != _SOURCE_PACKAGE:
        raise ToolError(
            f"model/{name}.yaml builds {target}, which is not a project model (only "
            f"{_SOURCE_PACKAGE}.* and generated models have readable sources); read another"
        )
    origin = _module_file(module)
    package = _module_file(_SOURCE_PACKAGE)
    if (
        origin is None
        or package is None
        or origin.suffix != ".py"
        or package.parent not in origin.resolve().parents
    ):
        raise ToolError(f"the source of {target} cannot be found; read another model's source")
    return origin.read_text(encoding="utf-8")


def _module_file(module: str) -> Path | None:
    """The file of an importable module (its package imported, the module itself not)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve() if spec is not None and spec.origin else None


@tool
def read_model_source(model_name: str) -> str:
    """Read the Python source of an existing model architecture: a built-in one (e.g. "cnn1d",
    "resnet1d": the module that defines its class) or a generated one (its
    generated_models/<name>.py). Use it as the starting point of new model code for
    register_generated_model. Returns the source text. Example: `src =
    read_model_source("resnet1d"); print(src[:2000])`.

    Args:
        model_name: a model config name from list_available_configs()["model"], e.g. "cnn1d".
    """
    ctx = current_context()
    log_call(ctx, "read_model_source", model_name)
    return model_source(ctx, model_name)


@tool
def register_generated_model(
    name: str, code: str, args: dict[str, Any] | None = None
) -> RegisteredModel:
    """Register new model code (tier 3). The code is checked (allowed imports only: torch,
    numpy, math, einops, biosignals.models, ...; no files, processes or network), then built and
    run forward and backward on a dummy batch in a sandbox; only then are
    generated_models/<name>.py and configs/model/<name>.yaml written. The code must define an
    nn.Module subclass whose constructor takes keyword-only in_channels, input_length,
    num_classes plus scalar hyperparameters with defaults, and whose forward maps (B, C, T) to
    (B, num_classes). Declaring num_features: int = 0 too opts in to per-window side features
    (ECG: per-beat RR-interval features): forward is then called as forward(x, features) with
    features of shape (B, num_features). Returns the registered model; print it for a summary
    ("registered model 'se_net': ... train it with the override model=se_net"), then propose
    overrides ["model=<name>"] with propose_trials. Example:
    `m = register_generated_model("se_net", code, {"width": 32}); print(m)`.

    Args:
        name: the model's name, lower-case letters, digits and _ (e.g. "se_net_w32"); becomes
            model=<name>.
        code: the complete Python module source defining the model class.
        args: scalar hyperparameters for its config, e.g. {"width": 32, "depth": 3}; may be empty.
    """
    from agent.safety.models import register_generated_model as register

    ctx = current_context()
    size = len(code) if isinstance(code, str) else 0
    log_call(
        ctx,
        "register_generated_model",
        shown=f"{name!r}, code=<{size} chars>, args={clip(repr(args), 40)}",
    )
    reg = register(
        name,
        code,
        args,
        dims=dict(ctx.smoke_dims) if ctx.smoke_dims else None,
        configs=ctx.config_root(),
        generated=ctx.generated_root(),
    )
    return dataclasses.replace(
        reg,
        source_path=cast(Path, inert(reg.source_path)),  # see the module docstring
        config_path=cast(Path, inert(reg.config_path)),
        config=dict(reg.config),
    )
