"""The searcher's approval step, the parts without state: a trial as the Hydra overrides a hook
reads, and a hook's modification back into the trial's parameters and fixed overrides.

`AgentSearcher` (``approval_hook=``) calls these in `suggest`; see its docstring for what each
decision does to the trial, the record and the arm's Optuna study.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from agent.proposer import override_key
from search.space import hydra_path

__all__ = ["REJECTED_CONSTRAINT", "split_modified", "trial_overrides", "worst_value"]

logger = logging.getLogger(__name__)

REJECTED_CONSTRAINT = "approval_rejected"
"""Optuna constraint a rejected trial violates (TPE ranks it with the infeasible trials)."""


def trial_overrides(arm_overrides: Sequence[str], params: Mapping[str, Any]) -> list[str]:
    """The arm's fixed overrides, then each parameter as a Hydra `key=value` override."""
    from agent.overrides import format_override_value

    out = list(arm_overrides)
    for name, value in params.items():
        try:
            text = format_override_value(value)
        except (TypeError, ValueError):  # an odd categorical choice: shown, never re-parsed
            text = str(value)
        out.append(f"{hydra_path(name)}={text}")
    return out


def split_modified(
    merged: Sequence[str], space: Mapping[str, BaseDistribution]
) -> tuple[dict[str, Any], list[str]]:
    """A modified trial's overrides as (parameters, fixed overrides).

    Plain `key=value` overrides whose key is in the arm's space (by Hydra path) become the
    trial's parameters, keyed like the space and typed the way its distribution needs; every
    other override (including ones with a `+`/`~` prefix, which the proposal check refuses)
    stays a fixed override, in order.

    Raises:
        ValueError: a parameter's value cannot be parsed or has the wrong type.
    """
    by_path = {hydra_path(name): name for name in space}
    params: dict[str, Any] = {}
    fixed: list[str] = []
    for text in merged:
        key = override_key(text)
        name = by_path.get(key) if key is not None else None
        if name is None or text.lstrip().startswith(("+", "~")):
            fixed.append(text)
            continue
        params[name] = _typed(key or name, text, space[name])
    return params, fixed


@lru_cache(maxsize=1)
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _value(text: str) -> Any:
    try:
        override = _parser().parse_override(text)
    except Exception as e:  # whatever Hydra raised, the override does not parse
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(
            f"{text!r} is not a valid Hydra override ({first}); write key=value, e.g. "
            "trainer.lr=0.001"
        ) from e
    if override.is_sweep_override():
        raise ValueError(f"{text!r}: give one value, not a sweep (a,b / choice / range)")
    return override.value()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(key: str, text: str, dist: BaseDistribution) -> Any:
    """The value of `text` as the distribution stores it (a choice outside a categorical's
    choices is kept as parsed: the trial runs it, the study cannot take it)."""
    value = _value(text)
    if isinstance(dist, FloatDistribution):
        if not _is_number(value) or not math.isfinite(float(value)):
            raise ValueError(
                f"{text!r}: {key} is a float parameter; give a number, e.g. {key}=0.001"
            )
        return float(value)
    if isinstance(dist, IntDistribution):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_number(value) or not isinstance(value, int):
            raise ValueError(f"{text!r}: {key} is an integer parameter; give a whole number")
        return value
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:  # the exact choice first (True is not 1)
            if type(choice) is type(value) and choice == value:
                return choice
        for choice in dist.choices:
            if _is_number(choice) and _is_number(value) and choice == value:
                return choice
            if isinstance(choice, str) and choice == str(value):
                return choice
    return value


def worst_value(study: optuna.Study) -> float:
    """The worst finite value among the study's completed trials (0.0 when there is none): the
    objective value a rejected trial is told with (TPE ranks it by its constraint anyway)."""
    values = [
        float(t.value)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    if not values:
        return 0.0
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return min(values) if maximize else max(values)
