"""Campaign goals: errors name file, key, value and what is allowed; shipped goals compose."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from search.campaign import (
    CampaignError,
    CampaignGoal,
    SearchDomain,
    check_goal_composes,
    default_campaigns_dir,
    default_configs_dir,
    format_override_value,
    list_goals,
    load_campaign_file,
    load_goal,
)

REPO = Path(__file__).resolve().parents[2]

VALID_GOAL: dict[str, Any] = {
    "description": "a small goal",
    "experiment": "exp_a",
    "overrides": ["trainer.epochs=3"],
    "metric": "val/macro_f1",
    "mode": "max",
    "target": 0.9,
    "budget": 8,
    "max_concurrent": 2,
    "wall_time_min": 5,
    "resources": {"cpu": 1, "gpu": 0.25},
    "space": {
        "trainer.lr": {"loguniform": [1.0e-4, 1.0e-2]},
        "trainer.batch_size": {"choice": [64, 128]},
        "model.width": {"randint": [4, 16]},
        "model.depth": {"qrandint": [2, 8, 2]},
        "trainer.weight_decay": {"uniform": [0.0, 0.1]},
        "model.dropout": {"quniform": [0.0, 0.5, 0.1]},
        "model.channels": {"lograndint": [8, 64]},
    },
    "escalation": {"window": 3, "min_delta": 0.01, "patience": 1},
    "max_tier": 3,
    "models": ["model_a", "model_b"],
    "constraints": {"num_params": {"max": 1000}},
    "llm": {"model": "offline", "temperature": 0.2, "max_steps": 4, "api_key_env": "OPENAI_KEY"},
}


@pytest.fixture
def configs_dir(tmp_path: Path) -> Path:
    """A fake Hydra config dir: experiments exp_a/exp_b, models model_a/model_b."""
    root = tmp_path / "configs"
    for group, names in (("experiment", ["exp_a", "exp_b"]), ("model", ["model_a", "model_b"])):
        (root / group).mkdir(parents=True)
        for name in names:
            (root / group / f"{name}.yaml").write_text("{}\n", encoding="utf-8")
    return root


def write_campaign(directory: Path, goals: dict[str, Any], name: str = "demo") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"goals": goals}, sort_keys=False), encoding="utf-8")
    return path


def goal_with(**changes: Any) -> dict[str, Any]:
    goal = copy.deepcopy(VALID_GOAL)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = goal
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return goal


_DELETE = object()


def load_one(tmp_path: Path, configs_dir: Path, goal: Any) -> CampaignGoal:
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns, {"g": goal})
    return load_goal("demo:g", campaigns, configs_dir=configs_dir)


def test_valid_goal_loads(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, VALID_GOAL)
    assert goal.name == "g" and goal.spec == "demo:g"
    assert goal.space["trainer.lr"] == SearchDomain(kind="loguniform", low=1e-4, high=1e-2)
    assert goal.resources.as_ray() == {"cpu": 1.0, "gpu": 0.25}
    assert goal.wall_time_s == 300.0
    assert goal.llm.api_key_env == "OPENAI_KEY"


# (change, substrings the one-line message must contain besides the file name)
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
    ("missing_metric", {"metric": _DELETE}, ["goals.g.metric", "required key is missing"]),
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


def test_domain_built_in_code_is_validated_too() -> None:
    domain = SearchDomain(kind="randint", low=4, high=16)
    assert SearchDomain.model_validate(domain.model_dump()) == domain
    with pytest.raises(ValueError, match="low must be < high"):
        SearchDomain(kind="uniform", low=1.0, high=0.5)
    with pytest.raises(ValueError, match="uniform takes high, kind, low"):
        SearchDomain(kind="uniform", low=0.0, high=0.5, q=0.1)


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


def test_goal_not_a_mapping(tmp_path: Path, configs_dir: Path) -> None:
    with pytest.raises(CampaignError, match=r"goals\.g: must be a mapping of keys to values"):
        load_one(tmp_path, configs_dir, 5)


def test_loader_fields_cannot_be_set(tmp_path: Path, configs_dir: Path) -> None:
    with pytest.raises(CampaignError, match=r"goals\.g\.name: set by the loader"):
        load_one(tmp_path, configs_dir, {**VALID_GOAL, "name": "other"})


def test_unknown_file_lists_available(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns, {"g": VALID_GOAL}, name="mitbih")
    write_campaign(campaigns, {"g": VALID_GOAL}, name="galaxyppg")
    with pytest.raises(CampaignError) as info:
        load_goal("mitbi:g", campaigns, configs_dir=None)
    message = str(info.value)
    assert "'mitbi'" in message and "did you mean 'mitbih'" in message
    assert "allowed: galaxyppg, mitbih" in message


def test_unknown_goal_lists_goals_in_file(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns"
    path = write_campaign(campaigns, {"fast": VALID_GOAL, "slow": VALID_GOAL})
    with pytest.raises(CampaignError) as info:
        load_goal("demo:fats", campaigns, configs_dir=None)
    message = str(info.value)
    assert message.startswith(f"{path}: goals.fats: no such goal")
    assert "did you mean 'fast'" in message and "allowed: fast, slow" in message


@pytest.mark.parametrize("spec", ["demo", "demo:", ":g", ""])
def test_malformed_spec(tmp_path: Path, spec: str) -> None:
    with pytest.raises(CampaignError, match="file:goal"):
        load_goal(spec, tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("goals:\n  g: [1,\n", "line "),
        ("other: {}\n", "exactly one top-level key, goals, got ['other']"),
        ("goals: {}\n", "goals: must map goal names to goals, got {}"),
        ("goals:\n  1bad: {}\n", "goals.1bad: goal names are letters"),
    ],
)
def test_bad_file_shape(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaign_file(path, configs_dir=None)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_spec_may_be_a_path_and_dir_may_come_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_campaign(tmp_path / "elsewhere", {"g": VALID_GOAL}, name="mine")
    assert load_goal(f"{path}:g", configs_dir=None).name == "g"
    monkeypatch.setenv("AGENTUNE_CAMPAIGNS_DIR", str(path.parent))
    assert default_campaigns_dir() == path.parent.resolve()
    assert list_goals() == [("mine:g", "a small goal")]


# ---- conversions ------------------------------------------------------------------------------


def test_tune_space_types_and_bounds(tmp_path: Path, configs_dir: Path) -> None:
    from ray.tune.search import sample

    space = load_one(tmp_path, configs_dir, VALID_GOAL).tune_space()
    assert list(space) == list(VALID_GOAL["space"])
    lr = space["trainer.lr"]
    assert isinstance(lr, sample.Float) and isinstance(lr.get_sampler(), sample.LogUniform)
    assert (lr.lower, lr.upper) == (1e-4, 1e-2)
    batch = space["trainer.batch_size"]
    assert isinstance(batch, sample.Categorical) and batch.categories == [64, 128]
    width = space["model.width"]  # YAML bounds are inclusive; tune.randint's upper is not
    assert isinstance(width, sample.Integer) and (width.lower, width.upper) == (4, 17)
    depth = space["model.depth"]
    assert isinstance(depth, sample.Integer) and isinstance(depth.get_sampler(), sample.Quantized)
    assert (depth.lower, depth.upper) == (2, 8)
    dropout = space["model.dropout"]
    assert isinstance(dropout, sample.Float) and isinstance(dropout.get_sampler(), sample.Quantized)
    channels = space["model.channels"]
    assert isinstance(channels, sample.Integer) and (channels.lower, channels.upper) == (8, 65)
    assert isinstance(space["trainer.weight_decay"], sample.Float)
    rng = np.random.default_rng(0)
    widths = {int(w) for w in width.sample(size=400, random_state=rng)}
    assert widths == set(range(4, 17))


def test_optuna_space_bounds_are_inclusive(tmp_path: Path, configs_dir: Path) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = load_one(tmp_path, configs_dir, VALID_GOAL).optuna_space()
    assert space["model.width"] == IntDistribution(4, 16)
    assert space["model.depth"] == IntDistribution(2, 8, step=2)
    assert space["model.channels"] == IntDistribution(8, 64, log=True)
    assert space["trainer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert space["trainer.batch_size"] == CategoricalDistribution([64, 128])


def test_spec_dicts_follow_search_space_conventions(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, VALID_GOAL)
    assert goal.space["model.width"].to_spec() == {"type": "randint", "low": 4, "high": 17}
    assert goal.space["model.depth"].to_spec() == {"type": "qrandint", "low": 2, "high": 8, "q": 2}
    assert goal.space["trainer.batch_size"].to_spec() == {"type": "choice", "values": [64, 128]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.001, "0.001"),
        (1e-05, "1e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e16, "1e+16"),
        (np.float64(0.25), "0.25"),
        (np.float32(0.1), "0.10000000149011612"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (float("nan"), "nan"),
        (3, "3"),
        (np.int64(128), "128"),
        (True, "true"),
        (None, "null"),
        ("cnn1d", "cnn1d"),
        ("adamw/fused-v2.1", "adamw/fused-v2.1"),
        ("true", "'true'"),
        ("Null", "'Null'"),
        ("1.5", "'1.5'"),
        ("it's a b", "'it\\'s a b'"),
        ("C:\\dir\\", "'C:\\dir\\\\'"),
        ("", "''"),
        ([1, 2.5, "a"], "[1,2.5,a]"),
        ({"a": 1}, "{a:1}"),
    ],
)
def test_format_override_value_round_trips_through_hydra(value: Any, expected: str) -> None:
    text = format_override_value(value)
    assert text == expected
    parsed = OverridesParser.create().parse_override(f"k={text}").value()
    if isinstance(value, float | np.floating) and math.isnan(value):
        assert isinstance(parsed, float) and math.isnan(parsed)
    elif isinstance(value, np.generic):
        assert parsed == value.item()
    else:
        assert parsed == value and type(parsed) is type(value)


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


def test_constraints_target_and_contains(tmp_path: Path, configs_dir: Path) -> None:
    goal = load_one(tmp_path, configs_dir, goal_with(constraints={"num_params": {"max": 1000}}))
    assert goal.is_feasible({"num_params": 1000})
    assert goal.constraint_violations({"num_params": 1001}) == ["num_params=1001 > max 1000.0"]
    assert goal.constraint_violations({}) == ["num_params was not reported"]
    assert goal.reached_target(0.95) and not goal.reached_target(0.5)
    assert not goal.reached_target(None) and not goal.reached_target(float("nan"))
    assert goal.space["model.width"].contains(16) and not goal.space["model.width"].contains(17)
    assert not goal.space["model.width"].contains(4.5)
    assert goal.space["trainer.batch_size"].contains(64)
    assert goal.space["trainer.batch_size"].contains(np.int64(128))
    assert not goal.space["trainer.batch_size"].contains("64")
    assert not goal.space["trainer.batch_size"].contains(True)
    assert all(goal.space[k].contains(v) for k, v in goal.sample_config().items())


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

    goal = load_one(tmp_path, configs_dir, goal_with(escalation=_DELETE))
    got, defaults = goal.signal_thresholds(), SignalThresholds()
    for key in ("window", "min_delta", "patience", "hopeless_after", "noise", "improvement_k"):
        assert getattr(got, key) == getattr(defaults, key), key


# ---- shipped goals ----------------------------------------------------------------------------

SHIPPED = list_goals(REPO / "campaigns")


def test_shipped_goals_are_listed() -> None:
    specs = {spec for spec, _ in SHIPPED}
    expected = {"mitbih:aami3_baseline", "mitbih:aami3_quick", "galaxyppg:hr_optimize"}
    assert expected | {"galaxyppg:hr_quick"} <= specs
    assert all(description for _, description in SHIPPED)
    assert default_configs_dir() == REPO / "configs"


@pytest.mark.parametrize("spec", [spec for spec, _ in SHIPPED])
def test_shipped_goal_loads_and_composes(spec: str) -> None:
    goal = load_goal(spec, REPO / "campaigns", configs_dir=REPO / "configs")
    cfg = check_goal_composes(goal, REPO / "configs")
    for key, value in goal.sample_config().items():
        if key.startswith("model.") or key.startswith("trainer."):
            section, name = key.split(".", 1)
            assert cfg[section][name] == value
    assert cfg.trainer.metric in (None, goal.metric)


@pytest.mark.parametrize("spec", [s for s, _ in SHIPPED if s.split(":")[1].endswith("quick")])
def test_quick_goals_fit_a_few_minutes_and_escalate(spec: str) -> None:
    goal = load_goal(spec, REPO / "campaigns", configs_dir=REPO / "configs")
    assert goal.experiment.endswith("_quick")
    assert 8 <= goal.budget <= 24 and goal.max_concurrent == 2
    assert goal.wall_time_min is not None and goal.wall_time_min < 10
    assert goal.resources.cpu * goal.max_concurrent <= 2 and goal.resources.gpu == 0
    assert goal.max_tier == 3 and goal.llm.model == "offline"
    # two escalations (tier 0 -> 2 -> 3) fit in the budget with room to use tier 3
    esc = goal.escalation
    assert 2 * esc.window * esc.patience < goal.budget


def test_compose_failure_names_goal_and_hydra_reason(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns"
    goal = {
        "description": "d",
        "experiment": "galaxyppg_hr_quick",
        "metric": "val/mae",
        "mode": "min",
        "budget": 2,
        "space": {"trainer.lrr": {"loguniform": [1e-4, 1e-2]}},
    }
    path = write_campaign(campaigns, {"typo": goal})
    loaded = load_goal("demo:typo", campaigns, configs_dir=REPO / "configs")
    with pytest.raises(CampaignError) as info:
        check_goal_composes(loaded, REPO / "configs", models=False)
    message = str(info.value)
    assert message.startswith(f"{path}: goals.typo: Hydra cannot compose")
    assert "Could not override 'trainer.lrr'" in message and "\n" not in message


def test_compose_checks_trainer_metric(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns"
    goal = {
        "description": "d",
        "experiment": "galaxyppg_hr_quick",
        "metric": "val/rmse",
        "mode": "min",
        "budget": 2,
        "space": {"trainer.lr": {"loguniform": [1e-4, 1e-2]}},
    }
    write_campaign(campaigns, {"rmse": goal})
    loaded = load_goal("demo:rmse", campaigns, configs_dir=REPO / "configs")
    with pytest.raises(CampaignError, match=r"goals\.rmse\.metric: .*trainer\.metric=val/mae"):
        check_goal_composes(loaded, REPO / "configs")
