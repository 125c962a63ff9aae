"""AgentSearcher's contracts, called method by method the way Ray's own searcher tests do.

Only the LLM (the proposer) and, where a test needs a given action, the feedback signal are
scripted (see searcher_fakes.py); Optuna studies and the feedback store are real.
"""

from __future__ import annotations

import copy
import math
import pickle
import time
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState
from ray import cloudpickle, tune
from ray.tune.search import ConcurrencyLimiter, Searcher
from searcher_fakes import (
    TINY_MODEL_SOURCE,
    ScriptedProposer,
    ScriptedRecommender,
    close_gate,
    final_result,
    open_gate,
)

from agent import AgentError, Proposal
from feedback import FeedbackStore
from search import BASE_ARM, RESERVED_KEY, AgentSearcher

METRIC = "val/macro_f1"
SPACE: dict[str, Any] = {
    "trainer.lr": tune.loguniform(1e-4, 1e-1),
    "model.width": tune.choice([16, 32, 64]),
    "model.depth": tune.randint(1, 5),
}
MODELS = ["cnn1d", "resnet1d", "encoder_classifier"]


def drop_in(**kwargs: Any) -> AgentSearcher:
    return AgentSearcher(SPACE, metric=METRIC, mode="max", seed=0, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "history")


@pytest.fixture
def gate() -> Iterator[str]:
    name = f"gate-{time.monotonic_ns()}"
    close_gate(name)
    yield name
    open_gate(name)  # never leave a worker thread blocked


def campaign(store: FeedbackStore, **kwargs: Any) -> AgentSearcher:
    kwargs.setdefault("recommender", ScriptedRecommender(["continue"]))
    return AgentSearcher(
        SPACE,
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        base_overrides=["model=cnn1d"],
        models=MODELS,
        **kwargs,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until `condition()` (the proposer runs on a thread); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


def study_states(searcher: AgentSearcher, arm: str = BASE_ARM) -> list[TrialState]:
    return [t.state for t in searcher.arms_by_name[arm].study.trials]


# --------------------------------------------------------------------- drop-in behaviour


def test_drop_in_suggests_plain_configs_inside_the_space() -> None:
    searcher = drop_in()
    for i in range(5):
        config = searcher.suggest(f"t{i}")
        assert config is not None
        assert set(config) == {"trainer.lr", "model.width", "model.depth"}
        assert 1e-4 <= config["trainer.lr"] <= 1e-1
        assert config["model.width"] in (16, 32, 64)
        assert config["model.depth"] in (1, 2, 3, 4)


def test_same_seed_same_suggestions_and_tpe_learns() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        searcher = AgentSearcher(
            {"x": tune.uniform(0, 1)},
            metric="m",
            mode="max",
            seed=seed,
            tpe_kwargs={"n_startup_trials": 3},
        )
        configs = []
        for i in range(20):
            config = searcher.suggest(str(i))
            assert config is not None
            configs.append(config)
            searcher.on_trial_complete(str(i), {"m": -((config["x"] - 0.8) ** 2)})
        return configs

    a, b = run(7), run(7)
    assert a == b
    assert run(8) != a
    # After the random start-up, TPE samples near the optimum far more often than chance
    # (uniform sampling would put 4 of 10 within 0.2 of it).
    late = [c["x"] for c in a[10:]]
    assert sum(abs(x - 0.8) < 0.2 for x in late) >= 6


def test_nested_param_space_comes_back_nested() -> None:
    searcher = AgentSearcher(metric="m", mode="min", seed=0)
    assert searcher.set_search_properties(
        None, None, {"trainer": {"lr": tune.uniform(0, 1), "epochs": 2}}
    )
    config = searcher.suggest("a")
    assert config is not None and set(config) == {"trainer"}
    assert set(config["trainer"]) == {"lr"}  # constants are left to Tune


def test_space_metric_and_mode_from_set_search_properties() -> None:
    searcher = AgentSearcher(seed=0)
    with pytest.raises(RuntimeError, match="no search space"):
        searcher.suggest("x")
    assert searcher.set_search_properties(METRIC, "max", dict(SPACE))
    assert (searcher.metric, searcher.mode) == (METRIC, "max")
    assert searcher.suggest("x") is not None


def test_missing_metric_raises_a_clear_error() -> None:
    searcher = AgentSearcher(SPACE, seed=0)
    with pytest.raises(RuntimeError, match="needs a metric and a mode"):
        searcher.suggest("x")


def test_set_search_properties_refuses_a_second_space() -> None:
    searcher = drop_in()
    assert searcher.set_search_properties(METRIC, "max", {"other": tune.uniform(0, 1)}) is False
    # A param_space of constants only is fine (Tune merges them into the configs).
    assert searcher.set_search_properties(METRIC, "max", {"epochs": 3}) is True


def test_constructor_metric_wins_and_set_search_properties_fills_gaps() -> None:
    searcher = AgentSearcher(SPACE, metric="loss", seed=0)
    searcher.set_search_properties("acc", "min", {})
    assert (searcher.metric, searcher.mode) == ("loss", "min")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        AgentSearcher(SPACE, metric="m", mode="maximize")
    with pytest.raises(TypeError, match="one metric"):
        AgentSearcher(SPACE, metric=["a", "b"], mode="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="constraint 'num_params'"):
        AgentSearcher(SPACE, constraints={"num_params": ("<<", 3)})


# --------------------------------------------------------------------- invalid results


@pytest.mark.parametrize(
    "result",
    [
        {METRIC: float("nan")},
        {METRIC: float("inf")},
        {METRIC: float("-inf")},
        {"other": 1.0},
        {},
        None,
    ],
)
def test_nan_inf_or_missing_metric_is_a_failure(result: dict[str, Any] | None) -> None:
    searcher = drop_in()
    searcher.suggest("a")
    searcher.on_trial_complete("a", result)
    assert study_states(searcher) == [TrialState.FAIL]
    assert searcher.suggest("b") is not None  # and the searcher goes on


def test_error_is_recorded_as_failure(store: FeedbackStore) -> None:
    searcher = campaign(store)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {METRIC: 0.9, "error": "boom"}, error=True)
    assert study_states(searcher) == [TrialState.FAIL]
    (record,) = store.runs(campaign="ecg")
    assert (record.status, record.value, record.error) == ("failed", None, "boom")


def test_results_after_completion_are_ignored() -> None:
    searcher = drop_in()
    searcher.suggest("a")
    searcher.on_trial_result("a", {"training_iteration": 1, METRIC: 0.1})
    searcher.on_trial_complete("a", {"training_iteration": 2, METRIC: 0.5})
    searcher.on_trial_result("a", {"training_iteration": 3, METRIC: 0.9})
    searcher.on_trial_complete("a", {"training_iteration": 4, METRIC: 0.9})
    (trial,) = searcher.arms_by_name[BASE_ARM].study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5
    assert trial.intermediate_values == {1: 0.1}
    assert searcher.arms_by_name[BASE_ARM].n_results == 1


# --------------------------------------------------------------------- trial status mapping


@pytest.mark.parametrize(
    ("result", "status", "state"),
    [
        (final_result(METRIC, 0.8, num_params=10), "completed", TrialState.COMPLETE),
        # a trainable that never reports the final flag finished normally
        (
            {METRIC: 0.4, "training_iteration": 1, "num_params": 10},
            "completed",
            TrialState.COMPLETE,
        ),
        (final_result(METRIC, 0.4, num_params=10, status="stopped"), "pruned", TrialState.PRUNED),
        ({METRIC: 0.4, "agentune_final": False, "num_params": 10}, "pruned", TrialState.PRUNED),
        (final_result(METRIC, float("nan"), status="diverged"), "diverged", TrialState.FAIL),
        (final_result(METRIC, 0.9, num_params=10**6), "infeasible", TrialState.COMPLETE),
        (final_result(METRIC, 0.9), "infeasible", TrialState.COMPLETE),  # not reported
        (final_result(METRIC, None, num_params=10), "failed", TrialState.FAIL),
    ],
)
def test_campaign_status_mapping(
    store: FeedbackStore, result: dict[str, Any], status: str, state: TrialState
) -> None:
    searcher = campaign(store, constraints={"num_params": ("<=", 100_000)})
    searcher.suggest("a")
    searcher.on_trial_complete("a", result)
    (record,) = store.runs(campaign="ecg")
    assert record.status == status
    (trial,) = searcher.arms_by_name[BASE_ARM].study.trials
    assert trial.state == state
    if status == "infeasible":
        assert max(trial.constraints.values()) > 0  # TPE treats it as infeasible
        assert searcher.arms_by_name[BASE_ARM].best_value is None
    if status == "pruned":
        assert trial.intermediate_values  # ranks the pruned trial in TPE


def test_trial_removed_before_it_ran_is_closed_but_not_recorded(store: FeedbackStore) -> None:
    searcher = campaign(store)
    searcher.suggest("a")
    searcher.on_trial_complete("a")  # what Tune sends for a PENDING trial it drops
    assert study_states(searcher) == [TrialState.FAIL]
    assert store.runs(campaign="ecg") == []
    assert searcher.state_summary()["pending"] == []


def test_annotate_false_keeps_configs_plain_but_still_records(store: FeedbackStore) -> None:
    searcher = campaign(store, annotate=False)
    config = searcher.suggest("a")
    assert config is not None and RESERVED_KEY not in config
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert [r.status for r in store.runs(campaign="ecg")] == ["completed"]


def test_drop_in_completion_without_final_flag_is_completed() -> None:
    searcher = drop_in()
    searcher.suggest("a")
    searcher.on_trial_complete("a", {METRIC: 0.3})
    assert study_states(searcher) == [TrialState.COMPLETE]


def test_a_store_alone_records_a_drop_in_search_and_changes_no_decision(
    store: FeedbackStore,
) -> None:
    """A user's trainable that knows nothing of agentune's final flag, with `store=`: every
    trial is completed, the configs stay plain, and twelve equal values (stagnant, and
    'hopeless' by the campaign's signals) do not stop the search."""
    searcher = drop_in(store=store)
    for i in range(12):
        config: Any = searcher.suggest(f"t{i}")  # a config, None (wait) or Searcher.FINISHED
        assert isinstance(config, dict) and RESERVED_KEY not in config
        searcher.on_trial_complete(f"t{i}", {METRIC: 0.5, "training_iteration": 2})
    assert isinstance(searcher.suggest("t12"), dict)  # neither waiting nor FINISHED
    records = store.runs(campaign="default")
    assert len(records) == 12 and {r.status for r in records} == {"completed"}
    assert not [e for e in store.events() if e.kind in ("recommendation", "escalation")]


class RaisingRecommender:
    """A user recommender that fails in two ways: an unknown action, then an exception."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, history: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            return ScriptedRecommender(["retry_later"])(history)
        raise RuntimeError("recommender bug")


def test_on_trial_complete_never_raises(store: FeedbackStore) -> None:
    searcher = campaign(store, recommender=RaisingRecommender())
    for trial in ("a", "b"):
        searcher.suggest(trial)
        searcher.on_trial_complete(trial, final_result(METRIC, 0.5))  # must not raise
    assert [r.status for r in store.runs(campaign="ecg")] == ["completed", "completed"]
    notes = [e.message for e in store.events(campaign="ecg") if e.kind == "note"]
    assert any("RuntimeError: recommender bug" in m for m in notes)
    assert isinstance(searcher.suggest("c"), dict)  # the search goes on (not FINISHED)


def test_record_fields_come_from_the_result(store: FeedbackStore) -> None:
    searcher = campaign(store)
    config = searcher.suggest("a")
    assert config is not None
    result = final_result(
        METRIC,
        0.75,
        trial_id="a",
        num_params=1234,
        best_epoch=2,
        time_total_s=3.5,
        model="cnn1d",
        dataset="mitbih_synth",
        **{"test/macro_f1": 0.7, "agentune_run_id": "ecg-0001"},
    )
    searcher.on_trial_complete("a", result)
    (r,) = store.runs(campaign="ecg")
    assert (r.run_id, r.trial_id, r.arm, r.tier, r.origin) == (
        "ecg-0001",
        "a",
        BASE_ARM,
        0,
        "optuna",
    )
    assert r.overrides == ["model=cnn1d"]
    assert r.params == {k: config[k] for k in SPACE}
    assert (r.value, r.num_params, r.best_epoch, r.epochs_run) == (0.75, 1234, 2, 3)
    assert (r.model, r.dataset, r.test_metrics) == ("cnn1d", "mitbih_synth", {"test/macro_f1": 0.7})
    assert r.duration_s == 3.5 and r.started_at is not None and r.finished_at is not None


# --------------------------------------------------------------------- pickling, save/restore


def test_picklable_with_proposer_pending_trials_and_a_running_worker(
    store: FeedbackStore, gate: str
) -> None:
    proposer = ScriptedProposer([[Proposal(name="r", tier=2, overrides=["model=resnet1d"])]], gate)
    searcher = campaign(store, proposer=proposer, recommender=ScriptedRecommender(["change_model"]))
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert searcher.proposal_pending  # a worker thread and a future exist now
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        clone = loads(dumps(searcher))
        assert isinstance(clone, AgentSearcher)
        assert not clone.proposal_pending  # the handle is dropped, not copied
        # The proposer copy pickled when the call started, not the one the worker mutates.
        assert (
            isinstance(clone._agent.worker.proposer, ScriptedProposer)
            and clone._agent.worker.proposer is not proposer
        )
        assert clone._agent.worker.proposer.calls == 0
        assert clone.state_summary()["pending"] == ["b"]
        assert clone._recorder.store is not None and clone._recorder.store.root == store.root
    open_gate(gate)


def test_the_store_pickles_as_its_root_and_reopens(store: FeedbackStore) -> None:
    searcher = campaign(store)
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    for clone in (pickle.loads(pickle.dumps(store)), copy.copy(store), deepcopy(store)):
        assert isinstance(clone, FeedbackStore) and clone is not store
        assert clone.root == store.root
        assert [r.run_id for r in clone.runs(campaign="ecg")] == ["a"]
    # Only the root and the options travel: the read cache (filled above) is not state.
    assert len(pickle.dumps(store)) < 500
    assert pickle.loads(pickle.dumps(store)).__getstate__() == store.__getstate__()


def test_save_restore_round_trip_into_a_fresh_instance(tmp_path: Path) -> None:
    searcher = drop_in()
    for i in range(4):
        searcher.suggest(f"t{i}")
    searcher.on_trial_complete("t0", {METRIC: 0.4})
    searcher.on_trial_complete("t1", {METRIC: 0.6})
    path = str(tmp_path / "searcher.pkl")
    searcher.save(path)
    assert not list(tmp_path.glob("*.tmp-*"))  # written atomically

    fresh = AgentSearcher()  # no space, metric or mode: all come from the checkpoint
    fresh.restore(path)
    assert (fresh.metric, fresh.mode) == (METRIC, "max")
    assert fresh.state_summary()["pending"] == ["t2", "t3"]
    # Pending trials are still tracked: completing them tells the same Optuna trials.
    fresh.on_trial_complete("t2", {METRIC: 0.9})
    fresh.on_trial_complete("t3", None, error=True)
    trials = fresh.arms_by_name[BASE_ARM].study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert trials[2].value == 0.9
    # The same study continues: the next trial is number 4, and the original is unchanged.
    assert fresh.suggest("t4") is not None
    assert len(fresh.arms_by_name[BASE_ARM].study.trials) == 5
    assert len(searcher.arms_by_name[BASE_ARM].study.trials) == 4


def test_restore_continues_the_same_suggestion_sequence(tmp_path: Path) -> None:
    a = drop_in()
    b = drop_in()
    for s in (a, b):
        for i in range(3):
            s.suggest(str(i))
            s.on_trial_complete(str(i), {METRIC: i / 10})
    a.save(str(tmp_path / "a.pkl"))
    restored = AgentSearcher()
    restored.restore(str(tmp_path / "a.pkl"))
    assert restored.suggest("next") == b.suggest("next")


def test_save_to_dir_and_restore_from_dir(tmp_path: Path) -> None:
    searcher = drop_in()
    searcher.suggest("a")
    searcher.save_to_dir(str(tmp_path), session_str="s1")
    fresh = AgentSearcher()
    fresh.restore_from_dir(str(tmp_path))
    assert fresh.state_summary()["pending"] == ["a"]


def test_restore_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"something": "else"}))
    with pytest.raises(ValueError, match="not an AgentSearcher checkpoint"):
        AgentSearcher().restore(str(path))


def test_restore_reattaches_the_constructor_proposer(tmp_path: Path) -> None:
    saved = drop_in(proposer=ScriptedProposer([[]]))
    saved.save(str(tmp_path / "s.pkl"))
    mine = ScriptedProposer([[]])
    fresh = AgentSearcher(proposer=mine)
    fresh.restore(str(tmp_path / "s.pkl"))
    assert fresh._agent.worker.proposer is mine


def test_deepcopy_is_independent() -> None:
    searcher = drop_in()
    searcher.suggest("a")
    clone = deepcopy(searcher)
    clone.on_trial_complete("a", {METRIC: 1.0})
    assert searcher.state_summary()["pending"] == ["a"]
    assert clone.state_summary()["pending"] == []


# --------------------------------------------------------------------- unknown trials, warm start


def tune_flattened(config: dict[str, Any]) -> dict[str, Any]:
    """The `config/...` keys Tune puts in the flattened results it hands to searchers."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update({f"config/{key}/{k}": v for k, v in value.items()})
        else:
            out[f"config/{key}"] = value
    return out


@pytest.mark.parametrize("flattened", [False, True])
def test_unknown_trial_id_uses_the_config_in_the_result(
    store: FeedbackStore, flattened: bool
) -> None:
    searcher = campaign(store)
    config = searcher.suggest("old-id")
    assert config is not None
    searcher.on_trial_complete("old-id", {"error": "worker died"}, error=True)
    # Tune reran the errored trial under a new id; its result carries the config.
    carried = tune_flattened(config) if flattened else {"config": config}
    searcher.on_trial_complete("new-id", final_result(METRIC, 0.7, **carried))
    trials = searcher.arms_by_name[BASE_ARM].study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params
    records = store.runs(campaign="ecg")
    assert [(r.trial_id, r.status, r.value) for r in records] == [
        ("old-id", "failed", None),
        ("new-id", "completed", 0.7),
    ]


def test_restarted_pending_trial_claims_its_optuna_trial() -> None:
    searcher = drop_in()
    first = searcher.suggest("old-id")
    other = searcher.suggest("other")
    assert first is not None and other is not None
    # The trial restarts under a new id while "old-id" is still pending.
    searcher.on_trial_complete("new-id", {METRIC: 0.4, "config": first})
    trials = searcher.arms_by_name[BASE_ARM].study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert searcher.state_summary()["pending"] == ["other"]


def test_unknown_trial_without_config_is_ignored() -> None:
    searcher = drop_in()
    searcher.on_trial_complete("stranger", {METRIC: 0.5})
    searcher.on_trial_complete("stranger2", None, error=True)
    assert searcher.arms_by_name[BASE_ARM].study.trials == []


def test_unknown_trial_with_out_of_range_config_does_not_crash() -> None:
    searcher = drop_in()
    searcher.on_trial_complete("s", {METRIC: 0.5, "config": {"trainer.lr": 5.0}})
    assert searcher.arms_by_name[BASE_ARM].study.trials == []


def test_add_evaluated_point_states_like_optuna_search() -> None:
    searcher = drop_in()
    point = {"trainer.lr": 0.01, "model.width": 32, "model.depth": 2}
    searcher.add_evaluated_point(point, 0.9, intermediate_values=[0.8, 0.9])
    searcher.add_evaluated_point(point, 0.9, error=True)
    searcher.add_evaluated_point(point, 0.5, pruned=True)
    searcher.add_evaluated_point(point, float("nan"))
    assert study_states(searcher) == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.PRUNED,
        TrialState.FAIL,
    ]
    assert searcher.arms_by_name[BASE_ARM].best_value == 0.9
    assert searcher.suggest("1") is not None


def test_add_evaluated_point_checks_the_space() -> None:
    searcher = drop_in()
    with pytest.raises(ValueError):
        searcher.add_evaluated_point({"trainer.lr": 5.0}, 0.1)
    with pytest.raises(RuntimeError, match="no search space"):
        AgentSearcher(metric="m", mode="max").add_evaluated_point({"x": 1}, 0.1)


def test_warm_start_goes_to_the_arm_named_in_the_config(store: FeedbackStore) -> None:
    searcher = campaign(store)
    searcher.add_arm("resnet", tier=2, overrides=["model=resnet1d", "model.width=64"])
    assert "model.width" not in searcher.arms_by_name["resnet"].space  # fixed by the arm
    point = {"trainer.lr": 0.01, "model.depth": 2, RESERVED_KEY: {"arm": "resnet"}}
    searcher.add_evaluated_point(point, 0.8)
    assert study_states(searcher, "resnet") == [TrialState.COMPLETE]
    assert study_states(searcher) == []
    assert store.runs(campaign="ecg") == []  # warm-start points come from the store


def test_warm_start_from_an_earlier_session(store: FeedbackStore) -> None:
    first = campaign(store, min_trials_per_arm=1, constraints={"num_params": ("<=", 100)})
    first.submit_proposal(Proposal(name="resnet", tier=2, overrides=["model=resnet1d"]))
    first.submit_proposal(
        Proposal(name="gen", tier=3, overrides=["model=g"], model_source="code")
    )  # refused: max_tier is 2
    results = [
        final_result(METRIC, 0.5, num_params=10),
        final_result(METRIC, 0.8, num_params=10),
        final_result(METRIC, 0.9, num_params=1000),  # infeasible
        final_result(METRIC, math.nan, num_params=10),  # failed
    ]
    for i, result in enumerate(results):
        first.suggest(str(i))
        first.on_trial_complete(str(i), result)
    history = store.runs(campaign="ecg")
    assert {r.arm for r in history} == {BASE_ARM, "resnet"}

    second = campaign(store)  # a new session: same space, fresh studies
    assert second.warm_start(history) == 4
    assert set(second.arms_by_name) == {BASE_ARM, "resnet"}
    for name, arm in first.arms_by_name.items():
        again = second.arms_by_name[name]
        assert [t.state for t in again.study.trials] == [t.state for t in arm.study.trials]
        assert (again.best_value, again.n_results) == (arm.best_value, arm.n_results)
    assert second.arms_by_name["resnet"].overrides == ("model=resnet1d",)
    assert len(store.runs(campaign="ecg")) == 4  # nothing written back


def test_points_to_evaluate_come_first() -> None:
    point = {"trainer.lr": 0.01, "model.width": 64, "model.depth": 3}
    searcher = drop_in(points_to_evaluate=[point])
    assert searcher.suggest("a") == point


# --------------------------------------------------------------------- ConcurrencyLimiter


def test_works_under_concurrency_limiter() -> None:
    limited = ConcurrencyLimiter(drop_in(), max_concurrent=2)
    assert limited.suggest("a") is not None
    assert limited.suggest("b") is not None
    assert limited.suggest("c") is None  # limit reached
    limited.on_trial_complete("a", {METRIC: 0.5})
    c = limited.suggest("c")
    assert c is not None
    limited.add_evaluated_point({"trainer.lr": 0.01, "model.width": 16, "model.depth": 1}, 0.2)
    searcher = pickle.loads(pickle.dumps(limited)).searcher
    assert searcher.state_summary()["pending"] == ["b", "c"]
    # The searcher enforces the limit itself, so completions of ids the limiter never saw
    # (trials Tune reran after a restore) still reach it.
    limited.on_trial_complete("rerun-of-c", {METRIC: 0.7, "config": c})
    inner = limited.searcher
    assert isinstance(inner, AgentSearcher) and inner.state_summary()["pending"] == ["b"]


# --------------------------------------------------------------------- campaign: reserved entry


def test_campaign_configs_carry_the_reserved_entry(store: FeedbackStore) -> None:
    config = campaign(store).suggest("a")
    assert config is not None
    assert config[RESERVED_KEY] == {
        "arm": BASE_ARM,
        "tier": 0,
        "origin": "optuna",
        "overrides": ["model=cnn1d"],
        "model": "cnn1d",
        "model_source": None,
        "model_config": None,
        "proposal_id": None,
        "seed": None,
    }


# --------------------------------------------------------------------- escalation


def test_change_model_asks_for_tier_2_without_blocking_suggest(
    store: FeedbackStore, gate: str
) -> None:
    proposal = Proposal(
        name="resnet-w64",
        tier=2,
        overrides=["model=resnet1d", "model.width=64"],
        params={"trainer.lr": 0.003, "model.depth": 2},
        rationale="deeper receptive field",
        tokens_in=100,
        tokens_out=20,
    )
    proposer = ScriptedProposer([[proposal]], gate)
    searcher = campaign(store, proposer=proposer, recommender=ScriptedRecommender(["change_model"]))
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    wait_for(lambda: proposer.calls == 1)
    context = proposer.contexts[0]
    assert (context.tier, context.metric, context.mode) == (2, METRIC, "max")
    assert context.untried_models == ("resnet1d", "encoder_classifier")
    assert context.arms[0].name == BASE_ARM and context.arms[0].best_value == 0.5
    assert "trainer.lr" in context.space and context.history  # the store's history text
    assert context.max_tier == 2

    # While the proposer works, suggest answers at once from the existing arm.
    while_pending = [searcher.suggest(f"p{i}") for i in range(3)]
    assert searcher.proposal_pending
    assert all(c is not None and c[RESERVED_KEY]["arm"] == BASE_ARM for c in while_pending)

    open_gate(gate)
    wait_for(lambda: not searcher.proposal_pending)
    config = searcher.suggest("n")
    assert config is not None
    entry = config[RESERVED_KEY]
    assert (entry["arm"], entry["tier"], entry["origin"]) == ("resnet-w64", 2, "agent")
    assert entry["overrides"] == ["model=resnet1d", "model.width=64"]
    assert (config["trainer.lr"], config["model.depth"]) == (0.003, 2)  # the proposal's point
    assert "model.width" not in config  # fixed by the arm's overrides
    searcher.on_trial_complete("n", final_result(METRIC, 0.6))
    record = next(r for r in store.runs(campaign="ecg") if r.trial_id == "n")
    assert (record.arm, record.tier, record.origin) == ("resnet-w64", 2, "agent")
    assert (record.tokens_in, record.tokens_out, record.rationale) == (
        100,
        20,
        "deeper receptive field",
    )
    kinds = [e.kind for e in store.events(campaign="ecg")]
    assert "escalation" in kinds and "note" in kinds


def _exhaust_models(searcher: AgentSearcher) -> None:
    for model in MODELS[1:]:
        searcher.add_arm(model, tier=2, overrides=[f"model={model}"])


def test_every_model_tuned_escalates_to_tier_3(store: FeedbackStore) -> None:
    generated = Proposal(
        name="tiny", tier=3, overrides=["model=generated"], model_source=TINY_MODEL_SOURCE
    )
    proposer = ScriptedProposer([[generated]])
    searcher = campaign(
        store,
        proposer=proposer,
        # asks for a model change once every arm's trial has finished
        recommender=ScriptedRecommender(["continue", "continue", "change_model"]),
        max_tier=3,
        min_trials_per_arm=1,
    )
    _exhaust_models(searcher)
    for i in range(3):  # one trial per arm: every listed model gets its minimum
        searcher.suggest(str(i))
    for i in range(3):
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.1 * i))
    wait_for(lambda: proposer.calls == 1)
    assert proposer.contexts[0].tier == 3
    assert proposer.contexts[0].untried_models == ()
    wait_for(lambda: not searcher.proposal_pending)
    config = searcher.suggest("gen")
    assert config is not None
    assert config[RESERVED_KEY]["tier"] == 3
    assert config[RESERVED_KEY]["model_source"] == TINY_MODEL_SOURCE


def test_tier_3_waits_until_each_model_finished_its_minimum_trials(store: FeedbackStore) -> None:
    proposer = ScriptedProposer([[]])
    searcher = campaign(
        store,
        proposer=proposer,
        recommender=ScriptedRecommender(["continue", "continue", "change_model"]),
        max_tier=3,
        min_trials_per_arm=2,
    )
    _exhaust_models(searcher)
    for i in range(6):  # two started trials per arm: every listed model was tried
        searcher.suggest(str(i))
    assert {a.name: a.n_started for a in searcher.arms} == {
        BASE_ARM: 2,
        "resnet1d": 2,
        "encoder_classifier": 2,
    }
    for i in range(3):  # one finished run per model, of the two each needs
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.1 * i))
    wait_for(lambda: proposer.calls == 1 and not searcher.proposal_pending)
    assert proposer.contexts[0].tier == 2
    assert proposer.contexts[0].untried_models == ()  # tried, not yet tuned
    for i in range(3, 6):  # the second run of each model
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.1))
    wait_for(lambda: proposer.calls == 2)
    assert proposer.contexts[1].tier == 3


@pytest.mark.parametrize(
    ("status", "tier"),
    [("completed", 3), ("pruned", 3), ("diverged", 3), ("infeasible", 3), ("failed", 2)],
)
def test_which_finished_runs_count_towards_a_models_minimum(
    store: FeedbackStore, status: str, tier: int
) -> None:
    proposer = ScriptedProposer([[]])
    searcher = campaign(
        store,
        proposer=proposer,
        recommender=ScriptedRecommender(["continue", "continue", "change_model"]),
        max_tier=3,
        min_trials_per_arm=1,
        constraints={"num_params": ("<=", 1000)},
        max_arm_failures=5,  # a failed run must not retire the arm in this test
    )
    _exhaust_models(searcher)
    results = {
        "completed": final_result(METRIC, 0.2, num_params=10),
        "pruned": {**final_result(METRIC, 0.2, num_params=10), "agentune_final": False},
        "diverged": final_result(METRIC, 0.2, num_params=10, status="diverged"),
        "infeasible": final_result(METRIC, 0.2, num_params=10**6),
        "failed": final_result(METRIC, float("nan"), num_params=10),
    }
    for i in range(3):
        config = searcher.suggest(str(i))
        assert config is not None
        arm = config[RESERVED_KEY]["arm"]
        result = results[status] if arm == "resnet1d" else results["completed"]
        searcher.on_trial_complete(str(i), result)
    stored = {r.arm: r.status for r in store.runs(campaign="ecg")}
    assert stored["resnet1d"] == status
    wait_for(lambda: proposer.calls == 1)
    assert proposer.contexts[0].tier == tier


def test_a_model_whose_arms_all_retired_counts_as_tuned(store: FeedbackStore) -> None:
    proposer = ScriptedProposer([[]])
    searcher = campaign(
        store,
        proposer=proposer,
        recommender=ScriptedRecommender(["continue", "continue", "change_model"]),
        max_tier=3,
        min_trials_per_arm=1,
        max_arm_failures=1,  # one failure without a value retires an arm
    )
    _exhaust_models(searcher)
    for i in range(3):  # one trial per arm
        config = searcher.suggest(str(i))
        assert config is not None
        fails = config[RESERVED_KEY]["arm"] == "resnet1d"
        searcher.on_trial_complete(str(i), final_result(METRIC, float("nan") if fails else 0.2))
    assert searcher.arms_by_name["resnet1d"].retired  # it gets no more trials
    wait_for(lambda: proposer.calls == 1)
    assert proposer.contexts[0].tier == 3


def test_max_tier_caps_the_ladder(store: FeedbackStore) -> None:
    proposer = ScriptedProposer([[]])
    searcher = campaign(
        store,
        proposer=proposer,
        recommender=ScriptedRecommender(["change_model"]),
        max_tier=2,
        min_trials_per_arm=1,
    )
    _exhaust_models(searcher)
    for i in range(3):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.1))
    wait_for(lambda: proposer.calls >= 1)
    assert {c.tier for c in proposer.contexts} == {2}


def test_no_escalation_with_max_tier_0(store: FeedbackStore) -> None:
    proposer = ScriptedProposer([[]])
    searcher = campaign(
        store, proposer=proposer, recommender=ScriptedRecommender(["change_model"]), max_tier=0
    )
    for i in range(4):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.1))
    time.sleep(0.05)
    assert proposer.calls == 0 and searcher.state_summary()["requests_made"] == 0


def test_change_lr_and_continue_keep_tuning(store: FeedbackStore) -> None:
    proposer = ScriptedProposer([[]])
    searcher = campaign(
        store, proposer=proposer, recommender=ScriptedRecommender(["change_lr", "continue"])
    )
    for i in range(4):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.1))
    assert proposer.calls == 0 and len(searcher.arms) == 1


def test_proposer_exception_is_an_event_not_a_crash(store: FeedbackStore) -> None:
    proposer = ScriptedProposer([AgentError("LLM quota exceeded")])
    searcher = campaign(store, proposer=proposer, recommender=ScriptedRecommender(["change_model"]))
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    wait_for(lambda: proposer.calls == 1)
    wait_for(lambda: not searcher.proposal_pending)
    assert searcher.suggest("b") is not None  # collects the failure (if not yet), tunes on
    failures = store.events(campaign="ecg", kind="agent_failure")
    assert len(failures) == 1 and "LLM quota exceeded" in failures[0].message
    assert len(searcher.arms) == 1


@pytest.mark.parametrize(
    ("proposal", "problem"),
    [
        (Proposal(name="x", tier=3, overrides=["trainer.lr=0.1"]), "needs model_source"),
        (Proposal(name="x", tier=3, overrides=["model=g"], model_source="code"), "max_tier"),
        (Proposal(name="x", tier=1, overrides=["model=r"]), "tier must be 2 or 3"),
        (Proposal(name="x", tier=2, overrides=["model"]), "key=value"),
        (Proposal(name="x", tier=2, overrides=[]), "needs overrides"),
        (
            Proposal(name="x", tier=2, overrides=["model=r"], space={"a": tune.randn()}),
            "invalid proposal space",
        ),
    ],
)
def test_invalid_proposals_are_rejected_as_events(
    store: FeedbackStore, proposal: Proposal, problem: str
) -> None:
    searcher = campaign(store, proposer=ScriptedProposer([[]]), max_tier=2)
    searcher.submit_proposal(proposal)
    assert searcher.suggest("a") is not None
    assert len(searcher.arms) == 1
    (event,) = store.events(campaign="ecg", kind="agent_failure")
    assert problem in event.message


def test_human_proposal_becomes_an_arm_with_its_own_space(store: FeedbackStore) -> None:
    searcher = campaign(store)
    searcher.submit_proposal(
        Proposal(
            name="enc",
            tier=2,
            overrides=["model=encoder_classifier"],
            space={"model.heads": {"type": "choice", "values": [2, 4]}},
            drop_params=["model.depth"],
            origin="human",
        )
    )
    searcher.suggest("a")  # base arm still needs its trials, but the arm exists now
    arm = searcher.arms_by_name["enc"]
    assert set(arm.space) == {"trainer.lr", "model.width", "model.heads"}
    assert arm.origin == "human"


def test_rejected_proposal_is_skipped(store: FeedbackStore) -> None:
    searcher = campaign(store)
    searcher.submit_proposal(
        Proposal(name="r", tier=2, overrides=["model=resnet1d"], approval="rejected")
    )
    searcher.suggest("a")
    assert len(searcher.arms) == 1


def test_duplicate_proposal_reuses_the_arm(store: FeedbackStore) -> None:
    searcher = campaign(store)
    p = Proposal(name="r", tier=2, overrides=["model=resnet1d"])
    searcher.submit_proposal(p)
    searcher.submit_proposal(Proposal(name="r2", tier=2, overrides=[" model=resnet1d"]))
    searcher.suggest("a")
    assert [a.name for a in searcher.arms] == [BASE_ARM, "r"]


def test_stop_finishes_once_running_trials_are_done(store: FeedbackStore) -> None:
    searcher = campaign(store, recommender=ScriptedRecommender(["stop"]))
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert searcher.stopping
    assert searcher.suggest("c") is None  # "b" still running
    searcher.on_trial_complete("b", final_result(METRIC, 0.6))
    finished: object = searcher.suggest("d")  # Tune's sentinel string, not a config
    assert finished == Searcher.FINISHED
    events = store.events(campaign="ecg", kind="recommendation")
    assert events[-1].data["action"] == "stop"


def test_default_recommender_is_feedback_recommend(store: FeedbackStore) -> None:
    from feedback import SignalThresholds

    searcher = AgentSearcher(
        SPACE,
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        signal_thresholds=SignalThresholds(target=0.5),
    )
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.7))
    assert searcher.stopping  # the target was reached


def test_reasons_and_failed_records_survive_nan_in_campaign(store: FeedbackStore) -> None:
    searcher = campaign(store)
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, math.nan))
    (record,) = store.runs(campaign="ecg")
    assert record.status == "failed" and "not finite" in (record.error or "")


def test_arms_may_use_optunas_gp_sampler() -> None:
    import optuna

    searcher = drop_in(sampler="gp")
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        assert config is not None and 1e-4 <= config["trainer.lr"] <= 1e-1
        searcher.on_trial_complete(f"t{i}", {METRIC: 0.1 * i})
    study = searcher.arms_by_name[BASE_ARM].study
    assert isinstance(study.sampler, optuna.samplers.GPSampler)
    assert study_states(searcher) == [TrialState.COMPLETE] * 6
    with pytest.raises(ValueError, match="`sampler` must be one of"):
        drop_in(sampler="cmaes")


class DriftOn:
    """A recommender whose drift reading names `arm` once that arm has a run."""

    def __init__(self, arm: str) -> None:
        self.arm = arm

    def __call__(self, history: Any) -> Any:
        from types import SimpleNamespace

        drifting = self.arm in history.column("arm").to_pylist()
        drift = SimpleNamespace(drifting=drifting, arm=self.arm)
        return SimpleNamespace(action="change_lr", reasons=["scripted drift"], drift=drift)


def test_drift_within_a_weaker_arm_retires_it(store: FeedbackStore) -> None:
    searcher = campaign(store, min_trials_per_arm=1, recommender=DriftOn("resnet"))
    searcher.submit_proposal(Proposal(name="resnet", tier=2, overrides=["model=resnet1d"]))
    arms: list[str] = []
    for i in range(2):  # the base arm's first trial, then the new arm's
        config: Any = searcher.suggest(str(i))
        arms.append(config[RESERVED_KEY]["arm"])
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.8 if i == 0 else 0.5))
    assert set(arms) == {BASE_ARM, "resnet"}
    assert searcher.arms_by_name["resnet"].retired
    notes = [e for e in store.events(campaign="ecg") if e.kind == "note"]
    assert any("'resnet' retired" in e.message and e.arm == "resnet" for e in notes)
    for i in range(2, 6):
        config = searcher.suggest(str(i))
        assert config[RESERVED_KEY]["arm"] == BASE_ARM
        searcher.on_trial_complete(str(i), final_result(METRIC, 0.7))


def test_gp_suggestions_of_stepped_floats_lie_on_the_grid() -> None:
    searcher = AgentSearcher(
        {"model.dropout": tune.quniform(0.0, 0.3, 0.1), "trainer.lr": tune.loguniform(1e-4, 1e-1)},
        metric=METRIC,
        mode="max",
        seed=0,
        sampler="gp",
        tpe_kwargs={"n_startup_trials": 2},
    )
    seen = []
    for i in range(10):
        config: Any = searcher.suggest(f"t{i}")
        seen.append(config["model.dropout"])
        searcher.on_trial_complete(f"t{i}", {METRIC: -config["model.dropout"]})
    assert all(value in (0.0, 0.1, 0.2, 0.3) for value in seen), seen
