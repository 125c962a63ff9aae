"""A proposer call that never returns is abandoned after `proposer_timeout_s`, recorded like a
proposer failure, and the escalation policy asks again; the hung call's late answer is ignored.

The proposer is scripted and blocks on a `threading.Event` (a gate); the study and the store
are real.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ray import tune
from searcher_fakes import (
    ScriptedProposer,
    ScriptedRecommender,
    close_gate,
    final_result,
    open_gate,
)

from agent import Proposal
from feedback import FeedbackStore
from search import AgentSearcher

METRIC = "val/macro_f1"
SPACE: dict[str, Any] = {"trainer.lr": tune.loguniform(1e-4, 1e-1)}
TIMEOUT_S = 0.3


@pytest.fixture
def gate() -> Iterator[str]:
    name = f"timeout-gate-{time.monotonic_ns()}"
    close_gate(name)
    yield name
    open_gate(name)  # never leave a worker thread blocked


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _proposer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "agentune-proposer" and t.is_alive()]


def _searcher(store: FeedbackStore, proposer: Any, **kwargs: Any) -> AgentSearcher:
    return AgentSearcher(
        SPACE,
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        base_overrides=["model=cnn1d"],
        models=["cnn1d", "resnet1d"],
        proposer=proposer,
        recommender=ScriptedRecommender(["change_model"]),
        min_trials_per_arm=1,
        **kwargs,
    )


def test_a_hung_call_times_out_is_recorded_and_the_policy_asks_again(
    tmp_path: Path, gate: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = FeedbackStore(tmp_path / "history")
    proposal = Proposal(name="res", tier=2, overrides=["model=resnet1d"])
    proposer = ScriptedProposer([[proposal]], gate=gate)
    searcher = _searcher(store, proposer, proposer_timeout_s=TIMEOUT_S)
    assert searcher.suggest("a") is not None
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    assert searcher.proposal_pending  # the call blocks on the gate
    started = time.monotonic()
    _wait(lambda: not searcher.proposal_pending)  # the searcher stops waiting for it
    assert time.monotonic() - started >= TIMEOUT_S * 0.5
    assert len(_proposer_threads()) == 1  # the thread itself cannot be stopped

    with caplog.at_level(logging.WARNING, logger="search"):
        assert searcher.suggest("b") is not None  # collects the timeout
    assert any("TimeoutError" in r.getMessage() for r in caplog.records)
    (failure,) = store.events(campaign="ecg", kind="agent_failure")
    assert failure.message.startswith("TimeoutError: the proposer did not answer within 0.3 s")
    assert failure.data["error_type"] == "TimeoutError" and failure.tier == 2
    (call,) = store.events(campaign="ecg", kind="agent_call")
    assert call.data["outcome"] == "interrupted" and call.data["proposals"] == []

    # The hung call answers late: its answer is ignored.
    open_gate(gate)
    _wait(lambda: not _proposer_threads())
    assert searcher.suggest("c") is not None
    assert [a.name for a in searcher.arms] == ["base"]
    assert len(store.events(campaign="ecg", kind="agent_call")) == 1

    # Escalation can happen again: the next completion asks the proposer anew.
    searcher.on_trial_complete("b", final_result(METRIC, 0.4))
    assert searcher.state_summary()["requests_made"] == 2
    assert len(store.events(campaign="ecg", kind="escalation")) == 2
    _wait(lambda: not searcher.proposal_pending)
    searcher.on_trial_complete("c", final_result(METRIC, 0.3))  # collects the second answer
    assert [a.name for a in searcher.arms] == ["base", "res"]
    assert proposer.calls == 1  # the second call went to a copy, not the hung object


def test_without_a_timeout_a_slow_call_stays_pending(tmp_path: Path, gate: str) -> None:
    store = FeedbackStore(tmp_path / "history")
    proposer = ScriptedProposer([[]], gate=gate)
    searcher = _searcher(store, proposer, proposer_timeout_s=None)
    searcher.suggest("a")
    searcher.on_trial_complete("a", final_result(METRIC, 0.5))
    time.sleep(TIMEOUT_S * 2)
    assert searcher.suggest("b") is not None
    assert searcher.proposal_pending
    assert store.events(campaign="ecg", kind="agent_failure") == []


@pytest.mark.parametrize("bad", [0, -1.0])
def test_a_timeout_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="proposer_timeout_s"):
        AgentSearcher(SPACE, metric=METRIC, mode="max", proposer_timeout_s=bad)
