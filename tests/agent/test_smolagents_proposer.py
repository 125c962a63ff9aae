"""`SmolagentsProposer` driven by scripted smolagents models: tool calls, tokens, budgets, failures.

The scripted model replaces only the LLM: the CodeAgent, its executor, the tools, the safety
layer's checks and the searcher are the real ones.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from smolagents.models import ChatMessage, MessageRole, Model, TokenUsage

from agent import AgentError, ArmSummary, ProposalContext
from agent.prompts import FACTS_PREFIX, load_prompt_templates, parse_facts
from agent.smolagents_proposer import SmolagentsProposer
from feedback import Event, FeedbackStore, RunRecord


class ScriptedModel(Model):
    """Answers each request with the next scripted reply; an exception is raised instead."""

    def __init__(self, replies: Sequence[str | BaseException], tokens: int = 100) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)
        self.tokens = tokens
        self.seen: list[str] = []

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: Any = None,
        tools_to_call_from: Any = None,
        **kwargs: Any,
    ) -> ChatMessage:
        self.seen.append(_text(messages))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=reply,
            token_usage=TokenUsage(input_tokens=self.tokens, output_tokens=self.tokens // 4),
        )


def _text(messages: list[Any]) -> str:
    parts = []
    for m in messages:
        content = m.content if hasattr(m, "content") else m.get("content")
        if isinstance(content, list):
            parts += [c.get("text", "") for c in content if isinstance(c, dict)]
        elif content:
            parts.append(str(content))
    return "\n".join(parts)


def _code(body: str) -> str:
    return f"Thought: next step.\n<code>\n{body}\n</code>"


def _context(store: FeedbackStore | None, tier: int = 2, max_tier: int = 3) -> ProposalContext:
    return ProposalContext(
        tier=tier,
        metric="val/macro_f1",
        mode="max",
        campaign="c",
        reasons=("no improvement in 6 runs",),
        space={"trainer.lr": "FloatDistribution(low=0.0001, high=0.1, log=True)"},
        arms=(
            ArmSummary(
                name="base",
                tier=0,
                overrides=(),
                model="cnn1d",
                n_results=6,
                n_completed=6,
                best_value=0.7,
                best_params={"trainer.lr": 3e-3},
            ),
        ),
        models=("cnn1d", "resnet1d"),
        tried_models=("cnn1d",),
        max_tier=max_tier,
        store_root=str(store.root) if store is not None else None,
    )


@pytest.fixture
def campaign_store(tmp_path: Path) -> FeedbackStore:
    store = FeedbackStore(tmp_path / "campaign" / "history")
    for i, value in enumerate([0.6, 0.7, 0.69]):
        store.append(
            RunRecord(
                run_id=f"r{i}",
                campaign="c",
                arm="base",
                tier=0,
                origin="optuna",
                status="completed",
                metric="val/macro_f1",
                mode="max",
                params={"trainer.lr": 1e-3 * (i + 1)},
                value=value,
                model="cnn1d",
                test_metrics={"test/macro_f1": 0.123456},
            )
        )
    store.append(
        RunRecord(
            run_id="r9",
            campaign="c",
            arm="base",
            tier=0,
            origin="optuna",
            status="rejected",
            metric="val/macro_f1",
            mode="max",
            params={"trainer.lr": 0.09},
            error="too high",
        )
    )
    return store


PROPOSE_RESNET = _code(
    'print(propose_trials([{"name": "resnet", "overrides": ["model=resnet1d"], '
    '"rationale": "untried"}]))'
)
FINAL = _code('final_answer("proposed resnet1d")')


def test_the_agent_calls_tools_and_hands_proposals_over(campaign_store: FeedbackStore) -> None:
    model = ScriptedModel(
        [_code("print(check_drift())\nprint(get_experiment_history())"), PROPOSE_RESNET, FINAL]
    )
    proposer = SmolagentsProposer(model, max_steps=4)
    (proposal,) = proposer.propose(_context(campaign_store), n=2)
    assert proposal.overrides == ["model=resnet1d"] and proposal.tier == 2
    assert proposal.origin == "agent"
    calls = proposal.tool_calls
    assert calls[0].startswith("check_drift(") and calls[1].startswith("get_experiment_history(")
    assert any(c.startswith("propose_trials(") for c in calls)
    report = proposer.last_call
    assert report is not None and report.outcome == "ok" and report.steps == 3
    assert (report.tokens_in, report.tokens_out) == (300, 75)
    assert (proposal.tokens_in, proposal.tokens_out) == (300, 75)
    assert proposer.tokens_used == 375
    # the task carries the facts, the rejected trial, never a test metric
    task = model.seen[0]
    facts = parse_facts(task)
    assert facts is not None and facts["untried_models"] == ["resnet1d"]
    assert facts["rejected"] == [["trainer.lr=0.09"]]
    assert "0.123456" not in "\n".join(model.seen)


def test_the_system_prompt_explains_the_ladder_and_lists_the_tools() -> None:
    templates = load_prompt_templates()
    system = templates["system_prompt"]
    for phrase in ("tier 2", "tier 3", "check_drift", "propose_trials", "num_classes"):
        assert phrase in system
    assert "planning" in templates  # smolagents' own sections are kept


def test_tools_follow_max_tier(campaign_store: FeedbackStore) -> None:
    model = ScriptedModel([FINAL])
    SmolagentsProposer(model, max_steps=1).propose(_context(campaign_store, max_tier=2), n=1)
    system = model.seen[0]
    assert "def create_config_variant(" in system
    assert "def register_generated_model(" not in system
    assert "def read_model_source(" not in system


def test_a_final_answer_can_carry_the_proposals(campaign_store: FeedbackStore) -> None:
    model = ScriptedModel(
        [_code('final_answer([{"name": "res", "overrides": ["model=resnet1d"]}])')]
    )
    (p,) = SmolagentsProposer(model).propose(_context(campaign_store), n=2)
    assert p.overrides == ["model=resnet1d"]


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        ([RuntimeError("HTTP 500 from 127.0.0.1")], "HTTP 500"),
        (["I cannot help with that."], "steps"),  # a refusal: no code, ever
        ([_code("x = (")], "steps"),  # malformed code every time
        (  # a proposal the safety layer refuses, every time
            [_code('propose_trials([{"name": "bad", "overrides": ["hydra.run.dir=/tmp"]}])')],
            "steps",
        ),
    ],
)
def test_failures_raise_an_agent_error_with_the_report(
    campaign_store: FeedbackStore, replies: list[Any], reason: str
) -> None:
    proposer = SmolagentsProposer(ScriptedModel(replies), max_steps=2)
    with pytest.raises(AgentError) as info:
        proposer.propose(_context(campaign_store), n=1)
    assert reason in str(info.value)
    report = info.value.report  # type: ignore[attr-defined]
    assert report.outcome in ("failed", "interrupted") and report.error


def test_the_token_budget_stops_requests_and_is_counted_across_calls(
    campaign_store: FeedbackStore,
) -> None:
    # each request costs 125 tokens; a budget of 200 allows two requests in all
    model = ScriptedModel([_code("print(check_drift())")])
    proposer = SmolagentsProposer(model, max_steps=5, token_budget=200)
    with pytest.raises(AgentError, match="token budget"):
        proposer.propose(_context(campaign_store), n=1)
    assert len(model.seen) == 2 and proposer.tokens_used == 250
    assert proposer.budget_spent
    assert proposer.last_call is not None and proposer.last_call.outcome == "interrupted"


def test_a_resumed_campaign_counts_the_tokens_in_its_history(
    campaign_store: FeedbackStore,
) -> None:
    campaign_store.append_event(
        Event(campaign="c", kind="agent_call", data={"tokens_in": 900, "tokens_out": 200})
    )
    proposer = SmolagentsProposer(ScriptedModel([FINAL]), token_budget=1000)
    with pytest.raises(AgentError):
        proposer.propose(_context(campaign_store), n=1)
    assert proposer.budget_spent and proposer.tokens_used >= 1100


def test_the_wall_time_stops_the_agent(campaign_store: FeedbackStore) -> None:
    model = ScriptedModel([_code("print(check_drift())")])
    proposer = SmolagentsProposer(model, max_steps=5, wall_time_s=0.0)
    with pytest.raises(AgentError, match="wall time"):
        proposer.propose(_context(campaign_store), n=1)
    assert model.seen == []


def test_the_proposer_pickles_and_keeps_its_token_count(campaign_store: FeedbackStore) -> None:
    proposer = SmolagentsProposer(ScriptedModel([PROPOSE_RESNET, FINAL]), token_budget=10_000)
    proposer.propose(_context(campaign_store), n=1)
    copy = pickle.loads(pickle.dumps(proposer))
    assert copy.tokens_used == proposer.tokens_used > 0


def test_summary_from_the_agent_and_from_the_facts(campaign_store: FeedbackStore) -> None:
    from agent.summary import campaign_facts

    facts = campaign_facts(campaign_store.root, "c")
    assert facts["n_runs"] == 4 and facts["best"]["value"] == 0.7
    assert "0.123456" not in repr(facts)
    model = ScriptedModel([_code('final_answer("resnet next; cnn1d best at 0.70")')])
    assert SmolagentsProposer(model).summarize(facts) == "resnet next; cnn1d best at 0.70"
    assert FACTS_PREFIX in model.seen[0]
    failing = SmolagentsProposer(ScriptedModel([RuntimeError("HTTP 429")]))
    text = failing.summarize(facts)
    assert "4 trials ran" in text and "val/macro_f1=0.7000" in text


def test_the_factory_honours_every_llm_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.models import LazyModel, OfflineModel
    from agent.smolagents_proposer import proposer_from_settings
    from search.goals import LLMSettings

    monkeypatch.setenv("STUB_KEY", "sk-abcdef123456")
    llm = LLMSettings(
        model="gpt-4o-mini",
        temperature=0.5,
        max_steps=3,
        api_key_env="STUB_KEY",
        api_base="http://127.0.0.1:9/v1",
        token_budget=999,
    )
    proposer = proposer_from_settings(llm, model="served", api_base="http://127.0.0.1:8/v1")
    assert (proposer.max_steps, proposer.token_budget) == (3, 999)
    assert isinstance(proposer.model, LazyModel)
    settings = proposer.model.settings
    assert (settings.model, settings.temperature, settings.api_base, settings.api_key_env) == (
        "served",
        0.5,
        "http://127.0.0.1:8/v1",
        "STUB_KEY",
    )
    assert b"sk-abcdef123456" not in pickle.dumps(proposer)
    offline = proposer_from_settings(LLMSettings())
    assert isinstance(offline.model, OfflineModel) and offline.token_budget is None


def test_an_unset_key_variable_stops_the_campaign_before_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from search.goals import CampaignError, load_goal
    from search.runner import CampaignOptions, build_proposer

    monkeypatch.delenv("AGENTUNE_TEST_KEY", raising=False)
    goal = load_goal("mitbih:aami3_quick")
    goal = goal.model_copy(
        update={"llm": goal.llm.model_copy(update={"api_key_env": "AGENTUNE_TEST_KEY"})}
    )
    with pytest.raises(CampaignError, match="AGENTUNE_TEST_KEY") as info:
        build_proposer(goal, CampaignOptions(model="gpt-4o-mini"))
    assert "\n" not in str(info.value)
