"""Goal composition: shipped goals compose with Hydra; a failure names the goal and Hydra's
reason; the check leaves a running Hydra app's state as it found it."""

from __future__ import annotations

from pathlib import Path

import pytest
from goal_helpers import REPO, write_campaign

from search.goals import CampaignError, check_goal_composes, list_goals, load_goal

SHIPPED = list_goals(REPO / "campaigns")


@pytest.mark.parametrize("spec", [spec for spec, _ in SHIPPED])
def test_shipped_goal_loads_and_composes(spec: str) -> None:
    goal = load_goal(spec, REPO / "campaigns", configs_dir=REPO / "configs")
    cfg = check_goal_composes(goal, REPO / "configs")
    for key, value in goal.sample_config().items():
        if key.startswith("model.") or key.startswith("trainer."):
            section, name = key.split(".", 1)
            assert cfg[section][name] == value
    assert cfg.trainer.metric in (None, goal.metric)


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


def test_compose_check_keeps_a_running_hydra_state() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    goal = load_goal(SHIPPED[0][0], REPO / "campaigns", configs_dir=REPO / "configs")
    # as inside a @hydra.main app: the check composes in its own state, then puts the app's back
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        check_goal_composes(goal, REPO / "configs")
        assert GlobalHydra.instance().is_initialized()
        assert "trainer" in compose("config")  # the app can still compose
