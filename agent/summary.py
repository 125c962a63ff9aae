"""The facts of a finished campaign, and the summary written from them alone.

`campaign_facts` reads the history (never test-set metrics) into the plain dict the agent's
summary task carries; `facts_summary` turns it into a few sentences, which is what a campaign
gets when no agent can write one (no proposer, a failing LLM, a spent token budget).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["campaign_facts", "facts_summary", "recorded_tokens"]


def recorded_tokens(events: Iterable[Any]) -> int:
    """Tokens (in + out) the ``agent_call`` events among `events` record."""
    return sum(
        int(e.data.get("tokens_in") or 0) + int(e.data.get("tokens_out") or 0)
        for e in events
        if e.kind == "agent_call"
    )


def _arm_line(arm: str, rows: list[Any], mode: str) -> dict[str, Any]:
    done = [r for r in rows if r.status == "completed" and r.value is not None]
    pick = max if mode == "max" else min
    best = pick(done, key=lambda r: r.value) if done else None
    return {
        "name": arm,
        "arm": arm,
        "tier": rows[0].tier,
        "model": rows[0].model,
        "origin": rows[0].origin,
        "runs": len(rows),
        "completed": len(done),
        "best_value": None if best is None else best.value,
    }


def campaign_facts(
    store_root: str | Path,
    campaign: str,
    *,
    models: Sequence[str] = (),
    max_tier: int | None = None,
) -> dict[str, Any]:
    """What happened in `campaign`, as JSON-ready facts for the summary.

    Keys: campaign, store_root, metric, mode, n_runs, counts {status: n}, best {run_id, arm,
    tier, model, value, overrides, params, num_params} or None, arms [{name, arm, tier, model,
    origin, runs, completed, best_value}], tiers (tiers that ran), models / tried_models
    (models that ran), untried_models (of `models`), tier3_arms, max_tier, reasons (of the
    latest recommendation), rejected (trials the approval hook rejected), failures (agent
    failures), tokens_used (summed over the ``agent_call`` events), agent_calls.

    Args:
        store_root: the campaign's history folder.
        campaign: the campaign's name.
        models: the built-in models the goal allows.
        max_tier: the goal's highest tier.
    """
    from feedback import FeedbackStore

    store = FeedbackStore(store_root)
    runs = store.runs(campaign=campaign)
    events = store.events(campaign=campaign)
    mode = runs[0].mode if runs else "max"
    metric = runs[0].metric if runs else ""
    by_arm: dict[str, list[Any]] = {}
    for record in runs:
        by_arm.setdefault(record.arm, []).append(record)
    best = store.best(campaign) if runs else None
    calls = [e for e in events if e.kind == "agent_call"]
    recommendations = [e for e in events if e.kind == "recommendation"]
    ran = sorted({r.model for r in runs if r.model and r.status != "rejected"})
    return {
        "campaign": campaign,
        "store_root": str(store_root),
        "metric": metric,
        "mode": mode,
        "n_runs": len(runs),
        "counts": dict(Counter(r.status for r in runs)),
        "best": None
        if best is None
        else {
            "run_id": best.run_id,
            "arm": best.arm,
            "tier": best.tier,
            "model": best.model,
            "value": best.value,
            "overrides": list(best.overrides),
            "params": dict(best.params),
            "num_params": best.num_params,
        },
        "arms": [_arm_line(arm, rows, mode) for arm, rows in by_arm.items()],
        "tiers": sorted({r.tier for r in runs}),
        "models": ran,
        "tried_models": ran,
        "untried_models": [m for m in models if m not in ran],
        "tier3_arms": sum(1 for rows in by_arm.values() if rows[0].tier == 3),
        "max_tier": max_tier,
        "reasons": list(recommendations[-1].data.get("reasons") or []) if recommendations else [],
        "rejected": sum(1 for r in runs if r.status == "rejected"),
        "failures": sum(1 for e in events if e.kind == "agent_failure"),
        "tokens_used": recorded_tokens(calls),
        "agent_calls": len(calls),
    }


def _value(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) else "-"


def facts_summary(facts: Mapping[str, Any]) -> str:
    """A summary written from the facts alone (see `campaign_facts` for the keys)."""
    counts = facts.get("counts") or {}
    n_runs = int(facts.get("n_runs") or 0)
    if n_runs == 0:
        return "No trial ran: nothing to summarise yet."
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    tiers = ", ".join(str(t) for t in facts.get("tiers") or []) or "-"
    models = ", ".join(facts.get("models") or []) or "-"
    tier_word = "tier" if len(facts.get("tiers") or []) == 1 else "tiers"
    lines = [f"{n_runs} trials ran ({status}) at {tier_word} {tiers}, with models {models}."]
    best = facts.get("best")
    if best:
        config = " ".join(
            [*best.get("overrides", []), *(f"{k}={v}" for k, v in best.get("params", {}).items())]
        )
        lines.append(
            f"Best: {facts.get('metric')}={_value(best.get('value'))} from arm {best.get('arm')} "
            f"(tier {best.get('tier')}, model {best.get('model')}): {config or '(base config)'}."
        )
    else:
        lines.append("No trial completed.")
    arms = [a for a in facts.get("arms") or [] if a.get("best_value") is not None]
    mode = facts.get("mode", "max")
    arms.sort(key=lambda a: a["best_value"], reverse=mode == "max")
    if len(arms) > 1:
        lines.append(
            "Arms by best value: "
            + ", ".join(f"{a['arm']} {_value(a['best_value'])}" for a in arms[:6])
            + "."
        )
    if facts.get("rejected"):
        lines.append(f"{facts['rejected']} trials were rejected at approval.")
    if facts.get("failures"):
        lines.append(f"{facts['failures']} agent failures or refused proposals were recorded.")
    if facts.get("agent_calls"):
        lines.append(
            f"The agent was called {facts['agent_calls']} times ({facts.get('tokens_used', 0)} "
            "tokens)."
        )
    nxt = "tune the best arm longer (more epochs, a narrower learning-rate range)"
    if best and best.get("tier") == 3:
        nxt = "mutate the winning generated architecture (width, depth, kernel sizes)"
    elif best and (facts.get("max_tier") or 0) < 3:
        nxt += ", or raise max_tier (2: other models and variants, 3: generated architectures)"
    elif best and 3 not in (facts.get("tiers") or []):
        nxt += ", or give the campaign more trials so that tier 3 can try generated architectures"
    lines.append(f"Next: {nxt}.")
    return " ".join(lines)
