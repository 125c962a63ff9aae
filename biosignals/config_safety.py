"""The `_target_` allowlist checked before any Hydra `instantiate`.

Hydra 1.3 instantiates whatever importable callable a `_target_` names, and configs in this
project may come from an LLM agent, so every target must start with one of
`ALLOWED_TARGET_PREFIXES` (`biosignals.`, `generated_models.`, `torch.`), and must not fall
under `DENIED_TARGET_PREFIXES`: the parts of torch that load pickles, fetch code or compile
native extensions. The check runs on the whole config before the first `instantiate`.

Example::

    check_targets(cfg)  # raises UnsafeTargetError naming the key and the target
    model = hydra.utils.instantiate(cfg.model, ...)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

ALLOWED_TARGET_PREFIXES: tuple[str, ...] = ("biosignals.", "generated_models.", "torch.")
DENIED_TARGET_PREFIXES: tuple[str, ...] = (
    "torch.hub.",  # downloads and runs repository code
    "torch.load",  # unpickles arbitrary objects
    "torch.serialization.",
    "torch.package.",
    "torch.jit.load",
    "torch.utils.cpp_extension.",  # compiles and loads native code
    "torch.utils.data.",  # DataLoader workers, not needed from configs
    "torch.classes.",
    "torch.ops.",
    "torch._",  # private API
)


class UnsafeTargetError(ValueError):
    """A config `_target_` outside the allowlist (or not checkable); the message says which."""


def _target_string(value: Any) -> str:
    """A target as a dotted string: strings as is, callables as module.qualname."""
    if isinstance(value, str):
        return value
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    raise UnsafeTargetError(
        f"_target_ must be a dotted path string, got {value!r} of type {type(value).__name__}; "
        "write the target as e.g. 'biosignals.models.cnn1d.CNN1D'"
    )


def is_allowed_target(target: str) -> bool:
    """Whether `target` (a dotted path) passes the allowlist and avoids the denylist."""
    return target.startswith(ALLOWED_TARGET_PREFIXES) and not target.startswith(
        DENIED_TARGET_PREFIXES
    )


def _walk(node: Any, path: str, found: list[tuple[str, Any]]) -> None:
    """Collect (config path, raw value) of every `_target_` under `node`."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            key_path = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                found.append((key_path, value))
            else:
                _walk(value, key_path, found)
    elif isinstance(node, Sequence) and not isinstance(node, str | bytes):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", found)


def find_targets(cfg: DictConfig | ListConfig | Mapping[str, Any]) -> dict[str, str]:
    """Every `_target_` in `cfg`, as {config path: dotted target}, interpolations resolved.

    Only `_target_` values are resolved, so other keys may hold interpolations that need
    Hydra's runtime (e.g. `${now:...}`). Unset targets (`???`) are skipped: instantiating
    them fails anyway, with OmegaConf's MissingMandatoryValue.

    Raises:
        UnsafeTargetError: a target is not a string/callable or its interpolation fails.
    """
    is_omegaconf = isinstance(cfg, DictConfig | ListConfig)
    raw = OmegaConf.to_container(cfg, resolve=False) if is_omegaconf else cfg
    found: list[tuple[str, Any]] = []
    _walk(raw, "", found)
    targets: dict[str, str] = {}
    for key_path, value in found:
        if value == "???":  # mandatory but unset: nothing can be instantiated from it
            continue
        if is_omegaconf and isinstance(value, str) and "${" in value:
            try:
                value = OmegaConf.select(cfg, key_path, throw_on_resolution_failure=True)  # type: ignore[arg-type]
            except Exception as e:
                raise UnsafeTargetError(
                    f"cannot resolve {key_path}={value!r} to check it against the allowlist: {e}; "
                    "write the _target_ as a literal dotted path"
                ) from e
        targets[key_path] = _target_string(value)
    return targets


def check_targets(cfg: DictConfig | ListConfig | Mapping[str, Any]) -> None:
    """Raise unless every `_target_` in `cfg` is on the allowlist.

    Args:
        cfg: a composed config (DictConfig) or a plain mapping.

    Raises:
        UnsafeTargetError: naming the first offending key, its target and the allowed prefixes.
    """
    for key_path, target in find_targets(cfg).items():
        if not is_allowed_target(target):
            raise UnsafeTargetError(
                f"{key_path}={target!r} is not an allowed instantiation target: targets must start "
                f"with one of {list(ALLOWED_TARGET_PREFIXES)} and not with one of "
                f"{list(DENIED_TARGET_PREFIXES)}; point it at a biosignals/generated_models "
                "class or a torch module/optimizer"
            )
