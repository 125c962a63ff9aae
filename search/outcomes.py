"""How a finished trial's result becomes a run status, and the campaign's constraint checks.

Trial status (written to the store, and told to Optuna by `search.optuna_bridge`):

==========================================================  ============  ==================
result                                                       status        Optuna state
==========================================================  ============  ==================
``error=True`` (the trial raised)                            failed        FAIL
``status`` "failed"                                          failed        FAIL
``status`` "diverged"                                        diverged      FAIL
metric missing, NaN or infinite                              failed        FAIL
a constraint violated (or its key not a finite number)       infeasible    COMPLETE + Optuna
                                                                           constraint values
``status`` "stopped" or ``agentune_final: False``            pruned        PRUNED
otherwise                                                    completed     COMPLETE
==========================================================  ============  ==================

Pure functions of the result and the settings (no study, no store).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from search.contract import FINAL_KEY, TRAINER_STATUS
from search.space import is_finite_number

__all__ = [
    "CONSTRAINT_OPS",
    "Constraint",
    "Outcome",
    "check_constraints",
    "classify",
    "goal_noise",
    "int_or_none",
]

Constraint = tuple[str, float]
"""A constraint on one result key: (op, bound), op one of `CONSTRAINT_OPS`."""

CONSTRAINT_OPS: tuple[str, ...] = ("<=", "<", ">=", ">", "==")


@dataclass
class Outcome:
    """A finished trial as the searcher records it.

    Attributes:
        status: completed, pruned, infeasible, failed, diverged (or rejected, for a trial
            the approval hook refused).
        value: the metric value (None for failures).
        error: why it failed or was infeasible, else None.
        constraints: Optuna constraint values per constrained key (0.0 when satisfied,
            else the relative violation).
    """

    status: str
    value: float | None
    error: str | None
    constraints: dict[str, float] = field(default_factory=dict)


def check_constraints(constraints: Mapping[str, Any] | None) -> dict[str, Constraint]:
    """The constructor's `constraints` argument, checked and normalised to (str, float).

    Raises:
        ValueError: an entry that is not (op, bound) with a known op.
    """
    checked: dict[str, Constraint] = {}
    for key, spec in (constraints or {}).items():
        if not (isinstance(spec, tuple | list) and len(spec) == 2 and spec[0] in CONSTRAINT_OPS):
            raise ValueError(
                f"constraint {key!r} must be (op, bound) with op in {CONSTRAINT_OPS}, got "
                f"{spec!r}; e.g. {{'num_params': ('<=', 100000)}}."
            )
        checked[key] = (str(spec[0]), float(spec[1]))
    return checked


def classify(
    result: Mapping[str, Any] | None,
    error: bool,
    metric: str,
    constraints: Mapping[str, Constraint],
) -> Outcome:
    """The outcome of a finished trial (see the module docstring for the rules)."""
    if error:
        msg = (result or {}).get("error") or "the trial raised an error"
        return Outcome("failed", None, str(msg))
    if not result:
        return Outcome("failed", None, "the trial finished without reporting a result")
    reported = result.get("status")
    status = TRAINER_STATUS.get(reported) if isinstance(reported, str) else None
    raw = result.get(metric)
    value = float(raw) if is_finite_number(raw) else None
    if status == "failed":
        return Outcome("failed", None, str(result.get("error") or "the trainer failed"))
    if status == "diverged":
        return Outcome("diverged", None, str(result.get("error") or "training diverged"))
    if value is None:
        return Outcome("failed", None, f"metric {metric!r} missing or not finite (got {raw!r})")
    amounts, violated = constraint_values(result, constraints)
    if violated:
        return Outcome("infeasible", value, "; ".join(violated), amounts)
    # Only a trainable that speaks the final-report protocol can be read as stopped by its
    # flag; one that never reports it finished normally (drop-in use).
    if status == "pruned" or result.get(FINAL_KEY) is False:
        return Outcome("pruned", value, None, amounts)
    return Outcome("completed", value, None, amounts)


def constraint_values(
    result: Mapping[str, Any], constraints: Mapping[str, Constraint]
) -> tuple[dict[str, float], list[str]]:
    """Optuna constraint values per key (<= 0 feasible) and a line per violated constraint."""
    values: dict[str, float] = {}
    violated: list[str] = []
    for key, (op, bound) in constraints.items():
        got = result.get(key)
        if not is_finite_number(got):
            values[key] = 1.0
            violated.append(
                f"constraint {key} {op} {bound:g} not checkable: {key!r} "
                f"not reported as a finite number (got {got!r})"
            )
            continue
        x = float(got)
        ok = {
            "<=": x <= bound,
            "<": x < bound,
            ">=": x >= bound,
            ">": x > bound,
            "==": x == bound,
        }[op]
        scale = max(abs(bound), 1.0)
        values[key] = 0.0 if ok else max(abs(x - bound) / scale, 1e-9)
        if not ok:
            violated.append(f"constraint violated: {key} {op} {bound:g} (got {x:g})")
    return values, violated


def goal_noise(signal_thresholds: Any) -> float | None:
    """The `noise` of `signal_thresholds` (a `SignalThresholds` or a dict), if it sets one."""
    if isinstance(signal_thresholds, Mapping):
        noise = signal_thresholds.get("noise")
    else:
        noise = getattr(signal_thresholds, "noise", None)
    return float(noise) if is_finite_number(noise) else None


def int_or_none(result: Mapping[str, Any] | None, key: str) -> int | None:
    """`result[key]` when it is an int (not a bool), else None."""
    value = (result or {}).get(key)
    return value if type(value) is int else None
