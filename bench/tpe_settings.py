"""Benchmark: which TPE settings should each arm's sampler start with, at campaign budgets?

    python -m bench --full --only tpe_settings   # 10 seeds, budgets 20 and 50 (the suite)
    python -m bench.tpe_settings --seeds 20 --out tpe.json   # the same, printed

Each arm of `AgentSearcher` owns an Optuna TPE study. Optuna's default starts with 10 random
trials, which at the quick goal's budgets is most of an arm's trials. (Optuna 5's TPE is
already multivariate and uses the constant liar for pending trials by default, so parallel
asks spread out; those are not options any more.) This compares,
through Optuna's ask/tell with `--parallel` trials asked before any is told (as Tune does with
`max_concurrent_trials`), on standard test functions (Branin 2-D, Hartmann 6-D, Rosenbrock
and Ackley in 2-D and 6-D, each with Gaussian observation noise of 1 % of the function's
spread over the box; the definitions are `bench.functions`', Ackley on its symmetric box
[-5, 5]^d, as when the figures were first taken):

* ``default``: `TPESampler(seed=s)` (10 startup trials);
* ``tpe_fitted``: TPE with `n_startup_trials` fitted to the budget (`fitted_startup_trials`:
  a fifth of it, between 2 and 10);
* ``gp``: Optuna 5's `GPSampler(seed=s)` (10 startup trials), the sampler Optuna suggests for
  small budgets of continuous parameters;
* ``gp_fitted``: the GP sampler with the fitted startup.

It prints, per function and budget, the mean over seeds of the final simple regret (best true
value found minus the optimum) of each setting divided by the default's, with the share of
seeds where the setting is better; values below 1 favour the setting. The ratios are paired
(same seed, same function) so they hold on a noisy machine. A benchmark, not a test. In the
suite (part ``tpe_settings``, full mode or ``--only``) it also writes a table and a plot.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from bench.functions import TestFunction, make
from bench.plots import save, subplots
from bench.suite import PartResult, RunContext
from search.arms import fitted_startup_trials

FUNCTIONS = tuple(
    make(n)
    for n in ("branin2", "hartmann6", "rosenbrock2", "rosenbrock6", "ackley2sym", "ackley6sym")
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


def compare(
    seeds: int,
    budgets: Sequence[int],
    parallel: int,
    functions: Sequence[TestFunction] = FUNCTIONS,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every setting on every function and budget: the report `main` prints and writes.

    Returns:
        ``{"seeds", "parallel", "rows": [{"function", "budget", "default_mean_regret",
        "settings": {name: {"mean_regret", "ratio_to_default", "share_better"}}}],
        "geometric_mean_ratio": {name: ratio}}``.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    report: dict[str, Any] = {"seeds": seeds, "parallel": parallel, "rows": []}
    names = list(_settings(budgets[0]))
    for fn in functions:
        noise = fn.noise_scale(0.01)
        for budget in budgets:
            regrets = {
                name: np.array(
                    [run_once(fn, budget, make, seed, parallel, noise) for seed in range(seeds)]
                )
                for name, make in _settings(budget).items()
            }
            base = regrets["default"]
            row: dict[str, Any] = {"function": fn.name, "budget": budget, "settings": {}}
            for name in names[1:]:
                row["settings"][name] = {
                    "mean_regret": float(np.mean(regrets[name])),
                    "ratio_to_default": float(np.mean(regrets[name]) / max(np.mean(base), 1e-12)),
                    "share_better": float(np.mean(regrets[name] < base)),
                }
            row["default_mean_regret"] = float(np.mean(base))
            report["rows"].append(row)
            if on_row is not None:
                on_row(row)
    report["geometric_mean_ratio"] = {
        name: float(np.exp(np.mean([math.log(r["settings"][name]["ratio_to_default"] + 1e-12)
                                    for r in report["rows"]])))
        for name in names[1:]
    }  # fmt: skip
    return report


def table(report: dict[str, Any]) -> str:
    """The Markdown table: per function and budget, each setting's ratio to the default."""
    names = list(report["rows"][0]["settings"])
    lines = [f"| function | budget | {' | '.join(names)} |", "|---|---|" + "---|" * len(names)]
    for r in report["rows"]:
        cells = [
            f"{r['settings'][n]['ratio_to_default']:.2f} "
            f"({r['settings'][n]['share_better']:.0%} better)"
            for n in names
        ]
        lines.append(f"| {r['function']} | {r['budget']} | {' | '.join(cells)} |")
    geo = report["geometric_mean_ratio"]
    lines.append("| geometric mean | | " + " | ".join(f"{geo[n]:.2f}" for n in names) + " |")
    return "\n".join(lines)


def _plot(report: dict[str, Any], path: Path) -> Path:
    budgets = sorted({r["budget"] for r in report["rows"]})
    names = list(report["rows"][0]["settings"])
    fig, axes = subplots(1, len(budgets), width=4.0, height=3.0)
    for ax, b in zip(axes.flat, budgets, strict=True):
        rows = [r for r in report["rows"] if r["budget"] == b]
        y = np.arange(len(rows))
        for j, n in enumerate(names):
            ax.plot(
                [r["settings"][n]["ratio_to_default"] for r in rows],
                y + 0.15 * (j - 1), "o", ms=4, label=n,
            )  # fmt: skip
        ax.axvline(1.0, color="0.3", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(y, [r["function"] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"budget {b}: regret / default TPE's", fontsize=9)
    axes.flat[-1].legend(fontsize=7)
    return save(fig, path)


def run(ctx: RunContext) -> PartResult:
    """The suite's part: smoke 1 seed at budget 6, quick 3 seeds, full 10 (budgets 20, 50)."""
    seeds, budgets = ctx.pick((1, (6,)), (3, (20, 50)), (10, (20, 50)))
    functions = FUNCTIONS[:1] if ctx.mode == "smoke" else FUNCTIONS
    ctx.reporter.start(len(functions) * len(budgets), f"tpe_settings: {seeds} seeds")
    report = compare(
        seeds, budgets, 2, functions,
        on_row=lambda r: ctx.reporter.advance(f"tpe_settings: {r['function']} @ {r['budget']}"),
    )  # fmt: skip
    return PartResult(
        figures=report,
        table=table(report),
        plots=[_plot(report, ctx.results_dir / "tpe_settings.png")],
        notes=[
            f"{seeds} seeds, two trials asked before any is told, 1 % observation noise; "
            "cells: mean final regret of the setting / the default TPE's (share of seeds "
            "where the setting is better)."
        ],
    )


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = compare(
        args.seeds, args.budgets, args.parallel,
        on_row=lambda r: print(f"{r['function']} @ {r['budget']} done", file=sys.stderr),
    )  # fmt: skip
    print(table(report))
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
