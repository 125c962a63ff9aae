"""Matplotlib set-up shared by the parts: a non-interactive backend and one save function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines or Ray workers

import matplotlib.pyplot as plt  # after matplotlib.use: the backend is chosen first

#: One colour per method, the same in every plot of the suite.
COLOURS = {
    "agent": "#d62728",
    "agent_gp": "#ff7f0e",
    "tpe": "#1f77b4",
    "gp": "#2ca02c",
    "random": "#7f7f7f",
    "default": "#000000",
    "agent_store": "#9467bd",
}


def subplots(rows: int, cols: int, *, width: float = 3.2, height: float = 2.6) -> tuple[Any, Any]:
    """A figure of `rows` x `cols` axes (always a 2-D array of axes)."""
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    return fig, axes


def save(fig: Any, path: Path) -> Path:
    """Write `fig` as a PNG at `path` (100 dpi) and close it."""
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
