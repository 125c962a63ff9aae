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
_ARM_TOP = 2  # best configurations shown per arm
_SPREAD_RUNS = 1000  # the spread of tuned values is read over the latest completed runs
_SPREAD_KEYS = 8
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
    """``text`` on one line of at most ``n`` characters (a leading indent is kept)."""
    text = (" " if text.startswith(" ") else "") + " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt(v: Any) -> str:
    """A tuned value, short: floats to 4 significant digits."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return str(v)
    return _clip(str(v), 40)


def _params(row: dict[str, Any]) -> dict[str, Any]:
    raw = row.get("params")
    try:
        params = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return {}
    return params if isinstance(params, dict) else {}


def _tuned(row: dict[str, Any]) -> str:
    """The run's tuned values (its params), e.g. ``trainer.lr=0.0031 trainer.batch_size=64``."""
    params = _params(row)
    return " ".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items())) or "(no tuned values)"


def _fixed(row: dict[str, Any]) -> str:
    """The arm's fixed overrides in brackets (empty for the base config)."""
    overrides = row.get("overrides") or []
    return f"[{' '.join(overrides)}] " if overrides else ""


def _config(row: dict[str, Any]) -> str:
    """Fixed overrides, then the tuned values: ``[model=resnet1d] trainer.lr=0.003``."""
    return _fixed(row) + _tuned(row)


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _order(values: np.ndarray, mode: str) -> np.ndarray:
    """Indices of ``values`` best first (stable: earlier runs win ties)."""
    key = -values if mode == "max" else values
    return np.argsort(key, kind="stable")


def _arm_lines(table: pa.Table, done: pa.Table, mode: str) -> list[str]:
    """One line per arm (best first): tier, model, run counts, tokens, fixed overrides and the
    arm's two best configurations with their tuned values."""
    arms = table["arm"].unique().to_pylist()
    agg = "max" if mode == "max" else "min"
    arm_best: dict[str, float] = {
        row["arm"]: row[f"value_{agg}"]
        for row in done.group_by("arm").aggregate([("value", agg)]).to_pylist()
    }
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(arms, key=lambda a: (a not in arm_best, sign * arm_best.get(a, 0.0), a))
    counts: dict[str, Counter[str]] = {}
    for row in table.group_by(["arm", "status"]).aggregate([("run_id", "count")]).to_pylist():
        counts.setdefault(row["arm"], Counter())[row["status"]] = row["run_id_count"]
    tokens = {
        row["arm"]: row["tokens_in_sum"] + row["tokens_out_sum"]
        for row in table.group_by("arm")
        .aggregate([("tokens_in", "sum"), ("tokens_out", "sum")])
        .to_pylist()
    }
    lines = [f"arms ({len(ranked)}; best first; each with its top {_ARM_TOP} configs):"]
    for arm in ranked[:_ARMS]:
        rows = table.filter(pc.equal(table["arm"], arm))
        last = rows.slice(rows.num_rows - 1, 1).to_pylist()[0]
        c = counts.get(arm, Counter())
        statuses = ", ".join(f"{n} {s}" for s, n in c.most_common())
        spent = f"; {tokens[arm]} tokens" if tokens.get(arm) else ""
        head = (
            f" {arm} (t{last['tier']} {last['model'] or '?'}; {sum(c.values())} runs: "
            f"{statuses}{spent}) {_fixed(last)}"
        )
        arm_done = done.filter(pc.equal(done["arm"], arm))
        if arm_done.num_rows:
            order = _order(arm_done["value"].to_numpy(), mode)[:_ARM_TOP]
            best = arm_done.take(pa.array(order)).to_pylist()
            tops = " | ".join(
                f"{i}. {_value(r['value'])} run {r['run_id']}: {_tuned(r)}"
                for i, r in enumerate(best, start=1)
            )
            lines.append(_clip(f"{head}best: {tops}"))
        else:
            error = next((e for e in reversed(rows["error"].to_pylist()) if e), None)
            lines.append(
                _clip(f"{head}no completed run" + (f"; last error: {error}" if error else ""))
            )
    if len(ranked) > _ARMS:
        lines.append(f" (+{len(ranked) - _ARMS} more arms)")
    return lines


def _spread_lines(done: pa.Table, best: dict[str, Any]) -> list[str]:
    """min/median/max of each numeric tuned value over the (latest) completed runs; value
    counts of the others; each with the best run's value."""
    recent = done.slice(max(0, done.num_rows - _SPREAD_RUNS)).to_pylist()
    numbers: dict[str, list[float]] = {}
    others: dict[str, Counter[str]] = {}
    for row in recent:
        for key, v in _params(row).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                if np.isfinite(v):
                    numbers.setdefault(key, []).append(float(v))
            else:
                others.setdefault(key, Counter())[_fmt(v)] += 1
    keys = sorted(set(numbers) | set(others), key=lambda k: (-_seen(k, numbers, others), k))
    if not keys:
        return []
    best_params = _params(best)
    scope = f"the last {len(recent)}" if done.num_rows > len(recent) else f"{len(recent)}"
    lines = [f"tuned values over {scope} completed runs (min/median/max; best run's value):"]
    for key in keys[:_SPREAD_KEYS]:
        mark = f"; best {_fmt(best_params[key])}" if key in best_params else ""
        if key in numbers:
            vals = np.asarray(numbers[key])
            text = (
                f"{_fmt(float(vals.min()))}/{_fmt(float(np.median(vals)))}/"
                f"{_fmt(float(vals.max()))} over {len(vals)} runs"
            )
        else:
            text = ", ".join(f"{v} x{n}" for v, n in others[key].most_common(4))
        lines.append(_clip(f" {key}: {text}{mark}"))
    return lines


def _seen(key: str, numbers: dict[str, list[float]], others: dict[str, Counter[str]]) -> int:
    return len(numbers.get(key, ())) + sum(others.get(key, Counter()).values())


def history_text(
    store: FeedbackStore,
    campaign: str,
    *,
    max_chars: int = 4000,
    thresholds: SignalThresholds | None = None,
) -> str:
    """Summarise ``campaign`` for an agent's context window, in at most ``max_chars``.

    What the optimiser knows, in priority order (later parts are dropped first when space
    runs out):

    1. a header (run counts by status, metric and direction);
    2. the best run with its config: the arm's fixed overrides in brackets, then the run's
       tuned values (``[model=resnet1d model.width=32] trainer.lr=0.0031
       trainer.batch_size=64``);
    3. the signals: the recommendation with its reasons, the stagnation and drift readings
       with theirs;
    4. each arm (best first): tier, model, runs by status, tokens spent, fixed overrides and
       its two best configurations with their values and run ids;
    5. the spread of every tuned value over the completed runs (min/median/max of numbers,
       counts of other values) with the best run's value;
    6. the most recent runs with their configs (and error messages), oldest first;
    7. the top runs overall; 8. the latest events.

    Fixed counts of each (the spread over the latest 1,000 completed runs) and lines clipped
    to 240 characters keep the cost independent of the campaign's length. Test-set metrics
    are never shown.

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
    top_rows: list[dict[str, Any]] = []
    if done.num_rows:
        order = _order(done["value"].to_numpy(), mode)
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
        said = " ".join(rec.reasons)
        if rec.stagnation is not None:
            st = rec.stagnation
            why = "" if st.reason in said else f" — {st.reason}"
            lines.append(
                _clip(
                    f"stagnation: {'yes' if st.stagnant else 'no'}, "
                    f"{st.runs_without_improvement} completed runs without improvement{why}"
                )
            )
        if rec.drift is not None:
            dr = rec.drift
            why = "" if dr.reason in said else f" — {dr.reason}"
            lines.append(_clip(f"drift: {'yes' if dr.drifting else 'no'}{why}"))
    except FeedbackError as err:
        lines.append(_clip(f"signals unavailable: {err}"))
    lines += _arm_lines(table, done, mode)
    if top_rows:
        lines += _spread_lines(done, top_rows[0])
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
    if top_rows:
        lines.append(f"top {len(top_rows)} runs:")
        for i, r in enumerate(top_rows, start=1):
            lines.append(
                _clip(
                    f" {i}. {_value(r['value'])} {r['run_id']} t{r['tier']} {r['arm']}"
                    f" [{r['model'] or '?'}] {_config(r)}"
                )
            )
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
