"""The agent's prompts: the system prompt (package data, YAML) and the task texts.

The system prompt lives in `code_agent.yaml` next to this module; it explains the escalation
ladder, the signals, the model contract and how to hand proposals over. The planning and
managed-agent sections, which agentune does not change, come from smolagents' own prompt
file, so a smolagents upgrade that adds a section keeps working.

Every task starts with prose for an LLM and carries the same facts as one machine-readable
line, ``FACTS_JSON: {...}`` (see `FACTS_PREFIX`): the offline model reads that line, and a
real LLM reads both.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from agent.proposer import ProposalContext

__all__ = [
    "FACTS_PREFIX",
    "context_facts",
    "load_prompt_templates",
    "parse_facts",
    "propose_task",
    "summary_task",
]

FACTS_PREFIX = "FACTS_JSON: "
"""Start of the one line of a task that holds its facts as JSON."""


def load_prompt_templates() -> Any:
    """smolagents' CodeAgent prompt templates with agentune's system prompt and final answer.

    Returns:
        A `smolagents.PromptTemplates` dict for `CodeAgent(prompt_templates=...)`.
    """
    base = yaml.safe_load(
        importlib.resources.files("smolagents.prompts").joinpath("code_agent.yaml").read_text()
    )
    ours = yaml.safe_load(
        importlib.resources.files("agent.prompts").joinpath("code_agent.yaml").read_text()
    )
    base.update(ours)
    return base


def _number(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return _number(value)
    return str(value)


def context_facts(
    context: ProposalContext,
    n: int,
    *,
    rejected: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """The facts of a proposal task (the keys listed in the module docstring of the tools).

    Args:
        context: the searcher's snapshot.
        n: proposals wanted.
        rejected: override lists of trials the approval hook rejected (newest last).
    """
    facts: dict[str, Any] = _json_safe(
        {
            "kind": "propose",
            "tier": context.tier,
            "max_tier": context.max_tier,
            "n": n,
            "metric": context.metric,
            "mode": context.mode,
            "campaign": context.campaign,
            "reasons": list(context.reasons),
            "models": list(context.models),
            "tried_models": list(context.tried_models),
            "untried_models": list(context.untried_models),
            "space": dict(context.space),
            "constraints": {k: list(v) for k, v in context.constraints.items()},
            "best_value": context.best_value,
            "arms": [
                {
                    "name": a.name,
                    "tier": a.tier,
                    "model": a.model,
                    "overrides": list(a.overrides),
                    "n_results": a.n_results,
                    "n_completed": a.n_completed,
                    "best_value": a.best_value,
                    "best_params": dict(a.best_params),
                }
                for a in context.arms
            ],
            "tier3_arms": sum(1 for a in context.arms if a.tier == 3),
            "rejected": [list(r) for r in rejected],
        }
    )
    return facts


def _facts_line(facts: Mapping[str, Any]) -> str:
    return FACTS_PREFIX + json.dumps(facts, sort_keys=True, separators=(",", ":"))


def propose_task(facts: Mapping[str, Any], history: str = "") -> str:
    """The task text of a proposal call: what is asked, the campaign's state, the facts line."""
    tier = facts.get("tier")
    what = (
        "config variants (tier 2): other built-in models, changed model/trainer values, or "
        "variant configs"
        if tier == 2
        else "new model architectures (tier 3): write the code, register it, propose it"
    )
    lines = [
        f"Tuning has stalled ({'; '.join(facts.get('reasons') or []) or 'escalation requested'}).",
        f"Propose up to {facts.get('n')} new arms: {what}.",
        f"Metric: {facts.get('metric')} ({'higher' if facts.get('mode') == 'max' else 'lower'} "
        "is better).",
    ]
    if facts.get("untried_models"):
        lines.append("Built-in models not tried yet: " + ", ".join(facts["untried_models"]) + ".")
    if facts.get("constraints"):
        lines.append(
            "Every trial must meet: "
            + ", ".join(f"{k} {op} {bound}" for k, (op, bound) in facts["constraints"].items())
            + "."
        )
    if facts.get("rejected"):
        lines.append(
            "A human rejected these trials; do not propose them again: "
            + "; ".join(" ".join(r) for r in facts["rejected"][-5:])
        )
    if history:
        lines += ["", "Campaign history:", history]
    lines += ["", _facts_line(facts)]
    return "\n".join(lines)


def summary_task(facts: Mapping[str, Any]) -> str:
    """The task text of the end-of-campaign summary."""
    return "\n".join(
        [
            "The campaign has ended. Write its summary for the person who ran it: what was "
            "tried (tiers, models, generated architectures), what worked (the best run, its "
            "config and value), what failed or was rejected, and what to try next. A short "
            "paragraph or a few bullet lines; pass the text to final_answer. Do not propose "
            "trials.",
            "",
            _facts_line({**facts, "kind": "summary"}),
        ]
    )


def parse_facts(text: str) -> dict[str, Any] | None:
    """The facts dict of a task text (the first `FACTS_JSON:` line), or None."""
    for line in text.splitlines():
        if line.startswith(FACTS_PREFIX):
            try:
                facts = json.loads(line[len(FACTS_PREFIX) :])
            except json.JSONDecodeError:
                return None
            return facts if isinstance(facts, dict) else None
    return None
