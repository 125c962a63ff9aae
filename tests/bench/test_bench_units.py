"""The benchmark suite's building blocks: paired ratios, test functions, drivers, selection."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bench import drive, searchers
from bench.functions import Problem, make
from bench.parts import PARTS
from bench.stats import median_p95, paired_ratio
from bench.suite import BenchError, select


def test_paired_ratio_of_identical_methods_is_one_with_a_degenerate_interval() -> None:
    r = paired_ratio([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (r.ratio, r.low, r.high, r.verdict) == (1.0, 1.0, 1.0, "tie")


def test_paired_ratio_detects_a_consistently_better_method() -> None:
    b = np.array([1.0, 3.0, 10.0, 0.5, 2.0, 7.0])
    a = b * np.array([0.5, 0.45, 0.55, 0.5, 0.48, 0.52])  # about half, seed by seed
    r = paired_ratio(a, b)
    assert r.verdict == "better"
    assert r.high is not None and r.high < 1.0
    assert r.ratio == pytest.approx(0.5, rel=0.05)
    assert r.share_better == 1.0
    assert paired_ratio(b, a).verdict == "worse"


def test_paired_ratio_with_inconsistent_seeds_is_a_tie() -> None:
    assert paired_ratio([1.0, 4.0, 1.0, 4.0], [2.0, 2.0, 2.0, 2.0]).verdict == "tie"


def test_paired_ratio_floors_zero_regret_instead_of_dividing_by_it() -> None:
    r = paired_ratio([0.0, 0.0], [1e-3, 1e-3], floor=1e-6)
    assert math.isfinite(r.ratio) and r.ratio == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("a", "b"), [([1.0], [1.0, 2.0]), ([], []), ([float("nan")], [1.0]), ([-1.0], [1.0])]
)
def test_paired_ratio_refuses_bad_input_with_a_reason(a: list[float], b: list[float]) -> None:
    with pytest.raises(ValueError, match="paired_ratio"):
        paired_ratio(a, b)


def test_median_p95() -> None:
    values = [float(v) for v in range(1, 101)]
    assert median_p95(values) == {"median": 50.5, "p95": 95.0, "max": 100.0}


@pytest.mark.parametrize(
    ("name", "point"),
    [
        ("branin2", [math.pi, 2.275]),
        ("hartmann6", [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]),
        ("rosenbrock10", [1.0] * 10),
        ("ackley10", [0.0] * 10),
    ],
)
def test_functions_reach_their_stated_minimum(name: str, point: list[float]) -> None:
    fn = make(name)
    assert fn.f(np.array(point)) == pytest.approx(fn.minimum, abs=1e-4)
    lo, hi = np.array(fn.bounds).T
    assert np.all(lo <= point) and np.all(np.array(point) <= hi)


def test_ackley_default_point_is_not_its_optimum() -> None:
    fn = make("ackley2")
    assert fn.f(fn.midpoint()) - fn.minimum > 1.0
    assert make("ackley2sym").bounds == ((-5.0, 5.0), (-5.0, 5.0))


def test_unknown_function_name_lists_the_known_forms() -> None:
    with pytest.raises(ValueError, match="known: branin2"):
        make("sphere3")


def test_noise_is_a_function_of_seed_and_point() -> None:
    fn = make("branin2")
    p = Problem(fn, fn.noise_scale())
    config = {"x0": 1.0, "x1": 2.0}
    true, observed = p.evaluate(config, seed=3)
    assert true == fn.f(np.array([1.0, 2.0]))
    assert observed != true
    assert p.evaluate(config, seed=3) == (true, observed)
    assert p.evaluate(config, seed=4)[1] != observed
    assert Problem(fn).evaluate(config, seed=3) == (true, true)


@pytest.mark.parametrize("name", ["random", "tpe", "agent"])
def test_loop_runs_the_budget_inside_the_box(name: str) -> None:
    problem = Problem(make("branin2"))
    observations = drive.run_loop(searchers.build(name, 0), problem, seed=0, budget=12)
    assert len(observations) == 12
    curve = drive.regret_curve(observations, problem.fn.minimum)
    assert all(later <= earlier for earlier, later in itertools.pairwise(curve))
    assert curve[-1] == pytest.approx(min(o.true for o in observations) - problem.fn.minimum)


def test_regret_curve_follows_the_best_observed_not_the_best_true_point() -> None:
    obs = [drive.Observation(5.0, 5.0), drive.Observation(1.0, 6.0), drive.Observation(3.0, 2.0)]
    assert drive.regret_curve(obs, 0.0) == [5.0, 5.0, 3.0]


def test_same_seed_same_searcher_gives_the_same_run() -> None:
    problem = Problem(make("hartmann6"), 0.01)
    a = drive.run_loop(searchers.build("tpe", 5), problem, seed=5, budget=14)
    b = drive.run_loop(searchers.build("tpe", 5), problem, seed=5, budget=14)
    assert a == b


def test_select_runs_every_implemented_part_in_smoke_and_the_quick_ones_in_quick() -> None:
    implemented = [p.name for p in PARTS if p.target is not None]
    assert [p.name for p in select(PARTS, "smoke")] == implemented
    quick = [p.name for p in select(PARTS, "quick")]
    assert "search_quality" in quick and "tpe_settings" not in quick
    assert "escalation" not in quick  # an hour on 2 CPUs: only when named
    assert [p.name for p in select(PARTS, "quick", ["tpe_settings"])] == ["tpe_settings"]
    assert [p.name for p in select(PARTS, "quick", ["escalation"])] == ["escalation"]


@pytest.mark.parametrize(
    ("mode", "only", "message"),
    [
        ("quick", ["nope"], "unknown part"),
        ("quick", ["gpu"], "not implemented"),
        ("fast", [], "mode must be one of"),
    ],
)
def test_select_refuses_bad_requests(mode: str, only: list[str], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        select(PARTS, mode, only)  # type: ignore[arg-type]
