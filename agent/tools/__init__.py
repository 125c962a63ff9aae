"""The agent's tools: smolagents `Tool` objects, one per action the agent may take.

Each tool is a module-level object made with smolagents' `@tool`; it works inside a
`CodeAgent` and when called directly (`agent.tools.list_available_configs()`). Tools read the
campaign they serve from the active `ToolContext` (`use_context(ctx)`; without one, a default
context with no campaign), log each call in `ctx.tool_log`, and raise a `ValueError` whose
one-line message says what was wrong and what to try instead, because a model reads it.
What they return is plain data (dicts, lists, strings; paths as `PurePosixPath`, which has no
file methods), since the agent's code may call any method of a returned object.

Tier 1, read-only (always given; never shows a test-set metric):

* `list_available_configs()`: config group -> names (generated models included).
* `read_run_results(run_dir)`, `read_experiment_config(run_dir)`: one run (a run directory
  or a run id of the campaign): results and per-epoch metrics / the resolved config.
* `compare_runs(run_dirs)`: several runs ranked best first, with the settings that differ.
* `suggest_search_space(run_dir)`: next steps read from one run's training curve.
* `check_drift()`, `get_experiment_history()`: the campaign's signals / compact history.

Tier 2, writes YAML through the safety layer (given when max_tier >= 2):
`create_config_variant(group, base, name, mods)`, `compose_experiment_config(name,
components, overrides)`.

Tier 3, writes Python through the safety layer (given when max_tier >= 3):
`read_model_source(model_name)`, `register_generated_model(name, code, args)`.

Always given: `propose_trials(proposals)`, which checks proposals and puts them in
`ctx.proposals`; `proposals_from_answer(answer, ctx)` does the same conversion for an agent's
final answer. `tools_for_tier(max_tier)` is the list an agent gets.
"""

from __future__ import annotations

from smolagents import Tool

from agent.safety.models import RegisteredModel
from agent.tools._context import ToolContext, ToolError, current_context, use_context
from agent.tools._propose import proposals_from_answer, propose_trials
from agent.tools._read import (
    check_drift,
    compare_runs,
    get_experiment_history,
    list_available_configs,
    read_experiment_config,
    read_run_results,
    suggest_search_space,
)
from agent.tools._write import (
    compose_experiment_config,
    create_config_variant,
    read_model_source,
    register_generated_model,
)

__all__ = [
    "TIER1_TOOLS",
    "TIER2_TOOLS",
    "TIER3_TOOLS",
    "RegisteredModel",
    "ToolContext",
    "ToolError",
    "check_drift",
    "compare_runs",
    "compose_experiment_config",
    "create_config_variant",
    "current_context",
    "get_experiment_history",
    "list_available_configs",
    "proposals_from_answer",
    "propose_trials",
    "read_experiment_config",
    "read_model_source",
    "read_run_results",
    "register_generated_model",
    "suggest_search_space",
    "tools_for_tier",
    "use_context",
]

TIER1_TOOLS: tuple[Tool, ...] = (
    list_available_configs,
    read_run_results,
    read_experiment_config,
    compare_runs,
    suggest_search_space,
    check_drift,
    get_experiment_history,
)
TIER2_TOOLS: tuple[Tool, ...] = (create_config_variant, compose_experiment_config)
TIER3_TOOLS: tuple[Tool, ...] = (read_model_source, register_generated_model)


def tools_for_tier(max_tier: int) -> list[Tool]:
    """The tools an agent gets for a campaign whose highest tier is `max_tier`: tier 1 and
    `propose_trials` always, tier 2's from 2, tier 3's from 3 (a new list each call)."""
    if isinstance(max_tier, bool) or not isinstance(max_tier, int):
        raise TypeError(f"max_tier must be an int (0-3), got {max_tier!r}")
    tools: list[Tool] = [*TIER1_TOOLS, propose_trials]
    if max_tier >= 2:
        tools += TIER2_TOOLS
    if max_tier >= 3:
        tools += TIER3_TOOLS
    return tools
