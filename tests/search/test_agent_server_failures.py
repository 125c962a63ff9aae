"""Every way an OpenAI-compatible server can fail the agent, through the real client path.

The searcher, `SmolagentsProposer`, its CodeAgent and smolagents' `OpenAIServerModel` are the
real ones; only the server's replies are scripted (a real HTTP server on 127.0.0.1). None of
the failures ends the campaign: the searcher records an ``agent_failure`` event with the reason
and keeps tuning with Optuna.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ray import tune
from searcher_fakes import ScriptedRecommender, final_result

from agent import SmolagentsProposer
from agent.models import ModelSettings, build_model
from agent.testing import Hang, Malformed, Reply, ScriptedOpenAIServer, Status
from feedback import FeedbackStore
from search import AgentSearcher

METRIC = "val/macro_f1"
KEY = "sk-test-9f8e7d6c5b4a"


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        (Reply("Thought: I will try.\n<code>\nx = (\n</code>"), "steps without a final answer"),
        (Reply("Thought: read.\n<code>\nread_run_results('nope')\n</code>"), "steps without"),
        (Reply("I'm sorry, but I can't help with tuning experiments."), "steps without"),
        (Status(429), "HTTP 429"),
        (Status(500), "HTTP 500"),
        (Hang(10.0), "no reply"),
        (Malformed("<html>not json</html>"), "malformed response"),
    ],
    ids=["malformed-code", "tool-error", "refusal", "429", "500", "no-reply", "malformed"],
)
def test_server_failures_become_agent_failure_events_and_tuning_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: Any, reason: str
) -> None:
    monkeypatch.setenv("STUB_KEY", KEY)
    store = FeedbackStore(tmp_path / "campaign" / "history")
    with ScriptedOpenAIServer([step]) as server:
        settings = ModelSettings(
            model="stub",
            api_base=server.url,
            api_key_env="STUB_KEY",
            timeout_s=1.0,
            max_retries=0,
        )
        proposer = SmolagentsProposer(build_model(settings), max_steps=2)
        searcher = AgentSearcher(
            {"trainer.lr": tune.loguniform(1e-4, 1e-1)},
            metric=METRIC,
            mode="max",
            seed=0,
            store=store,
            campaign="c",
            base_overrides=["model=cnn1d"],
            models=["cnn1d", "resnet1d"],
            proposer=proposer,
            recommender=ScriptedRecommender(["change_model"]),
            max_agent_requests=1,
        )
        assert searcher.suggest("a") is not None
        searcher.on_trial_complete("a", final_result(METRIC, 0.5))
        _wait(lambda: not searcher.proposal_pending)
        for trial in ("b", "c"):  # Optuna keeps tuning the base arm
            config = searcher.suggest(trial)
            assert config is not None and config["agentune"]["arm"] == "base"
            searcher.on_trial_complete(trial, final_result(METRIC, 0.4))
        assert server.chat_requests, "the real client never reached the server"
    (failure,) = store.events(campaign="c", kind="agent_failure")
    assert reason in failure.message
    assert "\n" not in failure.message and KEY not in failure.message
    (call,) = store.events(campaign="c", kind="agent_call")
    assert call.data["outcome"] in ("failed", "interrupted") and call.data["model"] == "stub"
    assert len(store.runs(campaign="c")) == 3 and len(searcher.arms) == 1
