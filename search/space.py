"""Search spaces: Ray Tune domains, Optuna distributions and spec dicts -> Optuna distributions.

One vocabulary for every space in a campaign: the keys are Hydra override paths
(`"trainer.lr"`, `"model.width"`), and each value is one of

* a Ray Tune domain: `tune.uniform`, `loguniform`, `quniform`, `qloguniform`, `randint`,
  `qrandint`, `lograndint`, `qlograndint`, `choice`;
* an Optuna distribution (`FloatDistribution`, `IntDistribution`, `CategoricalDistribution`);
* a spec dict, the form campaign YAML files and agent proposals use (no Ray import needed)::

      {"type": "uniform", "low": 0.0, "high": 0.5}
      {"type": "loguniform", "low": 1e-4, "high": 1e-1}
      {"type": "quniform", "low": 0.0, "high": 0.5, "q": 0.05}
      {"type": "randint", "low": 1, "high": 5}        # high EXCLUSIVE, like tune.randint
      {"type": "qrandint", "low": 16, "high": 128, "q": 16}  # high inclusive, like Tune
      {"type": "lograndint", "low": 8, "high": 257}   # high exclusive
      {"type": "choice", "values": ["adam", "sgd"]}

Anything else (a number, a string, a list) is a constant: it is not searched and is left for
Tune to pass through from the `param_space`. Nested dicts (`{"trainer": {"lr": ...}}`) are
flattened with `/` the way `OptunaSearch` does and unflattened again in suggested configs;
dotted keys (`"trainer.lr"`) stay flat keys.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeGuard

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from ray.tune.search import sample

__all__ = [
    "SPEC_TYPES",
    "SearchSpaceError",
    "convert_search_space",
    "describe_space",
    "flatten_config",
    "has_search_domains",
    "hydra_path",
    "is_finite_number",
    "merge_spaces",
    "to_distribution",
    "unflatten_params",
]

logger = logging.getLogger(__name__)

SEP = "/"
"""Separator of nested-dict paths in flat parameter names (as in `OptunaSearch`)."""

SPEC_TYPES = frozenset(
    {
        "uniform",
        "loguniform",
        "quniform",
        "qloguniform",
        "randint",
        "qrandint",
        "lograndint",
        "choice",
    }
)
_SPEC_KEYS = frozenset({"type", "low", "high", "q", "values"})


class SearchSpaceError(ValueError):
    """A search-space entry that cannot become an Optuna distribution."""


def _is_spec_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and value.get("type") in SPEC_TYPES
        and set(value).issubset(_SPEC_KEYS)
    )


def _is_grid(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"grid_search"}


def _check_choices(path: str, choices: Iterable[Any]) -> tuple[Any, ...]:
    values = tuple(choices)
    if not values:
        raise SearchSpaceError(f"`{path}`: a choice needs at least one value, got none.")
    for v in values:
        if v is not None and not isinstance(v, bool | int | float | str):
            raise SearchSpaceError(
                f"`{path}`: choice values must be None, bool, int, float or str (Optuna's "
                f"rule), got {v!r} of type {type(v).__name__}. Encode it as a string, e.g. a "
                "Hydra group name."
            )
    return values


def _from_spec(path: str, spec: Mapping[str, Any]) -> BaseDistribution:
    kind = spec["type"]
    try:
        if kind == "choice":
            return CategoricalDistribution(_check_choices(path, spec["values"]))
        low, high = spec["low"], spec["high"]
        if kind == "uniform":
            return FloatDistribution(float(low), float(high))
        if kind == "loguniform":
            return FloatDistribution(float(low), float(high), log=True)
        if kind == "quniform":
            return FloatDistribution(float(low), float(high), step=float(spec["q"]))
        if kind == "qloguniform":
            logger.warning(
                "`%s`: Optuna cannot quantize a log scale; q=%s is dropped.", path, spec.get("q")
            )
            return FloatDistribution(float(low), float(high), log=True)
        if kind == "randint":
            return IntDistribution(int(low), int(high) - 1)
        if kind == "qrandint":
            return IntDistribution(int(low), int(high), step=int(spec["q"]))
        # lograndint
        return IntDistribution(int(low), int(high) - 1, log=True)
    except KeyError as e:
        raise SearchSpaceError(
            f"`{path}`: a {kind!r} spec needs the key {e.args[0]!r}; got {dict(spec)!r}. "
            "See search.space for the spec-dict forms."
        ) from e
    except (TypeError, ValueError) as e:
        if isinstance(e, SearchSpaceError):
            raise
        raise SearchSpaceError(f"`{path}`: invalid {kind!r} spec {dict(spec)!r}: {e}") from e


def _from_tune(path: str, domain: sample.Domain) -> BaseDistribution:
    sampler = domain.get_sampler()
    quantize: float | None = None
    if isinstance(sampler, sample.Quantized):
        quantize = sampler.q
        sampler = sampler.sampler
    try:
        if isinstance(domain, sample.Float):
            if isinstance(sampler, sample.LogUniform):
                if quantize:
                    logger.warning(
                        "`%s`: Optuna cannot quantize a log scale; q=%s is dropped.", path, quantize
                    )
                return FloatDistribution(domain.lower, domain.upper, log=True)
            if isinstance(sampler, sample.Uniform):
                return FloatDistribution(domain.lower, domain.upper, step=quantize)
        elif isinstance(domain, sample.Integer):
            # Tune's randint/lograndint exclude the upper bound; the quantized ones include it.
            upper = domain.upper if quantize else domain.upper - 1
            if isinstance(sampler, sample.LogUniform):
                return IntDistribution(domain.lower, upper, log=True, step=int(quantize or 1))
            if isinstance(sampler, sample.Uniform):
                return IntDistribution(domain.lower, upper, step=int(quantize or 1))
        elif isinstance(domain, sample.Categorical) and isinstance(sampler, sample.Uniform):
            return CategoricalDistribution(_check_choices(path, domain.categories))
    except ValueError as e:
        raise SearchSpaceError(f"`{path}`: invalid Tune domain {domain!r}: {e}") from e
    raise SearchSpaceError(
        f"`{path}`: Optuna cannot sample a {type(domain).__name__} domain with a "
        f"{type(sampler).__name__} sampler (tune.randn and tune.sample_from have no Optuna "
        "equivalent). Use uniform/loguniform/quniform/randint/qrandint/choice instead."
    )


def to_distribution(value: Any, *, path: str = "<param>") -> BaseDistribution | None:
    """Convert one space entry to an Optuna distribution; constants give None.

    Args:
        value: a Tune domain, an Optuna distribution, a spec dict, or a constant.
        path: the parameter's override path, used in error messages.

    Raises:
        SearchSpaceError: a domain Optuna cannot sample (grid search, `tune.randn`,
            `tune.sample_from`), a malformed spec dict, or invalid bounds.
    """
    if isinstance(value, BaseDistribution):
        return value
    if isinstance(value, sample.Domain):
        return _from_tune(path, value)
    if _is_spec_dict(value):
        return _from_spec(path, value)
    if _is_grid(value):
        raise SearchSpaceError(
            f"`{path}`: grid_search cannot be converted to an Optuna distribution; "
            "use tune.choice(...) instead."
        )
    return None


def _walk(space: Mapping[str, Any], prefix: str) -> Iterable[tuple[str, Any]]:
    for key, value in space.items():
        if not isinstance(key, str):
            raise SearchSpaceError(
                f"Search-space keys must be strings (Hydra override paths), got {key!r}."
            )
        if SEP in key:
            raise SearchSpaceError(
                f"Search-space key {key!r} contains {SEP!r}, which is reserved for nested-dict "
                "paths; use a dotted Hydra path such as 'trainer.lr'."
            )
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and not _is_spec_dict(value) and not _is_grid(value):
            yield from _walk(value, f"{path}{SEP}")
        else:
            yield path, value


def convert_search_space(space: Mapping[str, Any] | None) -> dict[str, BaseDistribution]:
    """Flatten a space and convert every searchable entry; constants are left out.

    Args:
        space: Tune `param_space`-style mapping (possibly nested), or None.

    Returns:
        Flat parameter name (nested paths joined with `/`) -> Optuna distribution.

    Raises:
        SearchSpaceError: see `to_distribution`; also for non-string keys or keys
            containing `/`.

    Example:
        >>> convert_search_space({"trainer.lr": {"type": "loguniform", "low": 1e-4,
        ...                       "high": 1e-2}, "epochs": 3})
        {'trainer.lr': FloatDistribution(high=0.01, log=True, low=0.0001, step=None)}
    """
    if not space:
        return {}
    out: dict[str, BaseDistribution] = {}
    for path, value in _walk(space, ""):
        dist = to_distribution(value, path=path)
        if dist is not None:
            out[path] = dist
    return out


def has_search_domains(space: Mapping[str, Any] | None) -> bool:
    """Whether `space` contains at least one searchable entry (not only constants)."""
    return bool(convert_search_space(space))


def merge_spaces(
    base: Mapping[str, BaseDistribution],
    extra: Mapping[str, Any] | None = None,
    drop: Iterable[str] = (),
) -> dict[str, BaseDistribution]:
    """An arm's space: `base` minus `drop`, updated with the converted `extra` entries.

    Args:
        base: converted base space.
        extra: entries to add or replace (any form `to_distribution` accepts); constants in
            it are ignored.
        drop: flat parameter names (or dotted Hydra paths) to remove.
    """
    dropped = {hydra_path(name) for name in drop}
    out = {name: d for name, d in base.items() if hydra_path(name) not in dropped}
    out.update(convert_search_space(extra))
    return out


def _decimals(x: float) -> int:
    """Decimal places of `x` as written (0.05 -> 2, 1e-3 -> 3, 2.0 -> 0)."""
    exponent = Decimal(repr(x)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def snap_to_steps(
    params: Mapping[str, Any], space: Mapping[str, BaseDistribution]
) -> dict[str, Any]:
    """`params` with every stepped float put exactly on its grid ``low + k * step``.

    Optuna's GP sampler returns stepped floats with rounding noise (6.9e-18 for 0.0,
    0.10000000000000002 for 0.1); a trial must train, record and print the grid value. Other
    params are returned unchanged.
    """
    out = dict(params)
    for name, value in params.items():
        dist = space.get(name)
        if not (isinstance(dist, FloatDistribution) and dist.step and isinstance(value, float)):
            continue
        k = round((value - dist.low) / dist.step)
        snapped = round(dist.low + k * dist.step, max(_decimals(dist.step), _decimals(dist.low)))
        out[name] = min(max(snapped, dist.low), dist.high)
    return out


def unflatten_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn `/`-joined names back into nested dicts; dotted names stay flat keys."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        parts = name.split(SEP)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of `unflatten_params`: nested dicts -> `/`-joined names (leaves kept as is)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_config(value, f"{name}{SEP}"))
        else:
            out[name] = value
    return out


def hydra_path(name: str) -> str:
    """The Hydra override path of a flat parameter name (`trainer/lr` -> `trainer.lr`)."""
    return name.replace(SEP, ".")


def describe_space(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """Readable one-line description per parameter, keyed by Hydra path (for prompts/logs)."""
    out: dict[str, str] = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution | IntDistribution):
            kind = "float" if isinstance(dist, FloatDistribution) else "int"
            scale = " log" if dist.log else ""
            step = f" step={dist.step}" if dist.step not in (None, 1) else ""
            out[hydra_path(name)] = f"{kind}[{dist.low}, {dist.high}]{scale}{step}"
        elif isinstance(dist, CategoricalDistribution):
            out[hydra_path(name)] = f"choice{list(dist.choices)!r}"
        else:
            out[hydra_path(name)] = repr(dist)
    return out


def is_finite_number(value: object) -> TypeGuard[float]:
    """True for an int/float (numpy scalars included, bool excluded) that is finite."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return False
    return bool(math.isfinite(float(value)))


def within(distribution: BaseDistribution, value: Any) -> bool:
    """Whether `value` is a point of `distribution` (a value an Optuna trial could take)."""
    if isinstance(distribution, CategoricalDistribution):
        return any(value == c and type(value) is type(c) for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(distribution, IntDistribution) and not float(value).is_integer():
        return False
    if not isinstance(distribution, FloatDistribution | IntDistribution):
        return False
    if not distribution.low <= value <= distribution.high:
        return False
    if distribution.step is None:
        return True
    steps = (value - distribution.low) / distribution.step  # on the grid Optuna samples from
    return abs(steps - round(steps)) < 1e-9
