"""Campaign goals: the YAML files a user writes to describe a search campaign.

A campaign file (`campaigns/<file>.yaml`) holds named goals under `goals:`; a goal is addressed as
`file:goal` (`mitbih:aami3_quick`). `campaigns/README.md` documents every key. Loading validates
the whole goal through a pydantic schema (`extra="forbid"` everywhere, so a typo'd key is an
error), and checks the experiment and model names against `configs/`, so a bad goal fails before
anything runs with a one-line message naming the file, the key, the value and what is allowed::

    campaigns/mitbih.yaml: goals.aami3_quick.space.trainer.lr: low must be < high, got low=0.1, ...

Usage::

    goal = load_goal("mitbih:aami3_quick")
    space = goal.tune_space()                       # {"trainer.lr": tune.loguniform(...), ...}
    overrides = goal.compose_overrides({"trainer.lr": 0.001})
    # ["experiment=mitbih_aami3_quick", "trainer.epochs=3", "trainer.lr=0.001"]

Search-space keys, proposal keys and history columns are all Hydra override paths.

Modules, in import order (each imports only those before it):
    `domains` (`SearchDomain`: one `space` entry), `settings` (resources, escalation,
    constraints, LLM), `schema` (`CampaignGoal`), `compose` (`check_goal_composes`: Hydra
    composition through `biosignals.train.compose_config`), `loader` (`load_goal`,
    `list_goals`, `scan_goals`). Override strings are parsed and values formatted by
    `agent.overrides` (re-exported here: `format_override_value`, `iter_override_items`).
"""

from __future__ import annotations

from agent.overrides import format_override_value, iter_override_items
from search.goals._base import CampaignError
from search.goals._paths import (
    CAMPAIGNS_DIR_ENV,
    CONFIGS_DIR_ENV,
    default_campaigns_dir,
    default_configs_dir,
)
from search.goals.compose import check_goal_composes
from search.goals.domains import DOMAIN_KINDS, SearchDomain
from search.goals.loader import list_goals, load_campaign_file, load_goal, scan_goals
from search.goals.schema import ALLOWED_TIERS, METRIC_MODES, CampaignGoal
from search.goals.settings import Constraint, EscalationSettings, LLMSettings, TrialResources

__all__ = [
    "ALLOWED_TIERS",
    "CAMPAIGNS_DIR_ENV",
    "CONFIGS_DIR_ENV",
    "DOMAIN_KINDS",
    "METRIC_MODES",
    "CampaignError",
    "CampaignGoal",
    "Constraint",
    "EscalationSettings",
    "LLMSettings",
    "SearchDomain",
    "TrialResources",
    "check_goal_composes",
    "default_campaigns_dir",
    "default_configs_dir",
    "format_override_value",
    "iter_override_items",
    "list_goals",
    "load_campaign_file",
    "load_goal",
    "scan_goals",
]
