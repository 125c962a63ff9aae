"""Part ``escalation``: what the agent's escalation buys over tuning alone, on the workload.

For each workload goal (``--quick``: ``mitbih:aami3_quick`` and ``galaxyppg:hr_quick``;
``--full``: ``mitbih:aami3_baseline`` and ``galaxyppg:hr_optimize``) each method runs the
same trial budget through `search.runner.run_campaign` (the same trainable, history and
test evaluation), on paired seeds (four methods):

* ``campaign``: the goal as shipped: Optuna tuning, escalation on, the offline agent
  proposing config variants (tier 2) and generated models (tier 3).
* ``tune_only``: the same goal with escalation off (``max_tier: 0``, no other models): the
  campaign's own Optuna tuning of the baseline model (its sampler, GP in the shipped goals).
  The campaign against it is the value of escalation proper; against TPE, of the whole
  platform (its sampler choice included).
* ``tpe``: TPE alone in the baseline model's space (the goal with ``max_tier: 0``, no other
  models, ``sampler: tpe`` with the campaign's startup trials): what `OptunaSearch` does.
* ``random``: random search in the same space (``sampler: random``).

Figures per method: the best validation value reached, the *test* value of the
best-by-validation run (the test split is never shown to the searcher or the agent), and the
trials needed to reach a target value: the median over seeds of TPE alone's final value, on
validation and, for the test curve (the test value of the best-by-validation run so far),
on test. The agent's cost per campaign: calls, tokens and wall time spent proposing (from
the history's ``agent_call`` events). Target (issue 12): the campaign reaches the target in
at most 60 % of the trials TPE alone needs, or a value TPE alone never reaches, on
validation and on test.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import plots
from bench.stats import paired_difference
from bench.suite import PartResult, RunContext, Target

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("campaign", "tune_only", "tpe", "random")
#: The share of TPE alone's trials the campaign may need to reach the target (issue 12).
TRIALS_SHARE_TARGET = 0.6


@dataclass(frozen=True)
class EscalationSettings:
    """The runs of one mode.

    Attributes:
        goals: goal specs (``file:goal``), one per workload.
        seeds: paired seeds 0 .. seeds-1 (the searcher's seed; the trainer's seed is the
            experiment's, so one config gives one value whichever method asks for it).
        budget: trials per run instead of the goal's budget (None: the goal's).
        overrides: Hydra overrides added to every goal (the smoke mode's one epoch).
    """

    goals: tuple[str, ...]
    seeds: int
    budget: int | None = None
    overrides: tuple[str, ...] = ()


SETTINGS = {
    "smoke": EscalationSettings(
        ("galaxyppg:hr_quick",), seeds=1, budget=2, overrides=("trainer.epochs=1",)
    ),
    "quick": EscalationSettings(("mitbih:aami3_quick", "galaxyppg:hr_quick"), seeds=3),
    "full": EscalationSettings(("mitbih:aami3_baseline", "galaxyppg:hr_optimize"), seeds=3),
}


def method_goal(goal: Any, method: str, extra_overrides: Sequence[str] = ()) -> Any:
    """`goal` as `method` runs it (see the module docstring).

    Raises:
        ValueError: unknown `method`.
    """
    overrides = [*goal.overrides, *extra_overrides]
    if method == "campaign":
        return goal.model_copy(update={"overrides": overrides})
    alone = {"overrides": overrides, "max_tier": 0, "models": []}
    if method == "tune_only":
        return goal.model_copy(update=alone)
    if method in ("tpe", "random"):
        return goal.model_copy(update={**alone, "sampler": method})
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _better(mode: str, a: float, b: float) -> bool:
    """Whether `a` is at least as good as `b` under `mode`."""
    return a >= b if mode == "max" else a <= b


def run_curves(runs: Sequence[Any], mode: str, test_key: str) -> dict[str, list[float | None]]:
    """Best-so-far validation value and the test value of the best-by-validation run so far,
    after each finished trial (in the order trials finished; failed ones count as trials)."""
    ordered = sorted(
        (r for r in runs if r.status not in ("rejected", "running")),
        key=lambda r: (r.finished_at is None, r.finished_at or 0),
    )
    best: Any = None
    val: list[float | None] = []
    test: list[float | None] = []
    for r in ordered:
        usable = r.status == "completed" and r.value is not None and math.isfinite(r.value)
        if usable and (best is None or not _better(mode, best.value, r.value)):
            best = r
        val.append(None if best is None else float(best.value))
        t = None if best is None else (best.test_metrics or {}).get(test_key)
        test.append(None if t is None else float(t))
    return {"val": val, "test": test}


def trials_to_reach(curve: Sequence[float | None], target: float, mode: str) -> int | None:
    """The trial count from which `curve` is at or beyond `target` up to its end; None if its
    last value is not.

    The validation curve never falls back, so this is where it first reaches the target.
    The test curve can (a new best-by-validation run may be worse on test): a test value
    that a campaign's pick held early, by chance, and lost does not count as reached.
    """
    reached: int | None = None
    for i, value in enumerate(curve, start=1):
        if value is not None and _better(mode, value, target):
            reached = i if reached is None else reached
        else:
            reached = None
    return reached


def test_rank(runs: Sequence[Any], best: Any, test_key: str, mode: str) -> int | None:
    """The rank on test (1 = best) of the best-by-validation run among the completed runs:
    whether the campaign's pick is also among its best on unseen patients."""
    tests = [
        float(v)
        for r in runs
        if r.status == "completed" and (v := (r.test_metrics or {}).get(test_key)) is not None
    ]
    mine = None if best is None else (best.test_metrics or {}).get(test_key)
    if mine is None:
        return None
    return 1 + sum(1 for t in tests if t != mine and _better(mode, t, mine))


def agent_cost(store: Any, campaign: str) -> dict[str, Any]:
    """Calls, tokens and seconds spent by the agent in `campaign` (its ``agent_call``
    events: proposals and failed calls; the closing summary is an ``agent_summary``)."""
    calls = store.events(campaign=campaign, kind="agent_call")
    return {
        "calls": len(calls),
        "tokens": sum(
            int(e.data.get("tokens_in", 0)) + int(e.data.get("tokens_out", 0)) for e in calls
        ),
        "seconds": round(sum(float(e.data.get("duration_s", 0.0)) for e in calls), 2),
    }


def run_one(
    goal: Any, method: str, seed: int, settings: EscalationSettings, root: Path
) -> dict[str, Any]:
    """One campaign of `method` on `goal` with `seed`; its figures and curves."""
    from feedback import FeedbackStore
    from search.runner import CampaignOptions, run_campaign

    g = method_goal(goal, method, settings.overrides)
    options = CampaignOptions(
        budget=settings.budget, storage=root / method, seed=seed, stamp=f"seed{seed}", metrics=False
    )
    t0 = time.perf_counter()
    result = run_campaign(g, options)
    wall = time.perf_counter() - t0
    store = FeedbackStore(result.history_dir)
    runs = store.runs(campaign=result.campaign)
    test_key = "test/" + goal.metric.split("/", 1)[-1]
    curves = run_curves(runs, goal.mode, test_key)
    best = result.best
    return {
        "test_rank_of_best": test_rank(runs, best, test_key, goal.mode),
        "method": method,
        "seed": seed,
        "wall_s": round(wall, 1),
        "trials": len(curves["val"]),
        "max_tier": max((r.tier for r in runs), default=0),
        "best_val": None if best is None or best.value is None else float(best.value),
        "test_of_best": None if best is None else (best.test_metrics or {}).get(test_key),
        "best_model": None if best is None else best.model,
        "curves": curves,
        "agent": agent_cost(store, result.campaign),
        "stop_reason": result.stop_reason,
    }


def _median(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.median(finite)) if finite else None


def _paired(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, Any]:
    """`paired_difference` over the seeds where both values exist (none: a method not run)."""
    if len(a) != len(b):
        return paired_difference([], [])
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return paired_difference([x for x, _ in pairs], [y for _, y in pairs])


def summarise(goal: Any, results: Sequence[dict[str, Any]], budget: int) -> dict[str, Any]:
    """Per method: final values, trials to the targets, agent cost; campaign-vs-TPE verdicts."""
    by = {m: [r for r in results if r["method"] == m] for m in METHODS}
    sign = 1.0 if goal.mode == "max" else -1.0
    targets = {
        "val": _median([r["best_val"] for r in by["tpe"]]),
        "test": _median([r["test_of_best"] for r in by["tpe"]]),
    }
    methods: dict[str, Any] = {}
    for m, rs in by.items():
        reach = {
            k: [None if t is None else trials_to_reach(r["curves"][k], t, goal.mode) for r in rs]
            for k, t in targets.items()
        }
        methods[m] = {
            "best_val": [r["best_val"] for r in rs],
            "test_of_best": [r["test_of_best"] for r in rs],
            "test_rank_of_best": [r.get("test_rank_of_best") for r in rs],
            "mean_best_val": _mean(r["best_val"] for r in rs),
            "mean_test_of_best": _mean(r["test_of_best"] for r in rs),
            "trials_to_target": reach,
            # a run that never reaches the target counts as the whole budget (a lower bound)
            "mean_trials_to_target": {
                k: float(np.mean([budget if n is None else n for n in v])) if v else None
                for k, v in reach.items()
            },
            "reached": {k: sum(n is not None for n in v) for k, v in reach.items()},
            "max_tier": [r["max_tier"] for r in rs],
            "wall_s": [r["wall_s"] for r in rs],
            "agent": {
                k: float(np.mean([r["agent"][k] for r in rs])) if rs else 0.0
                for k in ("calls", "tokens", "seconds")
            },
        }
    verdicts: dict[str, Any] = {}
    camp, tpe = methods["campaign"], methods["tpe"]
    for k, key in (("val", "best_val"), ("test", "test_of_best")):
        c_trials, t_trials = camp["mean_trials_to_target"][k], tpe["mean_trials_to_target"][k]
        share = c_trials / t_trials if c_trials is not None and t_trials else None
        tpe_best = [v for v in tpe[key] if v is not None]
        camp_median = _median(camp[key])
        beyond = bool(
            tpe_best
            and camp_median is not None
            and sign * camp_median > max(sign * v for v in tpe_best)
        )
        verdicts[k] = {
            "target": targets[k],
            "trials_share": share,
            "beyond_tpe": beyond,
            "holds": (share is not None and share <= TRIALS_SHARE_TARGET) or beyond,
            "difference_vs_tpe": _paired(camp[key], tpe[key]),
            # the value of escalation proper: the same goal, the same sampler, escalation off
            "difference_vs_tune_only": _paired(camp[key], methods["tune_only"][key]),
        }
    return {
        "goal": goal.spec,
        "metric": goal.metric,
        "mode": goal.mode,
        "budget": budget,
        "methods": methods,
        "verdicts": verdicts,
    }


def _mean(values: Any) -> float | None:
    finite = [float(v) for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _difference(d: dict[str, Any] | None) -> str:
    """A paired difference with its interval, e.g. ``+0.045 [-0.056, +0.147]``."""
    if not d or d.get("mean") is None:
        return "-"
    interval = f" [{d['low']:+.3g}, {d['high']:+.3g}]" if d.get("low") is not None else ""
    return f"{d['mean']:+.3g}{interval}"


def _reach(values: Sequence[int | None], budget: int) -> str:
    return ", ".join(f">{budget}" if n is None else str(n) for n in values) or "-"


def table(summaries: Sequence[dict[str, Any]]) -> str:
    """One Markdown table per workload, and the verdict lines under it."""
    out: list[str] = []
    for s in summaries:
        v = s["verdicts"]
        out += [
            f"**{s['goal']}** ({s['metric']}, {s['mode']}; {s['budget']} trials; targets: "
            f"validation {_fmt(v['val']['target'])}, test {_fmt(v['test']['target'])}: TPE "
            "alone's median final values)",
            "",
            "| method | best validation, mean (per seed) | test of best-by-validation, mean "
            "(per seed, #its rank on test among the run's trials) | trials to the validation "
            "target | trials to the test target "
            "| highest tier | agent calls / tokens / s per campaign | wall s per campaign |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, r in s["methods"].items():
            per_val = ", ".join(_fmt(x) for x in r["best_val"])
            per_test = ", ".join(
                f"{_fmt(x)} #{k}" if k is not None else _fmt(x)
                for x, k in zip(r["test_of_best"], r["test_rank_of_best"], strict=True)
            )
            agent = r["agent"]
            out.append(
                f"| {m} | {_fmt(r['mean_best_val'])} ({per_val}) | "
                f"{_fmt(r['mean_test_of_best'])} ({per_test}) | "
                f"{_reach(r['trials_to_target']['val'], s['budget'])} | "
                f"{_reach(r['trials_to_target']['test'], s['budget'])} | "
                f"{max(r['max_tier'], default=0)} | {agent['calls']:.1f} / "
                f"{agent['tokens']:,.0f} / {agent['seconds']:.1f} | "
                f"{_fmt(float(np.mean(r['wall_s'])) if r['wall_s'] else None, 4)} |"
            )
        for k, label in (("val", "validation"), ("test", "test")):
            out.append(
                f"- {label}: campaign/TPE trials to the target "
                f"{_fmt(v[k]['trials_share'], 2)} (target <= {TRIALS_SHARE_TARGET}); beyond "
                f"every TPE seed: {'yes' if v[k]['beyond_tpe'] else 'no'}; paired difference "
                f"campaign - TPE {_difference(v[k]['difference_vs_tpe'])}: "
                f"**{'met' if v[k]['holds'] else 'missed'}**; campaign - tune_only (the value "
                f"of escalation itself) {_difference(v[k].get('difference_vs_tune_only'))}"
            )
        out.append("")
    return "\n".join(out)


def targets(summaries: Sequence[dict[str, Any]]) -> list[Target]:
    """Issue 12's escalation target, per workload and split."""
    out = []
    for s in summaries:
        for k, label in (("val", "validation"), ("test", "test")):
            v = s["verdicts"][k]
            out.append(
                Target(
                    f"{s['goal']}: the campaign reaches the {label} target in <= 60 % of "
                    "TPE alone's trials, or a value TPE alone never reaches",
                    bool(v["holds"]),
                    f"trials share {_fmt(v['trials_share'], 2)}, beyond every TPE seed: "
                    f"{v['beyond_tpe']}, target {_fmt(v['target'])}",
                )
            )
    return out


def curves_plot(
    summaries: Sequence[dict[str, Any]], results: dict[str, list[dict[str, Any]]], path: Path
) -> Path:
    """Validation best-so-far and test-of-best-by-validation curves, median over seeds."""
    fig, axes = plots.subplots(len(summaries), 2, width=4.0)
    colours = {
        "campaign": plots.COLOURS["agent"],
        "tune_only": plots.COLOURS["gp"],
        "tpe": plots.COLOURS["tpe"],
        "random": plots.COLOURS["random"],
    }
    for row, s in enumerate(summaries):
        for col, (k, label) in enumerate(
            (("val", "best validation"), ("test", "test of best-by-val"))
        ):
            ax = axes[row][col]
            for m in METHODS:
                curves = [r["curves"][k] for r in results[s["goal"]] if r["method"] == m]
                if not curves:
                    continue
                n = max(len(c) for c in curves)
                grid = np.array(
                    [
                        [np.nan if i >= len(c) or c[i] is None else c[i] for i in range(n)]
                        for c in curves
                    ]
                )
                ax.plot(np.arange(1, n + 1), np.nanmedian(grid, axis=0), label=m, color=colours[m])
            target = s["verdicts"][k]["target"]
            if target is not None:
                ax.axhline(target, color="#999999", linestyle=":", linewidth=1)
            ax.set_title(f"{s['goal']}: {label}", fontsize=8)
            ax.set_xlabel("trials", fontsize=8)
            ax.set_ylabel(s["metric"].replace("val/", ""), fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    return plots.save(fig, path)


def report(
    settings: EscalationSettings,
    goals: Sequence[Any],
    results: dict[str, list[dict[str, Any]]],
    wall: float,
    results_dir: Path,
) -> PartResult:
    """The part's result from its campaigns' figures (`run_one`'s, per goal spec)."""
    summaries = [
        summarise(goal, results[goal.spec], settings.budget or goal.budget) for goal in goals
    ]
    plot = curves_plot(summaries, results, results_dir / "escalation_curves.png")
    figures = {
        "settings": asdict(settings),
        "wall_s": round(wall, 1),
        "workloads": summaries,
        "runs": results,
    }
    notes = [
        f"{settings.seeds} paired seeds per method and workload, run one campaign at a time "
        f"on a 2-CPU Ray ({wall:.0f} s in all); seeds are the searcher's, the trainer's seed is "
        "the experiment's.",
        "Targets: the median over seeds of TPE alone's final best validation value, and of "
        "the test value of its best-by-validation run; a curve reaches a target at the trial "
        "from which it stays there (the test curve can fall back); a run that never does "
        "counts as the whole budget in the mean (so the TPE side is a lower bound).",
    ]
    return PartResult(
        figures=figures,
        table=table(summaries),
        targets=targets(summaries),
        plots=[plot],
        notes=notes,
    )


def run(ctx: RunContext) -> PartResult:
    """The part (see the module docstring)."""
    import warnings

    from search.goals import load_goal

    settings: EscalationSettings = SETTINGS[ctx.mode]
    ctx.ensure_ray()
    goals = [load_goal(spec) for spec in settings.goals]
    ctx.reporter.start(len(goals) * settings.seeds * len(METHODS), "escalation: campaigns")
    results: dict[str, list[dict[str, Any]]] = {}
    t0 = time.perf_counter()
    with ctx.work_dir("escalation") as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for goal in goals:
            results[goal.spec] = []
            for seed in range(settings.seeds):
                for method in METHODS:
                    ctx.reporter.advance(f"escalation: {goal.spec} {method} seed {seed}", steps=0)
                    where = root / goal.spec.replace(":", "-")
                    results[goal.spec].append(run_one(goal, method, seed, settings, where))
                    ctx.reporter.advance()
    return report(settings, goals, results, time.perf_counter() - t0, ctx.results_dir)


def rebuild(path: Path) -> Path:
    """Recompute the summaries, table, targets and plot of a written ``escalation.json``
    from its campaigns' figures (after a change to how they are summarised), in place; the
    campaigns are not run again. Returns the Markdown file's path."""
    import json

    from bench.parts import PARTS
    from bench.suite import write_part
    from search.goals import load_goal

    doc = json.loads(path.read_text(encoding="utf-8"))
    stored: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in doc["figures"]["settings"].items()
    }
    settings = EscalationSettings(**stored)
    goals = [load_goal(spec) for spec in settings.goals]
    result = report(settings, goals, doc["figures"]["runs"], doc["figures"]["wall_s"], path.parent)
    env = {k: doc[k] for k in ("machine", "versions", "git")}
    part = next(p for p in PARTS if p.name == "escalation")
    started = datetime.fromisoformat(doc["started_at"])
    _, md = write_part(path.parent, part, result, env, doc["mode"], doc["wall_s"], started)
    return md


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Re-summarise a written escalation.json.")
    parser.add_argument("--rebuild", type=Path, required=True, help="the escalation.json")
    print(rebuild(parser.parse_args().rebuild))
