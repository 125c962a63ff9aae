"""The offline model (`agent.models.OfflineModel`) driving a real smolagents CodeAgent, and the
tier-3 architecture templates it writes (`agent.models.architectures`).

The agent runs with stand-in tools of the same names and signatures as `agent.tools` (they
record every call), so each policy path is checked end to end through smolagents' parser and
local executor; one test per tier uses the real tools when `agent.tools` exports them.
"""

from __future__ import annotations

import ast
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from smolagents import CodeAgent, tool
from smolagents.models import ChatMessage, MessageRole

from agent.models import (
    DEFAULT_MAX_PARAMS,
    FACTS_PREFIX,
    FAMILY_BASES,
    ArchitectureSpec,
    OfflineModel,
    base_spec,
    estimate_params,
    family_of,
    model_args,
    mutations,
    render_source,
)
from agent.safety.code_policy import validate_model_source

# ------------------------------------------------------------------------------ helpers


def facts(**over: Any) -> dict[str, Any]:
    """A tier-2 propose task's facts; keyword arguments replace keys."""
    base: dict[str, Any] = {
        "kind": "propose",
        "tier": 2,
        "max_tier": 3,
        "n": 2,
        "metric": "val/macro_f1",
        "mode": "max",
        "campaign": "ecg",
        "reasons": ["stagnation: no improvement in 4 trials"],
        "models": ["cnn1d", "resnet1d", "encoder_classifier"],
        "tried_models": ["cnn1d"],
        "untried_models": ["resnet1d", "encoder_classifier"],
        "space": {"trainer.lr": "loguniform 1e-4..1e-2", "model.width": "choice 8,16"},
        "constraints": {},
        "best_value": 0.61,
        "arms": [
            {
                "name": "base",
                "tier": 0,
                "model": "cnn1d",
                "overrides": [],
                "n_results": 6,
                "n_completed": 6,
                "best_value": 0.61,
                "best_params": {"trainer.lr": 0.003, "model.width": 16},
            }
        ],
        "tier3_arms": 0,
        "rejected": [],
    }
    base.update(over)
    return base


def task(f: dict[str, Any] | None) -> str:
    head = "Improve the campaign's metric with the tools.\n"
    return head + (FACTS_PREFIX + json.dumps(f) + "\n" if f is not None else "")


@dataclass
class Standins:
    """Stand-in tools with the real tools' names; they record calls and can refuse."""

    configs: dict[str, list[str]] = field(
        default_factory=lambda: {
            "model": ["cnn1d", "encoder_classifier", "resnet1d"],
            "trainer": ["default"],
            "generated_models": [],
        }
    )
    refuse_proposals: int = 0  # propose_trials raises this many times first
    refuse_models: int = 0  # register_generated_model raises this many times first
    register: Callable[[str, str, dict[str, Any]], Any] | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)

    def tools(self) -> list[Any]:
        s = self

        @tool
        def check_drift() -> dict:
            """The campaign's signals."""
            s.calls.append(("check_drift", None))
            return {"action": "escalate", "reasons": ["stagnation"], "n_runs": 6}

        @tool
        def get_experiment_history() -> str:
            """Compact history."""
            s.calls.append(("get_experiment_history", None))
            return "arm base (tier 0, cnn1d): 6 runs, best 0.61"

        @tool
        def list_available_configs() -> dict:
            """Config groups -> names."""
            s.calls.append(("list_available_configs", None))
            return dict(s.configs)

        @tool
        def create_config_variant(group: str, base: str, name: str, mods: dict) -> str:
            """Write a config variant.

            Args:
                group: config group.
                base: base config.
                name: new name.
                mods: changes.
            """
            s.calls.append(("create_config_variant", (group, base, name, mods)))
            s.configs["model"] = sorted({*s.configs["model"], name})
            return f"/configs/{group}/{name}.yaml"

        @tool
        def read_model_source(model_name: str) -> str:
            """Source of a model.

            Args:
                model_name: the model.
            """
            s.calls.append(("read_model_source", model_name))
            return f'"""{model_name} source."""\nimport torch\n'

        @tool
        def register_generated_model(name: str, code: str, args: dict) -> Any:
            """Register generated code.

            Args:
                name: model name.
                code: source.
                args: hyperparameters.
            """
            s.calls.append(("register_generated_model", (name, code, args)))
            if s.refuse_models > 0:
                s.refuse_models -= 1
                raise ValueError(f"model code rejected: {name} is refused by the test")
            report = validate_model_source(code)
            if not report.ok:
                raise ValueError("model code rejected: " + "; ".join(report.reasons))
            if s.register is not None:
                return s.register(name, code, args)
            return f"registered model {name!r}: train it with the override model={name}"

        @tool
        def propose_trials(proposals: list) -> str:
            """Hand proposals to the searcher.

            Args:
                proposals: proposal dicts.
            """
            s.calls.append(("propose_trials", proposals))
            if s.refuse_proposals > 0:
                s.refuse_proposals -= 1
                names = ", ".join(repr(p["name"]) for p in proposals)
                raise ValueError(f"nothing accepted: refused {names}: test says no; try another")
            s.proposals.extend(proposals)
            return "\n".join(f"accepted {p['name']!r}" for p in proposals)

        return [
            check_drift,
            get_experiment_history,
            list_available_configs,
            create_config_variant,
            read_model_source,
            register_generated_model,
            propose_trials,
        ]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def run_agent(
    f: dict[str, Any] | None,
    tools: list[Any],
    *,
    model: OfflineModel | None = None,
    max_steps: int = 8,
) -> tuple[Any, CodeAgent]:
    agent = CodeAgent(tools=tools, model=model or OfflineModel(), max_steps=max_steps)
    agent.logger.level = -1  # quiet
    return agent.run(task(f)), agent


def action_steps(agent: CodeAgent) -> list[Any]:
    return [s for s in agent.memory.steps if type(s).__name__ == "ActionStep"]


# ------------------------------------------------------------------------ tier 2 paths


def test_tier2_proposes_untried_models_with_shared_params() -> None:
    s = Standins()
    answer, agent = run_agent(facts(), s.tools())
    assert s.names() == [
        "check_drift",
        "get_experiment_history",
        "list_available_configs",
        "propose_trials",
    ]
    assert [p["name"] for p in s.proposals] == ["resnet1d", "encoder_classifier"]
    first = s.proposals[0]
    assert first["overrides"] == ["model=resnet1d"]
    assert first["params"] == {"trainer.lr": 0.003}  # model.* keys dropped
    assert first["drop_params"] == ["model.width"]
    assert first["tier"] == 2
    assert "stagnation: no improvement in 4 trials" in first["rationale"]
    assert "accepted 'resnet1d'" in answer and "accepted 'encoder_classifier'" in answer
    steps = action_steps(agent)
    assert len(steps) == 3 and steps[-1].is_final_answer
    for step in steps:  # one code block after a Thought line
        out = step.model_output
        assert out.startswith("Thought: ") and out.count("<code>") == out.count("</code>") == 1


def test_tier2_respects_n_and_the_available_configs() -> None:
    s = Standins()
    s.configs["model"] = ["cnn1d", "resnet1d"]  # encoder_classifier has no config here
    run_agent(facts(n=2), s.tools())
    assert [p["name"] for p in s.proposals] == ["resnet1d"]
    s = Standins()
    run_agent(facts(n=1), s.tools())
    assert [p["name"] for p in s.proposals] == ["resnet1d"]


def test_tier2_skips_models_a_human_rejected() -> None:
    s = Standins()
    run_agent(facts(rejected=[["model=resnet1d", "trainer.lr=0.01"]]), s.tools())
    assert [p["name"] for p in s.proposals] == ["encoder_classifier"]


def test_tier2_variant_when_every_model_was_tried() -> None:
    s = Standins()
    arms = [
        {
            "name": "resnet1d",
            "tier": 2,
            "model": "resnet1d",
            "overrides": ["model=resnet1d"],
            "n_results": 4,
            "n_completed": 4,
            "best_value": 0.7,
            "best_params": {"trainer.lr": 0.001, "model.width": 16},
        },
        {"name": "base", "tier": 0, "model": "cnn1d", "best_value": 0.6, "best_params": {}},
    ]
    f = facts(tried_models=["cnn1d", "resnet1d", "encoder_classifier"], untried_models=[])
    answer, _ = run_agent({**f, "arms": arms}, s.tools())
    variant = [c for n, c in s.calls if n == "create_config_variant"]
    assert variant == [("model", "resnet1d", "resnet1d_w32", {"width": 32})]
    assert len(s.proposals) == 1
    p = s.proposals[0]
    assert p["name"] == "resnet1d_w32" and p["overrides"] == ["model=resnet1d_w32"]
    assert p["params"] == {"trainer.lr": 0.001} and "resnet1d" in p["rationale"]
    assert "accepted 'resnet1d_w32'" in answer


def test_tier2_variant_reads_the_width_from_the_config_and_skips_tried_variants(
    writable_configs: tuple[Path, Path],
) -> None:
    s = Standins()
    arms = [{"name": "base", "tier": 0, "model": "cnn1d", "best_value": 0.6, "best_params": {}}]
    f = facts(
        tried_models=["cnn1d", "resnet1d", "encoder_classifier", "cnn1d_w16"],
        untried_models=[],
        arms=arms,
    )
    run_agent(f, s.tools())  # configs/model/cnn1d.yaml has width 8; cnn1d_w16 was tried
    assert [c for n, c in s.calls if n == "create_config_variant"] == [
        ("model", "cnn1d", "cnn1d_w32", {"width": 32})
    ]


def test_tier2_refused_batch_falls_back_to_the_variant() -> None:
    s = Standins(refuse_proposals=1)
    answer, agent = run_agent(facts(), s.tools())
    proposed = [[p["name"] for p in c] for n, c in s.calls if n == "propose_trials"]
    assert proposed == [["resnet1d", "encoder_classifier"], ["cnn1d_w32"]]
    assert [p["name"] for p in s.proposals] == ["cnn1d_w32"]
    assert "accepted 'cnn1d_w32'" in answer and len(action_steps(agent)) == 4


def test_tier2_nothing_accepted_ends_with_an_explanation() -> None:
    s = Standins(refuse_proposals=5)
    answer, _ = run_agent(facts(), s.tools())
    assert s.proposals == [] and "no proposal was accepted" in answer
    assert "test says no" in answer


def test_tier2_nothing_to_propose() -> None:
    s = Standins()
    arms = [{"name": "enc", "tier": 2, "model": "encoder_classifier", "best_value": 0.5}]
    f = facts(tried_models=["encoder_classifier"], untried_models=[], arms=arms)
    answer, _ = run_agent(f, s.tools())
    assert "propose_trials" not in s.names() and "nothing proposed" in answer


# ------------------------------------------------------------------------ tier 3 paths


def tier3_facts(**over: Any) -> dict[str, Any]:
    arms = [
        {
            "name": "resnet1d",
            "tier": 2,
            "model": "resnet1d",
            "overrides": ["model=resnet1d"],
            "n_results": 5,
            "n_completed": 5,
            "best_value": 0.72,
            "best_params": {"trainer.lr": 0.002, "model.width": 16},
        }
    ]
    f = facts(
        tier=3,
        n=1,
        arms=arms,
        tried_models=["cnn1d", "resnet1d", "encoder_classifier"],
        untried_models=[],
    )
    f.update(over)
    return f


def test_tier3_reads_the_best_source_registers_and_proposes() -> None:
    s = Standins()
    answer, agent = run_agent(tier3_facts(), s.tools())
    assert s.names() == [
        "check_drift",
        "get_experiment_history",
        "list_available_configs",
        "read_model_source",
        "register_generated_model",
        "propose_trials",
    ]
    name, code, args = next(c for n, c in s.calls if n == "register_generated_model")
    expected = mutations(base_spec("resnet1d"), 0)
    assert name == "gen_seresnet_0" and code == render_source(expected)
    assert args == model_args(expected)
    p = s.proposals[0]
    assert p["overrides"] == ["model=gen_seresnet_0"] and p["tier"] == 3
    assert p["model_source"] == code and p["params"] == {"trainer.lr": 0.002}
    assert "accepted 'gen_seresnet_0'" in answer
    assert len(action_steps(agent)) == 3
    # the source travels as a string literal that reads back exactly
    step_code = action_steps(agent)[1].code_action
    tree = ast.parse(step_code)
    literal = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "code"
    )
    assert ast.literal_eval(literal) == code


def test_tier3_refusal_tries_the_next_mutation() -> None:
    s = Standins(refuse_models=1)
    answer, _ = run_agent(tier3_facts(tier3_arms=2), s.tools())
    names = [c[0] for n, c in s.calls if n == "register_generated_model"]
    assert names == ["gen_seresnet_2", "gen_seresnet_3"]
    assert [p["name"] for p in s.proposals] == ["gen_seresnet_3"]
    assert "refused by the test" in answer and "accepted 'gen_seresnet_3'" in answer
    assert s.names().count("read_model_source") == 1


def test_tier3_refused_proposal_counts_as_a_refusal() -> None:
    s = Standins(refuse_proposals=1)
    run_agent(tier3_facts(), s.tools())
    names = [c[0] for n, c in s.calls if n == "register_generated_model"]
    assert names == ["gen_seresnet_0", "gen_seresnet_1"]


def test_tier3_gives_up_after_three_attempts() -> None:
    s = Standins(refuse_models=10)
    answer, agent = run_agent(tier3_facts(), s.tools())
    assert s.names().count("register_generated_model") == 3
    assert s.proposals == [] and "no proposal was accepted" in answer
    assert len(action_steps(agent)) == 5 and action_steps(agent)[-1].is_final_answer


def test_tier3_skips_tried_names_and_variants_over_the_param_bound() -> None:
    s = Standins()
    f = tier3_facts(
        tier3_arms=1,
        tried_models=["resnet1d", "gen_seresnet_1"],
        constraints={"num_params": ["<=", 50_000]},
    )
    run_agent(f, s.tools())
    name, code, _ = next(c for n, c in s.calls if n == "register_generated_model")
    base = base_spec("resnet1d")
    budget = int(50_000 * 0.95)
    expected = next(
        i for i in range(2, 100) if estimate_params(mutations(base, i)) <= budget
    )  # 2 (self-attention, 97k) and 3 are over; 4 (kernel 5, 47k) fits
    assert name == f"gen_seresnet_{expected}" and code == render_source(mutations(base, expected))


def test_tier3_family_follows_the_best_model() -> None:
    s = Standins()
    arms = [{"name": "g", "tier": 3, "model": "gen_convattn_4", "best_value": 0.8}]
    run_agent(tier3_facts(arms=arms, tier3_arms=5), s.tools())
    assert ("read_model_source", "gen_convattn_4") in s.calls
    name = next(c[0] for n, c in s.calls if n == "register_generated_model")
    assert name == "gen_convattn_5"


def test_tier3_with_the_real_safety_layer(writable_configs: tuple[Path, Path]) -> None:
    from agent.safety.models import register_generated_model

    configs, generated = writable_configs
    s = Standins(register=lambda name, code, args: register_generated_model(name, code, args))
    answer, _ = run_agent(tier3_facts(), s.tools())
    assert (generated / "gen_seresnet_0.py").is_file()
    assert (configs / "model" / "gen_seresnet_0.yaml").is_file()
    assert "accepted 'gen_seresnet_0'" in answer


def test_max_steps_always_finalises() -> None:
    s = Standins(refuse_models=100)
    answer, agent = run_agent(tier3_facts(), s.tools(), model=OfflineModel(max_attempts=10))
    steps = action_steps(agent)
    assert len(steps) == 6 and steps[-1].is_final_answer
    assert s.names().count("register_generated_model") == 4
    assert "no proposal was accepted" in answer


def test_agent_step_limit_gets_a_plain_text_answer() -> None:
    s = Standins()
    answer, _ = run_agent(facts(), s.tools(), max_steps=2)
    assert "<code>" not in answer and "accepted 'resnet1d'" in answer


# ---------------------------------------------------------------- summary and unknown


def test_summary_is_written_from_the_facts() -> None:
    s = Standins()
    f = facts(
        kind="summary",
        n_runs=14,
        counts={"completed": 12, "failed": 2},
        best={
            "run_id": "r-42",
            "arm": "gen_seresnet_0",
            "tier": 3,
            "model": "gen_seresnet_0",
            "value": 0.8123,
            "overrides": ["model=gen_seresnet_0"],
            "params": {"trainer.lr": 0.002},
        },
        tokens_used=1234,
        untried_models=[],
        tier3_arms=1,
    )
    answer, agent = run_agent(f, s.tools())
    assert s.names() == ["get_experiment_history"]
    assert len(action_steps(agent)) == 1
    for part in ("14 trials", "12 completed", "2 failed", "r-42", "0.8123", "tier 3", "1234"):
        assert part in answer
    assert "Next," in answer and "cnn1d" in answer


def test_summary_without_a_best_run() -> None:
    s = Standins()
    answer, _ = run_agent(facts(kind="summary", n_runs=0, counts={}, best=None), s.tools())
    assert "No trial reported" in answer and "resnet1d" in answer  # next: the untried models


@pytest.mark.parametrize("f", [None, {"kind": "dance"}])
def test_unknown_task_answers_with_an_explanation(f: dict[str, Any] | None) -> None:
    s = Standins()
    answer, agent = run_agent(f, s.tools())
    assert s.calls == [] and len(action_steps(agent)) == 1
    assert "offline model" in answer


def test_malformed_facts_never_raise() -> None:
    model = OfflineModel()
    msg = ChatMessage(role=MessageRole.USER, content="FACTS_JSON: {not json")
    out = model.generate([msg], stop_sequences=["Observation:"])
    assert "final_answer(" in out.content and "no FACTS_JSON" in out.content
    weird = facts(arms="oops", space=None, n="x", tier=3, tried_models=None, constraints=[])
    out = model.generate([ChatMessage(role=MessageRole.USER, content=task(weird))])
    assert out.content.count("<code>") == 1


# ---------------------------------------------------- determinism, tokens, pickling


def test_same_messages_give_the_same_reply_and_token_usage() -> None:
    s = Standins(refuse_models=1)
    _, agent = run_agent(tier3_facts(), s.tools())
    for step in action_steps(agent):
        messages = step.model_input_messages
        a = OfflineModel().generate(messages, stop_sequences=["Observation:"])
        b = OfflineModel().generate(messages, stop_sequences=["Observation:"])
        assert a.content == b.content
        assert a.content.rstrip() == step.model_output.rstrip()
        chars = sum(len(p["text"]) for m in messages for p in m.content)
        assert a.token_usage.input_tokens == chars // 4
        assert a.token_usage.output_tokens == len(a.content) // 4


def test_dict_messages_and_planning_calls() -> None:
    model = OfflineModel()
    out = model.generate([{"role": "user", "content": task(facts())}])
    assert "check_drift()" in out.content and out.content.startswith("Thought: ")
    plan = model.generate([{"role": "user", "content": task(facts())}], ["<end_plan>"])
    assert plan.content.endswith("<end_plan>") and "<code>" not in plan.content


def test_offline_model_pickles() -> None:
    model = OfflineModel(max_steps=5)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.model_id == "offline" and clone.max_steps == 5
    s = Standins()
    run_agent(facts(), s.tools(), model=clone)
    assert len(s.proposals) == 2


# ---------------------------------------------------------------------- real tools


def _real_tools() -> Any:
    tools = pytest.importorskip("agent.tools")
    if not all(hasattr(tools, n) for n in ("tools_for_tier", "ToolContext", "use_context")):
        pytest.skip("agent.tools does not export tools_for_tier/ToolContext/use_context yet")
    return tools


@pytest.mark.parametrize("path", ["tier2", "variant", "tier3"])
def test_with_the_real_tools(
    path: str, writable_configs: tuple[Path, Path], tmp_path: Path
) -> None:
    tools = _real_tools()
    configs, generated = writable_configs
    (tmp_path / "history").mkdir()
    tier = 3 if path == "tier3" else 2
    ctx = tools.ToolContext(
        store_root=tmp_path / "history",
        campaign="ecg",
        config_dir=configs,
        generated_dir=generated,
        tier=tier,
        max_tier=3,
        max_proposals=2,
    )
    f = {"tier2": facts(), "variant": facts(untried_models=[]), "tier3": tier3_facts()}[path]
    with tools.use_context(ctx):
        answer, agent = run_agent(f, tools.tools_for_tier(3))
    names = [p.name for p in ctx.proposals]
    expected = {
        "tier2": ["resnet1d", "encoder_classifier"],
        "variant": ["cnn1d_w32"],  # the best arm tuned cnn1d's width to 16
        "tier3": ["gen_seresnet_0"],
    }[path]
    assert names == expected and f"accepted {expected[0]!r}" in answer
    if path == "tier3":
        assert (generated / "gen_seresnet_0.py").is_file()
        assert ctx.proposals[0].tier == 3 and ctx.proposals[0].model_source
    if path == "variant":
        assert (configs / "model" / "cnn1d_w32.yaml").is_file()
    logged = " ".join(ctx.tool_log)
    assert "check_drift()" in logged and "propose_trials" in logged
    assert "failed" not in action_steps(agent)[0].observations  # every read tool answered


# ------------------------------------------------------------------- architectures

INDICES = range(8)


@pytest.mark.parametrize("family", sorted(FAMILY_BASES))
def test_rendered_architectures_validate_and_run(family: str) -> None:
    base = FAMILY_BASES[family]
    specs = [mutations(base, i) for i in INDICES]
    assert len(set(specs)) == len(specs)  # different indices, different specs
    assert specs[0] == base
    for spec in specs:
        source = render_source(spec)
        report = validate_model_source(source)
        assert report.ok, report.reasons
        assert report.model_class == spec.class_name and set(report.imports) <= {
            "torch",
            "torch.nn",
        }
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<{family}>", "exec"), namespace)
        cls = namespace[spec.class_name]
        for length in (216, 720):
            net = cls(in_channels=1, input_length=length, num_classes=3)
            assert net(torch.randn(2, 1, length)).shape == (2, 3)
        n = sum(p.numel() for p in net.parameters() if p.requires_grad)
        assert n == estimate_params(spec, in_channels=1, num_classes=3) <= DEFAULT_MAX_PARAMS
        # the optional side input: 9 RR features fused before the head
        fused = cls(in_channels=1, input_length=216, num_classes=3, num_features=9)
        features = torch.randn(2, 9)  # (B, F)
        assert fused(torch.randn(2, 1, 216), features).shape == (2, 3)
        assert fused(torch.randn(2, 1, 216)).shape == (2, 3)  # no features: zeros stand in
        n = sum(p.numel() for p in fused.parameters() if p.requires_grad)
        assert n == estimate_params(spec, in_channels=1, num_classes=3, num_features=9)
        assert n == estimate_params(spec, 1, 3) + 9 * 16 + 16 + 16 * 3
        assert cls(in_channels=2, input_length=216, num_classes=5, **model_args(spec))
        with pytest.raises(ValueError, match="input_length"):
            cls(in_channels=1, input_length=2, num_classes=3)


def test_mutations_cover_every_design_choice() -> None:
    base = FAMILY_BASES["seresnet"]
    singles = [mutations(base, i) for i in range(1, 14)]
    assert {s.attention for s in singles} >= {"pool", "self"}
    assert any(not s.se for s in singles)
    assert {s.kernel_size for s in singles} >= {3, 5, 9}
    assert any(s.dilation == 2 for s in singles)
    assert {s.stages for s in singles} >= {2}
    assert any(s.block == "plain" for s in singles) and any(s.width == 8 for s in singles)
    pairs = [mutations(base, i) for i in range(14, 60)]  # deeper ones fit with smaller kernels
    assert any(s.stages == 4 for s in pairs) and any(s.blocks_per_stage == 2 for s in pairs)
    many = [mutations(base, i) for i in range(0, 3000, 7)]
    assert len(set(many)) == len(many)
    assert all(estimate_params(s) <= DEFAULT_MAX_PARAMS for s in many)
    assert mutations(base, 5) == mutations(base, 5)
    small = mutations(base, 3, max_params=30_000)
    assert estimate_params(small) <= 30_000
    with pytest.raises(ValueError, match="index"):
        mutations(base, -1)
    with pytest.raises(ValueError, match="parameters"):
        mutations(base, 0, max_params=10)


def test_families_and_spec_checks() -> None:
    assert family_of("cnn1d") == "cnn" and family_of("resnet1d_w32") == "seresnet"
    assert family_of("gen_convattn_7") == "convattn" and family_of(None) == "seresnet"
    assert family_of("gen_nope_1") == "seresnet"
    bad = ArchitectureSpec(kernel_size=4, attention="self", heads=3)
    assert bad.problems()
    with pytest.raises(ValueError, match="kernel_size"):
        render_source(bad)
    assert ArchitectureSpec(width=12, attention="self", heads=5).problems()


@pytest.mark.parametrize("index", [2, 9])
def test_rendered_architecture_passes_the_sandboxed_smoke_test(index: int) -> None:
    from agent.safety.smoke import smoke_test

    spec = mutations(FAMILY_BASES["seresnet"], index)
    result = smoke_test(render_source(spec), kwargs=model_args(spec), input_length=720)
    assert result.accepted, result.reasons
    assert result.output_shape == (2, 3) and result.uses_features is True
    assert result.num_params == estimate_params(spec, 1, 3, num_features=9)  # the default F
