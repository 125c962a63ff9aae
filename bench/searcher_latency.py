"""Benchmark: `AgentSearcher.suggest` latency while a proposer call is pending.

    python bench/searcher_latency.py                  # 300 suggests, 50 finished trials first
    python bench/searcher_latency.py --history 200 --calls 500 --store

The proposer blocks (a slow LLM) until the benchmark ends, so every measured `suggest` runs
with a proposal pending; a baseline without a proposer is measured on the same history for
comparison. With `--store`, every completion also writes a record to a real `FeedbackStore`
and reads the recommendation (the cost lands in `on_trial_complete`, not in `suggest`).
Target: median `suggest` latency < 10 ms while a proposal is pending. A benchmark, not a
test: numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from agent import Proposal, ProposalContext
from feedback import FeedbackStore
from search import AgentSearcher

METRIC = "val/macro_f1"
SPACE: dict[str, Any] = {
    "trainer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "trainer.weight_decay": {"type": "uniform", "low": 0.0, "high": 0.1},
    "model.width": {"type": "qrandint", "low": 16, "high": 128, "q": 16},
    "model.depth": {"type": "randint", "low": 1, "high": 6},
    "model.dropout": {"type": "quniform", "low": 0.0, "high": 0.5, "q": 0.1},
    "trainer.optimizer": {"type": "choice", "values": ["adamw", "sgd"]},
}
_RELEASE = threading.Event()


class BlockingProposer:
    """Stands in for a slow LLM: returns nothing until the benchmark releases it."""

    def __init__(self) -> None:
        self.calls = 0

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
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
        return _Recommendation()


def score(config: dict[str, Any]) -> float:
    lr = float(config["trainer.lr"])
    return 1.0 - abs(lr - 3e-3) * 10 - 0.001 * int(config["model.depth"])


def final(value: float) -> dict[str, Any]:
    return {METRIC: value, "agentune_final": True, "training_iteration": 5, "num_params": 1000}


def measure(searcher: AgentSearcher, calls: int, prefix: str) -> list[float]:
    """Latencies (ms) of `calls` suggests, completing each trial right after (timed apart)."""
    out: list[float] = []
    for i in range(calls):
        t0 = time.perf_counter()
        config = searcher.suggest(f"{prefix}{i}")
        out.append((time.perf_counter() - t0) * 1e3)
        assert isinstance(config, dict)
        searcher.on_trial_complete(f"{prefix}{i}", final(score(config)))
    return out


def build(history: int, with_proposer: bool, store_dir: Path | None) -> AgentSearcher:
    kwargs: dict[str, Any] = {}
    if with_proposer:
        kwargs.update(proposer=BlockingProposer(), recommender=AlwaysChangeModel())
    if store_dir is not None:
        kwargs.update(store=FeedbackStore(store_dir), campaign="bench")
    searcher = AgentSearcher(SPACE, metric=METRIC, mode="max", seed=0, **kwargs)
    measure(searcher, history, "h")  # history; the first completion starts the proposer call
    return searcher


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=50, help="finished trials before timing")
    parser.add_argument("--calls", type=int, default=300, help="timed suggest calls")
    parser.add_argument("--store", action="store_true", help="write records to a FeedbackStore")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        store_a = Path(tmp) / "a" if args.store else None
        store_b = Path(tmp) / "b" if args.store else None
        pending = build(args.history, True, store_a)
        if not pending.proposal_pending:
            raise SystemExit("the proposer call is not pending: the benchmark is invalid")
        timed_pending = measure(pending, args.calls, "p")
        still_pending = pending.proposal_pending
        _RELEASE.set()
        pending.close()
        baseline = build(args.history, False, store_b)
        timed_base = measure(baseline, args.calls, "b")

    print(
        json.dumps(
            {
                "history": args.history,
                "calls": args.calls,
                "store": args.store,
                "proposal_pending_throughout": still_pending,
                "suggest_while_pending": summary(timed_pending),
                "suggest_no_proposer": summary(timed_base),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
