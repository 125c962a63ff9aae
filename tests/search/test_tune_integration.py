"""AgentSearcher inside real (tiny) Ray Tune experiments.

Ray starts once for the module (2 CPUs, loopback only) and shuts down after it. Trainables are
module-level functions of a few short iterations; only the LLM and, where a test needs a
given action, the feedback signal are scripted.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import cloudpickle, tune
from ray.tune.schedulers import ASHAScheduler
from searcher_fakes import ScriptedProposer, ScriptedRecommender

from agent import Proposal
from feedback import FeedbackStore
from search import RESERVED_KEY, AgentSearcher

pytestmark = pytest.mark.slow

METRIC = "score"


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Workers cannot import this test module by name: ship its trainables by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def invalid_values(config: dict[str, Any]) -> None:
    """Like Ray's `_invalid_objective`: inf, -inf or NaN for high `x`, a value otherwise."""
    x = config["x"]
    for _ in range(2):
        time.sleep(0.2)
        value = (
            float("inf") if x > 4 else float("-inf") if x > 3 else math.nan if x > 2 else x or 0.1
        )
        tune.report({METRIC: value})


def campaign_trainable(config: dict[str, Any]) -> None:
    """Stands in for the lead's trainable: arm-dependent score, final flag, num_params."""
    entry = config[RESERVED_KEY]
    bonus = 0.5 if "model=resnet1d" in entry["overrides"] else 0.0
    lr = config["trainer.lr"]
    epochs = 4
    for epoch in range(1, epochs + 1):
        time.sleep(0.05)
        score = bonus + 1.0 - abs(math.log10(lr) + 2.0) / 3.0 + 0.01 * epoch
        tune.report(
            {
                METRIC: score,
                "num_params": 1000,
                "model": entry["model"] or "cnn1d",
                "agentune_final": epoch == epochs,
            },
        )


def flaky_trainable(config: dict[str, Any]) -> None:
    """Fails the first time it sees a config with high lr; a marker file makes reruns pass."""
    marker = Path(config["marker"])
    if config["trainer.lr"] > 0.01 and not marker.exists():
        raise RuntimeError("first attempt fails")
    tune.report({METRIC: config["trainer.lr"], "agentune_final": True})


SPACE = {"trainer.lr": tune.loguniform(1e-4, 1e-1)}


def each(grid: tune.ResultGrid) -> list[tune.Result]:
    return [grid[i] for i in range(len(grid))]


def run_config(tmp_path: Path, name: str) -> tune.RunConfig:
    return tune.RunConfig(name=name, storage_path=str(tmp_path / "ray_results"), verbose=0)


def test_drop_in_param_space_parallel_trials_and_invalid_values(tmp_path: Path) -> None:
    searcher = AgentSearcher(seed=3)  # its first 6 points give a value, NaN, -inf and inf
    tuner = tune.Tuner(
        invalid_values,
        param_space={"x": tune.uniform(0.0, 5.0), "list": [1, 2, 3], "num": 4},
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            metric=METRIC,
            mode="max",
            num_samples=6,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=run_config(tmp_path, "dropin"),
    )
    results = tuner.fit()
    assert len(results) == 6 and not results.errors
    best = results.get_best_result().config
    assert best is not None
    assert best["x"] <= 2.0  # NaN/inf trials never win
    assert best["list"] == [1, 2, 3] and best["num"] == 4  # constants kept
    assert RESERVED_KEY not in best  # drop-in: plain configs
    # max_concurrent_trials lets Tune ask for a second trial while the first still runs
    # (without it Tune keeps one pending trial for a custom searcher). The Tuner drives the
    # very object passed in.
    summary = searcher.state_summary()
    assert summary["n_results"] == 6 and summary["peak_pending"] == 2
    # Tune checkpointed the searcher (save() ran without error).
    assert list((tmp_path / "ray_results" / "dropin").glob("searcher-state-*.pkl"))


class ChangeModelUntil:
    """Recommends `change_model` until arm `arm` has `n` runs, then `stop`.

    The proposal arrives whenever the proposer thread finishes (timing varies with load);
    stopping on the arm's runs rather than a trial count keeps the test deterministic.
    """

    def __init__(self, arm: str, n: int) -> None:
        self.arm, self.n = arm, n

    def __call__(self, history: Any) -> Any:
        done = history.column("arm").to_pylist().count(self.arm) >= self.n
        return ScriptedRecommender(["stop" if done else "change_model"])(history)


def test_campaign_asha_escalation_and_store(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    proposer = ScriptedProposer(
        [[Proposal(name="resnet", tier=2, overrides=["model=resnet1d"], rationale="try it")]]
    )
    searcher = AgentSearcher(
        SPACE,
        metric=METRIC,  # no param_space: Tune would not pass TuneConfig's metric/mode on
        mode="max",
        seed=0,
        proposer=proposer,
        store=store,
        campaign="ecg",
        base_overrides=["model=cnn1d"],
        models=["cnn1d", "resnet1d"],
        min_trials_per_arm=2,
        max_agent_requests=1,
        recommender=ChangeModelUntil("resnet", 2),
        constraints={"num_params": ("<=", 10_000)},
    )
    tuner = tune.Tuner(
        campaign_trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            metric=METRIC,
            mode="max",
            num_samples=40,  # a cap: the recommender stops once the new arm has its trials
            max_concurrent_trials=2,
            reuse_actors=True,
            scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
        ),
        run_config=run_config(tmp_path, "campaign"),
    )
    results = tuner.fit()
    assert len(results) < 40 and not results.errors
    records = store.runs(campaign="ecg")
    assert len(records) == len(results)
    by_trial = {r.trial_id: r for r in records}
    for result in each(results):
        assert result.metrics is not None and result.config is not None
        record = by_trial[result.metrics["trial_id"]]
        # ASHA-stopped trials (fewer than 4 epochs) are pruned, the others completed.
        stopped = result.metrics["training_iteration"] < 4
        assert record.status == ("pruned" if stopped else "completed")
        assert record.arm == result.config[RESERVED_KEY]["arm"]
        assert record.params["trainer.lr"] == result.config["trainer.lr"]
    # The escalation asked once for tier 2; the new arm ran its trials with its overrides.
    assert proposer.calls == 1 and proposer.contexts[0].tier == 2
    resnet = [r for r in records if r.arm == "resnet"]
    assert len(resnet) >= 2
    assert all(r.tier == 2 and r.overrides == ["model=resnet1d"] for r in resnet)
    assert {e.kind for e in store.events(campaign="ecg")} >= {"escalation", "note"}


def test_asha_stopped_trials_are_recorded_as_pruned(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    # Run in this order, one at a time, the first is the best: ASHA (grace period 1,
    # reduction factor 2) stops each later trial at its first rung.
    points = [{"trainer.lr": lr} for lr in (1e-2, 1e-4, 2e-4, 3e-4)]
    searcher = AgentSearcher(
        SPACE, METRIC, "max", seed=0, store=store, campaign="ecg", points_to_evaluate=points
    )
    tuner = tune.Tuner(
        campaign_trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=4,
            max_concurrent_trials=1,
            reuse_actors=True,
            scheduler=ASHAScheduler(
                metric=METRIC, mode="max", max_t=4, grace_period=1, reduction_factor=2
            ),
        ),
        run_config=run_config(tmp_path, "asha"),
    )
    results = tuner.fit()
    assert not results.errors
    statuses = {r.params["trainer.lr"]: r.status for r in store.runs(campaign="ecg")}
    assert statuses == {1e-2: "completed", 1e-4: "pruned", 2e-4: "pruned", 3e-4: "pruned"}
    base = searcher.arms_by_name["base"]
    assert [t.state.name for t in base.study.trials] == ["COMPLETE"] + ["PRUNED"] * 3


class StopAfter:
    """Recommends `stop` once the history holds `n` runs."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, history: Any) -> Any:
        return ScriptedRecommender(["stop" if history.num_rows >= self.n else "continue"])(history)


def test_stop_ends_the_experiment_early(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    searcher = AgentSearcher(
        SPACE, METRIC, "max", seed=1, store=store, campaign="ecg", recommender=StopAfter(3)
    )
    tuner = tune.Tuner(
        campaign_trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            metric=METRIC,
            mode="max",
            num_samples=20,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=run_config(tmp_path, "stop"),
    )
    results = tuner.fit()
    assert 3 <= len(results) <= 4  # stop after the 3rd; at most one more was running
    assert len(store.runs(campaign="ecg")) == len(results)
    assert not results.errors


def test_restored_experiment_reruns_errored_trials_under_new_ids(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    marker = tmp_path / "second-attempt"
    searcher = AgentSearcher(SPACE, seed=1, store=store, campaign="ecg")  # 1 of 3 fails
    param_space = {"marker": str(marker)}
    tuner = tune.Tuner(
        flaky_trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            metric=METRIC,
            mode="max",
            num_samples=3,
            # The ConcurrencyLimiter it adds would drop the reruns' completions (ids it never
            # handed out) if the searcher did not enforce the limit itself.
            max_concurrent_trials=2,
        ),
        run_config=run_config(tmp_path, "flaky"),
    )
    first = tuner.fit()
    assert first.errors
    records = store.runs(campaign="ecg")
    assert {r.status for r in records} == {"completed", "failed"}, "the seed must give both"
    n_failed = sum(r.status == "failed" for r in records)

    marker.touch()
    restored = tune.Tuner.restore(
        str(tmp_path / "ray_results" / "flaky"), flaky_trainable, restart_errored=True
    )
    second = restored.fit()
    assert not second.errors
    records = store.runs(campaign="ecg")
    reruns = [r for r in records if r.status == "completed" and r.value and r.value > 0.01]
    assert len(reruns) == n_failed  # each errored trial reran and was recorded as completed
    # Tune reran them under trial ids the searcher never suggested: it used their configs.
    failed_ids = {r.trial_id for r in records if r.status == "failed"}
    assert failed_ids.isdisjoint(r.trial_id for r in reruns)
    failed_lrs = sorted(float(r.params["trainer.lr"] or 0) for r in records if r.status == "failed")
    assert sorted(float(r.params["trainer.lr"] or 0) for r in reruns) == failed_lrs
