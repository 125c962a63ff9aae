"""Which `_target_`s a config may instantiate, decided by resolving them, not by matching text.

Hydra 1.3 instantiates whatever importable callable a `_target_` names, and configs in this
project may come from an LLM agent. A text prefix is no defence: `biosignals.data.cache.os.system`
starts with `biosignals.` and `torch.os.system` with `torch.`. So every target is *resolved* the
way Hydra's own `_locate` would reach it, one dotted step at a time, and must satisfy all of:

1. **Roots**: the path starts at `biosignals`, `generated_models` or `torch`.
2. **No detours**: every step that lands on a module lands on a genuine submodule (its
   `__name__` is the path so far): `torch.os` (torch's attribute `os` is the `os` module) is
   refused. No step is private (`torch._C`) or a dunder.
3. **Nothing new imported beyond the allowlist**: modules are imported only under
   `biosignals.`, `torch.nn.` and `torch.optim.`; a `generated_models.<name>` module is never
   imported here (that would run unchecked code): it must already have been loaded by the
   safety layer, or the caller vouches for it with `registered=` after checking the
   registration (the campaign driver does, for the target `register_generated_model` wrote).
4. **Defined where allowed**: the object's own `__module__` lies under `biosignals.`,
   `generated_models.`, `torch.nn.` or `torch.optim.`.
5. **Of an allowed kind**: a `torch.nn.Module` subclass, a `torch.optim.Optimizer` subclass,
   an LR scheduler class, or a dataset builder the workload registered with
   `register_dataset_builder`.

The check runs on the whole config before the first `instantiate` (the trainer calls it, the
campaign driver calls it when an arm is made, the worker again before training). Each refusal
names the key, the target, why, and what is allowed.

Example::

    check_targets(cfg)  # raises UnsafeTargetError naming the key and the target
    model = hydra.utils.instantiate(cfg.model, ...)
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = [
    "ALLOWED_DEFINING_MODULES",
    "ALLOWED_TARGET_ROOTS",
    "UnsafeTargetError",
    "check_targets",
    "dataset_builders",
    "find_targets",
    "is_allowed_target",
    "register_dataset_builder",
    "resolve_target",
]

ALLOWED_TARGET_ROOTS: tuple[str, ...] = ("biosignals", "generated_models", "torch")
ALLOWED_DEFINING_MODULES: tuple[str, ...] = (
    "biosignals.",
    "generated_models.",
    "torch.nn.",
    "torch.optim.",
)
# Module paths this check may import to resolve a target (all trusted, already installed code).
_IMPORTABLE_PREFIXES: tuple[str, ...] = ("biosignals.", "torch.nn.", "torch.optim.")
_GENERATED_ROOT = "generated_models"
_ALLOWED_KINDS = (
    "nn.Module subclasses, torch.optim optimizers and LR schedulers, and the registered dataset "
    "builders"
)

_DATASET_BUILDERS: dict[int, Callable[..., Any]] = {}
F = TypeVar("F", bound=Callable[..., Any])


class UnsafeTargetError(ValueError):
    """A config `_target_` outside the allowlist (or not checkable); the message says which."""


def register_dataset_builder(fn: F) -> F:
    """Decorator: allow `fn` (a dataset builder under `biosignals.data.`) as a `_target_`.

    Raises:
        ValueError: `fn` is not defined under `biosignals.data.`.
    """
    module = getattr(fn, "__module__", "") or ""
    if not module.startswith("biosignals.data."):
        raise ValueError(
            f"dataset builders live under biosignals.data., got {fn!r} from module {module!r}"
        )
    _DATASET_BUILDERS[id(fn)] = fn
    return fn


def dataset_builders() -> list[str]:
    """The registered dataset builders as dotted paths (for messages and docs)."""
    return sorted(
        f"{f.__module__}.{getattr(f, '__qualname__', type(f).__name__)}"
        for f in _DATASET_BUILDERS.values()
    )


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


_MISSING = object()


class _RefusedError(Exception):
    """Internal: why a target failed to resolve (turned into an UnsafeTargetError)."""


def _may_import(dotted: str) -> bool:
    return dotted.startswith(_IMPORTABLE_PREFIXES)


def _step(obj: Any, part: str, dotted: str) -> Any:
    """One `_locate` step from `obj` to its attribute or submodule `part` (`dotted` so far)."""
    if isinstance(obj, types.ModuleType):
        # the module's own namespace only: a module-level __getattr__ could import anything
        found = vars(obj).get(part, _MISSING)
        if found is _MISSING and dotted.startswith(_GENERATED_ROOT + "."):
            found = sys.modules.get(dotted, _MISSING)
            if found is _MISSING:
                raise _RefusedError(
                    f"{dotted} is not loaded; generated models are loaded only by the safety "
                    "layer (after validation), never imported from disk by a config"
                )
        if found is _MISSING:
            if not _may_import(dotted):
                raise _RefusedError(
                    f"{dotted} is not loaded and lies outside the modules a target may import "
                    f"({', '.join(p.rstrip('.') for p in _IMPORTABLE_PREFIXES)})"
                )
            try:
                found = importlib.import_module(dotted)
            except ImportError as e:
                raise _RefusedError(f"{dotted} does not exist ({e})") from e
        if isinstance(found, types.ModuleType) and found.__name__ != dotted:
            raise _RefusedError(
                f"{dotted} is module {found.__name__!r} reached through another module's "
                "attribute, not a submodule"
            )
        return found
    if isinstance(obj, type):
        try:
            found = getattr(obj, part)
        except AttributeError as e:
            raise _RefusedError(f"{dotted} does not exist") from e
        if isinstance(found, types.ModuleType):
            raise _RefusedError(f"{dotted} is a module reached through a class attribute")
        return found
    raise _RefusedError(f"{dotted.rsplit('.', 1)[0]} is neither a module nor a class")


def _kind(obj: Any) -> str | None:
    """The allowed kind `obj` is, or None."""
    if id(obj) in _DATASET_BUILDERS and _DATASET_BUILDERS[id(obj)] is obj:
        return "dataset builder"
    if not isinstance(obj, type):
        return None
    import torch

    if issubclass(obj, torch.nn.Module):
        return "nn.Module"
    if issubclass(obj, torch.optim.Optimizer):
        return "optimizer"
    schedulers = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if issubclass(obj, schedulers):
        return "LR scheduler"
    return None


def resolve_target(target: str, *, registered: Collection[str] = ()) -> Any:
    """Resolve `target` as Hydra would and return the object, or raise if it is not allowed.

    Args:
        target: a dotted path (`"torch.optim.AdamW"`).
        registered: generated-model targets the caller checked against their registration;
            they are accepted without loading their module (None is returned for them).

    Returns:
        The class or builder the target names (None for a `registered` target).

    Raises:
        UnsafeTargetError: the target breaks a rule of the module docstring; the message
            says which (without the config key: `check_targets` adds it).
    """
    try:
        return _resolve(target, registered)
    except _RefusedError as e:
        raise UnsafeTargetError(str(e)) from None


def _resolve(target: str, registered: Collection[str]) -> Any:
    parts = target.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise _RefusedError(f"{target!r} is not a dotted path such as 'torch.optim.AdamW'")
    if parts[0] not in ALLOWED_TARGET_ROOTS:
        roots = list(ALLOWED_TARGET_ROOTS)
        raise _RefusedError(f"{parts[0]!r} is not one of the allowed roots {roots}")
    bad = [p for p in parts[1:] if p.startswith("_")]
    if bad:
        raise _RefusedError(f"{target!r} goes through private or dunder names {bad}")
    if parts[0] == _GENERATED_ROOT and target in registered:
        return None
    obj: Any = importlib.import_module(parts[0])  # the roots are trusted, installed packages
    for m in range(1, len(parts)):
        obj = _step(obj, parts[m], ".".join(parts[: m + 1]))
    if isinstance(obj, types.ModuleType):
        raise _RefusedError(f"{target!r} is a module, not a class or a builder")
    defined_in = getattr(obj, "__module__", None)
    if not isinstance(defined_in, str) or not defined_in.startswith(ALLOWED_DEFINING_MODULES):
        raise _RefusedError(
            f"{target!r} is defined in module {defined_in!r}, outside "
            f"{[p.rstrip('.') for p in ALLOWED_DEFINING_MODULES]}"
        )
    if _kind(obj) is None:
        kind = type(obj).__name__
        raise _RefusedError(f"{target!r} is a {kind}, not one of the {_ALLOWED_KINDS}")
    return obj


def is_allowed_target(target: str, *, registered: Collection[str] = ()) -> bool:
    """Whether `target` resolves under the rules of the module docstring."""
    try:
        _resolve(target, registered)
    except _RefusedError:
        return False
    return True


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


def check_targets(
    cfg: DictConfig | ListConfig | Mapping[str, Any], *, registered: Collection[str] = ()
) -> None:
    """Raise unless every `_target_` in `cfg` resolves under the rules of the module docstring.

    Args:
        cfg: a composed config (DictConfig) or a plain mapping.
        registered: generated-model targets the caller vouches for (see `resolve_target`).

    Raises:
        UnsafeTargetError: naming the first offending key, its target, why, and what is
            allowed.
    """
    for key_path, target in find_targets(cfg).items():
        try:
            _resolve(target, registered)
        except _RefusedError as e:
            raise UnsafeTargetError(
                f"{key_path}={target!r} is not an allowed instantiation target: {e}; allowed: "
                f"{_ALLOWED_KINDS} defined under "
                f"{', '.join(p.rstrip('.') for p in ALLOWED_DEFINING_MODULES)}, "
                "e.g. biosignals.models.cnn1d.CNN1D or torch.optim.AdamW"
            ) from None
