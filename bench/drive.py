"""Two ways to run a searcher on a `Problem`: Tune's own `Tuner`, and the calls Tune makes.

`run_tune` is what a user runs: a function trainable through `tune.Tuner` with
``max_concurrent_trials`` and ``reuse_actors=True``. Tune's per-trial overhead (~0.06 s per
trivial trial at 2 concurrent on 2 CPUs, measured by the suite) makes the whole comparison
grid too slow for the quick budget through it, so `run_loop` drives the same search
algorithm through the same methods Tune's trial runner calls, in the order it calls them:
`set_search_properties(metric, mode, param_space)` and `set_max_concurrency(n)` once, then
`suggest(trial_id)` until `n` trials are in flight, and for the oldest trial
`on_trial_result` and `on_trial_complete` with its result (trials of equal length finish in
the order they started). A `BasicVariantGenerator` is driven through `add_configurations`
and `next_trial`, as Tune does. The search-quality part checks on a subset that both give
the same regrets.

A problem is either a test function (`bench.functions.Problem`, searched on its box) or any
`Objective`: an object with a ``name``, its own Tune space (``tune_space()``) and
``evaluate(config, seed)``, e.g. a real training task (`bench.workload_quality`).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.functions import Problem

logger = logging.getLogger(__name__)

METRIC = "f"
#: Where a variant generator's experiment spec points its (unused) storage.
VARIANT_STORAGE = Path(tempfile.gettempdir()) / "agentune-bench-variants"
# Tune's trainable registry is a process-wide dict that `add_configurations` registers into
# and flushes without a lock: two threads adding at once (workload_quality runs its jobs in
# threads) fail with "dictionary changed size during iteration".
_REGISTRY_LOCK = threading.Lock()


@dataclass(frozen=True)
class Observation:
    """One finished trial.

    Attributes:
        true: the noiseless function value at the trial's point.
        observed: what the searcher was told (true value plus the problem's noise).
        config: the trial's config as the searcher suggested it (`run_loop` sets it; None
            from `run_tune`); not part of equality or hashing.
    """

    true: float
    observed: float
    config: dict[str, Any] | None = field(default=None, compare=False, hash=False)


class Objective(Protocol):
    """A minimisation problem with its own search space (a training task, not a box).

    `evaluate` returns (true value, observed value); both equal for a noiseless objective.
    """

    @property
    def name(self) -> str:
        """Short name for messages and results."""

    def tune_space(self) -> dict[str, Any]:
        """``{parameter: ray.tune Domain}``, what a Tuner gets as ``param_space``."""

    def evaluate(self, config: dict[str, Any], seed: int) -> tuple[float, float]:
        """(true value, observed value) of `config` under seed `seed`."""


def tune_space(problem: Problem | Objective) -> dict[str, Any]:
    """The problem's Tune search space: an `Objective`'s own, or a test function's box
    (`tune.uniform` per parameter)."""
    from ray import tune

    if not isinstance(problem, Problem):
        return problem.tune_space()
    return {
        k: tune.uniform(lo, hi)
        for k, (lo, hi) in zip(problem.fn.keys, problem.fn.bounds, strict=True)
    }


def _noop_trainable(config: dict[str, Any]) -> None:
    """Stands for the trainable in a variant generator's experiment spec (never run)."""


class _VariantDriver:
    """A `BasicVariantGenerator` behind the suggest/complete calls of the loop."""

    def __init__(self, generator: Any, space: dict[str, Any], budget: int) -> None:
        spec = {"run": _noop_trainable, "config": space, "num_samples": budget,
                "storage_path": str(VARIANT_STORAGE)}  # fmt: skip
        with _REGISTRY_LOCK:
            generator.add_configurations({"bench": spec})  # (Tune's default: ~/ray_results)
        self._generator = generator

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self._generator.next_trial()
        return None if trial is None else dict(trial.config)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Random search learns nothing."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        """Random search learns nothing."""


def _as_searcher(alg: Any, problem: Problem | Objective, budget: int, concurrency: int) -> Any:
    from ray.tune.search import BasicVariantGenerator

    space = tune_space(problem)
    if isinstance(alg, BasicVariantGenerator):
        return _VariantDriver(alg, space, budget)
    if not alg.set_search_properties(METRIC, "min", space):
        raise RuntimeError(
            f"{type(alg).__name__}.set_search_properties refused the space of {problem.name}: "
            "build the searcher without a space, metric or mode (the loop sets them as Tune "
            "does)."
        )
    alg.set_max_concurrency(concurrency)
    return alg


def run_loop(
    alg: Any, problem: Problem | Objective, seed: int, budget: int, concurrency: int = 2
) -> list[Observation]:
    """Run `budget` trials of `problem` through `alg`'s Tune callbacks (module docstring).

    Args:
        alg: an unconfigured searcher from `bench.searchers.build`.
        problem: what to minimise (a test function or an `Objective`).
        seed: the noise seed (paired across searchers).
        budget: trials to run.
        concurrency: trials in flight at once (Tune's ``max_concurrent_trials``).

    Returns:
        The observations in completion order.

    Raises:
        RuntimeError: the searcher stopped suggesting before `budget` trials.
    """
    searcher = _as_searcher(alg, problem, budget, concurrency)
    in_flight: deque[tuple[str, dict[str, Any]]] = deque()
    out: list[Observation] = []
    started = 0
    while len(out) < budget:
        while started < budget and len(in_flight) < concurrency:
            trial_id = f"t{started:05d}"
            config = searcher.suggest(trial_id)
            if not isinstance(config, dict):
                raise RuntimeError(
                    f"{type(alg).__name__} returned {config!r} for trial {started} of {budget} "
                    f"on {problem.name}; the benchmark needs a config for every trial."
                )
            in_flight.append((trial_id, config))
            started += 1
        trial_id, config = in_flight.popleft()
        true, observed = problem.evaluate(config, seed)
        result = {METRIC: observed, "training_iteration": 1}
        searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)
        out.append(Observation(true, observed, config))
    return out


def run_tune(
    alg: Any,
    problem: Problem,
    seed: int,
    budget: int,
    storage: Path,
    concurrency: int = 2,
) -> tuple[list[Observation], float]:
    """Run `budget` trials of `problem` through `tune.Tuner` with `alg` as its search_alg.

    Ray must be running (`RunContext.ensure_ray`). Each trial reports once.

    Returns:
        (observations in completion order, wall seconds of `Tuner.fit`).

    Raises:
        RuntimeError: a trial errored, or fewer than `budget` trials finished.
    """
    from ray import tune

    def objective(config: dict[str, Any]) -> None:
        true, observed = problem.evaluate(config, seed)
        tune.report({METRIC: observed, "true": true, "done_at": time.time()})

    tuner = tune.Tuner(
        objective,
        param_space=tune_space(problem),
        tune_config=tune.TuneConfig(
            search_alg=alg,
            metric=METRIC,
            mode="min",
            num_samples=budget,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(storage), verbose=0),
    )
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    if grid.errors or len(grid) < budget:
        raise RuntimeError(
            f"Tune run of {problem.name} finished {len(grid)} of {budget} trials with "
            f"{len(grid.errors)} errors: {grid.errors[:1]}"
        )
    rows = sorted((grid[i].metrics or {} for i in range(len(grid))), key=_done_at)
    return [Observation(float(m["true"]), float(m[METRIC])) for m in rows], wall


def _done_at(metrics: dict[str, Any]) -> float:
    return float(metrics["done_at"])


def regret_curve(observations: list[Observation], minimum: float) -> list[float]:
    """Simple regret after each trial: the true value at the best *observed* point so far,
    minus the function's minimum (what a user who trusts the reported values gets)."""
    curve: list[float] = []
    best_observed = float("inf")
    best_true = float("inf")
    for obs in observations:
        if obs.observed < best_observed:
            best_observed, best_true = obs.observed, obs.true
        curve.append(max(best_true - minimum, 0.0))
    return curve
