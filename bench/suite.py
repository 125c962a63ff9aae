"""The benchmark suite's protocol: parts, the context they run in, and what they return.

A part is one comparison (search quality, overhead, ...): a function
``run(ctx: RunContext) -> PartResult``. The suite (`run_suite`) runs the parts asked for,
and writes for each ``<results>/<name>.json`` (figures, targets, the machine, versions and
commit), ``<results>/<name>.md`` (its Markdown table) and the part's PNG plots, plus
``<results>/suite.json`` with every part's wall time. Parts never print their figures; they
report progress through ``ctx.reporter`` and return them.

Call order: `run_suite` builds one `RunContext`, calls each part's ``run`` in registry order,
writes its files, and shuts Ray down at the end if a part started it (``ctx.ensure_ray``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from bench.environment import describe, load_average, one_line

logger = logging.getLogger(__name__)

Mode = Literal["smoke", "quick", "full"]
MODES: tuple[Mode, ...] = ("smoke", "quick", "full")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class BenchError(ValueError):
    """A bad request to the suite (unknown part, unknown mode, a part not implemented)."""


class Reporter(Protocol):
    """Progress of the running part (the CLI shows it with rich; tests pass `NullReporter`)."""

    def start(self, total: int, description: str) -> None:
        """A new phase of `total` steps begins."""

    def advance(self, description: str | None = None, steps: int = 1) -> None:
        """`steps` steps of the phase are done; `description` replaces its text."""


class NullReporter:
    """A reporter that shows nothing."""

    def start(self, total: int, description: str) -> None:
        """Ignore the phase."""

    def advance(self, description: str | None = None, steps: int = 1) -> None:
        """Ignore the progress."""


@dataclass(frozen=True)
class Target:
    """A target of the issue and whether this run met it.

    Attributes:
        name: the target, as the issue states it.
        holds: True met, False missed, None not measurable in this mode.
        detail: the figures behind the verdict (by how much it was missed).
    """

    name: str
    holds: bool | None
    detail: str


@dataclass
class PartResult:
    """What a part returns.

    Attributes:
        figures: JSON-serialisable results (everything the table shows, and more).
        table: the part's results as Markdown (one or more tables, with captions).
        targets: the issue's targets this part measures.
        plots: PNG files the part wrote into ``ctx.results_dir``.
        notes: short lines for the Markdown file (settings, what was skipped and why).
    """

    figures: dict[str, Any]
    table: str
    targets: list[Target] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RunContext:
    """What a part gets to run.

    Attributes:
        mode: "smoke" (seconds, for CI), "quick" (the whole suite within 15 minutes on 2
            CPUs) or "full".
        results_dir: where the part writes its plots (``<name>_*.png``).
        reporter: progress display.
    """

    mode: Mode
    results_dir: Path
    reporter: Reporter = field(default_factory=NullReporter)
    _ray_started: bool = False

    def pick(self, smoke: Any, quick: Any, full: Any) -> Any:
        """The value of this mode among the three."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.mode]

    def ensure_ray(self) -> None:
        """Start Ray once for the whole suite: 2 CPUs, no dashboard, quiet Tune output.

        The suite shuts it down at the end. A Ray already running in this process is used
        as it is.
        """
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        if ray.is_initialized():
            return
        # address="local": a new instance even when another Ray cluster runs on this machine
        # (a plain ray.init() would join it, and refuse num_cpus)
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        self._ray_started = True

    @contextlib.contextmanager
    def work_dir(self, prefix: str) -> Iterator[Path]:
        """A temporary folder, removed afterwards (Tune storage, feedback stores)."""
        path = Path(tempfile.mkdtemp(prefix=f"agentune-bench-{prefix}-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def shutdown(self) -> None:
        """Stop Ray if this context started it."""
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False


@dataclass(frozen=True)
class Part:
    """A registered part of the suite.

    Attributes:
        name: results file stem and ``--only`` name.
        title: one line saying what it compares.
        target: ``"module:function"`` of its ``run(ctx) -> PartResult`` (imported when it
            runs, so listing parts imports nothing heavy); None: registered, not implemented.
        note: for unimplemented parts, what is missing.
        in_quick: run by ``--quick`` without ``--only`` (False: only in full and smoke mode,
            or when named with ``--only``).
    """

    name: str
    title: str
    target: str | None
    note: str = ""
    in_quick: bool = True

    def load(self) -> Callable[[RunContext], PartResult]:
        """The part's run function.

        Raises:
            BenchError: the part is registered but not implemented yet.
        """
        if self.target is None:
            raise BenchError(f"part {self.name!r} is registered but not implemented: {self.note}")
        module, _, func = self.target.partition(":")
        run: Callable[[RunContext], PartResult] = getattr(importlib.import_module(module), func)
        return run


def select(parts: Sequence[Part], mode: Mode, only: Sequence[str] = ()) -> list[Part]:
    """The parts a run executes: those named in `only` (in registry order), else every
    implemented part that runs in this mode (smoke: all of them, so none can rot).

    Raises:
        BenchError: `mode` is unknown, or `only` names an unknown or unimplemented part.
    """
    if mode not in MODES:
        raise BenchError(f"mode must be one of {MODES}, got {mode!r}.")
    names = [p.name for p in parts]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise BenchError(
            f"unknown part(s) {unknown}; known: {names}. See `python -m bench --list`."
        )
    if only:
        chosen = [p for p in parts if p.name in only]
        pending = [p.name for p in chosen if p.target is None]
        if pending:
            raise BenchError(
                f"part(s) {pending} are registered but not implemented yet; implemented: "
                f"{[p.name for p in parts if p.target is not None]}."
            )
        return chosen
    return [p for p in parts if p.target is not None and (p.in_quick or mode != "quick")]


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def markdown(part: Part, result: PartResult, env: dict[str, Any], mode: Mode, wall: float) -> str:
    """The part's Markdown file: title, where it ran, table, targets, notes, plots."""
    lines = [f"## {part.title}", "", f"`{part.name}`, {mode} mode, {wall:.0f} s; {one_line(env)}"]
    lines += ["", result.table.strip(), ""]
    if result.targets:
        lines.append("Targets:")
        marks = {True: "met", False: "**missed**", None: "not measured"}
        lines += [f"- {t.name}: {marks[t.holds]} ({t.detail})" for t in result.targets]
        lines.append("")
    lines += [f"- {n}" for n in result.notes]
    if result.notes:
        lines.append("")
    lines += [f"![{p.stem}]({p.name})" for p in result.plots]
    return "\n".join(lines).rstrip() + "\n"


def write_part(
    results_dir: Path,
    part: Part,
    result: PartResult,
    env: dict[str, Any],
    mode: Mode,
    wall: float,
    started: datetime,
) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md``; returns their paths."""
    doc = {
        "part": part.name,
        "title": part.title,
        "mode": mode,
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 2),
        **env,
        "figures": result.figures,
        "targets": [asdict(t) for t in result.targets],
        "plots": [p.name for p in result.plots],
        "notes": result.notes,
    }
    json_path = results_dir / f"{part.name}.json"
    md_path = results_dir / f"{part.name}.md"
    _write_atomic(json_path, json.dumps(doc, indent=2, default=_json_default) + "\n")
    _write_atomic(md_path, markdown(part, result, env, mode, wall))
    return json_path, md_path


def cpu_seconds() -> float:
    """CPU time of this process and its finished child processes (process pools,
    subprocesses; not Ray's workers, which Ray's own daemons start): on a machine shared
    with other work, CPU time / 2 is what a part would take alone on 2 cores, which the
    wall time cannot tell."""
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


def run_suite(
    parts: Sequence[Part],
    mode: Mode,
    results_dir: Path,
    *,
    only: Sequence[str] = (),
    reporter: Reporter | None = None,
    on_part: Callable[[Part, int], None] | None = None,
) -> dict[str, Any]:
    """Run the selected parts and write their results; returns the suite summary.

    Args:
        parts: the registry (`bench.parts.PARTS`).
        mode: "smoke", "quick" or "full".
        results_dir: created if missing; files of parts not run are left as they are.
        only: part names to run (default: every implemented part of this mode).
        reporter: progress display for the parts' phases.
        on_part: called with (part, index) before each part runs (the CLI's overall bar).

    Returns:
        ``{"mode", "total_s", "parts": [{"name", "wall_s", "cpu_s", "json", "md", "targets"}],
        ...environment}``,
        also written to ``<results_dir>/suite.json`` (merged with earlier entries of parts not
        run this time, so a partial rerun keeps the rest of the summary).

    Raises:
        BenchError: see `select`.
    """
    chosen = select(parts, mode, only)
    results_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(mode=mode, results_dir=results_dir, reporter=reporter or NullReporter())
    env = describe()
    entries: list[dict[str, Any]] = []
    t_suite = time.perf_counter()
    try:
        for i, part in enumerate(chosen):
            if on_part is not None:
                on_part(part, i)
            run = part.load()
            started = datetime.now(UTC)
            part_env = describe()  # the load changes part by part on a shared machine
            t0, c0 = time.perf_counter(), cpu_seconds()
            logger.info("bench part %s (%s mode) starts", part.name, mode)
            result = run(ctx)
            wall = time.perf_counter() - t0
            part_env["machine"]["load_1min_after"] = load_average()
            json_path, md_path = write_part(
                results_dir, part, result, part_env, mode, wall, started
            )
            entries.append(
                {"name": part.name, "wall_s": round(wall, 1),
                 "cpu_s": round(cpu_seconds() - c0, 1), "json": json_path.name,
                 "md": md_path.name, "targets": [asdict(t) for t in result.targets]}
            )  # fmt: skip
    finally:
        ctx.shutdown()
    total = time.perf_counter() - t_suite
    summary = {"mode": mode, "total_s": round(total, 1), "parts": entries, **env}
    previous = results_dir / "suite.json"
    if previous.exists() and only:
        try:
            old = json.loads(previous.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("mode") == mode:
            ran = {e["name"] for e in entries}
            summary["parts"] = [e for e in old.get("parts", []) if e["name"] not in ran] + entries
            summary["total_s"] = round(sum(e["wall_s"] for e in summary["parts"]), 1)
    _write_atomic(previous, json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary
