"""Proposals: how the agent hands new arms to the searcher.

`propose_trials(proposals)` (a tool) and `proposals_from_answer(answer, ctx)` (for the
agent's final answer) turn dicts such as

    {"name": "resnet-w32", "overrides": ["model=resnet1d", "model.width=32"],
     "params": {"trainer.lr": 0.002}, "rationale": "cnn1d plateaued at 0.81"}

into `agent.Proposal(origin="agent")` objects. Each item is checked here (keys, types, the
tier against the campaign's `max_tier`) and then by the context's `proposal_check` (the
safety layer's `ProposalCheck` in a campaign). A proposal that selects a registered generated
model (`model=<name>`) is tier 3 and carries that model's source and config.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from smolagents import tool

from agent.proposer import Proposal, model_from_overrides
from agent.tools._context import ToolContext, ToolError, clip, current_context, log_call

__all__ = ["convert_proposal", "proposals_from_answer", "propose_trials"]

logger = logging.getLogger(__name__)

_KEYS = (
    "name",
    "overrides",
    "params",
    "space",
    "drop_params",
    "rationale",
    "tier",
    "model_source",
    "model",
)
_EXAMPLE = "{'name': 'resnet-w32', 'overrides': ['model=resnet1d', 'model.width=32']}"
_MAX_NAME = 64
_MAX_RATIONALE = 2000
_JSON_BLOCK = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _strings(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        example = (
            "['model=resnet1d', 'model.width=32']" if key == "overrides" else "['model.width']"
        )
        raise ToolError(
            f"{key} must be a list of strings, got {type(value).__name__} {clip(repr(value))}; "
            f"e.g. {key}={example}"
        )
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ToolError(f"{key} must hold non-empty strings only, got {clip(repr(bad[0]))}")
    return [v.strip() for v in value]


def _mapping(value: Any, key: str, example: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ToolError(
            f"{key} must be a dict keyed by override path, got {type(value).__name__}; "
            f"e.g. {key}={example}"
        )
    bad = [k for k in value if not isinstance(k, str) or not k]
    if bad:
        raise ToolError(f"{key} keys must be override paths such as 'trainer.lr', got {bad[0]!r}")
    return dict(value)


def _generated(ctx: ToolContext, overrides: Sequence[str]) -> Any:
    """The registration of the generated model an override selects, or None."""
    from agent.safety.errors import SafetyError
    from agent.safety.models import registered_model

    name = model_from_overrides(overrides)
    if not name:
        return None
    try:
        return registered_model(name, configs=ctx.config_root(), generated=ctx.generated_root())
    except SafetyError:
        return None


def convert_proposal(item: object, ctx: ToolContext) -> Proposal:
    """One proposal dict as an unchecked `Proposal` (tier defaulted, capped by max_tier).

    Raises:
        ToolError: not a dict, unknown keys, wrong types, a bad tier or one above max_tier.
    """
    if not isinstance(item, Mapping):
        raise ToolError(
            f"each proposal must be a dict, got {type(item).__name__} {clip(repr(item))}; "
            f"e.g. {_EXAMPLE}"
        )
    unknown = sorted(str(k) for k in item if k not in _KEYS)
    if unknown:
        raise ToolError(
            f"unknown proposal key(s) {', '.join(unknown)}; the keys are {', '.join(_KEYS)}"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolError(f"every proposal needs a 'name' (a short string), e.g. {_EXAMPLE}")
    name = name.strip()[:_MAX_NAME]
    overrides = _strings(item.get("overrides"), "overrides")
    params = _mapping(item.get("params"), "params", "{'trainer.lr': 0.002}")
    space_in = item.get("space")
    space = (
        None
        if space_in is None
        else _mapping(
            space_in, "space", "{'trainer.lr': {'type': 'loguniform', 'low': 1e-4, 'high': 1e-2}}"
        )
    )
    drop = _strings(item.get("drop_params"), "drop_params")
    rationale = item.get("rationale") or ""
    if not isinstance(rationale, str):
        raise ToolError(f"rationale must be a string, got {type(rationale).__name__}")
    source = item.get("model_source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise ToolError("model_source must be the generated model's Python source (a string)")
    model = item.get("model")
    if model is not None and not isinstance(model, str):
        raise ToolError(f"model must be a model name (a string), got {type(model).__name__}")
    tier = item.get("tier")
    if tier is not None and (isinstance(tier, bool) or tier not in (2, 3)):
        raise ToolError(
            f"tier must be 2 (a config of existing models) or 3 (a generated model), got "
            f"{tier!r}; leave it out to let the overrides decide"
        )
    reg = _generated(ctx, overrides)
    if reg is not None:
        tier = 3  # a generated model is tier 3 whatever the item says
        if source is None:
            source = reg.source
    elif tier is None:
        tier = 3 if source is not None else 2
    if tier > ctx.max_tier:
        what = (
            f"model={reg.name} is a generated model"
            if reg is not None
            else "it carries model_source"
            if source is not None
            else "it asks for tier 3"
        )
        raise ToolError(
            f"tier {tier} is above this campaign's max_tier {ctx.max_tier} ({what}); propose a "
            "tier-2 config of the built-in models instead (overrides such as 'model=resnet1d', "
            "'model.width=32', or a config written with create_config_variant)"
        )
    return Proposal(
        name=name,
        tier=int(tier),
        overrides=overrides,
        params=params,
        space=space,
        drop_params=drop,
        model_source=source,
        model_config=dict(reg.config) if reg is not None else None,
        model=model or (reg.name if reg is not None else None),
        rationale=rationale[:_MAX_RATIONALE],
        origin="agent",
    )


def _signature(p: Proposal) -> str:
    return json.dumps(
        [sorted(p.overrides), dict(p.params), p.model_source or ""], sort_keys=True, default=str
    )


def _admit(item: object, ctx: ToolContext, accepted: Sequence[Proposal]) -> Proposal:
    """Convert and check one item against the proposals accepted so far.

    Raises:
        ToolError, SafetyError (both ValueError): why it is refused.
    """
    if len(accepted) >= ctx.max_proposals:
        names = ", ".join(repr(p.name) for p in accepted)
        raise ToolError(
            f"this agent call takes at most {ctx.max_proposals} proposal(s) and "
            f"{len(accepted)} were accepted already ({names}); stop proposing and give the "
            "final answer"
        )
    proposal = convert_proposal(item, ctx)
    for other in accepted:
        if other.name == proposal.name:
            raise ToolError(f"a proposal named {proposal.name!r} was accepted already; rename it")
    check = ctx.proposal_check
    if check is not None:
        try:
            proposal = check(proposal)
        except (ValueError, TypeError, KeyError, OSError) as e:
            reason = str(e).strip() or type(e).__name__
            raise ToolError(reason) from e
    for other in accepted:
        if _signature(other) == _signature(proposal):
            raise ToolError(
                f"it has the same overrides and params as the accepted {other.name!r}; change "
                "something or drop it"
            )
    return proposal


def _items(value: object) -> list[object] | None:
    """The proposal items in `value` (a list, one dict, `{"proposals": [...]}` or JSON text
    of those), or None when it holds none."""
    if isinstance(value, str):
        text = value.strip()
        candidates = [text, *_JSON_BLOCK.findall(text)]
        for start, end in (("[", "]"), ("{", "}")):
            i, j = text.find(start), text.rfind(end)
            if 0 <= i < j:
                candidates.append(text[i : j + 1])
        for candidate in candidates:
            try:
                parsed = json.loads(candidate)
            except (json.JSONDecodeError, ValueError):
                continue
            found = _items(parsed) if not isinstance(parsed, str) else None
            if found is not None:
                return found
        return None
    if isinstance(value, Mapping):
        inner = value.get("proposals")
        if "name" not in value and isinstance(inner, list | tuple):
            return list(inner)
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    return None


@tool
def propose_trials(proposals: list) -> str:
    """Hand new experiment configs (arms) to the searcher, which tunes each with Optuna. Each
    item is a dict with keys: name (short string, required), overrides (list of Hydra overrides
    fixed for every trial of the arm, e.g. ["model=resnet1d", "model.width=32"]), params (dict:
    the first point to evaluate, keys are override paths, e.g. {"trainer.lr": 0.002}), space
    (dict of spec dicts replacing parts of the search space, e.g. {"trainer.lr": {"type":
    "loguniform", "low": 0.0001, "high": 0.01}}), drop_params (list of override paths not to
    tune), rationale (why, one or two sentences), tier (2 for configs of existing models, 3 for
    a generated model; default 3 when an override selects a generated model, else 2). Every
    proposal passes the safety checks; the searcher takes only a few per call. Returns one line
    per item: "accepted 'name' ..." or "refused 'name': reason; what to try". Raises an error
    listing every reason when none is accepted. Example: `print(propose_trials([{"name":
    "resnet-w32", "overrides": ["model=resnet1d", "model.width=32"], "params": {"trainer.lr":
    0.002}, "rationale": "cnn1d plateaued"}]))`.

    Args:
        proposals: a list of proposal dicts (one dict alone is accepted too).
    """
    ctx = current_context()
    items = _items(proposals) if not isinstance(proposals, list) else list(proposals)
    names = [
        str(i.get("name")) if isinstance(i, Mapping) else type(i).__name__ for i in items or []
    ]
    log_call(ctx, "propose_trials", names)
    if not items:
        raise ToolError(
            f"proposals must be a non-empty list of proposal dicts, got {clip(repr(proposals))}; "
            f"e.g. propose_trials([{_EXAMPLE}])"
        )
    lines: list[str] = []
    accepted = 0
    for item in items:
        label = item.get("name") if isinstance(item, Mapping) else None
        shown = repr(str(label)[:_MAX_NAME]) if label else "(unnamed)"
        try:
            proposal = _admit(item, ctx, ctx.proposals)
        except ValueError as e:
            lines.append(f"refused {shown}: {e}")
            continue
        ctx.proposals.append(proposal)
        accepted += 1
        fixed = " ".join(proposal.overrides) or "(the base config)"
        lines.append(f"accepted {proposal.name!r} (tier {proposal.tier}): {fixed}")
    report = "\n".join(lines)
    if not accepted:
        raise ToolError("no proposal was accepted:\n" + report)
    return report


def proposals_from_answer(answer: object, ctx: ToolContext) -> list[Proposal]:
    """The proposals an agent's final answer carries, converted and checked like
    `propose_trials` does (refused items are logged and left out).

    Args:
        answer: the final answer: a list of proposal dicts, one dict, `{"proposals": [...]}`,
            or JSON text of any of these (also inside a ```json block); anything else
            carries no proposals.
        ctx: the context: its `max_tier`, `max_proposals` (counting `ctx.proposals`, which
            propose_trials already accepted) and `proposal_check`.

    Returns:
        The accepted proposals, in order. `ctx.proposals` is not changed, and items named
        like one already in `ctx.proposals` are left out (the agent repeating what it
        proposed with the tool).
    """
    items = _items(answer)
    if not items:
        return []
    accepted: list[Proposal] = list(ctx.proposals)
    names = {p.name for p in ctx.proposals}
    out: list[Proposal] = []
    for item in items:
        if isinstance(item, Mapping) and str(item.get("name", "")).strip() in names:
            continue
        try:
            proposal = _admit(item, ctx, accepted)
        except ValueError as e:
            logger.info("final answer: proposal refused: %s", e)
            continue
        accepted.append(proposal)
        out.append(proposal)
    return out
