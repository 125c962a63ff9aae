"""Part ``overhead``: what AgentSearcher costs per trial, against Tune's `OptunaSearch`.

Three measurements, each paired in one run so the ratios hold on a loaded machine:

* latency of ``suggest`` + ``on_trial_complete`` at 100, 1,000 and 10,000 completed trials
  (quick: 100 and 1,000), median and p95: `AgentSearcher` without a store, `AgentSearcher`
  with a campaign store (``store=FeedbackStore(tmp)``, the store holding as many runs as the
  history), and `OptunaSearch` with TPE. The history is filled with `add_evaluated_point`
  (both searchers have it), then the three searchers are timed in turns, call by call;
* ``suggest`` latency while an agent proposal is pending (a proposer that blocks like a slow
  LLM) against no proposer, on a history of 50 finished trials (the figure of the former
  ``bench/searcher_latency.py``; target: median < 10 ms);
* wall time of 200 trivial trials through `tune.Tuner` with each searcher, two at a time
  (``max_concurrent_trials=2``, ``reuse_actors=True``), in ABBA order across repeats, with
  random search (`BasicVariantGenerator`) as Tune's own floor.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import searchers
from bench.plots import COLOURS, save, subplots
from bench.stats import median_p95, paired_ratio
from bench.suite import PartResult, RunContext, Target

logger = logging.getLogger(__name__)

METRIC = "val/macro_f1"
LATENCY_KINDS = ("agent", "agent_store", "tpe")
LABELS = {
    "agent": "AgentSearcher",
    "agent_store": "AgentSearcher + store",
    "tpe": "OptunaSearch TPE",
    "random": "random",
}
PENDING_TARGET_MS = 10.0


@dataclass(frozen=True)
class OverheadSettings:
    """Sizes of one mode.

    Attributes:
        histories: completed trials before timing.
        calls: timed calls per searcher and history size.
        pending_history: finished trials before the pending-proposal timing.
        pending_calls: timed suggests with a proposal pending (and without).
        tune_trials: trivial trials per Tune run.
        tune_repeats: Tune runs per searcher (ABBA order).
    """

    histories: tuple[int, ...]
    calls: int
    pending_history: int
    pending_calls: int
    tune_trials: int
    tune_repeats: int


SETTINGS = {
    "smoke": OverheadSettings((20, 50), 5, 10, 10, 10, 1),
    "quick": OverheadSettings((100, 1000), 50, 50, 100, 200, 2),
    "full": OverheadSettings((100, 1000, 10_000), 60, 50, 300, 200, 3),
}


def space() -> dict[str, Any]:
    """A campaign-like Tune space: log, uniform, stepped ints and floats, a choice."""
    from ray import tune

    return {
        "trainer.lr": tune.loguniform(1e-4, 1e-1),
        "trainer.weight_decay": tune.uniform(0.0, 0.1),
        "model.width": tune.qrandint(16, 128, 16),
        "model.depth": tune.randint(1, 6),
        "model.dropout": tune.quniform(0.0, 0.5, 0.1),
        "trainer.optimizer": tune.choice(["adamw", "sgd"]),
    }


def score(config: dict[str, Any]) -> float:
    """A cheap, smooth objective over `space` (higher is better)."""
    lr = float(config["trainer.lr"])
    return float(1.0 - abs(np.log10(lr) + 2.5) * 0.1 - 0.001 * int(config["model.depth"]))


def random_history(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` configs drawn from `space` (what add_evaluated_point replays)."""
    rng = np.random.default_rng(seed)
    return [
        {
            "trainer.lr": float(10 ** rng.uniform(-4, -1)),
            "trainer.weight_decay": float(rng.uniform(0, 0.1)),
            "model.width": int(rng.integers(1, 9) * 16),
            "model.depth": int(rng.integers(1, 6)),
            "model.dropout": round(float(rng.integers(0, 6)) * 0.1, 1),
            "trainer.optimizer": str(rng.choice(["adamw", "sgd"])),
        }
        for _ in range(n)
    ]


def build(kind: str, history: int, store_root: Path | None) -> Any:
    """A configured searcher of `kind` holding `history` completed trials."""
    from feedback import FeedbackStore
    from search import AgentSearcher

    if kind == "tpe":
        alg = searchers.build("tpe", 0)
    elif kind == "agent_store":
        if store_root is None:
            raise ValueError("kind 'agent_store' needs a store folder; got store_root=None.")
        from bench.feedback_common import write_store_like_appends

        write_store_like_appends(store_root, history)  # the store holds the history too
        alg = AgentSearcher(seed=0, store=FeedbackStore(store_root))
    else:
        alg = AgentSearcher(seed=0)
    if not alg.set_search_properties(METRIC, "max", space()):
        raise RuntimeError(f"{type(alg).__name__} refused the benchmark space")
    for config in random_history(history):
        alg.add_evaluated_point(config, score(config))
    return alg


def time_calls(algs: dict[str, Any], calls: int) -> dict[str, dict[str, list[float]]]:
    """Per searcher, ms of `suggest`, `on_trial_complete` and their sum; the searchers take
    turns call by call, so a load spike on the machine hits them alike."""
    out: dict[str, dict[str, list[float]]] = {
        k: {"suggest": [], "complete": [], "total": []} for k in algs
    }
    kinds = list(algs)
    for i in range(calls):
        # rotate who goes first: caches warmed by the previous searcher favour no one
        for kind in kinds[i % len(kinds) :] + kinds[: i % len(kinds)]:
            alg = algs[kind]
            trial_id = f"timed{i:05d}"
            t0 = time.perf_counter()
            config = alg.suggest(trial_id)
            t1 = time.perf_counter()
            alg.on_trial_complete(trial_id, {METRIC: score(config), "training_iteration": 1})
            t2 = time.perf_counter()
            out[kind]["suggest"].append((t1 - t0) * 1e3)
            out[kind]["complete"].append((t2 - t1) * 1e3)
            out[kind]["total"].append((t2 - t0) * 1e3)
    return out


def latency(ctx: RunContext, settings: OverheadSettings) -> dict[str, Any]:
    """`time_calls` at every history size (the JSON's ``latency``)."""
    ctx.reporter.start(len(settings.histories), "overhead: suggest + complete latency")
    rows: dict[str, Any] = {}
    for history in settings.histories:
        with ctx.work_dir("store") as tmp:
            algs = {k: build(k, history, tmp / "history") for k in LATENCY_KINDS}
            timed = time_calls(algs, settings.calls)
        rows[str(history)] = {
            k: {part: median_p95(v) for part, v in parts.items()} for k, parts in timed.items()
        }
        # calls are paired by round: agent call i against OptunaSearch call i
        rows[str(history)]["ratios"] = {
            f"{k}/tpe": paired_ratio(timed[k]["total"], timed["tpe"]["total"]).as_dict()
            for k in ("agent", "agent_store")
        }
        ctx.reporter.advance(f"overhead: latency at {history} trials")
    return rows


# ----------------------------------------------------------------------------- pending


_RELEASE = threading.Event()  # module level: the proposer is pickled, an Event is not


class BlockingProposer:
    """Stands in for a slow LLM: returns nothing until the benchmark releases it."""

    def __init__(self) -> None:
        self.calls = 0

    def propose(self, context: Any, n: int) -> list[Any]:
        """Block until released (at most 10 minutes), then propose nothing."""
        self.calls += 1
        _RELEASE.wait(timeout=600)
        return []


@dataclass(frozen=True)
class _Recommendation:
    action: str = "change_model"
    reasons: tuple[str, ...] = ("benchmark",)


class AlwaysChangeModel:
    """A recommender that asks for a new model after every trial."""

    def __call__(self, history: Any) -> _Recommendation:
        """Always `change_model`."""
        return _Recommendation()


def _suggest_loop(alg: Any, calls: int, prefix: str) -> list[float]:
    out: list[float] = []
    for i in range(calls):
        t0 = time.perf_counter()
        config = alg.suggest(f"{prefix}{i}")
        out.append((time.perf_counter() - t0) * 1e3)
        if not isinstance(config, dict):
            raise RuntimeError(f"AgentSearcher.suggest returned {config!r}, not a config")
        alg.on_trial_complete(f"{prefix}{i}", {METRIC: score(config), "agentune_final": True})
    return out


def pending(settings: OverheadSettings) -> dict[str, Any]:
    """suggest latency while a proposer call is pending, and with no proposer."""
    from search import AgentSearcher

    spec = space()
    _RELEASE.clear()
    busy = AgentSearcher(
        spec, metric=METRIC, mode="max", seed=0,
        proposer=BlockingProposer(), recommender=AlwaysChangeModel(),
    )  # fmt: skip
    try:
        _suggest_loop(busy, settings.pending_history, "h")  # a completion starts the call
        was_pending = busy.proposal_pending
        timed_busy = _suggest_loop(busy, settings.pending_calls, "p")
        still_pending = was_pending and busy.proposal_pending
    finally:
        _RELEASE.set()
        busy.close()
    idle = AgentSearcher(spec, metric=METRIC, mode="max", seed=0)
    _suggest_loop(idle, settings.pending_history, "h")
    timed_idle = _suggest_loop(idle, settings.pending_calls, "b")
    return {
        "history": settings.pending_history,
        "calls": settings.pending_calls,
        "proposal_pending_throughout": still_pending,
        "suggest_while_pending_ms": median_p95(timed_busy),
        "suggest_no_proposer_ms": median_p95(timed_idle),
    }


# ----------------------------------------------------------------------------- Tune


def _trivial(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({METRIC: score(config)})


def tune_wall(ctx: RunContext, settings: OverheadSettings) -> dict[str, Any]:
    """Wall time of `settings.tune_trials` trivial trials through Tune, per searcher."""
    from ray import tune

    ctx.ensure_ray()
    order: list[str] = []
    for r in range(settings.tune_repeats):  # ABBA: drifting load hits both alike
        pair = ["tpe", "agent"] if r % 2 == 0 else ["agent", "tpe"]
        order += pair
    order.append("random")
    ctx.reporter.start(len(order), f"overhead: {settings.tune_trials} trivial trials in Tune")
    walls: dict[str, list[float]] = {}
    with ctx.work_dir("tune") as storage:
        for kind in order:
            tuner = tune.Tuner(
                _trivial,
                param_space=space(),
                tune_config=tune.TuneConfig(
                    search_alg=searchers.build(kind, 0),
                    metric=METRIC,
                    mode="max",
                    num_samples=settings.tune_trials,
                    max_concurrent_trials=2,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(storage_path=str(storage), verbose=0),
            )
            t0 = time.perf_counter()
            grid = tuner.fit()
            walls.setdefault(kind, []).append(time.perf_counter() - t0)
            if grid.errors or len(grid) != settings.tune_trials:
                raise RuntimeError(
                    f"Tune run with {kind} finished {len(grid)} of {settings.tune_trials} "
                    f"trials, {len(grid.errors)} errors: {grid.errors[:1]}"
                )
            ctx.reporter.advance(f"overhead: Tune with {LABELS[kind]}")
    mean = {k: float(np.mean(v)) for k, v in walls.items()}
    return {
        "trials": settings.tune_trials,
        "order": order,
        "wall_s": walls,
        "mean_wall_s": mean,
        "s_per_trial": {k: v / settings.tune_trials for k, v in mean.items()},
        "ratio_agent_to_tpe": mean["agent"] / mean["tpe"],
    }


# ----------------------------------------------------------------------------- report


def _ratio(r: dict[str, Any]) -> str:
    interval = "" if r["low"] is None else f" [{r['low']:.2f}, {r['high']:.2f}]"
    return f"{r['ratio']:.2f}x{interval}"


def _table(figures: dict[str, Any]) -> str:
    lat = figures["latency"]
    lines = [
        "`suggest` + `on_trial_complete` latency, ms, median (p95), searchers timed in turns; "
        "ratios: geometric mean of per-call ratios [paired 95 % interval]:",
        "",
        "| completed trials | " + " | ".join(LABELS[k] for k in LATENCY_KINDS)
        + " | AgentSearcher / OptunaSearch | with store / OptunaSearch |",
        "|---" * (len(LATENCY_KINDS) + 3) + "|",
    ]  # fmt: skip
    split = []
    for history, row in lat.items():
        cells = [
            f"{row[k]['total']['median']:.2f} ({row[k]['total']['p95']:.2f})" for k in LATENCY_KINDS
        ]
        ratios = [_ratio(row["ratios"][f"{k}/tpe"]) for k in ("agent", "agent_store")]
        lines.append(f"| {int(history):,} | " + " | ".join(cells + ratios) + " |")
        split.append(
            f"{int(history):,}: "
            + ", ".join(
                f"{LABELS[k]} {row[k]['suggest']['median']:.2f} + "
                f"{row[k]['complete']['median']:.2f}"
                for k in LATENCY_KINDS
            )
        )
    lines += ["", "Median ms of `suggest` + `on_trial_complete` separately: " + "; ".join(split)]
    t = figures["tune"]
    lines += [
        "",
        f"Wall time of {t['trials']} trivial trials through `tune.Tuner` (2 at a time, "
        "reuse_actors), mean over runs:",
        "",
        "| searcher | runs (s) | s per trial | ratio to OptunaSearch TPE |",
        "|---|---|---|---|",
    ]
    for kind, walls in t["wall_s"].items():
        runs = ", ".join(f"{w:.1f}" for w in walls)
        ratio = t["mean_wall_s"][kind] / t["mean_wall_s"]["tpe"]
        lines.append(
            f"| {LABELS[kind]} | {runs} | {t['s_per_trial'][kind] * 1e3:.0f} ms | {ratio:.2f}x |"
        )
    p = figures["pending"]
    lines += [
        "",
        f"AgentSearcher `suggest` with an agent proposal pending, {p['history']} trials "
        f"finished, {p['calls']} calls: median {p['suggest_while_pending_ms']['median']:.2f} ms "
        f"(p95 {p['suggest_while_pending_ms']['p95']:.2f}); with no proposer "
        f"{p['suggest_no_proposer_ms']['median']:.2f} ms "
        f"(p95 {p['suggest_no_proposer_ms']['p95']:.2f}); pending throughout: "
        f"{p['proposal_pending_throughout']}.",
    ]
    return "\n".join(lines)


def _plot(figures: dict[str, Any], path: Path) -> Path:
    fig, axes = subplots(1, 2, width=4.0, height=3.0)
    ax = axes[0, 0]
    sizes = [int(h) for h in figures["latency"]]
    for kind in LATENCY_KINDS:
        med = [figures["latency"][str(h)][kind]["total"]["median"] for h in sizes]
        p95 = [figures["latency"][str(h)][kind]["total"]["p95"] for h in sizes]
        ax.plot(sizes, med, "o-", color=COLOURS[kind], label=LABELS[kind])
        ax.plot(sizes, p95, ":", color=COLOURS[kind], lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("completed trials", fontsize=8)
    ax.set_ylabel("ms per suggest + complete (dotted: p95)", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    t = figures["tune"]
    kinds = list(t["mean_wall_s"])
    ax.bar(
        [LABELS[k] for k in kinds],
        [t["mean_wall_s"][k] for k in kinds],
        color=[COLOURS[k] for k in kinds],
    )
    ax.set_ylabel(f"s for {t['trials']} trivial Tune trials", fontsize=8)
    ax.tick_params(labelsize=7)
    return save(fig, path)


def _targets(figures: dict[str, Any]) -> list[Target]:
    ratios = {h: row["ratios"]["agent/tpe"]["ratio"] for h, row in figures["latency"].items()}
    tune_ratio = figures["tune"]["ratio_agent_to_tpe"]
    pend = figures["pending"]["suggest_while_pending_ms"]["median"]
    return [
        Target(
            "AgentSearcher latency at most 1.0x OptunaSearch's at every history size",
            all(r <= 1.0 for r in ratios.values()),
            ", ".join(
                f"{_ratio(figures['latency'][h]['ratios']['agent/tpe'])} at {int(h):,}"
                for h in ratios
            ),
        ),
        Target(
            "Tune wall time with AgentSearcher at most 1.1x that with OptunaSearch",
            tune_ratio <= 1.1,
            f"{tune_ratio:.2f}x",
        ),
        Target(
            f"suggest median < {PENDING_TARGET_MS:g} ms while a proposal is pending",
            pend < PENDING_TARGET_MS and figures["pending"]["proposal_pending_throughout"],
            f"{pend:.2f} ms",
        ),
    ]


def run(ctx: RunContext) -> PartResult:
    """The part (see the module docstring)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings: OverheadSettings = SETTINGS[ctx.mode]
    figures: dict[str, Any] = {"settings": asdict(settings)}
    figures["latency"] = latency(ctx, settings)
    ctx.reporter.start(1, "overhead: suggest with a proposal pending")
    figures["pending"] = pending(settings)
    ctx.reporter.advance()
    figures["tune"] = tune_wall(ctx, settings)
    return PartResult(
        figures=figures,
        table=_table(figures),
        targets=_targets(figures),
        plots=[_plot(figures, ctx.results_dir / "overhead.png")],
        notes=[
            f"{settings.calls} timed calls per searcher and history size; the history is "
            "filled with add_evaluated_point; the store holds as many synthetic runs as the "
            "history (bench.feedback_common).",
        ],
    )
