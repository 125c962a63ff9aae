"""Search domains: one entry of a goal's `space`, from its YAML shape to Tune and Optuna.

A campaign file writes a domain as one mapping of a kind to its arguments
(`{loguniform: [1.0e-4, 1.0e-2]}`); `SearchDomain` validates and normalizes it to
`{kind, low, high, q, values}` and converts it to a `ray.tune` domain, an Optuna
distribution or a `search.space` spec dict. Integer kinds include both ends in the YAML.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import model_validator

from search.goals._base import Schema, fail, short

__all__ = ["DOMAIN_KINDS", "DomainKind", "SearchDomain"]

# kind -> what the list after it holds; integer kinds are inclusive at both ends.
DOMAIN_KINDS: dict[str, str] = {
    "uniform": "[low, high]",
    "quniform": "[low, high, q]",
    "loguniform": "[low, high]",
    "randint": "[low, high] (integers, both ends included)",
    "qrandint": "[low, high, q] (integers, both ends included)",
    "lograndint": "[low, high] (integers, both ends included)",
    "choice": "[value, ...]",
}
DomainKind = Literal[
    "uniform", "quniform", "loguniform", "randint", "qrandint", "lograndint", "choice"
]
_INT_KINDS = frozenset({"randint", "qrandint", "lograndint"})
_LOG_KINDS = frozenset({"loguniform", "lograndint"})
_QUANTIZED_KINDS = frozenset({"quniform", "qrandint"})


class SearchDomain(Schema):
    """One search-space entry, normalized from the YAML shape `{kind: [args...]}`.

    YAML shapes (integer kinds include both ends):
        `{uniform: [low, high]}`, `{quniform: [low, high, q]}`, `{loguniform: [low, high]}`,
        `{randint: [low, high]}`, `{qrandint: [low, high, q]}`, `{lograndint: [low, high]}`,
        `{choice: [v1, v2, ...]}` (scalars: str, int, float, bool).
    """

    kind: DomainKind
    low: float | None = None
    high: float | None = None
    q: float | None = None
    values: list[str | int | float | bool | None] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_shape(cls, data: Any) -> Any:
        shapes = "; ".join(f"{{{kind}: {args}}}" for kind, args in DOMAIN_KINDS.items())
        if isinstance(data, Mapping) and "kind" in data:
            return _normalized_args(data)  # constructed in code, or a model_dump() round trip
        if not isinstance(data, Mapping) or len(data) != 1:
            fail(
                f"a search domain is one mapping of a kind to its arguments, got "
                f"{short(data)}; allowed: {shapes}"
            )
        ((kind, args),) = data.items()
        if kind not in DOMAIN_KINDS:
            close = difflib.get_close_matches(str(kind), list(DOMAIN_KINDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            fail(f"unknown domain kind {kind!r}{hint}; allowed: {', '.join(DOMAIN_KINDS)}")
        if not isinstance(args, list):
            fail(f"{kind} takes a list {DOMAIN_KINDS[kind]}, got {short(args)}", at=str(kind))
        if kind == "choice":
            return _choice_args(args)
        return _range_args(str(kind), args)

    def to_tune(self) -> Any:
        """The equivalent `ray.tune` search domain (imports ray lazily)."""
        from ray import tune

        low, high, q = self.low, self.high, self.q
        if self.kind == "choice":
            return tune.choice(list(self.values or []))
        assert low is not None and high is not None  # guaranteed by validation
        if self.kind == "uniform":
            return tune.uniform(low, high)
        if self.kind == "quniform":
            assert q is not None  # guaranteed by validation
            return tune.quniform(low, high, q)
        if self.kind == "loguniform":
            return tune.loguniform(low, high)
        if self.kind == "randint":
            return tune.randint(int(low), int(high) + 1)  # tune's upper bound is exclusive
        if self.kind == "lograndint":
            return tune.lograndint(int(low), int(high) + 1)  # tune's upper bound is exclusive
        # tune.qrandint includes the upper bound only when q > 1
        if q is None or int(q) == 1:
            return tune.randint(int(low), int(high) + 1)
        return tune.qrandint(int(low), int(high), int(q))

    def to_optuna(self) -> Any:
        """The equivalent `optuna.distributions` distribution (imports optuna lazily)."""
        from optuna import distributions as od

        if self.kind == "choice":
            return od.CategoricalDistribution(list(self.values or []))
        assert self.low is not None and self.high is not None  # guaranteed by validation
        if self.kind in _INT_KINDS:
            step = int(self.q) if self.q is not None else 1
            return od.IntDistribution(
                int(self.low), int(self.high), log=self.kind in _LOG_KINDS, step=step
            )
        return od.FloatDistribution(self.low, self.high, log=self.kind in _LOG_KINDS, step=self.q)

    def to_spec(self) -> dict[str, Any]:
        """The `search.space` spec-dict form (`{"type": ..., "low": ..., ...}`).

        Note the spec form follows Tune's bounds: `randint`/`lograndint` exclude `high` there,
        so their `high` is one more than the (inclusive) YAML bound.
        """
        if self.kind == "choice":
            return {"type": "choice", "values": list(self.values or [])}
        assert self.low is not None and self.high is not None  # guaranteed by validation
        if self.kind in _INT_KINDS:
            high = int(self.high) + (1 if self.kind in ("randint", "lograndint") else 0)
            spec: dict[str, Any] = {"type": self.kind, "low": int(self.low), "high": high}
            if self.q is not None:
                spec["q"] = int(self.q)
            return spec
        spec = {"type": self.kind, "low": self.low, "high": self.high}
        if self.q is not None:
            spec["q"] = self.q
        return spec

    def contains(self, value: object) -> bool:
        """Whether `value` is a point of this domain (quantization is not checked for floats)."""
        if self.kind == "choice":
            return any(_same_choice(value, v) for v in self.values or [])
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        assert self.low is not None and self.high is not None
        if self.kind in _INT_KINDS and not isinstance(value, numbers.Integral):
            return False
        return self.low <= float(value) <= self.high

    def sample_point(self) -> str | int | float | bool | None:
        """A deterministic point inside the domain (used to check that a goal composes)."""
        if self.kind == "choice":
            return (self.values or [""])[0]
        assert self.low is not None and self.high is not None
        if self.kind in _INT_KINDS:
            return int(self.low)
        if self.kind in _LOG_KINDS:
            return math.sqrt(self.low * self.high)
        return self.low

    def describe(self) -> str:
        """The YAML shape this domain came from, e.g. `loguniform[0.0001, 0.01]`."""
        if self.kind == "choice":
            return f"choice{self.values}"
        args = [self.low, self.high] + ([self.q] if self.q is not None else [])
        if self.kind in _INT_KINDS:
            return f"{self.kind}{[int(a) for a in args if a is not None]}"
        return f"{self.kind}{args}"


def _normalized_args(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the normalized form `{kind, low, high, q, values}` by the YAML-shape rules."""
    kind = data["kind"]
    if kind not in DOMAIN_KINDS:
        fail(f"unknown domain kind {kind!r}; allowed: {', '.join(DOMAIN_KINDS)}", at="kind")
    if kind == "choice":
        wanted = {"kind", "values"}
        args: list[Any] = list(data.get("values") or [])
    else:
        wanted = {"kind", "low", "high"} | ({"q"} if kind in _QUANTIZED_KINDS else set())
        args = [data.get(name) for name in ("low", "high", "q") if name in wanted]
        if kind in _INT_KINDS:  # a model_dump() holds integer bounds as floats
            args = [int(a) if isinstance(a, float) and a.is_integer() else a for a in args]
    given = {k for k, v in data.items() if v is not None}
    if not given <= wanted:
        fail(f"{kind} takes {', '.join(sorted(wanted))}, got {', '.join(sorted(given))}")
    return _choice_args(args) if kind == "choice" else _range_args(str(kind), args)


def _same_choice(a: object, b: object) -> bool:
    """Choice equality: bools only equal bools, numbers compare by value (numpy included)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _choice_args(args: list[Any]) -> dict[str, Any]:
    if not args:
        fail("choice needs at least one value, got []", at="choice")
    for value in args:
        if value is not None and not isinstance(value, str | int | float | bool):
            fail(
                f"choice values must be scalars (str, int, float, bool, null), got {short(value)}",
                at="choice",
            )
    seen: list[Any] = []
    for value in args:
        if any(_same_choice(value, s) for s in seen):
            fail(f"choice values must be distinct, got {value!r} twice", at="choice")
        seen.append(value)
    return {"kind": "choice", "values": list(args)}


def _range_args(kind: str, args: list[Any]) -> dict[str, Any]:
    quantized = kind in _QUANTIZED_KINDS
    want = 3 if quantized else 2
    if len(args) != want:
        fail(f"{kind} takes {DOMAIN_KINDS[kind]}, got {short(args)}", at=kind)
    is_int = kind in _INT_KINDS
    for name, value in zip(("low", "high", "q"), args, strict=False):
        ok = isinstance(value, int) if is_int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or (not is_int and not math.isfinite(value)):
            number = "an integer" if is_int else "a finite number"
            fail(f"{name} must be {number}, got {name}={value!r}", at=kind)
    low, high = args[0], args[1]
    if not low < high:
        fail(f"low must be < high, got low={low!r}, high={high!r}")
    if kind in _LOG_KINDS and low <= 0:
        fail(f"{kind} needs positive bounds (0 < low < high), got low={low!r}, high={high!r}")
    out: dict[str, Any] = {"kind": kind, "low": low, "high": high}
    if quantized:
        q = args[2]
        if not q > 0:
            fail(f"q must be > 0, got q={q!r}")
        steps = (high - low) / q
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            fail(f"(high - low) must be a multiple of q, got low={low!r}, high={high!r}, q={q!r}")
        out["q"] = q
    return out
