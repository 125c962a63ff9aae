"""What an arm's Optuna study learns from a trial: intermediate values, the tell, added trials.

A trial the study asked for (`PendingTrial.trial`) is told its outcome. A trial it never
asked for (one Tune restarted under a new id, one the approval hook modified, a warm-start
point) is added as a finished trial built by `add_finished`, the one place that builds them.

Run status -> Optuna state: completed and infeasible -> COMPLETE (infeasible with constraint
values, so TPE learns to avoid it), pruned -> PRUNED (ranked by its intermediate values),
failed, diverged and anything else -> FAIL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from search.approvals import REJECTED_CONSTRAINT, worst_value
from search.arms import Arm
from search.outcomes import Outcome
from search.samplers import samples_with_tpe
from search.space import is_finite_number
from search.trials import PendingTrial

__all__ = ["add_finished", "add_point", "close", "report", "tell", "tell_rejected"]

logger = logging.getLogger(__name__)

_STATES = {
    "completed": TrialState.COMPLETE,
    "infeasible": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
}


def add_finished(
    study: optuna.Study,
    space: Mapping[str, BaseDistribution],
    params: Mapping[str, Any],
    status: str,
    value: float | None,
    *,
    intermediate: Mapping[int, float] | None = None,
    constraints: Mapping[str, float] | None = None,
) -> None:
    """Add a trial the study never asked for, finished with run status `status`.

    Args:
        study: the arm's study.
        space: the arm's space (the trial's distributions are taken from it).
        params: the parameters the trial ran with (keys of `space`).
        status: its run status (see the module docstring); its value is kept only when the
            state is COMPLETE.
        value: the metric value.
        intermediate: per-step values (rank a pruned trial).
        constraints: Optuna constraint values (> 0: violated).

    Raises:
        ValueError: a parameter outside its distribution (Optuna's message names it).
    """
    state = _STATES.get(status, TrialState.FAIL)
    frozen = optuna.trial.create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=dict(params),
        distributions={k: space[k] for k in params if k in space},
        intermediate_values=dict(intermediate) if intermediate else None,
        constraints=dict(constraints) if constraints else None,
    )
    study.add_trial(frozen)


def tell(
    arm: Arm, pending: PendingTrial, outcome: Outcome, result: Mapping[str, Any] | None
) -> None:
    """Tell the arm's study a finished trial's outcome (or add it, when it never asked)."""
    if pending.trial is None:
        # a trial the study never asked for (adopted), or one the approval hook modified
        # (its asked trial was closed): added with the parameters it actually ran
        step = int((result or {}).get("training_iteration") or 1)
        value = outcome.value
        try:
            add_finished(
                arm.study,
                arm.space,
                pending.params,
                outcome.status,
                value,
                intermediate={step: value}
                if outcome.status == "pruned" and value is not None
                else None,
                constraints=outcome.constraints,
            )
        except ValueError as e:  # e.g. a modified value outside the distribution
            logger.warning(
                "Trial not added to the study of arm %r (its parameters do not fit the arm's "
                "space): %s",
                arm.name,
                e,
            )
        return
    state = _STATES.get(outcome.status, TrialState.FAIL)
    trial = pending.trial
    for key, amount in outcome.constraints.items():
        trial.set_constraint(key, amount)
    if state == TrialState.PRUNED and outcome.value is not None and pending.last_step == 0:
        trial.report(outcome.value, 1)  # nothing reported yet: rank it by its final value
    arm.study.tell(trial, outcome.value if state == TrialState.COMPLETE else None, state=state)


def add_point(
    arm: Arm,
    params: Mapping[str, Any],
    value: float | None,
    *,
    error: bool = False,
    pruned: bool = False,
    intermediate_values: Sequence[float] | None = None,
    infeasible: bool = False,
) -> str:
    """Add a result evaluated outside the searcher (`AgentSearcher.add_evaluated_point`).

    Returns:
        The run status it was added with: failed (an error, or no finite value unless
        pruned), pruned, infeasible or completed.

    Raises:
        ValueError: a parameter outside its distribution.
    """
    if error or (not pruned and value is None):
        status = "failed"
    elif pruned:
        status = "pruned"
    else:
        status = "infeasible" if infeasible else "completed"
    steps = {i: float(v) for i, v in enumerate(intermediate_values or ()) if is_finite_number(v)}
    if pruned and value is not None and not steps:
        steps = {1: value}
    add_finished(
        arm.study,
        arm.space,
        params,
        status,
        value,
        intermediate=steps,
        constraints={"warm_start": 1.0} if status == "infeasible" else None,
    )
    return status


def report(pending: PendingTrial, value: Any, step: Any) -> None:
    """Report an intermediate value of a running trial (ranks it if it is pruned later);
    values that are not finite and steps that do not advance are skipped."""
    if pending.trial is None:
        return
    if not is_finite_number(value) or not isinstance(step, int) or step <= pending.last_step:
        return
    pending.trial.report(float(value), step)
    pending.last_step = step


def close(arm: Arm, trial: optuna.Trial | None) -> None:
    """Close an asked trial that will not be told a result (FAIL)."""
    if trial is not None:
        arm.study.tell(trial, None, state=TrialState.FAIL)


def tell_rejected(arm: Arm, trial: optuna.Trial | None) -> None:
    """Tell a trial the approval hook rejected: TPE ranks it below every feasible one (like an
    infeasible trial); other samplers (GP, the hybrid's GP phase), which would model the
    stand-in value as a result, get a FAIL."""
    if trial is None:
        return
    if samples_with_tpe(arm.study, trial.number):
        trial.set_constraint(REJECTED_CONSTRAINT, 1.0)
        arm.study.tell(trial, worst_value(arm.study), state=TrialState.COMPLETE)
    else:
        arm.study.tell(trial, None, state=TrialState.FAIL)
