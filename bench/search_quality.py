"""Part ``search_quality``: AgentSearcher against what a user would pick, on a fixed space.

Searchers (`bench.searchers`): `AgentSearcher` (no proposer, no store, its default sampler),
`OptunaSearch` with TPE and with Optuna's GP sampler, random search (Tune's
`BasicVariantGenerator`) and the default config (the box centre, evaluated once). Problems
(`bench.functions`): Branin 2-D, Hartmann 6-D, Rosenbrock and Ackley in 2-D and 10-D, each
noiseless and with Gaussian observation noise of 1 % of the function's spread. Two trials
run at a time (Tune's ``max_concurrent_trials=2``); paired seeds (seed s: the searchers'
seed and the noise seed).

Figures: final simple regret (the true value at the best *observed* point minus the
minimum) at 20 and 50 trials, its mean over seeds, and for AgentSearcher against each other
searcher the geometric mean of the per-seed regret ratios with a paired 95 % t interval on
the log ratios (`bench.stats.paired_ratio`); best-so-far curves as PNGs.

How trials run: the whole grid goes through `bench.drive.run_loop` (the searcher methods
Tune's trial runner calls, in its order) in two processes, and a subset also through the
real `tune.Tuner` (`bench.drive.run_tune`) on the same seeds, to show both give the same
regrets; the figures say how long the grid would take through Tune. Regret at 20 trials is
read off the 50-trial run: no compared searcher knows the budget, and with two trials in
flight the first 20 suggestions of a 50-trial run are those of a 20-trial run.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench import drive, searchers
from bench.functions import Problem, make
from bench.quality_report import curves_plot, quality_tables, ratios_plot
from bench.stats import paired_ratio
from bench.suite import PartResult, RunContext, Target

logger = logging.getLogger(__name__)

NOISE_FRACTION = 0.01
#: Regrets below this fraction of the function's spread count as equal in ratios.
REGRET_FLOOR_FRACTION = 1e-6


@dataclass(frozen=True)
class QualitySettings:
    """The grid of one mode.

    Attributes:
        functions: `bench.functions.make` names; each runs noiseless and noisy.
        seeds: paired seeds 0 .. seeds-1.
        budgets: trial budgets reported (the largest is run).
        searchers: `bench.searchers` names (the default config is always added).
        workers: processes running the grid.
        tune_problems: problem names (``name`` or ``name+noise``) also run through Tune.
        tune_searchers: searchers run through Tune.
        tune_seeds: seeds of the Tune subset.
    """

    functions: tuple[str, ...]
    seeds: int
    budgets: tuple[int, ...]
    searchers: tuple[str, ...]
    workers: int
    tune_problems: tuple[str, ...]
    tune_searchers: tuple[str, ...]
    tune_seeds: int


ALL_FUNCTIONS = ("branin2", "hartmann6", "rosenbrock2", "rosenbrock10", "ackley2", "ackley10")
COMPARED = ("agent", "tpe", "gp", "random")
#: Quick mode has 3 seeds: Optuna's GP sampler costs about 10 CPU seconds per 50-trial run,
#: 120 per seed over the 12 problems, and the whole suite must fit in 15 minutes on 2 CPUs;
#: full mode has 10.
SETTINGS = {
    "smoke": QualitySettings(
        ("branin2",), 2, (4, 8), COMPARED, 1, ("branin2+noise",), ("agent", "random"), 1
    ),
    "quick": QualitySettings(
        ALL_FUNCTIONS, 3, (20, 50), COMPARED, 2, ("hartmann6+noise",), COMPARED, 1
    ),
    "full": QualitySettings(
        ALL_FUNCTIONS, 10, (20, 50), ("agent", "agent_gp", "tpe", "gp", "random"), 2,
        ("branin2+noise", "hartmann6"), COMPARED, 3,
    ),
}  # fmt: skip


def problems(functions: Sequence[str]) -> list[Problem]:
    """Each function noiseless, then with noise of `NOISE_FRACTION` of its spread."""
    out: list[Problem] = []
    for name in functions:
        fn = make(name)
        out += [Problem(fn), Problem(fn, fn.noise_scale(NOISE_FRACTION))]
    return out


def _init_worker() -> None:
    import optuna
    import torch

    torch.set_num_threads(1)  # GPSampler fits with torch; two processes share two cores
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("ray").setLevel(logging.ERROR)


def run_job(searcher: str, problem: Problem, seed: int, budget: int) -> dict[str, Any]:
    """One searcher on one problem and seed through `drive.run_loop`: regret curve and time."""
    t0, c0 = time.perf_counter(), time.process_time()
    observations = drive.run_loop(searchers.build(searcher, seed), problem, seed, budget)
    return {
        "searcher": searcher,
        "problem": problem.name,
        "seed": seed,
        "curve": drive.regret_curve(observations, problem.fn.minimum),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,  # what a loaded machine does not inflate
    }


def _cost(searcher: str, problem: Problem) -> float:
    """A rough relative cost, so the slow GP jobs start first and the pool ends together."""
    return (10.0 if "gp" in searcher else 1.0) * problem.fn.dim


def run_grid(
    ctx: RunContext, settings: QualitySettings, probs: Sequence[Problem]
) -> list[dict[str, Any]]:
    """Every (searcher, problem, seed) of the grid; results in no particular order."""
    budget = max(settings.budgets)
    jobs = [
        (s, p, seed) for s in settings.searchers for p in probs for seed in range(settings.seeds)
    ]
    jobs.sort(key=lambda j: -_cost(j[0], j[1]))
    ctx.reporter.start(len(jobs), f"search quality: {len(jobs)} runs of {budget} trials")
    results: list[dict[str, Any]] = []
    if settings.workers <= 1:
        _init_worker()
        for s, p, seed in jobs:
            results.append(run_job(s, p, seed, budget))
            ctx.reporter.advance(f"search quality: {s} on {p.name}, seed {seed}")
        return results
    spawn = multiprocessing.get_context("spawn")  # no fork after Ray and torch are loaded
    with ProcessPoolExecutor(settings.workers, mp_context=spawn, initializer=_init_worker) as pool:
        futures = [pool.submit(run_job, s, p, seed, budget) for s, p, seed in jobs]
        for future in as_completed(futures):
            r = future.result()
            results.append(r)
            ctx.reporter.advance(f"search quality: {r['searcher']} on {r['problem']}")
    return results


def tune_runs(
    ctx: RunContext, settings: QualitySettings, probs: Sequence[Problem]
) -> list[dict[str, Any]]:
    """The Tune subset: its runs through `tune.Tuner` (run before the grid, so a Tune
    problem shows in seconds rather than after the grid's minutes)."""
    by_name = {p.name: p for p in probs}
    chosen = [by_name[n] for n in settings.tune_problems if n in by_name]
    budget = max(settings.budgets)
    runs: list[dict[str, Any]] = []
    total = len(chosen) * len(settings.tune_searchers) * settings.tune_seeds
    ctx.reporter.start(total, f"search quality through tune.Tuner: {total} runs")
    ctx.ensure_ray()
    with ctx.work_dir("tune") as storage:
        for problem in chosen:
            for s in settings.tune_searchers:
                for seed in range(settings.tune_seeds):
                    obs, wall = drive.run_tune(
                        searchers.build(s, seed), problem, seed, budget, storage
                    )
                    runs.append(
                        {"searcher": s, "problem": problem.name, "seed": seed,
                         "tune_wall_s": round(wall, 2),
                         "curve": drive.regret_curve(obs, problem.fn.minimum)}
                    )  # fmt: skip
                    ctx.reporter.advance(f"tune.Tuner: {s} on {problem.name}")
    return runs


def tune_check(
    settings: QualitySettings,
    runs: Sequence[dict[str, Any]],
    loop_jobs: dict[tuple[str, str, int], dict[str, Any]],
) -> dict[str, Any]:
    """The Tune subset's regrets against the loop's on the same searcher, problem and seed,
    and Tune's own time per trial (a run's wall time less the searcher's CPU time in the
    loop)."""
    budget = max(settings.budgets)
    rows: list[dict[str, Any]] = []
    overhead: list[float] = []
    for r in runs:
        job = loop_jobs[(r["searcher"], r["problem"], r["seed"])]
        looped = job["curve"]
        overhead.append(max(r["tune_wall_s"] - job["cpu_seconds"], 0.0) / budget)
        rows.append(
            {k: r[k] for k in ("searcher", "problem", "seed", "tune_wall_s")}
            | {"loop_cpu_s": round(job["cpu_seconds"], 2),
               "regret": {str(b): {"tune": r["curve"][b - 1], "loop": looped[b - 1]}
                          for b in settings.budgets}}
        )  # fmt: skip
    pairs = [(v["tune"], v["loop"]) for r in rows for v in r["regret"].values()]
    identical = sum(1 for a, b in pairs if abs(a - b) <= 1e-12 * max(1.0, abs(b)))
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in pairs]
    return {
        "runs": rows,
        "identical": identical,
        "compared": len(pairs),
        "max_relative_difference": max(rel) if rel else None,
        "tune_overhead_s_per_trial": float(np.mean(overhead)) if overhead else 0.0,
    }


def summarise(
    settings: QualitySettings, probs: Sequence[Problem], results: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Mean regrets and paired ratios per problem and budget (the JSON's ``problems``)."""
    curves = {(r["searcher"], r["problem"], r["seed"]): r["curve"] for r in results}
    out: dict[str, Any] = {}
    for p in probs:
        floor = REGRET_FLOOR_FRACTION * p.fn.noise_scale(1.0)
        default_regret = max(p.fn.f(p.fn.midpoint()) - p.fn.minimum, 0.0)
        entry: dict[str, Any] = {"noise_sd": p.noise, "default_regret": default_regret}
        for budget in settings.budgets:
            regret = {
                s: [curves[(s, p.name, seed)][budget - 1] for seed in range(settings.seeds)]
                for s in settings.searchers
            }
            regret["default"] = [default_regret] * settings.seeds
            pairs = [("agent", o) for o in regret if o != "agent"]
            if "agent_gp" in regret:
                pairs += [("agent_gp", o) for o in ("tpe", "gp", "random", "default")]
            ratios = {
                f"{a}/{b}": paired_ratio(regret[a], regret[b], floor=floor).as_dict()
                for a, b in pairs
            }
            entry[str(budget)] = {
                "mean_regret": {s: float(np.mean(v)) for s, v in regret.items()},
                "regret": regret,
                "ratios": ratios,
            }
        entry["median_curve"] = {
            s: np.median(
                [curves[(s, p.name, seed)] for seed in range(settings.seeds)], axis=0
            ).tolist()
            for s in settings.searchers
        }
        entry["quartile_curves"] = {
            s: np.percentile(
                [curves[(s, p.name, seed)] for seed in range(settings.seeds)], [25, 75], axis=0
            ).tolist()
            for s in settings.searchers
        }
        out[p.name] = entry
    return out


def targets(summary: dict[str, Any], budgets: Sequence[int]) -> list[Target]:
    """The issue's fixed-space targets, judged on the paired intervals."""

    def verdicts(other: str) -> list[tuple[str, int, str, float]]:
        return [
            (name, b, e[str(b)]["ratios"][f"agent/{other}"]["verdict"],
             e[str(b)]["ratios"][f"agent/{other}"]["ratio"])
            for name, e in summary.items() for b in budgets
        ]  # fmt: skip

    tpe, rnd = verdicts("tpe"), verdicts("random")
    worse = [f"{n}@{b} ({r:.2f}x)" for n, b, v, r in tpe if v == "worse"]
    not_better = [f"{n}@{b} ({r:.2f}x)" for n, b, v, r in rnd if v != "better"]
    out = [
        Target(
            "final regret no worse than TPE's on any function (paired interval not entirely "
            "above 1)",
            not worse,
            f"worse on {', '.join(worse)}" if worse else f"worse on none of {len(tpe)}",
        ),
        Target(
            "better than random on all",
            not not_better,
            f"not better on {', '.join(not_better)}" if not_better else f"better on {len(rnd)}",
        ),
    ]
    for b in budgets:
        better = [n for n, bb, v, _ in tpe if bb == b and v == "better"]
        out.append(
            Target(
                f"(aim) confidently better than TPE on at least half of the problems at {b} trials",
                2 * len(better) >= len(summary),
                f"better on {len(better)} of {len(summary)}",
            )
        )
    return out


def run(ctx: RunContext) -> PartResult:
    """The part (see the module docstring)."""
    settings: QualitySettings = SETTINGS[ctx.mode]
    probs = problems(settings.functions)
    tuned = tune_runs(ctx, settings, probs)
    t0 = time.perf_counter()
    results = run_grid(ctx, settings, probs)
    grid_s = time.perf_counter() - t0
    jobs = {(r["searcher"], r["problem"], r["seed"]): r for r in results}
    summary = summarise(settings, probs, results)
    check = tune_check(settings, tuned, jobs)
    trials = len(results) * max(settings.budgets)
    cpu = sum(r["cpu_seconds"] for r in results)
    through_tune = trials * check["tune_overhead_s_per_trial"] + cpu
    figures: dict[str, Any] = {
        "settings": asdict(settings) | {"noise_fraction": NOISE_FRACTION},
        "grid_wall_s": round(grid_s, 1),
        "grid_trials": trials,
        "loop_seconds_by_searcher": {
            s: round(sum(r["seconds"] for r in results if r["searcher"] == s), 1)
            for s in settings.searchers
        },
        "loop_cpu_seconds_by_searcher": {
            s: round(sum(r["cpu_seconds"] for r in results if r["searcher"] == s), 1)
            for s in settings.searchers
        },
        "loop_cpu_s": round(cpu, 1),
        # one Tuner at a time: Tune's time per trial, plus the searchers' CPU time in turn
        "tune_estimate_for_grid_s": round(through_tune, 1),
        "tune_check": check,
        "problems": summary,
    }
    plots = [
        curves_plot(summary, settings.budgets, ctx.results_dir / "search_quality_curves.png"),
        ratios_plot(summary, settings.budgets, ctx.results_dir / "search_quality_ratios.png"),
    ]
    notes = [
        f"{settings.seeds} paired seeds, {len(probs)} problems, 2 trials in flight; grid of "
        f"{trials} trials through the searchers' Tune callbacks in {grid_s:.0f} s with "
        f"{settings.workers} process(es) ({cpu:.0f} CPU s); through tune.Tuner, one run at a "
        f"time, it would take about {through_tune:.0f} s "
        f"({check['tune_overhead_s_per_trial'] * 1e3:.0f} ms of Tune per trial, measured on "
        "the subset, plus the searchers' CPU time).",
        f"tune.Tuner subset: {check['identical']} of {check['compared']} final regrets "
        "identical to the loop's on the same seeds "
        f"(largest relative difference {check['max_relative_difference'] or 0:.2g}).",
        "Cells: mean final regret over seeds; ratios: geometric mean of per-seed regret "
        "ratios AgentSearcher/other with a paired 95 % t interval; 'better'/'worse' when the "
        "interval excludes 1.",
    ]
    return PartResult(
        figures=figures,
        table=quality_tables(summary, settings.budgets, settings.searchers),
        targets=targets(summary, settings.budgets),
        plots=plots,
        notes=notes,
    )
