"""The compact campaign history an agent reads (bounded however long the campaign runs)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._errors import FeedbackError
from .signals import SignalThresholds, recommend

if TYPE_CHECKING:
    from ._store import FeedbackStore

__all__ = ["campaign_thresholds", "history_text"]

logger = logging.getLogger(__name__)

_LINE = 240  # characters per line at most
_TOP = 5
_RECENT = 8
_ARMS = 8
_EVENTS = 5


def campaign_thresholds(store: FeedbackStore, campaign: str) -> SignalThresholds | None:
    """The thresholds of the latest ``campaign`` event (``data["thresholds"]``), if any."""
    for event in reversed(store.events(campaign=campaign, kind="campaign")):
        data = event.data.get("thresholds")
        if isinstance(data, dict):
            try:
                return SignalThresholds.from_dict(data)
            except (FeedbackError, TypeError) as e:
                logger.warning("ignoring invalid thresholds in event %s: %s", event.event_id, e)
    return None


def _clip(text: str, n: int = _LINE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _config(row: dict[str, Any]) -> str:
    if row["overrides"]:
        return " ".join(row["overrides"])
    params = json.loads(row["params"]) if isinstance(row["params"], str) else row["params"]
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def history_text(
    store: FeedbackStore,
    campaign: str,
    *,
    max_chars: int = 4000,
    thresholds: SignalThresholds | None = None,
) -> str:
    """Summarise ``campaign`` for an agent's context window, in at most ``max_chars``.

    Content, in priority order (later parts are dropped first when space runs out): a header
    (run counts by status, metric), the best run and its config, the signals and the
    recommendation, the top runs, the most recent runs (with error messages), per-arm
    results and the latest events. Fixed counts of each and lines clipped to 240 characters
    keep the cost independent of the campaign's length.

    Args:
        store: The store.
        campaign: Campaign name.
        max_chars: Upper bound on the returned length (>= 200).
        thresholds: For the signals; default: the campaign's stored thresholds, else
            :class:`SignalThresholds` defaults.

    Raises:
        FeedbackError: ``max_chars`` < 200.
    """
    if max_chars < 200:
        raise FeedbackError(f"max_chars must be >= 200, but got {max_chars!r}.")
    table = store.table(campaign=campaign)
    if table.num_rows == 0:
        return _clip(f"campaign {campaign}: no runs yet.", max_chars)
    th = thresholds or campaign_thresholds(store, campaign) or SignalThresholds()
    counts = Counter(
        {row["values"]: row["counts"] for row in pc.value_counts(table["status"]).to_pylist()}
    )
    modes = table["mode"].unique().to_pylist()
    metrics = table["metric"].unique().to_pylist()
    lines = [
        _clip(
            f"campaign {campaign}: {table.num_rows} runs ("
            + ", ".join(f"{n} {s}" for s, n in counts.most_common())
            + f"); metric {', '.join(metrics)} ({'/'.join(modes)}; "
            + ("higher" if modes == ["max"] else "lower")
            + " is better)"
        )
    ]
    done = table.filter(pc.equal(table["status"], "completed"))
    mode = modes[0] if len(modes) == 1 else "max"
    if done.num_rows:
        order = np.argsort(done["value"].to_numpy(), kind="stable")
        if mode == "max":
            order = order[::-1]
        top_rows = done.take(pa.array(order[:_TOP])).to_pylist()
        b = top_rows[0]
        lines.append(
            _clip(
                f"best {_value(b['value'])}: run {b['run_id']} (arm {b['arm']}, tier "
                f"{b['tier']}, model {b['model'] or '?'}, epoch {b['best_epoch']}) "
                f"config: {_config(b)}"
            )
        )
    try:
        rec = recommend(table, th)
        lines.append(_clip(f"recommendation: {rec.action} — " + "; ".join(rec.reasons)))
        if rec.stagnation is not None:
            lines.append(
                _clip(
                    f"stagnation: {'yes' if rec.stagnation.stagnant else 'no'}, "
                    f"{rec.stagnation.runs_without_improvement} completed runs without "
                    "improvement"
                )
            )
        if rec.drift is not None:
            lines.append(_clip(f"drift: {'yes' if rec.drift.drifting else 'no'}"))
    except FeedbackError as err:
        lines.append(_clip(f"signals unavailable: {err}"))
    if done.num_rows:
        lines.append(f"top {len(top_rows)} runs:")
        for i, r in enumerate(top_rows, start=1):
            lines.append(
                _clip(
                    f" {i}. {_value(r['value'])} {r['run_id']} t{r['tier']} {r['arm']}"
                    f" [{r['model'] or '?'}] {_config(r)}"
                )
            )
    recent = table.slice(max(0, table.num_rows - _RECENT)).to_pylist()
    lines.append(f"last {len(recent)} runs (oldest first):")
    for r in recent:
        error = f" error: {r['error']}" if r["error"] else ""
        lines.append(
            _clip(
                f" {r['run_id']} t{r['tier']} {r['status']} {_value(r['value'])} {r['arm']}"
                f" {_config(r)}{error}",
            )
        )
    arm_counts = {
        row["arm"]: row["run_id_count"]
        for row in table.group_by("arm").aggregate([("run_id", "count")]).to_pylist()
    }
    agg = "max" if mode == "max" else "min"
    arm_best: dict[str, float] = {
        row["arm"]: row[f"value_{agg}"]
        for row in done.group_by("arm").aggregate([("value", agg)]).to_pylist()
    }
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(arm_counts, key=lambda a: (a not in arm_best, sign * arm_best.get(a, 0.0), a))
    lines.append(f"arms ({len(ranked)}; best first):")
    for arm in ranked[:_ARMS]:
        lines.append(_clip(f" {arm}: {arm_counts[arm]} runs, best {_value(arm_best.get(arm))}"))
    events = [e for e in store.events(campaign=campaign) if e.kind != "campaign"][-_EVENTS:]
    if events:
        lines.append("recent events:")
        for e in events:
            lines.append(_clip(f" [{e.kind}] {e.time:%Y-%m-%d %H:%M} {e.message}"))

    marker = "\n… (history truncated)"
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > max_chars - len(marker):
            out.append(marker.strip())
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)[:max_chars]
