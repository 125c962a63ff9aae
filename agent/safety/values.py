"""A value the agent wants to set, typed against the value the base config holds there.

`check_value(key, value, base)` is the one rule book for override values, search-space values
and the leaves of tier-2 config variants. The rules, in order:

1. Keys fixed by the campaign are refused whatever the value (`FIXED_KEYS`, `FIXED_ROOTS`):
   changing them changes what is optimised (`trainer.metric`, `trainer.mode`), where files go
   (`run_dir`, `paths.*`, `hydra.*`), starts processes (`trainer.num_workers`), changes the
   hardware a trial was given (`trainer.device`), the artifacts a run leaves
   (`trainer.save_model`), makes trials incomparable (`seed`) or moves patients between the
   training, validation and test splits (`dataset.records`, `dataset.val_records`, ...).
2. A base value that is an interpolation (`${trainer.lr}`, `${oc.env:MITBIH_DIR,null}`) is
   never replaced: set the key it points to instead.
3. Leaves named in `KNOWN_BOUNDS` (`lr`, `dropout`, `*_dropout`, `epochs`, ...) take that
   type and range, whatever the base value.
4. Otherwise by the base value's type:

   * bool: a bool.
   * int: an int (not a float, not a bool). A positive base stays >= 1, a zero base >= 0;
     every int is at most `max(100 * |base|, 1000)` in magnitude.
   * float: an int or float, finite. A positive base stays in `[base / 1e4, base * 1e4]`, a
     zero base in `[0, 1e4]`, a negative base in magnitude at most `|base| * 1e4`. Returned
     as a float.
   * str: a plain string (`PLAIN_STRING`, at most 128 characters, no `${`, no `..`, not an
     absolute path, no `_target_`).
   * None: None, a finite number (magnitude <= 1e9), a plain string, or a list of at most
     64 of those (a `null` default often stands for "a list of records/bands").
   * list: a list of at most 64 elements, each typed against the base's first element (or
     by the None rule when the base list is empty).
   * mapping: refused; set its fields one by one (`key.field=value`).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.safety.errors import UnsafeOverrideError

__all__ = [
    "FIXED_KEYS",
    "FIXED_ROOTS",
    "KNOWN_BOUNDS",
    "MAX_LIST_LENGTH",
    "MAX_STRING_LENGTH",
    "PLAIN_STRING",
    "Bound",
    "bound_for",
    "check_plain_string",
    "check_value",
    "fixed_key_reason",
    "interpolation_reason",
]

MAX_LIST_LENGTH = 64
MAX_STRING_LENGTH = 128
PLAIN_STRING = re.compile(r"[A-Za-z0-9_.,:+\-/ ]*")
"""Characters a string value may hold (matched in full): no `$`, quotes, backslashes, `~`."""
_SIMPLE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_NONE_BASE_LIMIT = 1e9

FIXED_KEYS: Mapping[str, str] = {
    "trainer.metric": "it is the campaign's objective; another metric changes what is optimised",
    "trainer.mode": "the direction belongs to the campaign's metric",
    "trainer.device": "the campaign assigns each trial its hardware",
    "trainer.num_workers": "values > 0 start DataLoader worker processes",
    "trainer.save_model": "the campaign decides which artifacts a run writes",
    "run_dir": "where a run writes its files is set by the campaign",
    "seed": "one seed keeps trials comparable; it is not a hyperparameter",
    "model.num_features": "the trainer sets it from the dataset's side features",
    **dict.fromkeys(
        (
            "dataset.records",
            "dataset.val_records",
            "dataset.val_fraction",
            "dataset.val_seed",
            "dataset.val_min_beats",
            "dataset.cv_folds",
            "dataset.participants",
            "dataset.val_participants",
            "dataset.test_participants",
            "dataset.seed",
        ),
        "the patients in training, validation and test are fixed by the experiment: another "
        "split makes validation values incomparable and can move test patients into training",
    ),
}
"""Keys (Hydra override paths) no agent may set, and why."""

FIXED_ROOTS: Mapping[str, str] = {
    "paths": "cache and data paths are set by the campaign",
    "hydra": "Hydra's output dirs, launcher and working directory are set by the campaign",
}
"""Top-level keys under which nothing may be set, and why."""


@dataclass(frozen=True)
class Bound:
    """The type and range of a well-known hyperparameter.

    Attributes:
        low, high: the range; `low_open`/`high_open` exclude that end.
        integer: whole numbers only (else any finite int or float, returned as float).
        nullable: null (None) is accepted (it disables the feature).
        example: a typical value, for messages.
    """

    low: float
    high: float
    example: str
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    nullable: bool = False

    def describe(self) -> str:
        """`"a number in (0, 10]"`, `"an integer in [1, 1000] or null"`."""
        kind = "an integer" if self.integer else "a finite number"
        text = (
            f"{kind} in {'(' if self.low_open else '['}{_num(self.low)}, "
            f"{_num(self.high)}{')' if self.high_open else ']'}"
        )
        return text + (" or null" if self.nullable else "")

    def contains(self, number: float) -> bool:
        """Whether `number` lies in the range."""
        above = number > self.low if self.low_open else number >= self.low
        below = number < self.high if self.high_open else number <= self.high
        return above and below


_DROPOUT = Bound(0, 1, "0.1", high_open=True)
KNOWN_BOUNDS: Mapping[str, Bound] = {
    "lr": Bound(0, 10, "0.001", low_open=True),
    "weight_decay": Bound(0, 10, "0.01"),
    "dropout": _DROPOUT,
    "attn_dropout": _DROPOUT,
    "momentum": Bound(0, 1, "0.9"),
    "min_lr_ratio": Bound(0, 1, "0.01"),
    "warmup_epochs": Bound(0, 1000, "1.0"),
    "epochs": Bound(1, 1000, "20", integer=True),
    "batch_size": Bound(1, 65536, "128", integer=True),
    "eval_batch_size": Bound(1, 65536, "1024", integer=True),
    "early_stopping_patience": Bound(0, 1000, "5", integer=True, nullable=True),
    "grad_clip": Bound(0, 1e6, "1.0", nullable=True),
}
"""Bounds by leaf name (`trainer.lr` -> `lr`); `*_dropout` leaves share `dropout`'s."""


def bound_for(key: str) -> Bound | None:
    """The known bound for the leaf of `key` (`model.head_dropout` -> the dropout bound)."""
    leaf = _leaf(key)
    if leaf in KNOWN_BOUNDS:
        return KNOWN_BOUNDS[leaf]
    return _DROPOUT if leaf.endswith("_dropout") else None


def fixed_key_reason(key: str) -> str | None:
    """Why `key` may never be set by an agent, or None when it may."""
    path = re.sub(r"\[\d+\]", "", key)
    root = path.split(".", 1)[0]
    if root in FIXED_ROOTS:
        return FIXED_ROOTS[root]
    for fixed, reason in FIXED_KEYS.items():
        if path == fixed or path.startswith(fixed + "."):
            return reason
    return None


def interpolation_reason(base: Any) -> str | None:
    """What to do instead when the base value is an interpolation, else None."""
    if not isinstance(base, str) or "${" not in base:
        return None
    ref = _SIMPLE_REFERENCE.fullmatch(base)
    if ref:
        return f"set {ref.group(1)} instead"
    return "it is filled in from the environment or by Hydra and cannot be set"


def check_value(key: str, value: Any, base: Any) -> Any:
    """Check `value` for `key` against the base config's value there (module doc).

    Args:
        key: the override path (`trainer.lr`, `model.width`, `dataset.bandpass_hz[0]`).
        value: the proposed value (parsed python data).
        base: the base config's raw value at `key` (interpolations unresolved).

    Returns:
        The value, normalised: floats for float bases, lists for tuples.

    Raises:
        UnsafeOverrideError: "<key>=<value>: <rule>, got <what>; <what to do>".
    """
    reason = fixed_key_reason(key)
    if reason is not None:
        raise UnsafeOverrideError(
            f"{key}={_show(value)}: {key} is fixed by the campaign ({reason}); "
            "leave it out and change model/trainer/dataset hyperparameters instead"
        )
    return _check(key, value, base, nested=False)


def _check(key: str, value: Any, base: Any, *, nested: bool) -> Any:
    instead = interpolation_reason(base)
    if instead is not None:
        raise _fail(
            key, value, f"the base config computes it as {base}", "an attempt to set it", instead
        )
    if isinstance(base, Mapping):
        raise _fail(
            key,
            value,
            "it is a group of settings",
            _kind(value),
            f"set its fields one by one: "
            f"{key}.<field>=<value> (fields: {', '.join(map(str, list(base)[:8]))})",
        )
    if isinstance(base, list | tuple):
        if nested:
            raise _fail(key, value, "lists of lists cannot be set", _kind(value), "set a flat list")
        return _check_list(key, value, base)
    bound = bound_for(key)
    if bound is not None and (base is None or _is_number(base)):
        return _check_bounded(key, value, bound, base)
    if isinstance(base, bool):
        if not isinstance(value, bool):
            raise _fail(key, value, "must be true or false", _kind(value), f"write {key}=true")
        return value
    if _is_int(base):
        return _check_int(key, value, int(base))
    if _is_number(base):
        return _check_float(key, value, float(base))
    if isinstance(base, str):
        return _check_string(key, value, base)
    if base is None:
        return _check_none_base(key, value, nested=nested)
    raise _fail(key, value, f"the base value {base!r} cannot be changed", _kind(value), "leave it")


def _check_list(key: str, value: Any, base: list[Any] | tuple[Any, ...]) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _fail(key, value, "must be a list", _kind(value), f"write e.g. {key}=[a,b]")
    if len(value) > MAX_LIST_LENGTH:
        raise _fail(
            key,
            value,
            f"lists hold at most {MAX_LIST_LENGTH} elements",
            f"{len(value)} elements",
            "shorten it",
        )
    element_base = base[0] if base else None
    return [_check(f"{key}[{i}]", v, element_base, nested=True) for i, v in enumerate(value)]


def _check_bounded(key: str, value: Any, bound: Bound, base: Any) -> Any:
    hint = f"try e.g. {key}={bound.example}"
    if value is None:
        if bound.nullable or base is None:
            return None
        raise _fail(key, value, f"must be {bound.describe()}", "null", hint)
    ok_type = _is_int(value) if bound.integer else _is_number(value)
    if not ok_type or not _finite(value) or not bound.contains(value):
        raise _fail(key, value, f"must be {bound.describe()}", _kind(value), hint)
    return int(value) if bound.integer else float(value)


def _check_int(key: str, value: Any, base: int) -> int:
    limit = max(100 * abs(base), 1000)
    low = 1 if base > 0 else 0 if base == 0 else -limit
    rule = f"must be an integer in [{low}, {limit}] (the base config has {base})"
    if not _is_int(value):
        raise _fail(key, value, rule, _kind(value), f"write a whole number such as {key}={base}")
    if not low <= value <= limit:
        raise _fail(key, value, rule, _kind(value), f"stay within [{low}, {limit}]")
    return int(value)


def _check_float(key: str, value: Any, base: float) -> float:
    if base > 0:
        low, high = base / 1e4, base * 1e4
    elif base == 0:
        low, high = 0.0, 1e4
    else:
        low, high = base * 1e4, -base * 1e4
    rule = f"must be a finite number in [{_num(low)}, {_num(high)}] (the base config has {base!r})"
    if not _is_number(value) or not _finite(value) or not low <= value <= high:
        raise _fail(key, value, rule, _kind(value), f"try a value near {base!r}")
    return float(value)


def _check_string(key: str, value: Any, base: str) -> str:
    if not isinstance(value, str):
        raise _fail(
            key,
            value,
            f"must be a string (the base config has {base!r})",
            _kind(value),
            f"write a name such as {key}={base or 'name'}",
        )
    return check_plain_string(key, value)


def _check_none_base(key: str, value: Any, *, nested: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return check_plain_string(key, value)
    if _is_number(value):
        if not _finite(value) or abs(value) > _NONE_BASE_LIMIT:
            raise _fail(
                key,
                value,
                f"numbers must be finite and at most {_NONE_BASE_LIMIT:g} in size",
                _kind(value),
                "use an ordinary number",
            )
        return int(value) if _is_int(value) else float(value)
    if isinstance(value, list | tuple) and not nested:
        return _check_list(key, value, [])
    raise _fail(
        key,
        value,
        "must be null, a number, a plain string or a list of those (the base config has null)",
        _kind(value),
        f"write e.g. {key}=null",
    )


def check_plain_string(key: str, value: str) -> str:
    """`value` if it is a plain string (see the module doc), else `UnsafeOverrideError`."""
    rule = (
        f"strings must be at most {MAX_STRING_LENGTH} characters of letters, digits, spaces "
        "and _ . , : + - /, not start with / and not contain .., ${ or _target_"
    )
    bad = (
        len(value) > MAX_STRING_LENGTH
        or not PLAIN_STRING.fullmatch(value)
        or value.startswith("/")
        or ".." in value
        or "_target_" in value
    )
    if "${" in value:
        raise _fail(
            key,
            value,
            "interpolations (${...}) are not allowed in values (they read the "
            "environment, other keys or Hydra's runtime)",
            "one",
            "write a literal value",
        )
    if bad:
        raise _fail(
            key,
            value,
            rule,
            f"a str of {len(value)} characters",
            "write a plain name such as 'cosine'",
        )
    return value


def _fail(key: str, value: Any, rule: str, got: str, hint: str) -> UnsafeOverrideError:
    return UnsafeOverrideError(f"{key}={_show(value)}: {rule}, got {got}; {hint}")


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | str):
        return f"a {type(value).__name__}"
    if _is_number(value):
        return f"{_show(value)} ({type(value).__name__})"
    return f"a {type(value).__name__}"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e7 else f"{x:g}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _leaf(key: str) -> str:
    return re.sub(r"(\[\d+\])+$", "", key).rsplit(".", 1)[-1]
