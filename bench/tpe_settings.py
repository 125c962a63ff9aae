"""Benchmark: which TPE settings should each arm's sampler start with, at campaign budgets?

    python bench/tpe_settings.py                 # 10 seeds, budgets 20 and 50, 2 in parallel
    python bench/tpe_settings.py --seeds 20 --out tpe.json

Each arm of `AgentSearcher` owns an Optuna TPE study. Optuna's default starts with 10 random
trials, which at the quick goal's budgets is most of an arm's trials. (Optuna 5's TPE is
already multivariate and uses the constant liar for pending trials by default, so parallel
asks spread out; those are not options any more.) This compares,
through Optuna's ask/tell with `--parallel` trials asked before any is told (as Tune does with
`max_concurrent_trials`), on standard test functions (Branin 2-D, Hartmann 6-D, Rosenbrock
and Ackley in 2-D and 6-D, each with Gaussian observation noise of 1 % of the function's
range at the start point):

* ``default``: `TPESampler(seed=s)` (10 startup trials);
* ``tpe_fitted``: TPE with `n_startup_trials` fitted to the budget (`fitted_startup_trials`:
  a fifth of it, between 2 and 10);
* ``gp``: Optuna 5's `GPSampler(seed=s)` (10 startup trials), the sampler Optuna suggests for
  small budgets of continuous parameters;
* ``gp_fitted``: the GP sampler with the fitted startup.

It prints, per function and budget, the mean over seeds of the final simple regret (best true
value found minus the optimum) of each setting divided by the default's, with the share of
seeds where the setting is better; values below 1 favour the setting. The ratios are paired
(same seed, same function) so they hold on a noisy machine. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from search.arms import fitted_startup_trials


@dataclass(frozen=True)
class TestFunction:
    """A minimisation problem on a box, with its known minimum."""

    name: str
    bounds: tuple[tuple[float, float], ...]
    f: Callable[[np.ndarray], float]
    minimum: float


def _branin(x: np.ndarray) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return float(a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s)


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann6(x: np.ndarray) -> float:
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def _rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d))
        - math.exp(np.sum(np.cos(2 * math.pi * x)) / d)
        + 20
        + math.e
    )


FUNCTIONS = (
    TestFunction("branin2", ((-5.0, 10.0), (0.0, 15.0)), _branin, 0.397887),
    TestFunction("hartmann6", ((0.0, 1.0),) * 6, _hartmann6, -3.32237),
    TestFunction("rosenbrock2", ((-2.0, 2.0),) * 2, _rosenbrock, 0.0),
    TestFunction("rosenbrock6", ((-2.0, 2.0),) * 6, _rosenbrock, 0.0),
    TestFunction("ackley2", ((-5.0, 5.0),) * 2, _ackley, 0.0),
    TestFunction("ackley6", ((-5.0, 5.0),) * 6, _ackley, 0.0),
)


SamplerFactory = Callable[[int], optuna.samplers.BaseSampler]


def _settings(budget: int) -> dict[str, SamplerFactory]:
    n = fitted_startup_trials(budget)
    return {
        "default": lambda seed: optuna.samplers.TPESampler(seed=seed),
        "tpe_fitted": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=n),
        "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
        "gp_fitted": lambda seed: optuna.samplers.GPSampler(seed=seed, n_startup_trials=n),
    }


def _noise_scale(fn: TestFunction) -> float:
    """1 % of the function's spread over a fixed sample of the box."""
    rng = np.random.default_rng(12345)
    lo, hi = np.array(fn.bounds).T
    values = [fn.f(lo + (hi - lo) * rng.random(len(lo))) for _ in range(256)]
    return 0.01 * float(np.std(values))


def run_once(
    fn: TestFunction,
    budget: int,
    make_sampler: SamplerFactory,
    seed: int,
    parallel: int,
    noise: float,
) -> float:
    """Final simple regret (true value of the best *observed* trial minus the minimum)."""
    study = optuna.create_study(direction="minimize", sampler=make_sampler(seed))
    rng = np.random.default_rng(seed + 7919)
    true_of: dict[int, float] = {}
    done = 0
    while done < budget:
        batch = [study.ask() for _ in range(min(parallel, budget - done))]
        for trial in batch:
            x = np.array(
                [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(fn.bounds)]
            )
            true_value = fn.f(x)
            true_of[trial.number] = true_value
            study.tell(trial, true_value + noise * float(rng.standard_normal()))
        done += len(batch)
    best = min(study.trials, key=lambda t: float(t.value) if t.value is not None else math.inf)
    return true_of[best.number] - fn.minimum


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    started = time.perf_counter()
    report: dict[str, Any] = {"seeds": args.seeds, "parallel": args.parallel, "rows": []}
    names = list(_settings(args.budgets[0]))
    print(f"| function | budget | {' | '.join(names[1:])} |")
    print("|---|---|" + "---|" * (len(names) - 1))
    for fn in FUNCTIONS:
        noise = _noise_scale(fn)
        for budget in args.budgets:
            regrets = {
                name: np.array(
                    [
                        run_once(fn, budget, make, seed, args.parallel, noise)
                        for seed in range(args.seeds)
                    ]
                )
                for name, make in _settings(budget).items()
            }
            base = regrets["default"]
            cells = []
            row: dict[str, Any] = {"function": fn.name, "budget": budget, "settings": {}}
            for name in names[1:]:
                ratio = float(np.mean(regrets[name]) / max(np.mean(base), 1e-12))
                wins = float(np.mean(regrets[name] < base))
                cells.append(f"{ratio:.2f} ({wins:.0%} better)")
                row["settings"][name] = {
                    "mean_regret": float(np.mean(regrets[name])),
                    "ratio_to_default": ratio,
                    "share_better": wins,
                }
            row["default_mean_regret"] = float(np.mean(base))
            report["rows"].append(row)
            print(f"| {fn.name} | {budget} | {' | '.join(cells)} |", flush=True)
    ratios = {
        name: float(np.exp(np.mean([math.log(r["settings"][name]["ratio_to_default"] + 1e-12)
                                     for r in report["rows"]])))
        for name in names[1:]
    }  # fmt: skip
    report["geometric_mean_ratio"] = ratios
    print("geometric mean of the ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
