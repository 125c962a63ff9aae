"""The escalation part's bookkeeping: curves, trials to a target, goals per method, verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench import escalation
from feedback import RunRecord
from search.goals import load_goal

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _run(i: int, status: str, value: float | None, test: float | None, *, at: int) -> RunRecord:
    return RunRecord(
        run_id=f"r{i}", campaign="c", arm="base", tier=0, origin="optuna", status=status,
        metric="val/macro_f1", mode="max", value=value,
        started_at=T0, finished_at=T0 + timedelta(seconds=at),
        test_metrics={} if test is None else {"test/macro_f1": test},
    )  # fmt: skip


def test_curves_follow_finish_order_and_the_best_by_validation_run() -> None:
    runs = [
        _run(0, "completed", 0.70, 0.60, at=3),  # finishes second
        _run(1, "completed", 0.50, 0.80, at=1),  # finishes first
        _run(2, "failed", None, None, at=5),  # a trial all the same
        _run(3, "completed", 0.90, 0.65, at=7),
    ]
    curves = escalation.run_curves(runs, "max", "test/macro_f1")
    assert curves["val"] == [0.50, 0.70, 0.70, 0.90]
    # the test curve is the test value of the best-by-validation run, not the best test value
    assert curves["test"] == [0.80, 0.60, 0.60, 0.65]


def test_trials_to_reach_respects_the_direction() -> None:
    assert escalation.trials_to_reach([None, 0.5, 0.7, 0.9], 0.7, "max") == 3
    assert escalation.trials_to_reach([9.0, 8.0, 7.5], 7.0, "min") is None
    assert escalation.trials_to_reach([9.0, 8.0, 6.5], 7.0, "min") == 3
    # a test value held early and lost again is not reached: it counts from where it stays
    assert escalation.trials_to_reach([0.8, 0.6, 0.75, 0.72], 0.7, "max") == 3
    assert escalation.trials_to_reach([0.8, 0.6], 0.7, "max") is None


def test_tpe_and_random_tune_only_the_baseline_model() -> None:
    goal = load_goal("mitbih:aami3_quick")
    tpe = escalation.method_goal(goal, "tpe", ["trainer.epochs=1"])
    assert tpe.max_tier == 0 and tpe.models == [] and tpe.sampler == "tpe"
    assert tpe.overrides[-1] == "trainer.epochs=1" and tpe.space == goal.space
    assert escalation.method_goal(goal, "random").sampler == "random"
    alone = escalation.method_goal(goal, "tune_only")  # the campaign's own sampler, no ladder
    assert alone.sampler == goal.sampler and alone.max_tier == 0 and alone.models == []
    campaign = escalation.method_goal(goal, "campaign")
    assert campaign.max_tier == goal.max_tier and campaign.models == goal.models
    with pytest.raises(ValueError, match="method"):
        escalation.method_goal(goal, "cmaes")


def _result(method: str, seed: int, val: list[float], test: list[float]) -> dict[str, object]:
    return {
        "method": method, "seed": seed, "best_val": val[-1], "test_of_best": test[-1],
        "curves": {"val": val, "test": test}, "max_tier": 3 if method == "campaign" else 0,
        "wall_s": 1.0, "agent": {"calls": 2, "tokens": 10, "seconds": 0.5},
    }  # fmt: skip


def test_summary_targets_are_tpe_medians_and_the_verdict_needs_60_percent() -> None:
    goal = load_goal("mitbih:aami3_quick")
    results = []
    for seed in range(3):
        results.append(_result("tpe", seed, [0.5, 0.6, 0.6, 0.7, 0.7], [0.5] * 5))
        results.append(_result("random", seed, [0.5, 0.5, 0.5, 0.6, 0.6], [0.4] * 5))
        results.append(
            _result("campaign", seed, [0.5, 0.7, 0.7, 0.7, 0.7], [0.5, 0.5, 0.6, 0.6, 0.6])
        )
    summary = escalation.summarise(goal, results, budget=5)
    v = summary["verdicts"]
    assert v["val"]["target"] == pytest.approx(0.7) and v["test"]["target"] == pytest.approx(0.5)
    assert summary["methods"]["tpe"]["trials_to_target"]["val"] == [4, 4, 4]
    assert summary["methods"]["campaign"]["trials_to_target"]["val"] == [2, 2, 2]
    assert v["val"]["trials_share"] == pytest.approx(0.5) and v["val"]["holds"]
    # on test both reach 0.5 at once (share 1.0), but the campaign ends above every TPE seed
    assert v["test"]["trials_share"] == pytest.approx(1.0)
    assert v["test"]["beyond_tpe"] and v["test"]["holds"]
    assert summary["methods"]["random"]["reached"]["val"] == 0
    assert summary["methods"]["random"]["mean_trials_to_target"]["val"] == 5  # censored
    assert v["val"]["difference_vs_tpe"]["mean"] == pytest.approx(0.0)
