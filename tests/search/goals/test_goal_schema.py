"""The goal schema: every bad goal fails with one line naming file, key, value and what is
allowed; a valid goal converts to the overrides, constraints and thresholds its users read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from goal_helpers import DELETE, VALID_GOAL, goal_with, load_one, make_configs_dir

from search.goals import CampaignError, SearchDomain


@pytest.fixture
def configs_dir(tmp_path: Path) -> Path:
    """A fake Hydra config dir: experiments exp_a/exp_b, models model_a/model_b."""
    return make_configs_dir(tmp_path)


def test_valid_goal_loads(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, VALID_GOAL)
    assert goal.name == "g" and goal.spec == "demo:g"
    assert goal.space["trainer.lr"] == SearchDomain(kind="loguniform", low=1e-4, high=1e-2)
    assert goal.resources.as_ray() == {"cpu": 1.0, "gpu": 0.25}
    assert goal.wall_time_s == 300.0
    assert goal.llm.api_key_env == "OPENAI_KEY"


BAD_GOALS: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "low_above_high",
        {"space__trainer.lr": {"loguniform": [0.1, 0.01]}},
        ["goals.g.space.trainer.lr: low must be < high, got low=0.1, high=0.01"],
    ),
    (
        "log_nonpositive",
        {"space__trainer.lr": {"loguniform": [0.0, 0.01]}},
        ["goals.g.space.trainer.lr", "positive bounds", "low=0.0"],
    ),
    (
        "empty_choice",
        {"space__trainer.batch_size": {"choice": []}},
        ["goals.g.space.trainer.batch_size.choice", "at least one value", "got []"],
    ),
    (
        "duplicate_choice",
        {"space__trainer.batch_size": {"choice": [64, 64]}},
        ["goals.g.space.trainer.batch_size.choice", "distinct", "64"],
    ),
    (
        "unknown_kind",
        {"space__trainer.lr": {"logunifrom": [1e-4, 1e-2]}},
        ["goals.g.space.trainer.lr", "'logunifrom'", "did you mean 'loguniform'", "allowed:"],
    ),
    (
        "domain_not_mapping",
        {"space__trainer.lr": 0.001},
        ["goals.g.space.trainer.lr", "got 0.001", "allowed: {uniform: [low, high]}"],
    ),
    (
        "domain_wrong_arity",
        {"space__model.dropout": {"quniform": [0.0, 0.5]}},
        ["goals.g.space.model.dropout.quniform", "[low, high, q]", "got [0.0, 0.5]"],
    ),
    (
        "int_domain_float_bound",
        {"space__model.width": {"randint": [4, 16.5]}},
        ["goals.g.space.model.width.randint", "high must be an integer", "high=16.5"],
    ),
    (
        "q_not_multiple",
        {"space__model.depth": {"qrandint": [2, 9, 2]}},
        ["goals.g.space.model.depth", "multiple of q", "high=9", "q=2"],
    ),
    (
        "bad_space_key",
        {"space": {"trainer lr": {"uniform": [0.0, 1.0]}}},
        ["goals.g.space.trainer lr", "Hydra override paths", "'trainer lr'"],
    ),
    ("empty_space", {"space": {}}, ["goals.g.space", "at least one key", "got {}"]),
    (
        "typo_key",
        {"budgt": 8},
        ["goals.g.budgt", "unknown key", "did you mean 'budget'", "allowed: description"],
    ),
    (
        "nested_typo_key",
        {"escalation__windw": 3},
        ["goals.g.escalation.windw", "did you mean 'window'", "allowed: window, min_delta"],
    ),
    ("bad_mode", {"mode": "maximize"}, ["goals.g.mode", "'min' or 'max'", "got 'maximize'"]),
    (
        "mode_contradicts_metric",
        {"metric": "val/mae", "mode": "max"},
        ["goals.g.mode", "val/mae is better when smaller", "mode must be min", "got 'max'"],
    ),
    ("budget_zero", {"budget": 0}, ["goals.g.budget", "greater than or equal to 1", "got 0"]),
    ("budget_string", {"budget": "ten"}, ["goals.g.budget", "valid integer", "got 'ten'"]),
    ("budget_bool", {"budget": True}, ["goals.g.budget", "valid integer", "got True"]),
    (
        "concurrency_above_budget",
        {"max_concurrent": 9},
        ["goals.g.max_concurrent", "<= budget (8)", "got 9"],
    ),
    ("missing_metric", {"metric": DELETE}, ["goals.g.metric", "required key is missing"]),
    (
        "unknown_experiment",
        {"experiment": "exp_c"},
        ["goals.g.experiment", "got 'exp_c'", "allowed: exp_a, exp_b"],
    ),
    (
        "unknown_model",
        {"models": ["model_a", "modl_b"]},
        ["goals.g.models[1]", "'modl_b'", "did you mean 'model_b'", "allowed: model_a, model_b"],
    ),
    (
        "models_below_tier2",
        {"max_tier": 0},
        ["goals.g.models", "max_tier is 0", "raise max_tier to 2 or 3"],
    ),
    ("bad_tier", {"max_tier": 1}, ["goals.g.max_tier", "one of 0, 2, 3", "got 1"]),
    (
        "temperature_high",
        {"llm__temperature": 3.0},
        ["goals.g.llm.temperature", "less than or equal to 2", "got 3.0"],
    ),
    ("max_steps_zero", {"llm__max_steps": 0}, ["goals.g.llm.max_steps", "got 0"]),
    (
        "env_name_invalid",
        {"llm__api_key_env": "MY-KEY"},
        ["goals.g.llm.api_key_env", "environment variable name", "got 'MY-KEY'"],
    ),
    (
        "inline_api_key",
        {"llm__api_key": "abc"},
        ["goals.g.llm.api_key", "never put an API key in a campaign file", "api_key_env"],
    ),
    (
        "constraint_without_bounds",
        {"constraints__num_params": {}},
        ["goals.g.constraints.num_params", "needs min, max or both", "allowed: min, max"],
    ),
    (
        "constraint_min_above_max",
        {"constraints__num_params": {"min": 10, "max": 1}},
        ["goals.g.constraints.num_params", "min must be <= max", "min=10.0, max=1.0"],
    ),
    (
        "gpu_negative",
        {"resources__gpu": -1},
        ["goals.g.resources.gpu", "greater than or equal to 0", "got -1"],
    ),
    ("window_one", {"escalation__window": 1}, ["goals.g.escalation.window", "equal to 2", "got 1"]),
    (
        "wall_time_negative",
        {"wall_time_min": -5},
        ["goals.g.wall_time_min", "greater than 0", "got -5"],
    ),
    (
        "override_syntax",
        {"overrides": ["trainer.epochs=[1,"]},
        ["goals.g.overrides[0]", "not a valid Hydra override", "'trainer.epochs=[1,'"],
    ),
    (
        "override_not_string",
        {"overrides": [3]},
        ["goals.g.overrides[0]", "valid string", "got 3"],
    ),
    (
        "override_sets_experiment",
        {"overrides": ["experiment=exp_b"]},
        ["goals.g.overrides[0]", "experiment key", "'experiment=exp_b'"],
    ),
    (
        "override_without_key",
        {"overrides": ["=3"]},  # Hydra parses it; a goal's override must name a key
        ["goals.g.overrides[0]", "needs a key before '='", "'=3'"],
    ),
    (
        "override_sets_experiment_with_prefix",
        {"overrides": ["++experiment=exp_b"]},
        ["goals.g.overrides[0]", "experiment key", "'++experiment=exp_b'"],
    ),
    (
        "searched_and_deleted",
        {"overrides": ["~trainer.lr"]},
        ["goals.g.space.trainer.lr", "both searched and fixed", "'~trainer.lr'"],
    ),
    (
        "searched_and_fixed",
        {"overrides": ["trainer.lr=0.1"]},
        ["goals.g.space.trainer.lr", "both searched and fixed", "'trainer.lr=0.1'"],
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in BAD_GOALS], ids=[i for i, _, _ in BAD_GOALS]
)
def test_bad_goal_names_file_key_value(
    tmp_path: Path, configs_dir: Path, change: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(CampaignError) as info:
        load_one(tmp_path, configs_dir, goal_with(**change))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "campaigns" / "demo.yaml") + ": ")
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("secret", ["sk-proj-abcdefghijklmnop1234", "hf_AbCdEfGhIjKlMnOpQrStUv"])
def test_api_key_pasted_as_env_name_is_rejected_without_echoing_it(
    tmp_path: Path, configs_dir: Path, secret: str
) -> None:
    with pytest.raises(CampaignError) as info:
        load_one(tmp_path, configs_dir, goal_with(llm__api_key_env=secret))
    message = str(info.value)
    assert "goals.g.llm.api_key_env" in message and "looks like an API key" in message
    assert secret not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_all_errors_are_collected(tmp_path: Path, configs_dir: Path) -> None:
    with pytest.raises(CampaignError) as info:
        load_one(tmp_path, configs_dir, goal_with(budget=0, mode="up"))
    assert len(info.value.errors) == 2
    assert str(info.value).endswith("(and 1 more)")


def test_hydra_overrides(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, VALID_GOAL)
    config = {"trainer.lr": 0.0012345678901234567, "model": "model_b", "trainer": {"bs": 64}}
    assert goal.hydra_overrides(config) == [
        "trainer.lr=0.0012345678901234567",
        "model=model_b",
        "trainer.bs=64",
    ]
    assert goal.compose_overrides({"model.width": 8}) == [
        "experiment=exp_a",
        "trainer.epochs=3",
        "model.width=8",
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"trainer lr": 1}, "'trainer lr' is not a Hydra override path"),
        ({"model.name": "${oc.env:HOME}"}, "model.name: values may not hold interpolations"),
        ({"model.obj": object()}, "model.obj: cannot write a object"),
    ],
)
def test_hydra_overrides_rejects(
    tmp_path: Path, configs_dir: Path, config: dict[str, Any], expected: str
) -> None:
    goal = load_one(tmp_path, configs_dir, VALID_GOAL)
    with pytest.raises(CampaignError, match="demo:g") as info:
        goal.hydra_overrides(config)
    assert expected in str(info.value)


def test_constraints_and_target(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, goal_with(constraints={"num_params": {"max": 1000}}))
    assert goal.is_feasible({"num_params": 1000})
    assert goal.constraint_violations({"num_params": 1001}) == ["num_params=1001 > max 1000.0"]
    assert goal.constraint_violations({}) == ["num_params was not reported"]
    assert goal.reached_target(0.95) and not goal.reached_target(0.5)
    assert not goal.reached_target(None) and not goal.reached_target(float("nan"))


def test_signal_thresholds_come_from_the_goal(tmp_path: Path, configs_dir: Path) -> None:
    from feedback.signals import SignalThresholds

    goal = load_one(tmp_path, configs_dir, goal_with(llm__token_budget=5000))
    thresholds = goal.signal_thresholds()
    assert isinstance(thresholds, SignalThresholds)
    assert (thresholds.window, thresholds.min_delta, thresholds.patience) == (3, 0.01, 1)
    # the token budget ends the agent's calls, not the campaign: SmolagentsProposer holds it
    assert (thresholds.target, thresholds.budget, thresholds.token_budget) == (0.9, 8, None)


def test_measured_noise_reaches_the_signals(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, goal_with(escalation__noise=0.02))
    assert goal.signal_thresholds().noise == 0.02
    with pytest.raises(CampaignError, match="noise"):
        load_one(tmp_path, configs_dir, goal_with(escalation__noise=-1.0))


def test_sampler_defaults_to_gp_and_is_checked(tmp_path: Path, configs_dir: Path) -> None:
    assert load_one(tmp_path, configs_dir, goal_with()).sampler == "gp"
    assert load_one(tmp_path, configs_dir, goal_with(sampler="tpe")).sampler == "tpe"
    with pytest.raises(CampaignError, match="sampler"):
        load_one(tmp_path, configs_dir, goal_with(sampler="cmaes"))


def test_escalation_defaults_are_the_signals_defaults(tmp_path: Path, configs_dir: Path) -> None:
    from feedback.signals import SignalThresholds

    goal = load_one(tmp_path, configs_dir, goal_with(escalation=DELETE))
    got, defaults = goal.signal_thresholds(), SignalThresholds()
    keys = ("window", "min_delta", "patience", "hopeless_after", "noise", "improvement_k")
    for key in (*keys, "trend_k"):
        assert getattr(got, key) == getattr(defaults, key), key
    assert goal.signal_thresholds().trend_k == defaults.trend_k
    tuned = load_one(tmp_path, configs_dir, goal_with(escalation__trend_k=1.5))
    assert tuned.signal_thresholds().trend_k == 1.5


def test_repeats_default_off_and_bounded(tmp_path: Path, configs_dir: Path) -> None:
    assert load_one(tmp_path, configs_dir, goal_with()).repeats == 0
    assert load_one(tmp_path, configs_dir, goal_with(repeats=2)).repeats == 2
    for bad in (-1, 11, "two"):
        with pytest.raises(CampaignError, match="repeats"):
            load_one(tmp_path, configs_dir, goal_with(repeats=bad))
