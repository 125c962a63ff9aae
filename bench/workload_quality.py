"""Part ``workload_quality``: the search-quality comparison on a real training task.

Comparison 1 of issue 12 on the workload instead of a test function: the built-in ``cnn1d``
(a fixed model) trained on the quick ECG set (experiment ``mitbih_aami3_quick``, goal
``mitbih:aami3_quick``), maximising validation macro-F1 over the quick goal's space
(``trainer.lr`` loguniform [3e-4, 1e-2], ``trainer.batch_size`` choice [64, 128],
``model.width`` randint [4, 16], ``model.dropout`` quniform [0, 0.3, 0.1]). Searchers as in
``search_quality`` (`bench.searchers`): `AgentSearcher` (no proposer, no store, its default
sampler), `OptunaSearch` TPE and GP, random search, and the default config (the
experiment's own values: lr 3e-3, batch 128, width 8, dropout 0.1), the same trial budget,
two trials in flight, paired seeds (seed s: every searcher's seed).

The objective (`bench.workload_objective`) is a deterministic function of the config: trainer
seed 0 and one torch thread per training (the part checks it by training the default config
twice), values cached by config within the run, so every searcher that suggests a config
gets the same value for it: the comparison is paired by construction, and a config two
searchers share (Optuna's seeded start-up trials, AgentSearcher's GP phase) trains once. A
failed training counts as macro-F1 0.

Figures, per budget and searcher (means over seeds): the best validation macro-F1 reached,
its *shortfall* (the best validation value any method reached anywhere in the run minus the
value reached; the optimum is unknown) and the test macro-F1 of the best-by-validation
config (the test metric is never shown to a searcher). AgentSearcher against each other
method: the geometric mean of the per-seed shortfall ratios with a paired 95 % t interval
(`bench.stats.paired_ratio`, floor `SHORTFALL_FLOOR`), and the paired mean difference of the
validation and test values with a t interval; where AgentSearcher loses is listed.

How trials run: each (searcher, seed) is driven by `bench.drive.run_loop` (the calls Tune's
trial runner makes, checked against `tune.Tuner` by ``search_quality``) on a thread of this
process; the trainings go to `WorkloadSettings.workers` spawned processes with one torch
thread each (smoke mode: in this process). The 20-trial figures are read off the 50-trial
runs in full mode, as in ``search_quality``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import drive, searchers
from bench.plots import COLOURS, save, subplots
from bench.quality_report import SHORT, ratio_cell
from bench.stats import paired_difference, paired_ratio
from bench.suite import PartResult, RunContext, Target
from bench.workload_objective import (
    GOAL,
    MODEL,
    TRAIN_SEED,
    Evaluator,
    Key,
    Training,
    WorkloadObjective,
    base_overrides,
    canonical,
    default_config,
    torch_threads,
)

logger = logging.getLogger(__name__)

#: Shortfalls below this (macro-F1) count as equal in ratios: half the quick set's validation
#: seed noise (std 0.021, `bench.val_test_agreement`), below which a difference between two
#: configs says nothing about another training seed. (A shortfall is 0 for whoever found the
#: run's best; a smaller floor lets that one seed's log ratio swamp the interval.)
SHORTFALL_FLOOR = 0.01
COMPARED = ("agent", "tpe", "gp", "random")
#: Job threads at most (each blocks on a training most of the time).
MAX_THREADS = 16


@dataclass(frozen=True)
class WorkloadSettings:
    """The grid of one mode.

    Attributes:
        seeds: paired seeds 0 .. seeds-1.
        budgets: trial budgets reported (the largest is run).
        searchers: `bench.searchers` names (the default config is always added).
        epochs: ``trainer.epochs`` of every training.
        workers: processes training configs (0: in this process, one job at a time).
        subset: keep every n-th window of each split (1: the whole quick set).
    """

    seeds: int
    budgets: tuple[int, ...]
    searchers: tuple[str, ...]
    epochs: int
    workers: int
    subset: int


#: Sizes: on the 2-CPU development machine a one-epoch training takes about 1.6 s (one torch
#: thread, two processes side by side), and a seed of 20 trials asks for about 53 distinct
#: configs (the seeded start-up trials and AgentSearcher's GP phase are shared), so quick
#: mode (3 seeds) measured 159 trainings, 135 s wall and 178 CPU s. One epoch ranks configs
#: by how fast they learn (the default config: validation macro-F1 0.35 after one epoch,
#: 0.64 after three); full mode trains 3 epochs: about 140 trainings per seed at 50
#: trials, some 45 minutes for its 10 seeds. Smoke mode trains every 8th window in process.
SETTINGS = {
    "smoke": WorkloadSettings(1, (2,), COMPARED, 1, 0, 8),
    "quick": WorkloadSettings(3, (20,), COMPARED, 1, 2, 1),
    "full": WorkloadSettings(10, (20, 50), COMPARED, 3, 2, 1),
}


# ----------------------------------------------------------------------------- the grid


def run_job(objective: WorkloadObjective, searcher: str, seed: int, budget: int) -> dict[str, Any]:
    """One searcher and seed through `drive.run_loop`: per trial its config key and value."""
    t0 = time.perf_counter()
    observations = drive.run_loop(searchers.build(searcher, seed), objective, seed, budget)
    keys = [canonical(o.config or {}) for o in observations]
    return {
        "searcher": searcher,
        "seed": seed,
        "keys": keys,
        "values": [-o.observed for o in observations],
        "seconds": time.perf_counter() - t0,
    }


@dataclass
class _WarmUp:
    """A cheap objective on the task's space, to run each searcher once in this thread."""

    space: Any
    name: str = "warm-up"

    def tune_space(self) -> dict[str, Any]:
        return dict(self.space())

    def evaluate(self, config: dict[str, Any], seed: int) -> tuple[float, float]:
        v = sum(abs(float(x)) for x in config.values())
        return v, v


def warm_up(names: Sequence[str], space: Any, trials: int = 12) -> None:
    """Run every searcher for `trials` trials on a cheap objective in this thread.

    Why: the first import of ``ray.tune`` (and Optuna's GP modules, imported when the GP
    sampler first fits, after its start-up trials) from several job threads at once
    deadlocks in Python's import locks; done here first, the job threads find them loaded.
    """
    for name in names:
        drive.run_loop(searchers.build(name, 0), _WarmUp(space), 0, trials)


def run_grid(
    ctx: RunContext, settings: WorkloadSettings, objective: WorkloadObjective
) -> tuple[list[dict[str, Any]], float]:
    """Every (searcher, seed) of the grid on job threads; the reporter advances per trial.

    Returns:
        (the jobs' results in no particular order, seconds of the searchers' warm-up).

    Raises:
        Exception: the first job's error (the other jobs stop at their next trial).
    """
    budget = max(settings.budgets)
    jobs = [(s, seed) for seed in range(settings.seeds) for s in settings.searchers]
    total = len(jobs) * budget
    counter = {"n": 0}
    lock = threading.Lock()

    def count() -> None:
        with lock:
            counter["n"] += 1

    objective.on_trial = count
    threads = 1 if settings.workers <= 0 else min(len(jobs), MAX_THREADS)
    t0 = time.perf_counter()
    if threads > 1:
        warm_up(settings.searchers, objective.tune_space)
    warm_s = time.perf_counter() - t0
    ctx.reporter.start(total, f"workload quality: {len(jobs)} runs of {budget} trials")
    results: list[dict[str, Any]] = []
    shown = 0
    with ThreadPoolExecutor(threads, thread_name_prefix="workload-job") as pool:
        pending = {pool.submit(run_job, objective, s, seed, budget) for s, seed in jobs}
        try:
            while pending:
                done, pending = wait_futures(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                results += [f.result() for f in done]
                with lock:
                    n = counter["n"]
                if n > shown:
                    ctx.reporter.advance(f"workload quality: {n} of {total} trials", n - shown)
                    shown = n
        except BaseException:
            objective.stop.set()  # the other jobs raise at their next trial
            raise
    return results, warm_s


# ----------------------------------------------------------------------------- figures


def summarise(
    settings: WorkloadSettings,
    results: Sequence[dict[str, Any]],
    values: Mapping[Key, Training],
    default: Training,
) -> dict[str, Any]:
    """Per budget: reached validation value, shortfall, test value of the best-by-validation
    config, and AgentSearcher's paired comparisons (the JSON's ``budgets``)."""
    by_job = {(r["searcher"], r["seed"]): r for r in results}
    best_any = max([default.value, *(v for r in results for v in r["values"])])
    seeds = range(settings.seeds)
    out: dict[str, Any] = {"best_any": best_any, "budgets": {}}
    for budget in settings.budgets:
        reached: dict[str, list[float]] = {}
        test: dict[str, list[float]] = {}
        for s in settings.searchers:
            reached[s], test[s] = [], []
            for seed in seeds:
                job = by_job[(s, seed)]
                first = job["values"][:budget]
                i = int(np.argmax(first))  # the first of equal bests, as a user would keep
                reached[s].append(float(first[i]))
                test[s].append(values[job["keys"][i]].test)
        reached["default"] = [default.value] * settings.seeds
        test["default"] = [default.test] * settings.seeds
        shortfall = {m: [best_any - v for v in vals] for m, vals in reached.items()}
        others = [m for m in reached if m != "agent"]
        comparisons = {
            f"agent/{o}": {
                "shortfall_ratio": paired_ratio(
                    shortfall["agent"], shortfall[o], floor=SHORTFALL_FLOOR
                ).as_dict(),
                "val_difference": paired_difference(reached["agent"], reached[o]),
                "test_difference": paired_difference(test["agent"], test[o]),
                "seeds_lost": [seed for seed in seeds if reached["agent"][seed] < reached[o][seed]],
            }
            for o in others
        }
        out["budgets"][str(budget)] = {
            "reached": reached,
            "test_at_best": test,
            "shortfall": shortfall,
            "mean_reached": {m: float(np.mean(v)) for m, v in reached.items()},
            "sd_reached": {m: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
                           for m, v in reached.items()},
            "mean_shortfall": {m: float(np.mean(v)) for m, v in shortfall.items()},
            "mean_test_at_best": {m: float(np.nanmean(v)) for m, v in test.items()},
            "comparisons": comparisons,
        }  # fmt: skip
    out["mean_curve"] = {
        s: np.mean(
            [np.maximum.accumulate(by_job[(s, seed)]["values"]) for seed in seeds], axis=0
        ).tolist()
        for s in settings.searchers
    }
    return out


def losses(summary: dict[str, Any]) -> list[str]:
    """Where AgentSearcher loses: a comparison whose mean reached value is below the other's
    (with its interval's verdict), or a seed it loses on."""
    lines: list[str] = []
    for b, entry in summary["budgets"].items():
        for pair, c in entry["comparisons"].items():
            other = pair.split("/")[1]
            d, lost = c["val_difference"], c["seeds_lost"]
            if d["mean"] < 0 or lost:
                sure = " (interval below 0)" if d["verdict"] == "lower" else ""
                lines.append(
                    f"after {b} trials vs {SHORT[other]}: validation macro-F1 "
                    f"{d['mean']:+.4f} on average{sure}; lost on seed(s) {lost or 'none'}"
                )
    return lines


def _interval(d: dict[str, Any]) -> str:
    text = f"{d['mean']:+.4f}"
    if d["low"] is not None:
        text += f" [{d['low']:+.4f}, {d['high']:+.4f}]"
    return text + {"higher": " higher", "lower": " **lower**", "tie": ""}[d["verdict"]]


def tables(summary: dict[str, Any], searcher_names: Sequence[str]) -> str:
    """Per budget: every method's values, then AgentSearcher's paired comparisons."""
    methods = [*searcher_names, "default"]
    parts: list[str] = []
    for b, entry in summary["budgets"].items():
        rows = [
            "| method | best validation macro-F1 (mean ± sd) | shortfall | test macro-F1 of "
            "the best-by-validation config |",
            "|---|---|---|---|",
        ]
        for m in methods:
            rows.append(
                f"| {searchers.LABELS[m]} | {entry['mean_reached'][m]:.4f} ± "
                f"{entry['sd_reached'][m]:.4f} | {entry['mean_shortfall'][m]:.4f} | "
                f"{entry['mean_test_at_best'][m]:.4f} |"
            )
        parts.append(
            f"After {b} trials (means over seeds; shortfall: the best validation value of the "
            f"whole run, {summary['best_any']:.4f}, minus the value reached):\n\n"
            + "\n".join(rows)
            + "\n"
        )
        rows = [
            "| AgentSearcher vs | shortfall ratio [paired 95 %] | validation difference | "
            "test difference | seeds lost |",
            "|---|---|---|---|---|",
        ]
        for pair, c in entry["comparisons"].items():
            other = pair.split("/")[1]
            rows.append(
                f"| {searchers.LABELS[other]} | {ratio_cell(c['shortfall_ratio'])} | "
                f"{_interval(c['val_difference'])} | {_interval(c['test_difference'])} | "
                f"{len(c['seeds_lost'])} of {c['shortfall_ratio']['n']} |"
            )
        parts.append(
            f"\nAgentSearcher against each method after {b} trials: shortfall ratio "
            "(geometric mean over seeds; below 1: AgentSearcher better) and paired mean "
            "differences of macro-F1 (AgentSearcher minus the other; above 0: better):\n\n"
            + "\n".join(rows)
            + "\n\n"
        )
    return "".join(parts)


def targets(summary: dict[str, Any]) -> list[Target]:
    """Comparison 1's targets, judged on this task's paired shortfall-ratio intervals (a
    method not in the run is skipped; with one seed there is no interval: not measured)."""
    budgets: dict[str, Any] = summary["budgets"]
    first = next(iter(budgets.values()))["comparisons"]
    out: list[Target] = []
    for other, want, name in (
        ("tpe", "no worse", "no worse than TPE (shortfall-ratio interval not entirely above 1)"),
        ("random", "better", "better than random (shortfall-ratio interval below 1)"),
        ("default", "better", "(aim) better than the default config"),
    ):
        if f"agent/{other}" not in first:
            continue
        ratios = {
            b: e["comparisons"][f"agent/{other}"]["shortfall_ratio"] for b, e in budgets.items()
        }
        failing = "worse" if want == "no worse" else "not better"
        bad = [
            f"{b} trials ({r['ratio']:.2f}x)"
            for b, r in ratios.items()
            if (r["verdict"] == "worse" if want == "no worse" else r["verdict"] != "better")
        ]
        holds = None if first[f"agent/{other}"]["shortfall_ratio"]["n"] < 2 else not bad
        detail = (
            f"{failing} at {', '.join(bad)}"
            if bad and holds is not None
            else ", ".join(f"{r['ratio']:.2f}x at {b} trials" for b, r in ratios.items())
        )
        out.append(Target(f"{name}, on {MODEL} / mitbih_aami3_quick", holds, detail))
    return out


def curves_plot(
    summary: dict[str, Any], default: Training, budgets: Sequence[int], path: Path
) -> Path:
    """Mean best-so-far validation macro-F1 per searcher, with the default config's value."""
    fig, axes = subplots(1, 1, width=5.0, height=3.4)
    ax = axes[0, 0]
    for s, curve in summary["mean_curve"].items():
        style = {"ls": "--", "lw": 1.8, "zorder": 3} if s.startswith("agent") else {"lw": 1.2}
        x = np.arange(1, len(curve) + 1)
        ax.plot(x, curve, color=COLOURS[s], label=SHORT[s], **style)
    ax.axhline(default.value, color=COLOURS["default"], ls="--", lw=0.8, label="default")
    ax.axhline(summary["best_any"], color="0.6", ls=":", lw=0.8, label="best of the run")
    for b in budgets[:-1]:
        ax.axvline(b, color="0.6", ls=":", lw=0.8)
    ax.set_xlabel("trials", fontsize=8)
    ax.set_ylabel("best validation macro-F1 (mean over seeds)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="lower right")
    return save(fig, path)


def ratios_plot(summary: dict[str, Any], path: Path) -> Path:
    """AgentSearcher's shortfall ratio to each method with its paired interval, per budget."""
    budgets = list(summary["budgets"])
    fig, axes = subplots(1, len(budgets), width=4.2, height=2.4)
    for ax, b in zip(axes.flat, budgets, strict=True):
        comps = summary["budgets"][b]["comparisons"]
        names = [p.split("/")[1] for p in comps]
        for y, (pair, other) in enumerate(zip(comps, names, strict=True)):
            r = comps[pair]["shortfall_ratio"]
            lo = r["low"] if r["low"] is not None else r["ratio"]
            hi = r["high"] if r["high"] is not None else r["ratio"]
            ax.errorbar(
                [r["ratio"]], [y], xerr=[[r["ratio"] - lo], [hi - r["ratio"]]], fmt="o", ms=4,
                lw=1, color=COLOURS[other],
            )  # fmt: skip
        ax.axvline(1.0, color="0.3", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(np.arange(len(names)), [f"Agent/{SHORT[n]}" for n in names], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"after {b} trials", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.supxlabel("shortfall ratio (below 1: AgentSearcher better)", fontsize=8)
    return save(fig, path)


def run(ctx: RunContext) -> PartResult:
    """The part (see the module docstring)."""
    from search.goals import load_goal

    settings: WorkloadSettings = SETTINGS[ctx.mode]
    goal = load_goal(GOAL)
    base = base_overrides(settings.epochs)
    ctx.reporter.start(1, "workload quality: starting the trainers")
    t0 = time.perf_counter()
    evaluator = Evaluator(base, settings.subset, settings.workers)
    try:
        objective = WorkloadObjective(evaluator, goal.tune_space)
        default_cfg = default_config()
        # both start now, in the workers, while this thread warms the searchers up
        default_future, again_future = evaluator.submit(default_cfg), evaluator.retrain(default_cfg)
        c0 = time.process_time()
        with torch_threads(1):  # the GP samplers' torch in this process, beside the workers
            results, warm_s = run_grid(ctx, settings, objective)
        searcher_cpu = time.process_time() - c0
        default, again = default_future.result(), again_future.result()
        values = evaluator.values()
        requests = evaluator.requests
    finally:
        evaluator.close()
    grid_s = time.perf_counter() - t0
    trained = list(values.values())
    summary = summarise(settings, results, values, default)
    failed = [t.status for t in trained if t.status != "completed"]
    seconds = [t.seconds for t in trained]
    deterministic = (again.val, again.test) == (default.val, default.test) or (
        math.isnan(again.val) and math.isnan(default.val)
    )
    lost = losses(summary)
    trials = sum(len(r["keys"]) for r in results)
    figures: dict[str, Any] = {
        "settings": asdict(settings) | {"goal": GOAL, "model": MODEL, "train_seed": TRAIN_SEED,
                                        "base_overrides": base, "space": list(goal.space)},
        "default_config": default_cfg,
        "default": asdict(default),
        "deterministic": {"default_retrained": asdict(again), "identical": deterministic},
        "wall_s": round(grid_s, 1),
        "trainings": {"trials": trials, "requested": requests, "distinct": len(trained),
                      "failed": failed,
                      "mean_s": round(float(np.mean(seconds)), 2) if seconds else None,
                      "total_s": round(float(np.sum(seconds)), 1)},
        "searchers_cpu_s": round(searcher_cpu, 1),
        "warm_up_s": round(warm_s, 1),
        "job_seconds": {s: round(sum(r["seconds"] for r in results if r["searcher"] == s), 1)
                        for s in settings.searchers},
        "agent_loses": lost,
        **summary,
    }  # fmt: skip
    out = ctx.results_dir
    plots = [
        curves_plot(summary, default, settings.budgets, out / "workload_quality_curves.png"),
        ratios_plot(summary, out / "workload_quality_ratios.png"),
    ]
    notes = [
        f"{MODEL} (fixed model) on the quick ECG set, {settings.epochs} epoch(s) per training, "
        f"trainer seed {TRAIN_SEED}, one torch thread; {settings.seeds} paired seeds, budgets "
        f"{', '.join(map(str, settings.budgets))}, 2 trials in flight"
        + (f", every {settings.subset}th window of each split" if settings.subset > 1 else "")
        + "."
        + (
            " One epoch ranks configs by how fast they learn, which flatters the search "
            "against the default config; full mode trains 3."
            if settings.epochs == 1
            else ""
        ),
        f"{trials} trials and the default config asked for {len(trained)} distinct trainings "
        "(cached by config: Optuna's seeded start-up trials and AgentSearcher's GP phase are "
        f"shared), {np.mean(seconds) if seconds else 0:.2f} s each on average, {len(failed)} "
        f"failed; {grid_s:.0f} s wall with {max(settings.workers, 1)} training process(es), "
        f"{searcher_cpu:.0f} CPU s in this process (the searchers"
        + (", and the trainings" if settings.workers <= 0 else f", {warm_s:.0f} s warm-up")
        + ").",
        f"Deterministic objective: the default config retrained gives "
        f"{'the same' if deterministic else 'a DIFFERENT'} validation and test macro-F1 "
        f"({again.val:.4f} / {again.test:.4f}).",
        "Where AgentSearcher loses: " + ("; ".join(lost) if lost else "nowhere") + ".",
    ]
    return PartResult(
        figures=figures,
        table=tables(summary, settings.searchers),
        targets=targets(summary),
        plots=plots,
        notes=notes,
    )
