"""The approval hook sees every trial before it is launched, Optuna's and the agent's.

The searcher is driven method by method (as Tune calls it) with scripted hooks; one test runs
it inside a real (tiny) Tune experiment. Optuna studies and the feedback store are real.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState
from ray import tune
from ray.tune.search import Searcher
from searcher_fakes import TINY_MODEL_SOURCE, ScriptedProposer, ScriptedRecommender, final_result

from agent import Proposal
from agent.hooks import (
    ApprovalDecision,
    AutoApprovalHook,
    CallbackApprovalHook,
    TrialRequest,
)
from feedback import FeedbackStore, SignalThresholds, recommend
from search import BASE_ARM, RESERVED_KEY, AgentSearcher
from search.approvals import REJECTED_CONSTRAINT

METRIC = "val/macro_f1"
FINISHED: object = Searcher.FINISHED  # Tune's sentinel string, not a config
SPACE: dict[str, Any] = {
    "trainer.lr": tune.loguniform(1e-4, 1e-1),
    "model.width": tune.choice([16, 32, 64]),
    "model.depth": tune.randint(1, 5),
}


class Recorder:
    """A hook that answers from a script (the last answer repeats) and keeps every request."""

    def __init__(self, *answers: ApprovalDecision) -> None:
        self.answers = list(answers) or [ApprovalDecision.approve()]
        self.requests: list[TrialRequest] = []

    def review(self, request: TrialRequest) -> ApprovalDecision:
        self.requests.append(request)
        return self.answers[min(len(self.requests) - 1, len(self.answers) - 1)]


def approve_all(
    overrides: list[str], store: FeedbackStore | None, run_num: int
) -> ApprovalDecision:
    return ApprovalDecision.approve()


def campaign(store: FeedbackStore, hook: Any, **kwargs: Any) -> AgentSearcher:
    kwargs.setdefault("recommender", ScriptedRecommender(["continue"]))
    return AgentSearcher(
        SPACE,
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        base_overrides=["model=cnn1d"],
        models=["cnn1d", "resnet1d"],
        approval_hook=hook,
        **kwargs,
    )


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "history")


def approvals(store: FeedbackStore) -> list[tuple[int, str]]:
    return [(e.data["run_num"], e.data["decision"]) for e in store.events(kind="approval")]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


# --------------------------------------------------------------------- every trial


def test_every_trial_is_seen_whoever_proposed_it(store: FeedbackStore) -> None:
    proposal = Proposal(
        name="resnet", tier=2, overrides=["model=resnet1d"], params={"trainer.lr": 0.003},
        rationale="a deeper receptive field",
    )  # fmt: skip
    proposer = ScriptedProposer([[proposal]])
    hook = Recorder()
    searcher = campaign(
        store, hook, proposer=proposer, recommender=ScriptedRecommender(["change_model"])
    )
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    wait_for(lambda: not searcher.proposal_pending and proposer.calls == 1)
    config = searcher.suggest("b")  # the agent's arm goes first (fewest trials)
    assert config is not None and config[RESERVED_KEY]["arm"] == "resnet"

    first, second = hook.requests
    assert (first.run_num, first.origin, first.arm, first.tier) == (1, "optuna", BASE_ARM, 0)
    assert first.overrides[0] == "model=cnn1d"
    assert {o.split("=")[0] for o in first.overrides[1:]} == {
        "trainer.lr", "model.width", "model.depth"
    }  # fmt: skip
    assert first.store is store and first.recommendation == ""
    assert (second.run_num, second.origin, second.arm, second.tier) == (2, "agent", "resnet", 2)
    assert second.overrides[:2] == ("model=resnet1d", "trainer.lr=0.003")
    assert second.rationale == "a deeper receptive field"
    assert second.recommendation == "change_model: scripted change_model"
    searcher.on_trial_complete("b", final_result(METRIC, 0.6))
    assert {r.trial_id: r.approval for r in store.runs()} == {"a": "approved", "b": "approved"}
    events = store.events(kind="approval")
    assert [(e.data["origin"], e.data["decision"]) for e in events] == [
        ("optuna", "approved"),
        ("agent", "approved"),
    ]
    assert events[0].data["overrides_run"] == list(first.overrides)


def test_tier3_request_carries_the_generated_source(store: FeedbackStore) -> None:
    hook = Recorder()
    searcher = campaign(store, hook)
    searcher.add_arm("gen", tier=3, overrides=["model=tiny"], model_source=TINY_MODEL_SOURCE)
    searcher.suggest("a")  # base first (creation order on ties), then the new arm
    searcher.suggest("b")
    assert hook.requests[1].model_source == TINY_MODEL_SOURCE and hook.requests[1].tier == 3


def test_auto_approval_is_recorded_as_auto(store: FeedbackStore) -> None:
    searcher = campaign(store, AutoApprovalHook())
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert store.runs()[0].approval == "auto"
    assert approvals(store) == [(1, "auto")]


def test_no_hook_leaves_the_arms_approval(store: FeedbackStore) -> None:
    searcher = campaign(store, None)
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert store.runs()[0].approval is None and not store.events(kind="approval")


# --------------------------------------------------------------------- modify


def _base_study_states(searcher: AgentSearcher) -> list[TrialState]:
    return [t.state for t in searcher.arms_by_name[BASE_ARM].study.trials]


@pytest.mark.parametrize("full_list", [False, True], ids=["changed-keys", "full-list"])
def test_modify_space_keys_become_the_trials_params(store: FeedbackStore, full_list: bool) -> None:
    def edit(overrides: list[str], store: FeedbackStore | None, run_num: int) -> ApprovalDecision:
        changed = {"trainer.lr": "trainer.lr=0.001", "model.depth": "model.depth=3"}
        if full_list:
            return ApprovalDecision.modify([changed.get(o.split("=")[0], o) for o in overrides])
        return ApprovalDecision.modify(list(changed.values()), "smaller steps")

    searcher = campaign(store, CallbackApprovalHook(edit))
    config = searcher.suggest("a")
    assert config is not None
    assert (config["trainer.lr"], config["model.depth"]) == (0.001, 3)
    assert type(config["model.depth"]) is int and type(config["trainer.lr"]) is float
    assert config[RESERVED_KEY]["overrides"] == ["model=cnn1d"]
    assert _base_study_states(searcher) == [TrialState.FAIL]  # the asked trial is closed
    searcher.on_trial_complete("a", final_result(METRIC, 0.7))
    (record,) = store.runs()
    assert record.approval == "modified" and record.status == "completed"
    assert (record.params["trainer.lr"], record.params["model.depth"]) == (0.001, 3)
    # the run is added to the study with the parameters it actually ran
    added = searcher.arms_by_name[BASE_ARM].study.trials[-1]
    assert added.state == TrialState.COMPLETE and added.value == 0.7
    assert (added.params["trainer.lr"], added.params["model.depth"]) == (0.001, 3)
    (event,) = store.events(kind="approval")
    assert event.data["decision"] == "modified"
    assert "trainer.lr=0.001" in event.data["overrides_run"]
    assert "trainer.lr=0.001" not in event.data["overrides_proposed"]


def test_modify_with_a_fixed_key_applies_to_that_trial_only(store: FeedbackStore) -> None:
    hook = Recorder(ApprovalDecision.modify(["model.dropout=0.2"]), ApprovalDecision.approve())
    searcher = campaign(store, hook)
    config = searcher.suggest("a")
    assert config is not None
    assert config[RESERVED_KEY]["overrides"] == ["model=cnn1d", "model.dropout=0.2"]
    assert "model.dropout" not in config
    searcher.on_trial_complete("a", final_result(METRIC, 0.7))
    assert store.runs()[0].overrides == ["model=cnn1d", "model.dropout=0.2"]
    later = searcher.suggest("b")
    assert later is not None and later[RESERVED_KEY]["overrides"] == ["model=cnn1d"]


def test_modify_outside_the_space_runs_but_is_not_added_to_the_study(
    store: FeedbackStore,
) -> None:
    searcher = campaign(store, Recorder(ApprovalDecision.modify(["trainer.lr=0.5"])))
    config = searcher.suggest("a")
    assert config is not None and config["trainer.lr"] == 0.5
    searcher.on_trial_complete("a", final_result(METRIC, 0.7))
    assert _base_study_states(searcher) == [TrialState.FAIL]  # 0.5 is outside [1e-4, 0.1]
    assert store.runs()[0].params["trainer.lr"] == 0.5


def test_a_modification_that_changes_nothing_is_an_approval(store: FeedbackStore) -> None:
    def same(overrides: list[str], store: FeedbackStore | None, run_num: int) -> ApprovalDecision:
        return ApprovalDecision.modify(overrides)

    searcher = campaign(store, CallbackApprovalHook(same))
    searcher.suggest("a")
    assert _base_study_states(searcher) == [TrialState.RUNNING]
    assert approvals(store) == [(1, "approved")]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["+trainer.evil=1"], "adding keys"),
        (["model._target_=os.system"], "_target_"),
        (["model.depth=abc"], "integer parameter"),
        (["trainer.lr=choice(0.1,0.2)"], "not a sweep"),
    ],
)
def test_modify_refused_by_the_check_is_a_rejection(
    store: FeedbackStore, overrides: list[str], reason: str
) -> None:
    hook = Recorder(ApprovalDecision.modify(overrides), ApprovalDecision.approve())
    searcher = campaign(store, hook)
    config = searcher.suggest("a")  # rejected, then sampled again in the same call
    assert config is not None and len(hook.requests) == 2
    (rejected,) = store.runs()
    assert rejected.status == "rejected" and rejected.approval == "rejected"
    assert rejected.error is not None and "modification refused" in rejected.error
    assert reason in rejected.error
    assert approvals(store) == [(1, "rejected"), (2, "approved")]


def test_campaign_check_composes_a_modified_trial(
    store: FeedbackStore, writable_configs: tuple[Path, Path]
) -> None:
    from agent.safety.proposals import ProposalCheck

    configs, generated = writable_configs
    check = ProposalCheck(
        config_dir=str(configs),
        experiment="mitbih_aami3_quick",
        base_overrides=("trainer.epochs=1",),
        generated_dir=str(generated),
        space_keys=("trainer.lr",),
    )
    hook = Recorder(
        ApprovalDecision.modify(["trainer.no_such_key=1"]),
        ApprovalDecision.modify(["model=resnet1d"]),
    )
    searcher = AgentSearcher(
        {"trainer.lr": tune.loguniform(1e-4, 1e-1)},
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        approval_hook=hook,
        proposal_check=check,
        recommender=ScriptedRecommender(["continue"]),
    )
    config = searcher.suggest("a")
    assert config is not None and config[RESERVED_KEY]["overrides"] == ["model=resnet1d"]
    (rejected,) = store.runs()
    assert rejected.error is not None and "no_such_key" in rejected.error


# --------------------------------------------------------------------- reject


@pytest.mark.parametrize(("sampler", "told_as"), [("tpe", "complete"), ("auto", "fail")])
def test_reject_records_the_trial_and_tells_optuna(
    store: FeedbackStore, sampler: str, told_as: str
) -> None:
    hook = Recorder(ApprovalDecision.reject("too big"), ApprovalDecision.approve())
    searcher = campaign(store, hook, sampler=sampler)
    config = searcher.suggest("a")
    assert config is not None  # the second sample, from the same suggest() call
    (record,) = store.runs()
    assert (record.status, record.approval, record.error) == ("rejected", "rejected", "too big")
    assert record.value is None and record.trial_id is None and record.origin == "optuna"
    assert record.overrides == ["model=cnn1d"] and set(record.params) == set(SPACE)
    assert record.params != {k: config[k] for k in SPACE}
    study = searcher.arms_by_name[BASE_ARM].study
    told = study.trials[0]
    if told_as == "complete":  # TPE ranks it below every feasible trial
        assert told.state == TrialState.COMPLETE
        assert told.constraints == {REJECTED_CONSTRAINT: 1.0}
    else:  # the hybrid's GP phase would model a stand-in value as a result
        assert told.state == TrialState.FAIL
    assert searcher.arms_by_name[BASE_ARM].n_results == 1
    events = store.events(kind="approval")
    assert [e.data["decision"] for e in events] == ["rejected", "approved"]
    assert events[0].data["reason"] == "too big" and events[0].run_id == record.run_id
    assert events[0].data["overrides_run"] == []
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert {r.status for r in store.runs()} == {"rejected", "completed"}


def test_an_arm_a_human_keeps_rejecting_retires(store: FeedbackStore) -> None:
    def no_agent(
        overrides: list[str], store: FeedbackStore | None, run_num: int
    ) -> ApprovalDecision:
        if "model=resnet1d" in overrides:
            return ApprovalDecision.reject("not this model")
        return ApprovalDecision.approve()

    searcher = campaign(store, CallbackApprovalHook(no_agent), max_arm_failures=2)
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    searcher.add_arm("resnet", tier=2, overrides=["model=resnet1d"], origin="agent")
    for i in range(3):
        config = searcher.suggest(f"t{i}")
        assert config is not None and config[RESERVED_KEY]["arm"] == BASE_ARM
        searcher.on_trial_complete(f"t{i}", final_result(METRIC, 0.5))
    assert searcher.arms_by_name["resnet"].retired
    rejected = store.runs(status="rejected")
    assert len(rejected) == 2 and {r.arm for r in rejected} == {"resnet"}


def test_consecutive_rejections_stop_the_campaign(store: FeedbackStore) -> None:
    hook = Recorder(ApprovalDecision.approve(), ApprovalDecision.reject("no"))
    searcher = campaign(store, hook, max_consecutive_rejections=3)
    assert searcher.suggest("a") is not None
    assert searcher.suggest("b") is None  # stopping, with trial a still running
    assert searcher.stopping
    assert len(store.runs(status="rejected")) == 3
    (stop,) = store.events(kind="recommendation")
    assert stop.data["action"] == "stop" and "3 trials in a row were rejected" in stop.message
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert searcher.suggest("c") == FINISHED
    assert len(hook.requests) == 4


def test_an_approval_resets_the_rejection_count(store: FeedbackStore) -> None:
    no = ApprovalDecision.reject()
    hook = Recorder(no, no, ApprovalDecision.approve(), no, no, ApprovalDecision.approve())
    searcher = campaign(store, hook, max_consecutive_rejections=3)
    assert searcher.suggest("a") is not None and searcher.suggest("b") is not None
    assert not searcher.stopping and searcher.state_summary()["consecutive_rejections"] == 0


class _Raises:
    def review(self, request: TrialRequest) -> ApprovalDecision:
        raise RuntimeError("hook crashed")


class _Junk:
    def review(self, request: TrialRequest) -> Any:
        return "yes"


def _junk_callback(overrides: list[str], store: FeedbackStore | None, run_num: int) -> Any:
    return True


def _raising_callback(overrides: list[str], store: FeedbackStore | None, run_num: int) -> Any:
    raise KeyError("boom")


@pytest.mark.parametrize(
    ("hook", "reason"),
    [
        (_Raises(), "the approval hook raised RuntimeError: hook crashed"),
        (_Junk(), "the approval hook returned str, not an ApprovalDecision"),
        (CallbackApprovalHook(_junk_callback), "returned bool, not an ApprovalDecision"),
        (CallbackApprovalHook(_raising_callback), "the approval callback raised KeyError"),
    ],
)
def test_a_failing_hook_fails_closed(store: FeedbackStore, hook: Any, reason: str) -> None:
    searcher = campaign(store, hook, max_consecutive_rejections=2)
    assert searcher.suggest("a") == FINISHED
    errors = [r.error for r in store.runs()]
    assert len(errors) == 2 and all(e is not None and reason in e for e in errors)


def test_rejected_runs_do_not_count_for_the_signals(store: FeedbackStore) -> None:
    searcher = campaign(store, Recorder(ApprovalDecision.reject("no")))
    searcher.suggest("a")
    rec = recommend(store.table(campaign="ecg"), SignalThresholds(window=2, budget=5))
    assert rec.action == "continue", rec.reasons  # 10 rejections: not hopeless, no budget spent


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_consecutive_rejections"):
        AgentSearcher(SPACE, metric=METRIC, mode="max", max_consecutive_rejections=0)
    with pytest.raises(TypeError, match="review"):
        AgentSearcher(SPACE, metric=METRIC, mode="max", approval_hook=approve_all)  # type: ignore[arg-type]


# --------------------------------------------------------------------- pickling


def test_a_picklable_hook_travels_and_the_run_count_continues(
    store: FeedbackStore, tmp_path: Path
) -> None:
    searcher = campaign(store, CallbackApprovalHook(approve_all))
    searcher.suggest("a")
    copy = pickle.loads(pickle.dumps(searcher))
    assert isinstance(copy.approval_hook, CallbackApprovalHook)
    copy.suggest("b")
    assert approvals(store)[-1] == (2, "approved")
    path = str(tmp_path / "searcher.pkl")
    copy.save(path)
    fresh = campaign(store, CallbackApprovalHook(approve_all))
    fresh.restore(path)
    fresh.suggest("c")
    assert approvals(store)[-1] == (3, "approved")


def test_an_unpicklable_hook_stays_with_the_live_searcher(store: FeedbackStore) -> None:
    seen: list[int] = []

    def local(overrides: list[str], store: FeedbackStore | None, run_num: int) -> ApprovalDecision:
        seen.append(run_num)
        return ApprovalDecision.approve()

    searcher = campaign(store, CallbackApprovalHook(local))
    blob = pickle.dumps(searcher)  # Tune pickles it at Tuner construction and checkpoints
    assert searcher.suggest("a") is not None and seen == [1]  # the live object keeps it
    copy = pickle.loads(blob)
    assert copy.approval_hook is None
    assert copy.suggest("b") == FINISHED  # never runs a trial nobody approved
    assert "did not survive pickling" in store.events(kind="recommendation")[-1].message
    again = pickle.loads(blob)
    again.approval_hook = CallbackApprovalHook(local)  # re-attached on the driver
    assert again.suggest("c") is not None and seen == [1, 1]


def test_restore_keeps_the_live_hook(store: FeedbackStore, tmp_path: Path) -> None:
    searcher = campaign(store, CallbackApprovalHook(lambda o, s, n: ApprovalDecision.approve()))
    searcher.suggest("a")
    path = str(tmp_path / "searcher.pkl")
    searcher.save(path)
    hook = Recorder()
    fresh = campaign(store, hook)
    fresh.restore(path)
    fresh.suggest("b")
    assert [r.run_num for r in hook.requests] == [2]


# --------------------------------------------------------------------- inside Tune


def review_in_tune(
    overrides: list[str], store: FeedbackStore | None, run_num: int
) -> ApprovalDecision:
    """Rejects every third trial, sets the learning rate of the second."""
    if run_num % 3 == 0:
        return ApprovalDecision.reject(f"no #{run_num}")
    if run_num == 2:
        return ApprovalDecision.modify(["trainer.lr=0.01"])
    return ApprovalDecision.approve()


def tiny_trainable(config: dict[str, Any]) -> None:
    tune.report({METRIC: 1.0 - abs(config["trainer.lr"] - 0.01), "agentune_final": True})


@pytest.fixture
def ray_session() -> Iterator[None]:
    import ray
    from ray import cloudpickle

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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


@pytest.mark.slow
@pytest.mark.parametrize("picklable", [True, False], ids=["module-function", "closure"])
def test_every_tune_trial_passes_the_hook(
    ray_session: None, store: FeedbackStore, tmp_path: Path, picklable: bool
) -> None:
    def closure(overrides: list[str], s: FeedbackStore | None, run_num: int) -> ApprovalDecision:
        return review_in_tune(overrides, s, run_num)

    searcher = AgentSearcher(
        {"trainer.lr": tune.loguniform(1e-4, 1e-1)},
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        approval_hook=CallbackApprovalHook(review_in_tune if picklable else closure),
        recommender=ScriptedRecommender(["continue"]),
    )
    tuner = tune.Tuner(
        tiny_trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=6, max_concurrent_trials=2),
        run_config=tune.RunConfig(
            name="approval", storage_path=str(tmp_path / "ray_results"), verbose=0
        ),
    )
    grid = tuner.fit()
    assert len(grid) == 6 and not grid.errors
    runs = store.runs(campaign="ecg")
    assert len([r for r in runs if r.status == "completed"]) == 6
    assert [r.error for r in runs if r.status == "rejected"] == ["no #3", "no #6"]
    decisions = approvals(store)
    assert [n for n, _ in decisions] == list(range(1, 9))
    assert dict(decisions)[2] == "modified"
    modified = next(r for r in runs if r.approval == "modified")
    assert modified.params["trainer.lr"] == 0.01


def test_a_restored_tuner_gets_this_sessions_hook(tmp_path: Path) -> None:
    from search.tune_hooks import attach_approval_hook

    saved = CallbackApprovalHook(approve_all)
    searcher = AgentSearcher(
        {"trainer.lr": tune.loguniform(1e-4, 1e-1)},
        metric=METRIC,
        mode="max",
        approval_hook=saved,
    )
    tuner = tune.Tuner(
        tiny_trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=1),
        run_config=tune.RunConfig(name="attach", storage_path=str(tmp_path), verbose=0),
    )
    live = Recorder()
    assert attach_approval_hook(tuner, live) and searcher.approval_hook is live
    assert not attach_approval_hook(object(), live)


def test_the_dashboard_timeline_shows_each_decision(store: FeedbackStore) -> None:
    from feedback import render_dashboard

    evil = "<script>alert(1)</script>"
    hook = Recorder(
        ApprovalDecision.reject(evil),
        ApprovalDecision.modify(["trainer.lr=0.001"], "smaller"),
        ApprovalDecision("approve", auto=True),
    )
    searcher = campaign(store, hook)
    for trial_id in "abcd":
        searcher.suggest(trial_id)
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    page = render_dashboard(store, "ecg")
    timeline = page[page.index('id="approvals"') : page.index('id="agent"')]
    assert "trial #1 rejected" in timeline and "&lt;script&gt;alert(1)&lt;/script&gt;" in timeline
    assert "trial #2 modified" in timeline and "ran: model=cnn1d trainer.lr=0.001" in timeline
    assert "proposed by optuna" in timeline and "smaller" in timeline
    assert "trials #3–#5 auto-approved" in timeline
    assert "<script" not in page
