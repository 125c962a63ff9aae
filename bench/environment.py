"""Where a benchmark ran: the machine, the library versions and the git commit.

Every results file carries this block, so a figure can be traced to what produced it.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
#: Distributions whose versions every results file records.
VERSIONED = ("ray", "optuna", "torch", "numpy", "scipy", "pyarrow", "matplotlib")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else `platform.processor()`."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    """Physical memory in GiB, or None where sysconf does not tell."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def machine() -> dict[str, Any]:
    """CPU count (usable by this process), CPU model, RAM, OS and the 1-minute load."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 0
    return {
        "cpus": cpus,
        "cpu_model": cpu_model(),
        "ram_gib": ram_gib(),
        "os": platform.platform(terse=True),
        "load_1min": load_average(),
    }


def load_average() -> float | None:
    """The 1-minute load average (runnable processes; above the CPU count, work waits)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def versions() -> dict[str, str]:
    """Python and the `VERSIONED` distributions ("missing" when not installed)."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def git_commit() -> dict[str, Any]:
    """The checkout's HEAD commit and whether the working tree had changes (None outside git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        logger.info("no git commit recorded: %s", e)
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(dirty)}


def describe() -> dict[str, Any]:
    """The full block: {"machine": ..., "versions": ..., "git": ...}."""
    return {"machine": machine(), "versions": versions(), "git": git_commit()}


def one_line(env: dict[str, Any]) -> str:
    """A one-line summary of `describe()`'s block, for tables and the README."""
    m, v, g = env["machine"], env["versions"], env["git"]
    commit = (g.get("commit") or "no git")[:10] + (" (dirty)" if g.get("dirty") else "")
    load = f"{m['load_1min']}" + (
        f" -> {m['load_1min_after']}" if m.get("load_1min_after") is not None else ""
    )
    libs = ", ".join(f"{k} {v[k]}" for k in ("ray", "optuna", "torch", "numpy") if k in v)
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, load {load}; "
        f"Python {v['python']}, {libs}; commit {commit}"
    )
