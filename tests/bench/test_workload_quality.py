"""The workload search-quality part's pieces that need no training: cache keys, the loop on
an `Objective`, and the summary, tables and targets on made-up values."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pytest

from bench import drive, searchers
from bench.stats import paired_difference
from bench.workload_objective import (
    Evaluator,
    GridStoppedError,
    Training,
    WorkloadObjective,
    canonical,
)
from bench.workload_quality import WorkloadSettings, losses, summarise
from bench.workload_quality import tables as workload_tables
from bench.workload_quality import targets as workload_targets


def _space() -> dict[str, Any]:
    from ray import tune

    return {"lr": tune.loguniform(1e-4, 1e-2), "width": tune.randint(4, 17)}


class _Bowl:
    """A cheap `drive.Objective` on a two-parameter space."""

    name = "bowl"

    def tune_space(self) -> dict[str, Any]:
        return _space()

    def evaluate(self, config: dict[str, Any], seed: int) -> tuple[float, float]:
        v = (math.log10(config["lr"]) + 3) ** 2 + (config["width"] - 10) ** 2 / 36
        return v, v


def test_canonical_keys_ignore_float_noise_and_integer_types() -> None:
    a = canonical({"lr": 0.1 + 0.2, "width": np.int64(8), "dropout": 0.30000000000000004})
    b = canonical({"dropout": 0.3, "width": 8, "lr": 0.3})
    assert a == b
    assert a == (("dropout", 0.3), ("lr", 0.3), ("width", 8))
    assert Evaluator.overrides(a) == ["dropout=0.3", "lr=0.3", "width=8"]


@pytest.mark.parametrize("name", ["agent", "tpe", "random"])
def test_run_loop_drives_an_objective_on_its_own_space_and_keeps_configs(name: str) -> None:
    observations = drive.run_loop(searchers.build(name, 0), _Bowl(), seed=0, budget=6)
    assert len(observations) == 6
    for o in observations:
        assert o.config is not None and set(o.config) == {"lr", "width"}
        assert 1e-4 <= o.config["lr"] <= 1e-2 and 4 <= o.config["width"] <= 16
        assert o.true == o.observed == _Bowl().evaluate(o.config, 0)[0]


def test_a_stopped_objective_raises_before_training() -> None:
    class NoTraining:
        def get(self, config: dict[str, Any]) -> Training:
            raise AssertionError("a stopped grid must not train")

    objective = WorkloadObjective(NoTraining(), _space, stop=threading.Event())  # type: ignore[arg-type]
    objective.stop.set()
    with pytest.raises(GridStoppedError, match="stopped"):
        objective.evaluate({"lr": 1e-3, "width": 8}, 0)


def test_paired_difference_interval_and_verdict() -> None:
    d = paired_difference([0.8, 0.82, 0.81, 0.79], [0.7, 0.71, 0.72, 0.69])
    assert d["mean"] == pytest.approx(0.1)
    assert d["verdict"] == "higher" and d["low"] > 0
    assert paired_difference([0.5], [0.6])["low"] is None
    assert paired_difference([0.5, 0.7], [0.6, 0.6])["verdict"] == "tie"


def _made_up() -> tuple[WorkloadSettings, list[dict[str, Any]], dict[Any, Training], Training]:
    """Two seeds, budget 3: TPE finds the best (0.9) on seed 0, AgentSearcher never does."""
    settings = WorkloadSettings(2, (2, 3), ("agent", "tpe"), 1, 0, 1)
    vals = {"agent": [[0.5, 0.7, 0.6], [0.6, 0.65, 0.8]], "tpe": [[0.5, 0.6, 0.9], [0.6, 0.7, 0.7]]}
    values: dict[Any, Training] = {}
    results = []
    for s, per_seed in vals.items():
        for seed, vs in enumerate(per_seed):
            keys = [canonical({"lr": v, "who": s}) for v in vs]
            for k, v in zip(keys, vs, strict=True):
                values[k] = Training(v, v - 0.1, 1.0, "completed", 100)
            results.append({"searcher": s, "seed": seed, "keys": keys, "values": vs})
    return settings, results, values, Training(0.4, 0.35, 1.0, "completed", 100)


def test_summary_shortfalls_tests_and_losses() -> None:
    settings, results, values, default = _made_up()
    summary = summarise(settings, results, values, default)
    assert summary["best_any"] == 0.9
    final = summary["budgets"]["3"]
    assert final["reached"]["agent"] == [0.7, 0.8] and final["reached"]["tpe"] == [0.9, 0.7]
    assert final["shortfall"]["agent"] == pytest.approx([0.2, 0.1])
    assert final["test_at_best"]["agent"] == pytest.approx([0.6, 0.7])  # its best-by-val's test
    assert final["reached"]["default"] == [0.4, 0.4]
    assert final["comparisons"]["agent/tpe"]["seeds_lost"] == [0]
    assert summary["budgets"]["2"]["reached"]["tpe"] == [0.6, 0.7]  # read off the first two
    assert summary["mean_curve"]["tpe"] == pytest.approx([0.55, 0.65, 0.8])
    lost = losses(summary)
    assert any("vs TPE" in line and "[0]" in line for line in lost)
    text = workload_tables(summary, settings.searchers)
    assert "| AgentSearcher |" in text and "| default config |" in text
    assert [t.holds for t in workload_targets(summary)] == [True, False]  # no random
