"""The override policy: which Hydra overrides an agent may hand to a trial.

An agent may *change* existing hyperparameters under the config groups it is given
(`DEFAULT_GROUPS`: `model.width=16`, `trainer.lr=0.001`) and *select* a config of a group
(`model=resnet1d`). Everything else is refused, because Hydra would otherwise let a string
from an LLM:

* instantiate anything: `_target_`, `_args_`, `_partial_`... at any depth
  (`trainer.optimizer._target_=os.system`);
* change what is optimised or where files go: keys outside the groups (`hydra.run.dir=/tmp`,
  `paths.cache_dir=/`, `run_dir=...`, `seed=...`, `experiment=...`, `defaults=[]`) and the
  fixed keys of `agent.safety.values` (`trainer.metric`, `trainer.num_workers`...);
* read the environment or run resolvers: `${oc.env:HOME}`, `'${oc.decode:...}'` (Hydra
  resolves interpolations inside quoted strings too);
* reshape the config: deletions (`~key`), additions (`+key=`, `++key=`), packages (`a@b=x`),
  sweeps (`a=1,2`, `choice()`, `range()`, `interval()`, `glob()`), dict values.

With `base` (a composed config), every value is also typed against the base value
(`agent.safety.values.check_value`) and unknown keys are refused with close matches. `base`
must be the config the overrides apply to with the list's own group selections already made
(a `model.stages` of `model=resnet1d` does not exist in a cnn1d base). Without `base` the
structural rules apply, plus the fixed keys and the known bounds (`trainer.lr` in (0, 10])
of `agent.safety.values`, which need no base; strings are always plain strings.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.overrides import format_override_value
from agent.safety.errors import UnsafeOverrideError
from agent.safety.policy import NAME_PATTERN
from agent.safety.values import (
    FIXED_KEYS,
    FIXED_ROOTS,
    bound_for,
    check_plain_string,
    check_value,
    fixed_key_reason,
    interpolation_reason,
)

__all__ = [
    "DEFAULT_GROUPS",
    "INSTANTIATE_KEYS",
    "MAX_OVERRIDES",
    "MAX_OVERRIDE_LENGTH",
    "CheckedOverride",
    "check_overrides",
    "check_param",
    "check_space_key",
    "format_value",
    "group_options_in",
]

DEFAULT_GROUPS = ("model", "trainer", "dataset")
INSTANTIATE_KEYS = frozenset({"_target_", "_args_", "_partial_", "_recursive_", "_convert_"})
MAX_OVERRIDES = 64
MAX_OVERRIDE_LENGTH = 512
_MAX_INT = 10**18
_KEY_CHARS = re.compile(r"[A-Za-z0-9_.\-]+")
_SEGMENT = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")
_ROOT_REASONS: Mapping[str, str] = {
    **{k: v for k, v in FIXED_KEYS.items() if "." not in k},
    **FIXED_ROOTS,
    "experiment": "the campaign chooses the experiment; change its model/trainer/dataset keys",
    "defaults": "the defaults list cannot be overridden; select a config with model=<name>",
}


@dataclass(frozen=True)
class CheckedOverride:
    """One override that passed the policy.

    Attributes:
        key: the override path (`"trainer.lr"`) or the group (`"model"`).
        value: the parsed python value (a config name for a group selection).
        is_group: whether it selects a config of a group (`model=resnet1d`).
        text: the canonical override string to hand to Hydra (`"trainer.lr=0.001"`).
    """

    key: str
    value: Any
    is_group: bool
    text: str


def check_overrides(
    overrides: Sequence[str],
    *,
    groups: Sequence[str] = DEFAULT_GROUPS,
    base: Any = None,
    group_options: Mapping[str, Collection[str]] | None = None,
) -> list[CheckedOverride]:
    """Check a list of Hydra overrides against the policy (module doc).

    Args:
        overrides: override strings such as `["model=resnet1d", "trainer.lr=0.001"]`.
        groups: the config groups the agent may touch.
        base: the composed config the overrides apply to (DictConfig or mapping), or None
            for structural checks only.
        group_options: the configs each group offers (`group_options_in(config_dir)`); when
            given, a group selection must name one of them.

    Returns:
        One `CheckedOverride` per override, in order.

    Raises:
        UnsafeOverrideError: naming the first override that breaks a rule.
    """
    if isinstance(overrides, str | bytes) or not isinstance(overrides, Sequence):
        raise UnsafeOverrideError(
            f"overrides must be a list of strings, got {type(overrides).__name__} "
            f"{_short(overrides)}; wrap it: [{_short(repr(overrides))}]"
        )
    if len(overrides) > MAX_OVERRIDES:
        raise UnsafeOverrideError(
            f"at most {MAX_OVERRIDES} overrides are allowed, got {len(overrides)}; "
            "change fewer keys at a time"
        )
    raw_base = _as_container(base)
    seen: dict[str, str] = {}
    checked = []
    for text in overrides:
        item = _check_one(text, groups, raw_base, group_options)
        if item.key in seen:
            raise UnsafeOverrideError(
                f"{_short(text, 120)}: {item.key} is set twice (also by {_short(seen[item.key])}); "
                "set each key once"
            )
        seen[item.key] = text
        checked.append(item)
    return checked


def check_param(
    key: str, value: Any, *, groups: Sequence[str] = DEFAULT_GROUPS, base: Any = None
) -> Any:
    """Check one search-space key and value (a proposal's initial params, choice values).

    Returns:
        The normalised value (see `check_value`).

    Raises:
        UnsafeOverrideError: the key or the value breaks the policy.
    """
    key = check_space_key(key, groups=groups)
    if key in groups:
        return _check_group_value(key, value, None)
    _check_data(key, value)
    value = _typed(key, value, _as_container(base), f"{key}={_short(value)}")
    _canonical(key, value)  # the searcher turns it into an override: it must be writable
    return value


def check_space_key(key: str, *, groups: Sequence[str] = DEFAULT_GROUPS, base: Any = None) -> str:
    """Check a search-space key (a key of `Proposal.space`): a path or a group name.

    Returns:
        The key.

    Raises:
        UnsafeOverrideError: the key breaks the policy or (with `base`) does not exist there,
            is fixed, or holds a mapping or an interpolation.
    """
    if not isinstance(key, str):
        raise UnsafeOverrideError(
            f"search-space keys must be override paths such as 'trainer.lr', got "
            f"{type(key).__name__} {_short(key)}; use a dotted string"
        )
    _check_key(key, groups, None)
    reason = fixed_key_reason(key)
    if reason is not None:
        raise UnsafeOverrideError(f"{key}: fixed by the campaign ({reason}); leave it out")
    raw_base = _as_container(base)
    if raw_base is None or key in groups:
        return key
    node = _base_value(key, raw_base, key)
    instead = interpolation_reason(node)
    if instead is not None:
        raise UnsafeOverrideError(f"{key}: the base config computes it as {node}; {instead}")
    if isinstance(node, Mapping):
        raise UnsafeOverrideError(
            f"{key}: a group of settings cannot be searched; search its fields ({key}.<field>)"
        )
    return key


def group_options_in(config_directory: Path) -> dict[str, list[str]]:
    """The configs of each group folder: `{"model": ["cnn1d", ...], ...}` (sorted stems).

    Folders without `*.yaml` files, hidden folders and `hydra` are left out.
    """
    options: dict[str, list[str]] = {}
    for folder in sorted(Path(config_directory).iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "_")) or folder.name == "hydra":
            continue
        names = sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())
        if names:
            options[folder.name] = names
    return options


def format_value(value: Any) -> str:
    """A Python value as a Hydra override value that parses back to the same value.

    `agent.overrides.format_override_value` (the project's one formatter: floats by `repr`,
    `true`/`false`/`null`, strings bare when unambiguous else single-quoted, lists as `[a,b]`,
    mappings as `{k:v}`), stricter about numbers: an agent's value must be finite and at
    most 1e18 in magnitude, at any depth.

    Raises:
        UnsafeOverrideError: an interpolation, NaN/inf, a huge integer, or a type Hydra cannot
            spell.
    """
    for item in _walk(value):
        _check_number(item)
    try:
        return format_override_value(value)
    except (TypeError, ValueError) as e:
        raise UnsafeOverrideError(str(e)) from e


def _check_number(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, numbers.Integral) and abs(int(value)) > _MAX_INT:
        raise UnsafeOverrideError(
            f"integers must be at most 1e18 in magnitude, got one of "
            f"{int(value).bit_length()} bits; give an ordinary number"
        )
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        raise UnsafeOverrideError(
            f"values must be finite numbers, got {value!r}; give an ordinary number"
        )


# --- one override -------------------------------------------------------------------------


def _check_one(
    text: Any,
    groups: Sequence[str],
    raw_base: Any,
    group_options: Mapping[str, Collection[str]] | None,
) -> CheckedOverride:
    if not isinstance(text, str):
        raise UnsafeOverrideError(
            f"each override must be a string such as 'trainer.lr=0.001', got "
            f"{type(text).__name__} {_short(text)}; quote it"
        )
    if len(text) > MAX_OVERRIDE_LENGTH:
        raise UnsafeOverrideError(
            f"{_short(text)}: overrides are at most {MAX_OVERRIDE_LENGTH} characters, got "
            f"{len(text)}; shorten the value"
        )
    override = _parse(text)
    shown = _short(text, 120)
    _check_form(shown, override)
    key = override.key_or_group
    _check_key(key, groups, shown)
    value = override.value()
    if key in groups:
        name = _check_group_value(key, value, group_options)
        return CheckedOverride(key=key, value=name, is_group=True, text=f"{key}={name}")
    _check_data(key, value, shown)
    value = _typed(key, value, raw_base, shown)
    return CheckedOverride(key=key, value=value, is_group=False, text=_canonical(key, value))


def _parse(text: str) -> Any:
    try:
        return _parser().parse_override(text)
    except Exception as e:  # any parse failure is a refusal, whatever Hydra raised
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UnsafeOverrideError(
            f"{_short(text)}: not a valid Hydra override ({first}); write key=value, e.g. "
            "trainer.lr=0.001"
        ) from e


@lru_cache(maxsize=1)
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _check_form(text: str, override: Any) -> None:
    from hydra.core.override_parser.types import OverrideType

    kind = override.type
    if kind == OverrideType.DEL:
        raise UnsafeOverrideError(
            f"{text}: deleting keys (~) is not allowed; set the key to another value instead"
        )
    if kind in (OverrideType.ADD, OverrideType.FORCE_ADD):
        raise UnsafeOverrideError(
            f"{text}: adding keys (+ or ++) is not allowed: only keys that exist in the base "
            "config can be set; to add a hyperparameter register a new config"
        )
    if override.package is not None:
        raise UnsafeOverrideError(
            f"{text}: packages (@) are not allowed; select a config with <group>=<name>"
        )
    if override.is_sweep_override():
        raise UnsafeOverrideError(
            f"{text}: sweeps (a,b / choice / range / interval / glob) are not allowed in "
            "overrides; give one value and put ranges in the search space"
        )


def _check_key(key: str, groups: Sequence[str], shown: str | None) -> None:
    prefix = f"{shown}: " if shown else ""
    if not key or not _KEY_CHARS.fullmatch(key):
        raise UnsafeOverrideError(
            f"{prefix}key {key!r} may only hold letters, digits, _ - and dots (no / or @); "
            "write e.g. trainer.lr"
        )
    segments = key.split(".")
    for segment in segments:
        if segment in INSTANTIATE_KEYS or segment.startswith("_"):
            raise UnsafeOverrideError(
                f"{prefix}{key}: overrides may not set {segment} (instantiation and private "
                "keys are fixed); pick a config with model=<name> or register a new config"
            )
        if not _SEGMENT.fullmatch(segment):
            raise UnsafeOverrideError(
                f"{prefix}{key}: each part of a key must start with a letter, got {segment!r}; "
                "set a whole list as key=[a,b] instead of one element"
            )
    root = segments[0]
    if root not in groups:
        why = _ROOT_REASONS.get(root, "it is not part of the tunable config")
        raise UnsafeOverrideError(
            f"{prefix}{key}: only keys under {', '.join(g + '.' for g in groups)} may be set "
            f"({why}); e.g. trainer.lr=0.001"
        )


def _check_group_value(
    group: str, value: Any, group_options: Mapping[str, Collection[str]] | None
) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise UnsafeOverrideError(
            f"{group}={_short(value)}: a {group} config name must match ^[a-z][a-z0-9_]{{0,63}}$, "
            f"got {type(value).__name__} {_short(value)}; choose e.g. {group}=<name>"
        )
    if group_options is not None:
        options = sorted(group_options.get(group, ()))
        if value not in options:
            close = difflib.get_close_matches(value, options, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UnsafeOverrideError(
                f"{group}={value}: no such {group} config; {hint}choose one of "
                f"{', '.join(options) or '(none)'}"
            )
    return value


def _check_data(key: str, value: Any, text: str | None = None) -> None:
    """Refuse interpolations, `_target_` strings and mappings anywhere in a value."""
    where = text or f"{key}={_short(value)}"
    for item in _walk(value):
        if isinstance(item, Mapping):
            raise UnsafeOverrideError(
                f"{where}: dict values are not allowed; set fields one by one: {key}.<field>=..."
            )
        if isinstance(item, str) and "${" in item:
            raise UnsafeOverrideError(
                f"{where}: interpolations (${{...}}) are not allowed in values (they read the "
                "environment or other keys); write a literal value"
            )
        if isinstance(item, str) and "_target_" in item:
            raise UnsafeOverrideError(f"{where}: values may not mention _target_; write data")
        if isinstance(item, str):
            check_plain_string(key, item)


def _walk(value: Any, depth: int = 0) -> Iterator[Any]:
    if depth > 16:
        raise UnsafeOverrideError(f"value nested deeper than 16 levels: {_short(value)}")
    yield value
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(k, depth + 1)
            yield from _walk(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v, depth + 1)


def _typed(key: str, value: Any, raw_base: Any, where: str) -> Any:
    """`check_value` against the base; without one, fixed keys and known bounds still apply."""
    if raw_base is not None:
        return check_value(key, value, _base_value(key, raw_base, where))
    if fixed_key_reason(key) is not None or bound_for(key) is not None:
        return check_value(key, value, None)
    return value


def _canonical(key: str, value: Any) -> str:
    """`key=<value>` formatted for Hydra, verified to parse back to the same value."""
    try:
        text = f"{key}={format_value(value)}"
    except UnsafeOverrideError as e:
        raise UnsafeOverrideError(f"{key}: {e}") from e
    back = _parse(text).value()
    if not _same(back, value):
        raise UnsafeOverrideError(
            f"{text}: the value does not survive Hydra's parser (reads back as {back!r}); "
            "write a simpler value"
        )
    return text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --- the base config ----------------------------------------------------------------------


def _as_container(base: Any) -> Any:
    """The base as plain data with interpolations kept as text (`${trainer.lr}`)."""
    if base is None:
        return None
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(base, DictConfig | ListConfig):
        return OmegaConf.to_container(base, resolve=False)
    return base


def _base_value(key: str, raw_base: Any, where: str) -> Any:
    """The raw base value at `key`; a missing key is refused with close matches."""
    node = raw_base
    for segment in key.split("."):
        if not isinstance(node, Mapping) or segment not in node:
            known = list(_key_paths(raw_base, key.split(".", 1)[0]))
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "check the key's spelling"
            raise UnsafeOverrideError(
                f"{where}: {key} does not exist in the base config (only existing keys can be "
                f"set; to add a hyperparameter register a new config); {hint}"
            )
        node = node[segment]
    return node


def _key_paths(node: Any, root: str) -> Iterator[str]:
    """Every dotted path below `root` in `node` (not `root` itself)."""
    stack = [(root, node.get(root) if isinstance(node, Mapping) else None)]
    while stack:
        path, item = stack.pop()
        if path != root:
            yield path
        if isinstance(item, Mapping):  # `_target_` and friends are never suggested
            stack.extend(
                (f"{path}.{k}", v)
                for k, v in item.items()
                if isinstance(k, str) and not k.startswith("_")
            )


def _short(value: Any, limit: int = 60) -> str:
    """One line: strings as they are (whitespace collapsed), other values by repr."""
    try:
        text = " ".join(value.split()) if isinstance(value, str) else repr(value)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
