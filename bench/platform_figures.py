"""Part ``platform``: the earlier issues' own figures, collected into one table.

Each source is one of the former stand-alone benchmarks, run at this mode's size through
its importable function (their ``main()`` still prints the same figures):
`bench.feedback_store.measure`, `bench.feedback_signals.measure`,
`bench.feedback_dashboard.measure`, `bench.safety_checks.measure`,
`bench.train_throughput.main` (trainer vs a bare torch loop, and the dataset cache),
`bench.val_test_agreement.main` (does validation predict the test set) and
`bench.signals_calibration` (run as ``python -m bench.signals_calibration --out FILE`` in a
child process: its process pool stays out of the suite's process, where Ray may run).

Their printed output goes to ``<results>/platform.log``. A source that raises is recorded
with its error (its targets "not measured") and the others still run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.suite import PartResult, RunContext, Target

logger = logging.getLogger(__name__)

Row = tuple[str, str, str, bool | None]  # what, measured, target, holds


@dataclass(frozen=True)
class Source:
    """One former benchmark: how to run it in a mode, and its table rows.

    Attributes:
        name: key in the figures.
        measure: mode -> figures (JSON-serialisable).
        rows: figures -> table rows (what, measured, target, met).
    """

    name: str
    measure: Callable[[str], dict[str, Any]]
    rows: Callable[[dict[str, Any]], list[Row]]


def _pick(mode: str, smoke: Any, quick: Any, full: Any) -> Any:
    return {"smoke": smoke, "quick": quick, "full": full}[mode]


# ----------------------------------------------------------------------------- feedback


def _store(mode: str) -> dict[str, Any]:
    from bench.feedback_store import measure

    stored, appends, query = _pick(
        mode, (1000, 20, 10_000), (100_000, 200, 1_000_000), (100_000, 500, 1_000_000)
    )
    return measure(stored, appends, query)


def _store_rows(f: dict[str, Any]) -> list[Row]:
    a, q = f["append"], f["query"]
    return [
        (f"`FeedbackStore.append` with {a['stored']:,} runs stored",
         f"median {a['median_ms']:.2f} ms (p95 {a['p95_ms']:.2f})", "<= 5 ms (100,000 stored)",
         a["median_ms"] <= 5.0 if a["stored"] >= 100_000 else None),
        (f"filtered query (arm + status) over {q['stored']:,} runs, fresh store",
         f"{q['cold_arm_status_s']:.3f} s", "<= 0.5 s (1,000,000 runs)",
         q["cold_arm_status_s"] <= 0.5 if q["stored"] >= 1_000_000 else None),
    ]  # fmt: skip


def _signals(mode: str) -> dict[str, Any]:
    from bench.feedback_signals import measure

    n, repeats = _pick(mode, (2000, 3), (100_000, 7), (100_000, 15))
    return {"runs": n, "seconds": measure(n, repeats)}


def _signals_rows(f: dict[str, Any]) -> list[Row]:
    s = f["seconds"]["recommend (from the store's pyarrow.Table)"]
    return [
        (f"signals (`recommend`) over {f['runs']:,} runs", f"{s * 1e3:.1f} ms",
         "<= 50 ms (100,000 runs)", s <= 0.05 if f["runs"] >= 100_000 else None),
    ]  # fmt: skip


def _dashboard(mode: str) -> dict[str, Any]:
    from bench.feedback_dashboard import measure

    n, epochs = _pick(mode, (50, 5), (1000, 20), (1000, 20))
    return measure(n, epochs)


def _dashboard_rows(f: dict[str, Any]) -> list[Row]:
    ok = f["cold_s"] <= 3.0 and f["bytes"] <= 5_000_000
    return [
        (f"dashboard for {f['runs']:,} runs",
         f"{f['cold_s']:.2f} s cold ({f['warm_s']:.2f} s warm), {f['bytes'] / 1e6:.2f} MB",
         "<= 3 s, <= 5 MB (1,000 runs)", ok if f["runs"] >= 1000 else None),
    ]  # fmt: skip


def _calibration(mode: str) -> dict[str, Any]:
    campaigns = _pick(mode, 10, 200, 1000)
    with tempfile.TemporaryDirectory(prefix="agentune-bench-calibration-") as tmp:
        out = Path(tmp) / "calibration.json"
        done = subprocess.run(
            [sys.executable, "-m", "bench.signals_calibration", "--campaigns", str(campaigns),
             "--out", str(out)],
            capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"bench.signals_calibration exited {done.returncode}: {done.stderr[-2000:]}"
            )
        rows = json.loads(out.read_text(encoding="utf-8"))
    return {"campaigns": campaigns, "rows": rows}


def _calibration_rows(f: dict[str, Any]) -> list[Row]:
    rows = [r for r in f["rows"] if isinstance(r, dict) and "rates" in r]
    if not rows:
        return [("signals calibration", "no rows with rates in its JSON", "-", None)]

    def rate(key: str, pick: Any) -> float:
        return float(pick(r["rates"].get(key, float("nan")) for r in rows))

    n = f["campaigns"]
    valid = n >= 1000 or None  # the README's figures use 1,000 campaigns per row
    fa = max(rate("fa1", max), rate("fa3", max))
    stag, stall = rate("stag", max), rate("stall", min)
    regr = rate("regr", min)
    return [
        (f"false drift alarms, worst setting ({n} campaigns per row)", f"{100 * fa:.1f} %",
         "<= 5 %", fa <= 0.05 if valid else None),
        ("improving campaign called stagnant, worst setting", f"{100 * stag:.1f} %",
         "<= 5 %", stag <= 0.05 if valid else None),
        ("stall found within two windows, worst setting", f"{100 * stall:.0f} %", ">= 90 %",
         stall >= 0.9 if valid else None),
        ("regression found within two windows, worst setting", f"{100 * regr:.0f} %", ">= 90 %",
         regr >= 0.9 if valid else None),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- workload


def _safety(mode: str) -> dict[str, Any]:
    from bench.safety_checks import measure

    return measure(_pick(mode, 1, 3, 5))


def _safety_rows(f: dict[str, Any]) -> list[Row]:
    return [
        ("static check of a generated model", f"{f['static_template_ms']:.1f} ms "
         f"({f['static_zoo_ms_per_model']:.1f} ms per zoo model)", "-", None),
        ("sandboxed smoke test vs a bare child process", f"{f['smoke_template_s']:.2f} s, "
         f"{f['smoke_vs_bare']:.2f}x", "-", None),
        ("proposal check vs one bare Hydra composition", f"{f['proposal_check_ms']:.0f} ms, "
         f"{f['check_vs_compose']:.1f}x", "-", None),
    ]  # fmt: skip


def _throughput(mode: str) -> dict[str, Any]:
    from bench.train_throughput import main

    argv = _pick(
        mode,
        ["--synthetic", "512", "--epochs", "1", "--repeats", "1", "--threads", "1"],
        ["--repeats", "1", "--threads", "2"],
        ["--threads", "2"],
    )
    return main(argv)


def _throughput_rows(f: dict[str, Any]) -> list[Row]:
    ratios = {k: f[k] for k in ("ratio_loop_vs_bare", "ratio_epochs_vs_bare_with_val",
                                "ratio_end_to_end_vs_bare")}  # fmt: skip
    real = not str(f.get("dataset", "")).startswith("synthetic")
    rows: list[Row] = [
        (f"trainer vs a bare torch loop ({f['model']}, {f['dataset']}, {f['epochs']} epochs)",
         ", ".join(f"{k.removeprefix('ratio_').replace('_vs_', ' vs ')} {v:.2f}x"
                   for k, v in ratios.items()),
         ">= 0.9x", min(ratios.values()) >= 0.9 if real else None),
    ]  # fmt: skip
    if "dataset_cached_load_s" in f:
        rows.append(
            ("dataset load from the cache", f"{f['dataset_cached_load_s']:.3f} s", "< 1 s",
             f["dataset_cached_load_s"] < 1.0)
        )  # fmt: skip
    return rows


def _agreement(mode: str) -> dict[str, Any]:
    from bench.val_test_agreement import main

    argv = _pick(
        mode,
        ["--quick", "--n-configs", "3", "--noise-seeds", "0", "--epochs", "1", "--threads", "1"],
        ["--quick", "--n-configs", "12", "--noise-seeds", "0", "--threads", "2"],
        ["--quick", "--threads", "2"],
    )
    report = main(argv)
    ecg = dict(report["ecg"])
    ecg.pop("runs", None)
    return {"argv": argv, "ecg": ecg, "total_s": report.get("total_s")}


def _agreement_rows(f: dict[str, Any]) -> list[Row]:
    a = f["ecg"]["agreement"]
    if a.get("spearman") is None:
        return [("validation/test agreement", f"too few finished runs ({a['n']})", "-", None)]
    valid = a["n"] >= 30 or None  # the target is stated for 30 configurations
    return [
        (f"Spearman(val, test macro-F1), {a['n']} configs, quick set", f"{a['spearman']:+.2f}",
         ">= 0.7", a["spearman"] >= 0.7 if valid else None),
        ("best-by-validation config's test score vs the best test score",
         f"gap {a['gap']:.3f}", "<= 0.02", a["gap"] <= 0.02 if valid else None),
    ]  # fmt: skip


SOURCES = (
    Source("feedback_store", _store, _store_rows),
    Source("feedback_signals", _signals, _signals_rows),
    Source("feedback_dashboard", _dashboard, _dashboard_rows),
    Source("signals_calibration", _calibration, _calibration_rows),
    Source("safety_checks", _safety, _safety_rows),
    Source("train_throughput", _throughput, _throughput_rows),
    Source("val_test_agreement", _agreement, _agreement_rows),
)


def run(ctx: RunContext) -> PartResult:
    """The part (see the module docstring)."""
    figures: dict[str, Any] = {}
    errors: dict[str, str] = {}
    walls: dict[str, float] = {}
    rows: list[tuple[str, Row]] = []
    log_path = ctx.results_dir / "platform.log"
    ctx.reporter.start(len(SOURCES), "platform figures")
    with log_path.open("w", encoding="utf-8") as log:
        for source in SOURCES:
            ctx.reporter.advance(f"platform: {source.name}", steps=0)
            print(f"===== {source.name} ({ctx.mode})", file=log, flush=True)
            t0 = time.perf_counter()
            try:
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    figures[source.name] = source.measure(ctx.mode)
                rows += [(source.name, r) for r in source.rows(figures[source.name])]
            except Exception as e:  # one broken benchmark must not hide the others' figures
                logger.exception("platform source %s failed", source.name)
                errors[source.name] = f"{type(e).__name__}: {e}"
                rows.append((source.name, ("(failed)", errors[source.name][:200], "-", None)))
            walls[source.name] = round(time.perf_counter() - t0, 1)
            ctx.reporter.advance(f"platform: {source.name} done")
    marks = {True: "met", False: "**missed**", None: "-"}
    lines = ["| source | what | measured | target | met |", "|---|---|---|---|---|"]
    lines += [f"| `{s}` | {w} | {m} | {t} | {marks[h]} |" for s, (w, m, t, h) in rows]
    targets = [Target(f"{w} ({t})", h, m) for _, (w, m, t, h) in rows if t != "-"]
    return PartResult(
        figures=figures | {"errors": errors, "wall_s": walls},
        table="\n".join(lines),
        targets=targets,
        notes=[
            "Targets are judged only at the sizes they are stated for (quick mode shrinks "
            "some sources: '-' or 'not measured' there).",
            f"Printed output of the sources: {log_path.name}; seconds per source: "
            + ", ".join(f"{k} {v:.0f}" for k, v in walls.items())
            + ".",
        ],
    )
