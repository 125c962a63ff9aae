"""The campaign dashboard: one standalone HTML file, charts as inline SVG (matplotlib).

No JavaScript and no network: the charts are ``<svg>`` elements drawn by matplotlib's SVG
backend and inlined into the page, styles are inline CSS. Every string that comes from the
store (configs, errors, agent text, class names) is HTML-escaped.

Held-out test results are shown, never ranked on: the experiment log gives each run's test
value of the campaign metric (``test/macro_f1`` beside ``val/macro_f1``) from
``RunRecord.test_metrics``, and the "Held-out test" section the best-by-validation run's test
confusion matrix, read from its ``test/cm_<true>_<pred>`` counts, with each class's
sensitivity and positive predictive value computed from them (AAMI EC57's reading). Classes
are listed in EC57 order (N, S, V, F, Q) where they have those names, the others after them
in name order (the store keeps the counts, not the dataset's order).
"""

from __future__ import annotations

import html
import io
import json
import logging
import math
import os
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._errors import FeedbackError
from ._history import campaign_thresholds
from ._records import Event
from ._store import FeedbackStore
from .signals import Recommendation, SignalThresholds, recommend

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["render_dashboard", "write_dashboard"]

logger = logging.getLogger(__name__)

TIER_COLORS = {0: "#4C72B0", 2: "#DD8452", 3: "#55A868"}
TIER_NAMES = {0: "tier 0 · Optuna", 2: "tier 2 · generated config", 3: "tier 3 · generated code"}
STATUS_COLORS = {
    "completed": ("#e6f4ea", "#1e7e34"),
    "failed": ("#fdecea", "#b3261e"),
    "diverged": ("#fff4e5", "#b45309"),
    "pruned": ("#eef0f3", "#4b5563"),
    "rejected": ("#f3e8ff", "#6b21a8"),
    "infeasible": ("#f5ebe0", "#7c4a1e"),
}
ACTION_COLORS = {
    "continue": "#1e7e34",
    "change_lr": "#b45309",
    "change_model": "#b45309",
    "stop": "#b3261e",
}
MAX_TABLE_ROWS = 2000
MAX_CURVES = 1500
EC57_ORDER = ("N", "S", "V", "F", "Q")
HELD_OUT = "held-out test: reported for reading, never used by the search or shown to the agent"

CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,
sans-serif;color:#1f2933;background:#f4f6f8}
header{background:#1f2933;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#cbd2d9;font-size:13px;margin-top:4px}
main{padding:20px 28px;max-width:1400px;margin:0 auto}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#616e7c}
.card .value{font-size:26px;font-weight:650;margin:4px 0 2px}
.card .note{font-size:12px;color:#616e7c}
section{background:#fff;border-radius:10px;padding:16px 18px;margin-top:18px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
section h2{margin:0 0 10px;font-size:16px}
figure{margin:0}
figure svg{width:100%;height:auto;display:block}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.cols section{margin-top:0}
@media(max-width:900px){.cols{grid-template-columns:1fr}}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th{position:sticky;top:0;background:#f8fafc;text-align:left;font-weight:600;color:#3e4c59;
border-bottom:2px solid #e4e7eb;padding:6px 8px;white-space:nowrap}
td{border-bottom:1px solid #eef0f3;padding:5px 8px;vertical-align:top}
tr:hover td{background:#fafbfc}
td.nw{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.cfg{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11.5px;
color:#3e4c59;max-width:520px;word-break:break-word}
.timeline .cfg{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:11.5px;color:#3e4c59;word-break:break-word}
td.err{color:#b3261e;font-size:11.5px;max-width:320px;word-break:break-word}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11.5px;font-weight:600}
.tier{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:5px}
.scroll{max-height:620px;overflow:auto}
.timeline{list-style:none;margin:0;padding:0 0 0 14px;border-left:2px solid #e4e7eb}
.timeline li{position:relative;padding:0 0 12px 12px}
.timeline li:before{content:"";position:absolute;left:-21px;top:5px;width:12px;height:12px;
border-radius:50%;background:var(--dot,#9aa5b1);border:2px solid #fff}
.timeline .when{font-size:11.5px;color:#616e7c}
.summary{white-space:pre-wrap;background:#f8fafc;border-left:3px solid #4C72B0;padding:10px 12px;
margin:0 0 10px;font-size:13px;border-radius:0 6px 6px 0}
.muted{color:#7b8794}
.reasons{margin:6px 0 0;padding-left:18px;font-size:12.5px;color:#3e4c59}
th.test,td.test{background:#fbf7ef}
table.cm{width:auto}
table.cm td{text-align:right;font-variant-numeric:tabular-nums;min-width:64px}
table.cm td.diag{font-weight:650;background:#e6f4ea}
table.cm th.rowh{position:static}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"


def _badge(status: str) -> str:
    bg, fg = STATUS_COLORS.get(status, ("#eef0f3", "#4b5563"))
    return f'<span class="badge" style="background:{bg};color:{fg}">{_e(status)}</span>'


def _svg(fig: Figure, name: str) -> str:
    """Render ``fig`` to an inline ``<svg>`` (no XML prolog, responsive width)."""
    import matplotlib as mpl

    buf = io.StringIO()
    with mpl.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": f"agentune-{name}", "svg.id": f"svg-{name}"}
    ):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", svg, count=1)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_e(name)}" ', 1)


def _new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = fig.subplots(1, ncols)
    for ax in np.atleast_1d(axes):
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, color="#e4e7eb", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=8.5, colors="#3e4c59")
    return fig, axes


def _tex_safe(text: str) -> str:
    return text.replace("$", r"\$")


def _progress_chart(
    runs: pa.Table,
    events: Sequence[tuple[int, Event]],
    mode: str,
    metric: str,
    target: float | None,
) -> str:
    fig, ax = _new_figure(11.5, 3.8)
    n = runs.num_rows
    x = np.arange(1, n + 1)
    status = np.asarray(runs["status"].to_numpy(zero_copy_only=False), dtype=object)
    tiers = runs["tier"].to_numpy()
    values = runs["value"].to_numpy(zero_copy_only=False).astype(float)
    done = (status == "completed") & np.isfinite(values)
    for tier, color in TIER_COLORS.items():
        sel = done & (tiers == tier)
        if sel.any():
            ax.scatter(
                x[sel],
                values[sel],
                s=16,
                color=color,
                alpha=0.75,
                linewidths=0,
                label=TIER_NAMES[tier],
                zorder=3,
            )
    if done.any():
        oriented = np.where(done, values if mode == "max" else -values, -np.inf)
        best = np.maximum.accumulate(oriented)
        first = int(np.argmax(done))
        best_metric = best if mode == "max" else -best
        ax.step(
            x[first:],
            best_metric[first:],
            where="post",
            color="#1f2933",
            linewidth=1.8,
            label="best so far",
            zorder=4,
        )
        lo, hi = np.nanmin(values[done]), np.nanmax(values[done])
    else:
        lo, hi = 0.0, 1.0
    span = (hi - lo) or 1.0
    bad = ~done
    if bad.any():
        ax.scatter(
            x[bad],
            np.full(bad.sum(), lo - 0.06 * span),
            marker="x",
            s=14,
            color="#b3261e",
            alpha=0.7,
            linewidths=0.9,
            label="not completed",
            zorder=3,
        )
    if target is not None:
        ax.axhline(target, color="#7b8794", linestyle=":", linewidth=1.2, label="target")
    seen: set[int] = set()
    for pos, event in events:
        tier = event.tier if event.tier is not None else 0
        color = TIER_COLORS.get(tier, "#7b8794")
        ax.axvline(pos + 0.5, color=color, linestyle="--", linewidth=1.4, zorder=2)
        ax.annotate(
            f"→ tier {tier}",
            xy=(pos + 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -2),
            textcoords="offset points",
            fontsize=8.5,
            color=color,
            va="top",
            fontweight="bold",
        )
        seen.add(tier)
    ax.set_xlim(0.5, max(n, 1) + 0.5)
    ax.set_xlabel("run (in finishing order)", fontsize=9)
    ax.set_ylabel(_tex_safe(metric), fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _svg(fig, "progress")


def _curves_chart(curves: pa.Table, runs: pa.Table, metric: str, best_run: str | None) -> str:
    from matplotlib.collections import LineCollection

    names = set(curves["name"].unique().to_pylist()) if curves.num_rows else set()
    loss = next((m for m in ("val/loss", "train/loss") if m in names), None)
    panels: list[str] = [m for m in (metric, loss) if m is not None and m in names] or [metric]
    fig, axes = _new_figure(11.5, 3.6, ncols=len(panels))
    axes = np.atleast_1d(axes)
    tier_of = dict(zip(runs["run_id"].to_pylist(), runs["tier"].to_pylist(), strict=True))
    for ax, name in zip(axes, panels, strict=True):
        part = curves.filter(pc.equal(curves["name"], name)) if curves.num_rows else curves
        lines: dict[int, list[np.ndarray]] = {}
        best_line = None
        if part.num_rows:
            part = part.sort_by([("run_id", "ascending"), ("epoch", "ascending")])
            rid = np.asarray(part["run_id"].to_numpy(zero_copy_only=False), dtype=object)
            ep = part["epoch"].to_numpy().astype(float)
            val = part["value"].to_numpy(zero_copy_only=False).astype(float)
            cuts = np.flatnonzero(rid[1:] != rid[:-1]) + 1
            for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(rid)], strict=True):
                seg = np.column_stack([ep[start:stop], val[start:stop]])
                run = rid[start]
                if run == best_run:
                    best_line = seg
                lines.setdefault(int(tier_of.get(run, 0)), []).append(seg)
        total = sum(len(v) for v in lines.values())
        alpha = 0.55 if total < 60 else 0.3 if total < 400 else 0.15
        for tier, segs in sorted(lines.items()):
            ax.add_collection(
                LineCollection(
                    segs,
                    colors=TIER_COLORS.get(tier, "#7b8794"),
                    linewidths=0.9,
                    alpha=alpha,
                    label=TIER_NAMES.get(tier, f"tier {tier}"),
                )
            )
        if best_line is not None:
            ax.plot(
                best_line[:, 0], best_line[:, 1], color="#1f2933", linewidth=2.2, label="best run"
            )
        ax.autoscale()
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel(_tex_safe(name), fontsize=9)
        if not part.num_rows:
            ax.text(0.5, 0.5, "no epoch curves stored", ha="center", transform=ax.transAxes)
    if axes[-1].get_legend_handles_labels()[0]:
        legend = axes[-1].legend(
            fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
        )
        for handle in legend.legend_handles:
            if handle is not None:
                handle.set_alpha(1.0)
    return _svg(fig, "curves")


def _card(label: str, value: str, note: str = "", color: str | None = None) -> str:
    style = f' style="color:{color}"' if color else ""
    return (
        f'<div class="card"><div class="label">{_e(label)}</div>'
        f'<div class="value"{style}>{value}</div><div class="note">{note}</div></div>'
    )


def _config_text(row: dict[str, Any]) -> str:
    """The run's whole config: the arm's fixed overrides, then the sampled parameters."""
    params = json.loads(row["params"])
    return " ".join([*row["overrides"], *(f"{k}={v}" for k, v in sorted(params.items()))])


_PROVENANCE = (
    ("seed", "seed"),
    ("git_commit", "commit"),
    ("dataset_hash", "data"),
    ("simulator_version", "simulator"),
)


def _provenance(row: dict[str, Any]) -> str:
    """What reproduces the run, as one line (the tooltip of its id in the run table)."""
    parts = [f"{label} {row[key]}" for key, label in _PROVENANCE if row.get(key) is not None]
    return " · ".join(parts) or "no provenance recorded"


def _test_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The run's stored held-out test metrics (``test/...``), {} when none or unreadable."""
    try:
        data = json.loads(row.get("test_metrics") or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _test_key(metric: str) -> str | None:
    """The held-out counterpart of a validation metric: ``val/macro_f1`` -> ``test/macro_f1``."""
    return "test/" + metric[len("val/") :] if metric.startswith("val/") else None


def _class_order(names: set[str]) -> list[str]:
    return [n for n in EC57_ORDER if n in names] + sorted(names - set(EC57_ORDER))


def confusion_from_metrics(test_metrics: dict[str, float]) -> tuple[list[str], np.ndarray] | None:
    """The test confusion matrix in a run's ``test/cm_<true>_<pred>`` counts, or None.

    Returns:
        (class names, counts of shape (K, K), rows true and columns predicted); a cell the
        counts lack is 0. None when there are no such keys.
    """
    cells: dict[tuple[str, str], float] = {}
    for key, value in test_metrics.items():
        if not key.startswith("test/cm_"):
            continue
        parts = key[len("test/cm_") :].split("_")
        if len(parts) == 2 and all(parts):
            cells[(parts[0], parts[1])] = value
    if not cells:
        return None
    classes = _class_order({c for pair in cells for c in pair})
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)))
    for (t, p), v in cells.items():
        matrix[index[t], index[p]] = v
    return classes, matrix


def _ratio(num: float, den: float) -> str:
    return "–" if den <= 0 else f"{num / den:.3f}"


def _confusion_table(classes: list[str], matrix: np.ndarray) -> str:
    """EC57-style table: counts (rows true, columns predicted), Se per row, PPV per column."""
    head = "".join(f"<th>{_e(c)}</th>" for c in classes)
    out = [
        '<table class="cm"><thead><tr><th>true ↓ · predicted →</th>'
        f"{head}<th>total</th><th>Se</th></tr></thead><tbody>"
    ]
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    for i, c in enumerate(classes):
        cells = "".join(
            f"<td{' class=diag' if i == j else ''}>{matrix[i, j]:.0f}</td>"
            for j in range(len(classes))
        )
        out.append(
            f'<tr><th class="rowh">{_e(c)}</th>{cells}<td>{support[i]:.0f}</td>'
            f"<td>{_ratio(matrix[i, i], support[i])}</td></tr>"
        )
    ppv = "".join(f"<td>{_ratio(matrix[j, j], predicted[j])}</td>" for j in range(len(classes)))
    totals = "".join(f"<td>{v:.0f}</td>" for v in predicted)
    out.append(f'<tr><th class="rowh">total</th>{totals}<td>{matrix.sum():.0f}</td><td></td></tr>')
    out.append(f'<tr><th class="rowh">PPV</th>{ppv}<td></td><td></td></tr></tbody></table>')
    return "".join(out)


def _held_out_section(
    runs: pa.Table, best_row: dict[str, Any] | None, metric: str, mode: str
) -> str:
    """The best-by-validation run's test results: its test value, the best test value of any
    run (how well validation picked), and its test confusion matrix."""
    if best_row is None:
        return '<p class="muted">No completed run yet.</p>'
    key = _test_key(metric)
    test = _test_metrics(best_row)
    parts = [
        f"<p>Best run by validation: <b>{_e(best_row['run_id'])}</b> ({_e(metric)} "
        f"{_fmt(best_row['value'])}"
    ]
    if key is not None and key in test:
        parts.append(f"; {_e(key)} {_fmt(test[key])}")
    parts.append(").")
    if key is not None:
        done = runs.filter(pc.equal(runs["status"], "completed")).to_pylist()
        scored = [(t[key], r["run_id"]) for r in done if key in (t := _test_metrics(r))]
        if scored:
            value, run_id = max(scored) if mode == "max" else min(scored)
            parts.append(
                f" Best {_e(key)} of any completed run: {_fmt(value)} ({_e(run_id)}), for "
                "comparison only."
            )
    parts.append("</p>")
    found = confusion_from_metrics(test)
    if found is None:
        parts.append('<p class="muted">No test confusion matrix stored for this run.</p>')
    else:
        parts.append(_confusion_table(*found))
        parts.append(
            '<p class="muted">Rows: true class; columns: predicted. Se (sensitivity) = '
            "diagonal / row total, PPV (positive predictive value) = diagonal / column total; "
            "– where the class never occurs (Se) or is never predicted (PPV).</p>"
        )
    return "".join(parts)


def _run_table(runs: pa.Table, mode: str, metric: str) -> str:
    status = np.asarray(runs["status"].to_numpy(zero_copy_only=False), dtype=object)
    values = runs["value"].to_numpy(zero_copy_only=False).astype(float)
    done = (status == "completed") & np.isfinite(values)
    done_idx = np.flatnonzero(done)
    key = -values[done_idx] if mode == "max" else values[done_idx]
    ranked = list(done_idx[np.argsort(key, kind="stable")])
    ranked += list(np.flatnonzero(~done)[::-1])  # then the others, newest first
    shown = ranked[:MAX_TABLE_ROWS]
    rows = runs.take(pa.array(np.asarray(shown, dtype=np.int64))).to_pylist() if shown else []
    test_key = _test_key(metric)
    test_head = (
        f'<th class=test title="{_e(HELD_OUT)}">{_e(test_key)} (held-out test)</th>'
        if test_key is not None
        else ""
    )
    out = [
        '<div class="scroll"><table><thead><tr><th>#</th><th>run</th><th>status</th>'
        f"<th>{_e(metric)}</th>{test_head}<th>tier</th><th>arm</th><th>origin</th>"
        "<th>model</th><th>config</th><th>epochs</th><th>time</th><th>approval</th>"
        "<th>finished (UTC)</th><th>error</th></tr></thead><tbody>"
    ]
    n_done = len(done_idx)
    for i, r in enumerate(rows):
        rank = str(i + 1) if i < n_done else ""
        color = TIER_COLORS.get(r["tier"], "#7b8794")
        finished = r["finished_at"].strftime("%m-%d %H:%M") if r["finished_at"] else "–"
        duration = f"{r['duration_s']:.0f} s" if r["duration_s"] is not None else "–"
        epochs = f"{r['epochs_run']}" + (f" (best {r['best_epoch']})" if r["best_epoch"] else "")
        model = _e(r["model"] or "–")
        if r["num_params"]:
            model += f' <span class="muted">{r["num_params"] / 1e6:.2g}M</span>'
        error = _e((r["error"] or "")[:300])
        test_cell = (
            f"<td class='num test'>{_fmt(_test_metrics(r).get(test_key))}</td>"
            if test_key is not None
            else ""
        )
        out.append(
            f'<tr><td class=num>{rank}</td><td title="{_e(_provenance(r))}">{_e(r["run_id"])}'
            f"</td><td>{_badge(r['status'])}"
            f"</td><td class=num>{_fmt(r['value'])}</td>{test_cell}<td class=nw><span class=tier "
            f'style="background:{color}"></span>{r["tier"]}</td><td>{_e(r["arm"])}</td>'
            f"<td>{_e(r['origin'])}</td><td>{model}</td>"
            f"<td class=cfg>{_e(_config_text(r)[:400])}</td><td class=num>{epochs}</td>"
            f"<td class=num>{duration}</td><td>{_e(r['approval'] or '–')}</td>"
            f"<td class=num>{finished}</td><td class=err>{error}</td></tr>"
        )
    out.append("</tbody></table></div>")
    if len(ranked) > len(shown):
        out.append(
            f'<p class="muted">Showing the best {len(shown)} of {len(ranked)} runs; the store '
            "has them all.</p>"
        )
    return "".join(out)


APPROVAL_COLORS = {
    "approved": "#1e7e34",
    "auto": "#7b8794",
    "modified": "#b45309",
    "rejected": "#b3261e",
}


def _approval_item(e: Event) -> tuple[str, str]:
    """(dot colour, inner HTML) of one approval event.

    Per-trial decisions (the searcher's, with ``data["run_num"]``) show the trial number, the
    decision, who proposed it, the overrides it ran with (the proposed ones when rejected, and
    both when modified) and the reason; older per-proposal events show their message.
    """
    data = e.data
    decision = str(data.get("decision", "?"))
    dot = APPROVAL_COLORS.get(decision, "#4C72B0")
    if "run_num" not in data:
        return dot, f"<b>{_e(decision)}</b> {_e(e.message)}"
    proposed = " ".join(str(o) for o in data.get("overrides_proposed") or ())
    ran = " ".join(str(o) for o in data.get("overrides_run") or ())
    parts = [
        f"<b>trial #{_e(data.get('run_num'))} {_e(decision)}</b>",
        f'<span class="muted">proposed by {_e(data.get("origin", "?"))}</span>',
    ]
    if decision == "modified":
        parts.append(f'<div class="cfg">proposed: {_e(proposed[:400])}</div>')
        parts.append(f'<div class="cfg">ran: {_e(ran[:400])}</div>')
    else:
        parts.append(f'<div class="cfg">{_e((ran or proposed)[:400])}</div>')
    reason = str(data.get("reason") or "")
    if reason:
        parts.append(f"<div>{_e(reason[:300])}</div>")
    return dot, " ".join(parts)


def _timeline(events: Sequence[Event]) -> str:
    """Escalations, agent failures and every approval decision, in order.

    Consecutive automatic approvals (``auto``) fold into one line so that an unattended
    campaign's hundreds of trials do not drown the decisions a person made.
    """
    kinds = ("approval", "escalation", "agent_call", "agent_failure")
    items = [e for e in events if e.kind in kinds]
    if not items:
        return '<p class="muted">No approvals yet.</p>'
    out = ['<div class="scroll"><ul class="timeline">']
    i = 0
    while i < len(items):
        e = items[i]
        target = " · ".join(_e(v) for v in (e.arm, e.run_id) if v)
        if e.kind == "approval" and e.data.get("decision") == "auto" and "run_num" in e.data:
            j = i
            while (
                j + 1 < len(items)
                and items[j + 1].kind == "approval"
                and items[j + 1].data.get("decision") == "auto"
                and "run_num" in items[j + 1].data
            ):
                j += 1
            first, last = e.data.get("run_num"), items[j].data.get("run_num")
            span = f"trial #{_e(first)}" if i == j else f"trials #{_e(first)}–#{_e(last)}"
            dot, body = APPROVAL_COLORS["auto"], f"<b>{span} auto-approved</b>"
            target = "" if i != j else target
            i = j + 1
        else:
            i += 1
            if e.kind == "approval":
                dot, body = _approval_item(e)
            elif e.kind == "escalation":
                dot = TIER_COLORS.get(e.tier or 0, "#4C72B0")
                body = f"<b>escalation → tier {_e(e.tier)}</b> {_e(e.message)}"
            elif e.kind == "agent_call":
                dot, body = "#6b7280", _agent_call_item(e)
            else:
                dot, body = "#b3261e", f"<b>agent failure</b> {_e(e.message)}"
        out.append(
            f'<li style="--dot:{dot}"><div class="when">{e.time:%Y-%m-%d %H:%M:%S} UTC'
            f"{' · ' + target if target else ''}</div>{body}</li>"
        )
    out.append("</ul></div>")
    return "".join(out)


def _agent_call_item(e: Event) -> str:
    """One agent call: model, outcome, tokens, and its tool calls folded away."""
    calls = e.data.get("tool_calls") or []
    tools = "".join(f"<li><code>{_e(c)}</code></li>" for c in calls[:40] if isinstance(c, str))
    folded = (
        f"<details><summary>{len(calls)} tool calls</summary><ul>{tools}</ul></details>"
        if tools
        else ""
    )
    return f"<b>agent call</b> {_e(e.message)}{folded}"


def _summaries(events: Sequence[Event]) -> str:
    items = [e for e in events if e.kind == "agent_summary"][::-1][:6]
    if not items:
        return '<p class="muted">No agent summary yet.</p>'
    return "".join(
        f'<div class="when muted">{e.time:%Y-%m-%d %H:%M} UTC'
        f"{' · tier ' + _e(e.tier) if e.tier is not None else ''}</div>"
        f'<div class="summary">{_e(e.message)}</div>'
        for e in items
    )


def _pick_campaign(store: FeedbackStore, campaign: str | None) -> tuple[str | None, list[str]]:
    names = store.campaigns()
    if campaign is not None or not names:
        return campaign, names
    if len(names) == 1:
        return names[0], names
    runs = store.table()
    latest = runs["campaign"][int(np.argmax(runs["write_seq"].to_numpy()))].as_py()
    logger.info("store has campaigns %s; showing the latest, %s", names, latest)
    return latest, names


def render_dashboard(
    store: FeedbackStore,
    campaign: str | None = None,
    *,
    thresholds: SignalThresholds | None = None,
    refresh_s: int | None = None,
    source: str | None = None,
) -> str:
    """The dashboard of ``campaign`` as one HTML string (no scripts, no external resources).

    Args:
        store: The store.
        campaign: Which campaign; default: the only one, or the one written last.
        thresholds: For the signal cards; default: the campaign's stored thresholds (the
            latest ``campaign`` event), else :class:`SignalThresholds` defaults.
        refresh_s: Add a ``<meta http-equiv="refresh">`` so an open page reloads (during a
            campaign).
        source: Where the data came from, for the header (default: the store path).
    """
    campaign, all_names = _pick_campaign(store, campaign)
    runs = store.table(campaign=campaign) if campaign else store.table().slice(0, 0)
    events = store.events(campaign=campaign) if campaign else []
    th = thresholds or (campaign_thresholds(store, campaign) if campaign else None)
    th = th or SignalThresholds()
    modes = runs["mode"].unique().to_pylist()
    metrics = runs["metric"].unique().to_pylist()
    mode = modes[0] if len(modes) == 1 else "max"
    metric = metrics[0] if len(metrics) == 1 else (", ".join(metrics) or "metric")

    status = Counter(runs["status"].to_pylist())
    done = runs.filter(pc.equal(runs["status"], "completed"))
    best_row: dict[str, Any] | None = None
    improvement: float | None = None
    if done.num_rows:
        vals = done["value"].to_numpy()
        best_idx = int(np.argmax(vals) if mode == "max" else np.argmin(vals))
        best_row = done.slice(best_idx, 1).to_pylist()[0]
        first = float(vals[0])
        if first != 0:
            gain = best_row["value"] - first if mode == "max" else first - best_row["value"]
            improvement = 100.0 * gain / abs(first)
    rec: Recommendation | None
    try:
        rec = recommend(runs, th) if runs.num_rows else None
    except FeedbackError as e:
        logger.warning("signals unavailable for the dashboard: %s", e)
        rec = None

    progress = _progress_chart(runs, _escalations(store, campaign, runs), mode, metric, th.target)
    run_ids = runs["run_id"].to_pylist()
    curves = store.curves(run_ids=run_ids) if run_ids else store.curves().slice(0, 0)
    if len(run_ids) > MAX_CURVES:  # keep the file small: the best runs' curves
        keep = set(_run_ids_ranked(runs, mode)[:MAX_CURVES])
        curves = curves.filter(pc.is_in(curves["run_id"], pa.array(sorted(keep))))
    curves_svg = _curves_chart(curves, runs, metric, best_row["run_id"] if best_row else None)

    cards = [
        _card(
            "Total runs",
            f"{runs.num_rows}",
            " · ".join(f"{n} {s}" for s, n in status.most_common()) or "no runs yet",
        ),
        _card(
            f"Best {metric}",
            _fmt(best_row["value"]) if best_row else "–",
            (
                f"{_e(best_row['run_id'])} · tier {best_row['tier']} · {_e(best_row['model'])}"
                if best_row
                else "no completed run"
            ),
        ),
        _card(
            "Improvement",
            "–" if improvement is None else f"{improvement:+.1f}%",
            "best vs first completed run",
            "#1e7e34" if improvement and improvement > 0 else None,
        ),
    ]
    if rec is not None and rec.drift is not None and rec.stagnation is not None:
        cards += [
            _card(
                "Drift",
                "drifting" if rec.drift.drifting else "stable",
                _e(rec.drift.reason),
                "#b3261e" if rec.drift.drifting else "#1e7e34",
            ),
            _card(
                "Stagnation",
                "stagnant" if rec.stagnation.stagnant else "improving",
                f"{rec.stagnation.runs_without_improvement} completed runs without improvement"
                f" · window {th.window}, min_delta {th.min_delta:g}",
                "#b45309" if rec.stagnation.stagnant else "#1e7e34",
            ),
            _card(
                "Recommendation",
                _e(rec.action.replace("_", " ")),
                '<ul class="reasons">'
                + "".join(f"<li>{_e(r)}</li>" for r in rec.reasons[:3])
                + "</ul>",
                ACTION_COLORS[rec.action],
            ),
        ]
    tokens = int(pc.sum(runs["tokens_in"]).as_py() or 0) + int(
        pc.sum(runs["tokens_out"]).as_py() or 0
    )
    if tokens:
        cards.append(_card("LLM tokens", f"{tokens:,}", "spent on proposals"))

    title = f"agentune · {campaign or 'no campaign'}"
    others = [c for c in all_names if c != campaign]
    sub = (
        f"metric {_e(metric)} ({'higher' if mode == 'max' else 'lower'} is better) · "
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {_e(source or store.root)}"
    )
    if others:
        sub += f" · other campaigns in this store: {_e(', '.join(others))}"
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{refresh}<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><div class=sub>{sub}</div></header><main>"
        f'<div class="cards" id="cards">{"".join(cards)}</div>'
        '<section id="progress"><h2>Metric progression</h2>'
        '<p class="muted">Each dot is a completed run (colour: tier), the line the best so '
        "far; dashed lines mark escalations, crosses runs that did not complete.</p>"
        f"<figure>{progress}</figure></section>"
        '<section id="curves"><h2>Training curves</h2>'
        f"<figure>{curves_svg}</figure></section>"
        '<div class="cols"><section id="approvals"><h2>Approval timeline</h2>'
        f"{_timeline(events)}</section>"
        f'<section id="agent"><h2>Agent summary</h2>{_summaries(events)}</section></div>'
        '<section id="holdout"><h2>Held-out test (best run by validation)</h2>'
        f'<p class="muted">{_e(HELD_OUT)}.</p>{_held_out_section(runs, best_row, metric, mode)}'
        "</section>"
        '<section id="log"><h2>Experiment log</h2>'
        f"{_run_table(runs, mode, metric)}</section>"
        "</main></body></html>"
    )


def _run_ids_ranked(runs: pa.Table, mode: str) -> list[str]:
    values = runs["value"].to_numpy(zero_copy_only=False).astype(float)
    ok = np.isfinite(values) & (
        np.asarray(runs["status"].to_numpy(zero_copy_only=False), dtype=object) == "completed"
    )
    key = np.where(ok, -values if mode == "max" else values, np.inf)
    order = np.argsort(key, kind="stable")
    ids = runs["run_id"].to_pylist()
    return [ids[i] for i in order]


def _escalations(
    store: FeedbackStore, campaign: str | None, runs: pa.Table
) -> list[tuple[int, Event]]:
    """Escalation events with the number of runs written before each (its x position)."""
    if campaign is None:
        return []
    table = store.event_table(campaign=campaign, kind="escalation")
    seq = runs["write_seq"].to_numpy()
    positions = np.searchsorted(seq, table["write_seq"].to_numpy())
    events = [Event._from_row(row) for row in table.to_pylist()]
    return [(int(p), e) for p, e in zip(positions, events, strict=True)]


def write_dashboard(
    campaign_dir: str | Path,
    out: str | Path | None = None,
    *,
    campaign: str | None = None,
    thresholds: SignalThresholds | None = None,
    refresh_s: int | None = None,
) -> Path:
    """Write the dashboard of a campaign directory (what ``agentune dashboard DIR`` runs).

    Reads ``<campaign_dir>/history/`` and writes ``<campaign_dir>/dashboard.html`` (or
    ``out``) atomically (temp file, then rename), so an open browser never sees half a page.

    Args:
        campaign_dir: The campaign directory.
        out: Output file; default ``<campaign_dir>/dashboard.html``.
        campaign: Campaign to show; default the only (or latest) one in the store.
        thresholds: Signal thresholds; default the campaign's stored ones.
        refresh_s: Make the page reload itself every ``refresh_s`` seconds.

    Returns:
        The path written.

    Raises:
        FeedbackError: ``<campaign_dir>/history`` does not exist.
    """
    campaign_dir = Path(campaign_dir)
    history = campaign_dir / "history"
    if not history.is_dir():
        raise FeedbackError(
            f"no feedback history at {str(history)!r}: pass the campaign directory (the one "
            "holding history/), or run a campaign first."
        )
    store = FeedbackStore(history)
    page = render_dashboard(store, campaign, thresholds=thresholds, refresh_s=refresh_s)
    target = Path(out) if out is not None else campaign_dir / "dashboard.html"
    return _write_text(target, page)


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
