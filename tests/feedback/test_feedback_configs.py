"""Configurations ranked by the mean of their evaluations (repeats), not by one value."""

from __future__ import annotations

import pytest

from feedback import RunRecord
from feedback._configs import config_key, rank_configs


def _run(
    run_id: str, arm: str, lr: float, value: float | None, status: str = "completed"
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        campaign="c",
        arm=arm,
        tier=0,
        origin="optuna",
        status=status,
        metric="val/macro_f1",
        mode="max",
        params={"trainer.lr": lr},
        value=value,
    )


def test_a_lucky_single_value_loses_to_a_better_mean() -> None:
    runs = [
        _run("a1", "base", 1e-3, 0.80),  # the best single value ...
        _run("b1", "base", 3e-3, 0.78),
        _run("a2", "base", 1e-3, 0.70),  # ... whose repeats disagree
        _run("a3", "base", 1e-3, 0.72),
        _run("b2", "base", 3e-3, 0.76),
        _run("c1", "other", 1e-3, 0.60),  # same params, another arm: another config
        _run("x", "base", 1e-3, None, status="failed"),
    ]
    ranked = rank_configs(runs, "max")
    assert [c.first_run.run_id for c in ranked] == ["b1", "a1", "c1"]
    best = ranked[0]
    assert best.n == 2 and best.mean == pytest.approx(0.77) and best.best_run.run_id == "b1"
    assert best.sd == pytest.approx(0.01414, rel=1e-3)
    assert ranked[1].n == 3 and ranked[1].best_run.run_id == "a1"
    assert ranked[2].sd is None and ranked[2].describe() == "0.6 (1 run)"
    assert "mean of 2" in best.describe()
    assert config_key(runs[0]) == config_key(runs[2]) != config_key(runs[5])


def test_min_mode_and_ties_keep_the_earliest() -> None:
    runs = [_run("a", "base", 1.0, 0.5), _run("b", "base", 2.0, 0.5), _run("c", "base", 3.0, 0.2)]
    runs = [RunRecord(**{**r.__dict__, "mode": "min"}) for r in runs]
    assert [c.first_run.run_id for c in rank_configs(runs, "min")] == ["c", "a", "b"]
    with pytest.raises(ValueError, match="mode"):
        rank_configs(runs, "up")
