"""Hydra override strings: the one parser and the one value formatter of the project.

An override is `[prefix]key=value` (`trainer.lr=0.001`, `+model.extra=3`, `++seed=1`,
`~trainer.scheduler`). Campaign goals, proposals, approval edits, the offline model and the
read tools all take lists of them apart; they do it here so that `+`, `++` and `~` are
handled the same way everywhere::

    parse_override("++trainer.lr=1e-3")   # Override(prefix="++", key="trainer.lr", value="1e-3")
    override_key("model=resnet1d")         # "model"
    override_key("trainer.lr")             # None: not key=value
    format_override_value(0.001)           # "0.001"; format_override_value("a b") -> "'a b'"

Parsing only splits the text: the value stays Hydra text (`"[1,2]"`, `"'a b'"`); whether the
override is *allowed* is `agent.safety.overrides`' job, and whether it is valid Hydra grammar
is Hydra's (`OverridesParser`). Formatting goes the other way: a Python value becomes Hydra
text that Hydra's parser reads back as the same value.

This module imports nothing of the project, so `agent` and `search` (which may import agent,
never the reverse) share it.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Override",
    "OverridePrefix",
    "format_override_value",
    "iter_override_items",
    "model_from_overrides",
    "override_key",
    "override_values",
    "parse_override",
]

OverridePrefix = Literal["", "+", "++", "~"]
# Longest first: "++" must win over "+".
_PREFIXES: tuple[OverridePrefix, ...] = ("++", "+", "~")
# Strings Hydra reads back as themselves without quotes; the words below it would read as
# bool/None/float instead.
_BARE_STRING_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/.]*")
_HYDRA_WORDS = frozenset({"true", "false", "null", "nan", "inf"})


@dataclass(frozen=True)
class Override:
    """One override string taken apart.

    Attributes:
        prefix: `""` (change an existing key), `"+"` (add), `"++"` (add or change) or `"~"`
            (delete).
        key: the override path or group without the prefix (`"trainer.lr"`, `"model"`).
        value: the value as written, Hydra text not parsed (`"1e-3"`, `"'a b'"`, `"[1,2]"`,
            `""` for `key=`); None only for a deletion written without `=` (`~key`).
    """

    prefix: OverridePrefix
    key: str
    value: str | None

    @property
    def is_deletion(self) -> bool:
        """Whether the override deletes its key (`~key`, `~key=value`)."""
        return self.prefix == "~"

    @property
    def text(self) -> str:
        """The override written back: `f"{prefix}{key}={value}"`, or `~key` without a value."""
        if self.value is None:
            return f"{self.prefix}{self.key}"
        return f"{self.prefix}{self.key}={self.value}"


def parse_override(text: str) -> Override:
    """Split one override string into prefix, key and value.

    Whitespace around the text, the key and the value is dropped. The first `=` ends the key,
    so a value may hold `=` (`a=b=c` has the value `b=c`, which Hydra then refuses).

    Raises:
        ValueError: `text` is not a string, has no `=` (unless it is a deletion `~key`), has
            an empty key, or a key holding whitespace or a second prefix (`+~a=1`, `+++a=1`).
    """
    if not isinstance(text, str):
        raise ValueError(
            f"an override is a string such as 'trainer.lr=0.001', got {type(text).__name__} "
            f"{_short(text)}"
        )
    body = text.strip()
    prefix: OverridePrefix = next((p for p in _PREFIXES if body.startswith(p)), "")
    rest = body[len(prefix) :]
    key, sep, value = rest.partition("=")
    key = key.strip()
    if not sep and prefix != "~":
        raise ValueError(
            f"an override is [+|++|~]key=value, got {_short(text)} (no '='); write e.g. "
            "trainer.lr=0.001, or ~key to delete a key"
        )
    if not key:
        raise ValueError(
            f"an override needs a key before '=', got {_short(text)}; write e.g. trainer.lr=0.001"
        )
    if key[0] in "+~" or any(c.isspace() for c in key):
        raise ValueError(
            f"an override key is one path after at most one prefix (+, ++ or ~), got "
            f"{key!r} in {_short(text)}; write e.g. +trainer.lr=0.001"
        )
    return Override(prefix=prefix, key=key, value=value.strip() if sep else None)


def override_key(text: str) -> str | None:
    """The key a `[+|++|~]key=value` override sets, or None when `text` is not one.

    A bare deletion `~key` has no `=` and gives None as well: callers use this to tell
    `key=value` entries from anything else.
    """
    try:
        override = parse_override(text)
    except ValueError:
        return None
    return None if override.value is None else override.key


def override_values(overrides: Iterable[str]) -> dict[str, str]:
    """`{key: value}` of the overrides that set a value, in order, the last one winning.

    Deletions (`~key`, `~key=value`) and entries that are not overrides are skipped; values
    stay Hydra text (`{"trainer.lr": "1e-3", "model": "resnet1d"}`).
    """
    out: dict[str, str] = {}
    for text in overrides:
        try:
            override = parse_override(text)
        except ValueError:
            continue
        if override.value is not None and not override.is_deletion:
            out[override.key] = override.value
    return out


def model_from_overrides(overrides: Iterable[str]) -> str | None:
    """The value of the last `model=<name>` override (a Hydra group selection), or None."""
    return override_values(overrides).get("model")


def format_override_value(value: Any) -> str:
    """Format a Python value as a Hydra override value that parses back to the same value.

    Floats use `repr` (shortest exact form: `0.001`, `1e-05`, `nan`, `inf`); ints, bools
    (`true`/`false`) and None (`null`) as Hydra spells them; strings bare when unambiguous,
    else single-quoted; lists/tuples as `[a,b]`, mappings as `{k:v}`.

    Raises:
        TypeError: a value of another type.
        ValueError: a string holding `${` (values are data, never interpolations), or a
            mapping key that is not a plain name.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return "nan"
        return repr(number)
    if isinstance(value, str):
        if "${" in value:
            raise ValueError(
                f"values may not hold interpolations ('${{'), got {value!r}; write a literal value"
            )
        if _BARE_STRING_RE.fullmatch(value) and value.lower() not in _HYDRA_WORDS:
            return value
        return _quote(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{_map_key(k)}:{format_override_value(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    raise TypeError(
        f"cannot write a {type(value).__name__} as a Hydra override value, got {_short(value)}; "
        "use str, int, float, bool, None, list or dict"
    )


def iter_override_items(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`(override path, value)` pairs of a config; nested mappings join their keys with dots.

    An empty mapping is a value (`{"a": {}}` gives `("a", {})`), not an empty level.
    """
    for key, value in config.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from iter_override_items(value, prefix=f"{full}.")
        else:
            yield full, value


def _quote(text: str) -> str:
    # Hydra: inside '...', a quote is escaped as \' and backslashes only need doubling where
    # they come right before a quote (or the closing quote).
    escaped = re.sub(r"(\\*)('|\Z)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return f"'{escaped}'"


def _map_key(key: object) -> str:
    if not isinstance(key, str) or not _BARE_STRING_RE.fullmatch(key):
        raise ValueError(
            f"mapping keys in override values must be plain names (a letter or _, then "
            f"letters, digits, _ - / .), got {key!r}; rename the key"
        )
    return key


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
