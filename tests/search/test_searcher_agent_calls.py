"""What the searcher records about each agent call: tokens, tool calls, failures, the budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ray import tune
from searcher_fakes import ScriptedProposer, ScriptedRecommender, final_result

from agent import AgentCallReport, AgentError, Proposal, ProposalContext
from feedback import FeedbackStore
from search import AgentSearcher

METRIC = "val/macro_f1"
SPACE: dict[str, Any] = {"trainer.lr": tune.loguniform(1e-4, 1e-1)}


class ReportingProposer(ScriptedProposer):
    """A scripted proposer that reports each call like `SmolagentsProposer` does."""

    def __init__(self, batches: Any, tokens: int = 50, budget: int | None = None) -> None:
        super().__init__(batches)
        self.tokens = tokens
        self.token_budget = budget
        self.tokens_used = 0
        self.last_call: AgentCallReport | None = None

    @property
    def budget_spent(self) -> bool:
        return self.token_budget is not None and self.tokens_used >= self.token_budget

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        self.tokens_used += self.tokens
        self.last_call = AgentCallReport(
            model="scripted",
            tokens_in=self.tokens,
            steps=2,
            tool_calls=("check_drift()", "propose_trials(...)"),
            tokens_total=self.tokens_used,
            token_budget=self.token_budget,
        )
        try:
            return super().propose(context, n)
        except AgentError as e:
            e.report = AgentCallReport(  # type: ignore[attr-defined]
                model="scripted", tokens_in=self.tokens, outcome="failed", error=str(e)
            )
            raise


def _searcher(store: FeedbackStore, proposer: Any) -> AgentSearcher:
    return AgentSearcher(
        SPACE,
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        base_overrides=["model=cnn1d"],
        models=["cnn1d", "resnet1d", "encoder_classifier"],
        proposer=proposer,
        recommender=ScriptedRecommender(["change_model"]),
        min_trials_per_arm=1,
    )


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _finish_one(searcher: AgentSearcher, trial_id: str, value: float = 0.5) -> None:
    assert searcher.suggest(trial_id) is not None
    searcher.on_trial_complete(trial_id, final_result(METRIC, value))


def test_each_call_becomes_an_agent_call_event_and_the_context_names_the_store(
    tmp_path: Path,
) -> None:
    store = FeedbackStore(tmp_path / "history")
    proposal = Proposal(name="res", tier=2, overrides=["model=resnet1d"], tool_calls=("a()",))
    proposer = ReportingProposer([[proposal]])
    searcher = _searcher(store, proposer)
    _finish_one(searcher, "a")
    _wait(lambda: not searcher.proposal_pending and proposer.calls == 1)
    _finish_one(searcher, "b")  # collects the batch
    (call,) = store.events(campaign="ecg", kind="agent_call")
    assert call.data["tokens_in"] == 50 and call.data["proposals"] == ["res"]
    assert call.data["tool_calls"] == ["check_drift()", "propose_trials(...)"]
    assert "2 steps, 50 tokens" in call.message
    note = next(e for e in store.events(campaign="ecg", kind="note") if e.arm == "res")
    assert note.data["tool_calls"] == ["a()"]
    assert proposer.contexts[0].store_root == str(store.root)


def test_a_failed_call_records_its_report(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    proposer = ReportingProposer([AgentError("HTTP 500 from 127.0.0.1")])
    searcher = _searcher(store, proposer)
    _finish_one(searcher, "a")
    _wait(lambda: not searcher.proposal_pending and proposer.calls == 1)
    _finish_one(searcher, "b")
    (failure,) = store.events(campaign="ecg", kind="agent_failure")
    assert "HTTP 500" in failure.message and failure.data["call"]["outcome"] == "failed"
    (call,) = store.events(campaign="ecg", kind="agent_call")
    assert call.data["outcome"] == "failed"


def test_a_spent_budget_stops_the_calls_and_says_so_once(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    proposer = ReportingProposer([[]], tokens=80, budget=100)
    proposer.tokens_used = 100
    searcher = _searcher(store, proposer)
    for i in range(4):
        _finish_one(searcher, f"t{i}")
    assert proposer.calls == 0
    (event,) = [
        e
        for e in store.events(campaign="ecg", kind="agent_failure")
        if e.data.get("reason") == "token_budget"
    ]
    assert "not called again" in event.message and event.data["tokens_used"] == 100
    assert len(store.runs(campaign="ecg")) == 4  # Optuna keeps tuning


@pytest.mark.parametrize("spent", [False, True])
def test_budget_checked_before_every_request(tmp_path: Path, spent: bool) -> None:
    store = FeedbackStore(tmp_path / "history")
    proposer = ReportingProposer([[]], tokens=80, budget=100)
    proposer.tokens_used = 100 if spent else 0
    searcher = _searcher(store, proposer)
    _finish_one(searcher, "a")
    _wait(lambda: not searcher.proposal_pending)
    assert proposer.calls == (0 if spent else 1)
