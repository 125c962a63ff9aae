"""Reading campaign files: unknown files and goals list what exists; shipped goals load."""

from __future__ import annotations

from pathlib import Path

import pytest
from goal_helpers import REPO, VALID_GOAL, load_one, make_configs_dir, write_campaign

from search.goals import (
    CampaignError,
    default_campaigns_dir,
    default_configs_dir,
    list_goals,
    load_campaign_file,
    load_goal,
)


@pytest.fixture
def configs_dir(tmp_path: Path) -> Path:
    """A fake Hydra config dir: experiments exp_a/exp_b, models model_a/model_b."""
    return make_configs_dir(tmp_path)


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


SHIPPED = list_goals(REPO / "campaigns")


def test_shipped_goals_are_listed() -> None:
    specs = {spec for spec, _ in SHIPPED}
    expected = {"mitbih:aami3_baseline", "mitbih:aami3_quick", "galaxyppg:hr_optimize"}
    assert expected | {"galaxyppg:hr_quick"} <= specs
    assert all(description for _, description in SHIPPED)
    assert default_configs_dir() == REPO / "configs"


@pytest.mark.parametrize("spec", [s for s, _ in SHIPPED if s.split(":")[1].endswith("quick")])
def test_quick_goals_fit_a_few_minutes_and_escalate(spec: str) -> None:
    goal = load_goal(spec, REPO / "campaigns", configs_dir=REPO / "configs")
    assert goal.experiment.endswith("_quick")
    assert 8 <= goal.budget <= 40 and goal.max_concurrent == 2
    assert goal.wall_time_min is not None and goal.wall_time_min < 10
    assert goal.resources.cpu * goal.max_concurrent <= 2 and goal.resources.gpu == 0
    assert goal.max_tier == 3 and goal.llm.model == "offline"
    # two escalations (tier 0 -> 2 -> 3) fit in the budget with room to use tier 3: the first
    # stagnation needs two windows of runs, each other listed model its 3 trials before tier 3,
    # and the repeats of a few incumbents (say 4) take trials that bring no new config
    esc = goal.escalation
    assert (
        2 * max(esc.window, esc.window * esc.patience)
        + 3 * (len(goal.models) - 1)
        + 4 * goal.repeats
        + 4
        <= goal.budget
    )
