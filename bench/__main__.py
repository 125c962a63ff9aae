"""``python -m bench``: run the benchmark suite and write its results.

    python -m bench --quick                  # every part, within 15 minutes on 2 CPUs
    python -m bench --full                   # the README's figures (about an hour)
    python -m bench --quick --only overhead  # one part
    python -m bench --smoke                  # seconds per part, for CI
    python -m bench --list                   # the parts, implemented or not

Results go to ``bench/results/`` (``--smoke``: ``bench/results/smoke/``; ``--out DIR``
moves them): ``<part>.json``, ``<part>.md``, ``<part>_*.png`` and ``suite.json``.
Exit status: 0 done, 2 bad arguments (an unknown or unimplemented part).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from bench.parts import PARTS
from bench.suite import RESULTS_DIR, BenchError, Mode, Part, run_suite, select

logger = logging.getLogger(__name__)


class RichReporter:
    """Two bars: the parts of the suite, and the current part's phase."""

    def __init__(self, progress: Progress, parts: int) -> None:
        self._progress = progress
        self._overall: TaskID = progress.add_task("suite", total=parts)
        self._phase: TaskID | None = None

    def part(self, part: Part, index: int) -> None:
        """A new part starts (the previous one, if any, is done)."""
        self._progress.update(self._overall, completed=index, description=f"[bold]{part.name}")

    def start(self, total: int, description: str) -> None:
        """A phase of the current part starts."""
        if self._phase is not None:
            self._progress.remove_task(self._phase)
        self._phase = self._progress.add_task(description, total=max(total, 1))

    def advance(self, description: str | None = None, steps: int = 1) -> None:
        """Progress within the phase."""
        if self._phase is None:
            self._phase = self._progress.add_task(description or "", total=1)
        kwargs: dict[str, Any] = {"advance": steps}
        if description is not None:
            kwargs["description"] = description
        self._progress.update(self._phase, **kwargs)

    def finish(self) -> None:
        """Every part is done."""
        self._progress.update(self._overall, completed=self._progress.tasks[0].total)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run agentune's benchmark suite."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the laptop mode (default)")
    mode.add_argument("--full", action="store_true", help="the README's figures")
    mode.add_argument("--smoke", action="store_true", help="seconds per part (CI)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="parts to run")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--list", action="store_true", help="list the parts and exit")
    return parser.parse_args(argv)


def list_parts(console: Console) -> None:
    """Print the registry."""
    table = Table("part", "runs in", "what")
    for p in PARTS:
        where = (
            "not implemented"
            if p.target is None
            else ("smoke, quick, full" if p.in_quick else "smoke, full")
        )
        table.add_row(p.name, where, p.title + (f" ({p.note})" if p.note else ""))
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite from the command line; returns the exit status."""
    args = parse(argv)
    console = Console(stderr=True)
    if args.list:
        list_parts(console)
        return 0
    mode: Mode = "full" if args.full else "smoke" if args.smoke else "quick"
    out = args.out or (RESULTS_DIR / "smoke" if mode == "smoke" else RESULTS_DIR)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's legacy output obeys verbose=0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import optuna  # its INFO line per created study would scroll the progress display away

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        chosen = select(PARTS, mode, args.only)
    except BenchError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        reporter = RichReporter(progress, parts=len(chosen))
        summary = run_suite(
            PARTS, mode, out, only=args.only, reporter=reporter, on_part=reporter.part
        )
        reporter.finish()
    table = Table("part", "seconds", "CPU seconds", "targets met", "results")
    for entry in summary["parts"]:
        checks = [t["holds"] for t in entry["targets"] if t["holds"] is not None]
        met = f"{sum(checks)} of {len(checks)}" if checks else "-"
        table.add_row(
            entry["name"], f"{entry['wall_s']:.0f}", f"{entry.get('cpu_s', 0):.0f}", met,
            str(out / entry["md"]),
        )  # fmt: skip
    console.print(table)
    console.print(f"{mode} mode: {summary['total_s']:.0f} s in all; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
