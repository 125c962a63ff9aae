"""The held-out test results of a campaign trial (per-class Se/PPV, the confusion matrix's
counts) reach the run's record and the dashboard, and nothing the agent reads.

Real pieces end to end: the trainer on a tiny AAMI-3 dataset, the trainable's final report,
an `AgentSearcher` in campaign mode writing a real `FeedbackStore`, the tier-1 tools, the
proposer's facts and task, and the campaign summary's facts; only the LLM (a recording
proposer) and the signal are scripted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf
from ray import tune

import agent.tools as tools
from agent import Proposal, ProposalContext
from agent.prompts import context_facts, propose_task
from agent.summary import campaign_facts, facts_summary
from agent.tools import ToolContext, use_context
from agent.tools._runs import read_summary
from biosignals.data.dataset import SignalDataset, Split
from biosignals.trainer import EpochReport, train
from feedback import FeedbackStore, render_dashboard
from feedback._dashboard import confusion_from_metrics
from search import AgentSearcher
from search.trainable import TrialSpec, final_report

METRIC = "val/macro_f1"
CAMPAIGN = "ecg"
CLASSES = ["N", "S", "V"]
TRIALS = ("t0001", "t0002")
# what must never appear in anything the agent reads (validation per-class keys may)
FORBIDDEN = ("test/", "test_confusion", "test_metrics", "cm_")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class RecordingProposer:
    """Keeps each context it is given and proposes nothing."""

    def __init__(self) -> None:
        self.contexts: list[ProposalContext] = []

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        self.contexts.append(context)
        return []


@dataclass
class _Recommendation:
    action: str
    reasons: list[str] = field(default_factory=lambda: ["scripted"])


def change_model(history: Any) -> _Recommendation:
    return _Recommendation("change_model")


def _dataset() -> SignalDataset:
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        y = rng.integers(0, 3, n)
        t = np.arange(64) / 64
        x = np.sin(2 * np.pi * np.array([2.0, 5.0, 9.0])[y][:, None] * t)
        x = x + 0.3 * rng.normal(size=(n, 64))
        return Split(x[:, None, :].astype(np.float32), y.astype(np.int64), np.array(["p"] * n))

    return SignalDataset(
        name="tiny/aami3",
        task="classification",
        train=split(128),
        val=split(48),
        test=split(40),
        class_names=CLASSES,
        sampling_rate=64.0,
    )


def _run_trial(
    searcher: AgentSearcher, trial_id: str, run_dir: Path, data: SignalDataset, lr: float
) -> dict[str, Any]:
    """One campaign trial as the trainable runs it, reported to the searcher as Tune would."""
    searcher.suggest(trial_id)
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "run_dir": str(run_dir),
            "model": {"_target_": "biosignals.models.cnn1d.CNN1D", "width": 8, "depth": 2},
            "trainer": {"epochs": 2, "batch_size": 32, "lr": lr, "device": "cpu"},
        }
    )

    def report(r: EpochReport) -> None:
        searcher.on_trial_result(trial_id, {**r.metrics, "training_iteration": r.epoch})

    summary = train(cfg, dataset=data, epoch_callback=report)
    spec = TrialSpec(experiment="mitbih_aami3_quick", overrides=(), config_dir="", metric=METRIC,
                     mode="max")  # fmt: skip
    final = final_report(spec, summary, run_dir, trial_id)
    searcher.on_trial_complete(trial_id, {**final, "training_iteration": 3})
    return {"final": final, "summary": summary.to_dict()}


def _assert_hidden(output: object, what: str) -> None:
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    for needle in FORBIDDEN:
        assert needle not in text, f"{needle!r} reached the agent through {what}"


def test_test_results_reach_the_record_and_dashboard_but_not_the_agent(
    tmp_path: Path, writable_configs: tuple[Path, Path]
) -> None:
    configs, generated = writable_configs
    campaign_dir = tmp_path / "campaign"
    store = FeedbackStore(campaign_dir / "history")
    proposer = RecordingProposer()
    searcher = AgentSearcher(
        {"trainer.lr": tune.loguniform(1e-3, 1e-1)},
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign=CAMPAIGN,
        base_overrides=["model=cnn1d"],
        models=["cnn1d", "resnet1d"],
        proposer=proposer,
        recommender=change_model,
    )
    data = _dataset()
    runs = {}
    for trial_id, lr in zip(TRIALS, (1e-2, 3e-3), strict=True):
        run_dir = campaign_dir / "ray" / "experiment" / f"trial_{trial_id}" / "run"
        runs[trial_id] = _run_trial(searcher, trial_id, run_dir, data, lr)
    deadline = time.monotonic() + 20
    while not proposer.contexts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proposer.contexts, "the searcher never asked the proposer"

    # the trial's final report carries the test results as flat floats ...
    first = runs[TRIALS[0]]
    final, summary = first["final"], first["summary"]
    assert {f"test/{m}_{c}" for m in ("se", "ppv") for c in CLASSES} <= set(final)
    flat_cm = {k: v for k, v in final.items() if k.startswith("test/cm_")}
    assert len(flat_cm) == 9 and sum(flat_cm.values()) == len(data.test)
    # ... which the record keeps, beside the curves that keep the per-class validation keys
    record = next(r for r in store.runs(campaign=CAMPAIGN) if r.run_id == TRIALS[0])
    assert {k: v for k, v in final.items() if k.startswith("test/")} == record.test_metrics
    assert all("val/se_S" in row and "val/ppv_V" in row for row in store.curve(TRIALS[0]))
    # the dashboard reads the matrix back from the store alone, in the trainer's order
    classes, matrix = confusion_from_metrics(record.test_metrics) or ([], np.zeros(0))
    assert classes == summary["test_confusion"]["classes"]
    assert matrix.tolist() == summary["test_confusion"]["matrix"]
    page = render_dashboard(store, CAMPAIGN)
    assert '<table class="cm">' in page and "test/macro_f1 (held-out test)" in page

    # the agent's side: history, tools, facts and task text
    ctx = ToolContext(
        store_root=campaign_dir / "history",
        campaign=CAMPAIGN,
        config_dir=configs,
        generated_dir=generated,
        metric=METRIC,
        mode="max",
    )
    context = proposer.contexts[0]
    facts = context_facts(context, 2)
    views: dict[str, object] = {
        "FeedbackStore.history_for_agent": store.history_for_agent(CAMPAIGN, 4000),
        "ProposalContext.history": context.history,
        "context_facts": facts,
        "propose_task": propose_task(facts, context.history),
    }
    summary_facts = campaign_facts(campaign_dir / "history", CAMPAIGN, models=["cnn1d"])
    views["campaign_facts"] = summary_facts
    views["facts_summary"] = facts_summary(summary_facts)
    with use_context(ctx):
        views["get_experiment_history"] = tools.get_experiment_history()
        for trial_id in TRIALS:
            views[f"read_run_results({trial_id})"] = tools.read_run_results(trial_id)
            views[f"read_experiment_config({trial_id})"] = tools.read_experiment_config(trial_id)
            views[f"suggest_search_space({trial_id})"] = tools.suggest_search_space(trial_id)
        first_dir = campaign_dir / "ray" / "experiment" / f"trial_{TRIALS[0]}" / "run"
        views["read_run_results(run_dir)"] = tools.read_run_results(str(first_dir))
        views["compare_runs"] = tools.compare_runs(list(TRIALS))
    assert "val/se_S" in json.dumps(views["read_run_results(run_dir)"])  # validation stays
    # what the tools read of summary.json: the strip drops the new test blocks, keeps val's
    stripped = read_summary(first_dir)
    assert stripped is not None and {"val", "val_confusion"} <= set(stripped)
    assert {"test", "test_confusion"} & set(stripped) == set()
    views["read_summary"] = stripped
    for what, output in views.items():
        _assert_hidden(output, what)
