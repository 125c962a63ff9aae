"""The hybrid sampler: GP while a study is young, TPE afterwards (real Optuna studies)."""

from __future__ import annotations

import optuna
import pytest
from optuna.samplers import GPSampler, TPESampler

from search import AgentSearcher
from search.samplers import HybridSampler, make_sampler


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    return (x - 1.0) ** 2


def test_gp_samples_the_first_trials_and_tpe_the_rest() -> None:
    sampler = HybridSampler(seed=0, switch_at=6, n_startup_trials=3)
    study = optuna.create_study(sampler=sampler)
    used = []
    for _ in range(10):
        trial = study.ask()
        used.append(type(sampler.active(study, study.trials[-1])).__name__)
        study.tell(trial, _objective(trial))
    assert used == ["GPSampler"] * 6 + ["TPESampler"] * 4
    assert not sampler._by_trial  # each trial's choice is forgotten once it is told
    assert study.best_value < 1.0  # both samplers model the same study


def test_constructor_arguments_reach_the_samplers_that_take_them() -> None:
    sampler = HybridSampler(seed=1, n_startup_trials=4, deterministic_objective=True)
    assert sampler._gp._n_startup_trials == 4 and sampler._tpe._n_startup_trials == 4
    with pytest.raises(TypeError, match="bogus"):
        HybridSampler(bogus=1)
    with pytest.raises(ValueError, match="switch_at"):
        HybridSampler(switch_at=-1)
    assert isinstance(make_sampler("gp", 0, {}), GPSampler)
    assert isinstance(make_sampler("tpe", 0, {}), TPESampler)
    # Random search has no startup phase: the campaign's startup count does not reach it.
    assert isinstance(
        make_sampler("random", 0, {"n_startup_trials": 4}), optuna.samplers.RandomSampler
    )
    with pytest.raises(ValueError, match="sampler"):
        make_sampler("cmaes", 0, {})


def test_the_drop_in_searcher_defaults_to_the_hybrid() -> None:
    searcher = AgentSearcher({"x": {"type": "uniform", "low": 0.0, "high": 1.0}}, "m", "max")
    assert isinstance(searcher.arms[0].study.sampler, HybridSampler)
