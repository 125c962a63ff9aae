"""`python -m bench --smoke` runs every implemented part in seconds and writes its results.

The suite is a benchmark, but its smoke mode is a test: CI runs it so no part can rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.parts import PARTS

REPO = Path(__file__).resolve().parents[2]
ENV_KEYS = {"machine", "versions", "git"}


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-smoke")
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return out


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("part", [p.name for p in PARTS if p.target is not None])
def test_every_part_writes_json_markdown_and_plots(smoke_results: Path, part: str) -> None:
    doc = json.loads((smoke_results / f"{part}.json").read_text())
    assert doc.keys() >= ENV_KEYS
    assert doc["part"] == part and doc["mode"] == "smoke"
    assert doc["machine"]["cpus"] >= 1 and doc["versions"]["ray"] != "missing"
    assert doc["figures"]
    md = (smoke_results / f"{part}.md").read_text()
    assert md.startswith("## ") and "|---" in md
    for name in doc["plots"]:
        png = smoke_results / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in md


def test_search_quality_compares_every_searcher_and_checks_tune(smoke_results: Path) -> None:
    fig = json.loads((smoke_results / "search_quality.json").read_text())["figures"]
    entry = fig["problems"]["branin2+noise"]
    budgets = fig["settings"]["budgets"]
    for b in budgets:
        assert set(entry[str(b)]["mean_regret"]) == {"agent", "tpe", "gp", "random", "default"}
        assert {"agent/tpe", "agent/gp", "agent/random", "agent/default"} <= set(
            entry[str(b)]["ratios"]
        )
    check = fig["tune_check"]
    assert check["compared"] > 0
    assert check["identical"] == check["compared"]  # the loop is what Tune does


def test_workload_quality_compares_every_searcher_on_a_deterministic_training(
    smoke_results: Path,
) -> None:
    fig = json.loads((smoke_results / "workload_quality.json").read_text())["figures"]
    methods = {"agent", "tpe", "gp", "random", "default"}
    for entry in fig["budgets"].values():
        assert set(entry["mean_reached"]) == methods
        assert set(entry["mean_test_at_best"]) == methods
        assert set(entry["comparisons"]) == {f"agent/{m}" for m in methods - {"agent"}}
        assert all(0.0 <= v <= 1.0 for v in entry["mean_reached"].values())
        assert min(entry["mean_shortfall"].values()) >= 0.0
        assert max(entry["mean_reached"].values()) <= fig["best_any"]
    assert fig["deterministic"]["identical"] is True  # same config, same value: paired
    assert fig["trainings"]["distinct"] <= fig["trainings"]["trials"] + 1
    assert fig["trainings"]["failed"] == []


def test_overhead_measures_latency_pending_and_tune(smoke_results: Path) -> None:
    fig = json.loads((smoke_results / "overhead.json").read_text())["figures"]
    for row in fig["latency"].values():
        assert set(row) == {"agent", "agent_store", "tpe", "ratios"}
        assert row["agent"]["total"]["median"] > 0
        assert set(row["ratios"]) == {"agent/tpe", "agent_store/tpe"}
    assert fig["pending"]["proposal_pending_throughout"] is True
    assert set(fig["tune"]["mean_wall_s"]) == {"agent", "tpe", "random"}


def test_platform_collects_every_source_without_errors(smoke_results: Path) -> None:
    fig = json.loads((smoke_results / "platform.json").read_text())["figures"]
    assert fig["errors"] == {}
    assert {
        "feedback_store", "feedback_signals", "feedback_dashboard", "signals_calibration",
        "safety_checks", "train_throughput", "val_test_agreement",
    } <= set(fig)  # fmt: skip


def test_suite_summary_lists_the_parts_with_their_times(smoke_results: Path) -> None:
    summary = json.loads((smoke_results / "suite.json").read_text())
    names = [e["name"] for e in summary["parts"]]
    assert names == [p.name for p in PARTS if p.target is not None]
    assert summary["total_s"] > 0 and summary.keys() >= ENV_KEYS


def test_escalation_runs_every_method_through_the_campaign_runner(smoke_results: Path) -> None:
    fig = json.loads((smoke_results / "escalation.json").read_text())["figures"]
    (workload,) = fig["workloads"]
    assert set(workload["methods"]) == {"campaign", "tune_only", "tpe", "random"}
    for method in workload["methods"].values():
        assert all(v is not None for v in method["best_val"] + method["test_of_best"])
    for runs in fig["runs"].values():
        assert all(r["trials"] == fig["settings"]["budget"] for r in runs)
    assert {"val", "test"} == set(workload["verdicts"])
