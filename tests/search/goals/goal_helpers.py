"""Goal builders shared by the campaign-goal tests (imported as ``goal_helpers``).

Every goal is written to a campaign file under `tmp_path` and loaded back, so the tests go
through the loader's error formatting as a user's file does.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from search.goals import CampaignGoal, load_goal

REPO = Path(__file__).resolve().parents[3]

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


def make_configs_dir(tmp_path: Path) -> Path:
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
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return goal


DELETE = object()  # goal_with(key=DELETE) removes the key


def load_one(tmp_path: Path, configs_dir: Path, goal: Any) -> CampaignGoal:
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns, {"g": goal})
    return load_goal("demo:g", campaigns, configs_dir=configs_dir)
