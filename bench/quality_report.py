"""Tables and plots of the ``search_quality`` part, from its summary (see `summarise`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.plots import COLOURS, save, subplots

SHORT = {
    "agent": "Agent",
    "agent_gp": "Agent(gp)",
    "tpe": "TPE",
    "gp": "GP",
    "random": "random",
    "default": "default",
}


def number(v: float) -> str:
    """A ratio with the digits that matter: 0.62, 21.8, 2,322."""
    if abs(v) < 10:
        return f"{v:.2f}"
    return f"{v:.1f}" if abs(v) < 100 else f"{v:,.0f}"


def ratio_cell(r: dict[str, Any]) -> str:
    """``0.62 [0.41, 0.95] better`` from a `PairedRatio.as_dict()`."""
    text = number(r["ratio"])
    if r["low"] is not None:
        text += f" [{number(r['low'])}, {number(r['high'])}]"
    return text + {"better": " better", "worse": " **worse**", "tie": ""}[r["verdict"]]


def _geomean(values: Sequence[float]) -> float:
    return math.exp(float(np.mean([math.log(max(v, 1e-300)) for v in values])))


def quality_tables(
    summary: dict[str, Any], budgets: Sequence[int], searcher_names: Sequence[str]
) -> str:
    """Per budget: mean final regret of every method, then AgentSearcher's paired ratios."""
    methods = [*searcher_names, "default"]
    parts: list[str] = []
    for b in budgets:
        key = str(b)
        first = next(iter(summary.values()))[key]
        pair_names = list(first["ratios"])
        head = "| problem | " + " | ".join(SHORT[m] for m in methods) + " |"
        rows = [head, "|---" * (len(methods) + 1) + "|"]
        for name, entry in summary.items():
            means = entry[key]["mean_regret"]
            rows.append(f"| {name} | " + " | ".join(f"{means[m]:.3g}" for m in methods) + " |")
        parts.append(f"Mean final simple regret after {b} trials (lower is better):\n\n")
        parts.append("\n".join(rows) + "\n")
        head = "| problem | " + " | ".join(
            "/".join(SHORT[x] for x in p.split("/")) for p in pair_names
        ) + " |"  # fmt: skip
        rows = [head, "|---" * (len(pair_names) + 1) + "|"]
        for name, entry in summary.items():
            ratios = entry[key]["ratios"]
            rows.append(
                f"| {name} | " + " | ".join(ratio_cell(ratios[p]) for p in pair_names) + " |"
            )
        geo = [
            _geomean([e[key]["ratios"][p]["ratio"] for e in summary.values()]) for p in pair_names
        ]
        counts = [
            (
                sum(e[key]["ratios"][p]["verdict"] == "better" for e in summary.values()),
                sum(e[key]["ratios"][p]["verdict"] == "worse" for e in summary.values()),
            )
            for p in pair_names
        ]
        rows.append(
            "| geometric mean (better/worse) | "
            + " | ".join(f"{g:.2f} ({c[0]}/{c[1]})" for g, c in zip(geo, counts, strict=True))
            + " |"
        )
        parts.append(
            f"\nRegret ratio after {b} trials, geometric mean over seeds [paired 95 % interval] "
            "(below 1: the first is better):\n\n"
        )
        parts.append("\n".join(rows) + "\n\n")
    return "".join(parts)


def curves_plot(summary: dict[str, Any], budgets: Sequence[int], path: Path) -> Path:
    """Median best-so-far regret (interquartile band) per problem, log scale."""
    names = list(summary)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = subplots(rows, cols)
    for ax, name in zip(axes.flat, names, strict=False):
        entry = summary[name]
        for s, curve in entry["median_curve"].items():
            x = np.arange(1, len(curve) + 1)
            low, high = entry["quartile_curves"][s]
            floor = 1e-9
            # AgentSearcher dashed on top: in drop-in mode it may trace another line exactly
            style = {"ls": "--", "lw": 1.8, "zorder": 3} if s.startswith("agent") else {"lw": 1.2}
            ax.plot(x, np.maximum(curve, floor), color=COLOURS[s], label=SHORT[s], **style)
            ax.fill_between(
                x, np.maximum(low, floor), np.maximum(high, floor), color=COLOURS[s], alpha=0.12
            )
        ax.axhline(
            max(entry["default_regret"], 1e-9), color=COLOURS["default"], ls="--", lw=0.8,
            label="default",
        )  # fmt: skip
        for b in budgets[:-1]:
            ax.axvline(b, color="0.6", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper right")
    fig.supxlabel("trials", fontsize=8)
    fig.supylabel("simple regret (median, IQR band)", fontsize=8)
    return save(fig, path)


def ratios_plot(summary: dict[str, Any], budgets: Sequence[int], path: Path) -> Path:
    """AgentSearcher's regret ratio to each method, with its paired interval, per problem."""
    names = list(summary)
    fig, axes = subplots(1, len(budgets), width=4.2, height=0.32 * len(names) + 1.2)
    for ax, b in zip(axes.flat, budgets, strict=True):
        first = summary[names[0]][str(b)]["ratios"]
        pairs = [p for p in first if p.startswith("agent/")]
        for j, p in enumerate(pairs):
            other = p.split("/")[1]
            y = np.arange(len(names)) + (j - (len(pairs) - 1) / 2) * 0.15
            r = [summary[n][str(b)]["ratios"][p] for n in names]
            mid = np.array([x["ratio"] for x in r])
            lo = np.array([x["low"] if x["low"] is not None else x["ratio"] for x in r])
            hi = np.array([x["high"] if x["high"] is not None else x["ratio"] for x in r])
            ax.errorbar(
                mid, y, xerr=[mid - lo, hi - mid], fmt="o", ms=3, lw=1, color=COLOURS[other],
                label=f"Agent/{SHORT[other]}",
            )  # fmt: skip
        ax.axvline(1.0, color="0.3", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(np.arange(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"after {b} trials", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    axes.flat[-1].legend(fontsize=6, loc="lower right")
    fig.supxlabel("regret ratio (below 1: AgentSearcher better)", fontsize=8)
    return save(fig, path)
