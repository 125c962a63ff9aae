"""The pieces the fault tests (test_faults.py) run end to end, checked fast and without Ray: the
`max_failures` goal key, a failed trial's error as the runner reads it from Tune's
`error.txt`, and the searcher's trial budget counted over the history and the running
trials (what keeps a resumed campaign at its budget)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from feedback import FeedbackStore, RunRecord
from search import AgentSearcher
from search.goals import CampaignError, CampaignGoal, load_goal
from search.tune_hooks import trial_error

GOAL = {
    "description": "a goal",
    "experiment": "mitbih_aami3_quick",
    "metric": "val/macro_f1",
    "mode": "max",
    "budget": 4,
    "space": {"trainer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
}


def _load(tmp_path: Path, **keys: object) -> CampaignGoal:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"goals": {"g": {**GOAL, **keys}}}), encoding="utf-8")
    return load_goal(f"{path}:g")


def test_max_failures_defaults_to_no_retry_and_takes_a_count(tmp_path: Path) -> None:
    assert _load(tmp_path).max_failures == 0
    assert _load(tmp_path, max_failures=3).max_failures == 3


@pytest.mark.parametrize("value", [-1, 1.5, "2"])
def test_max_failures_must_be_a_count(tmp_path: Path, value: object) -> None:
    with pytest.raises(CampaignError, match="max_failures"):
        _load(tmp_path, max_failures=value)


@dataclass
class _Trial:
    """What `trial_error` reads of a Tune trial: the path of its error file."""

    error_file: str | None


RAISED = """Failure # 1 (occurred at 2026-12-01_17-59-11)
\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=24781, ip=192.0.2.2, actor_id=ec37, repr=run_trial)
           ^^^^^^^^^^^^^^^^^^^^^^^^
  File "/work/main/biosignals/trainer.py", line 238, in _check
    raise bad("grad_clip", "must be >= 0 or null", "0/null disables clipping")
biosignals.trainer.TrainerError: trainer.grad_clip must be >= 0 or null, got -1.0; 0/null \
disables clipping
Failure # 2 (occurred at 2026-12-01_17-59-15)
\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=24907, ip=192.0.2.2, actor_id=12c3, repr=run_trial)
  File "/work/main/search/trainable.py", line 240, in run_trial
    summary = train(
ValueError: the second failure
"""
DIED = """Failure # 1 (occurred at 2026-12-01_17-59-14)
The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tpid: 24799
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR \
Worker exit detail: ...
"""


def test_a_raised_error_is_the_latest_exception_line(tmp_path: Path) -> None:
    path = tmp_path / "error.txt"
    path.write_text(RAISED, encoding="utf-8")
    assert trial_error(_Trial(str(path))) == "ValueError: the second failure"
    path.write_text(RAISED.split("Failure # 2")[0], encoding="utf-8")
    assert trial_error(_Trial(str(path))) == (
        "biosignals.trainer.TrainerError: trainer.grad_clip must be >= 0 or null, got -1.0; "
        "0/null disables clipping"
    )


def test_a_dead_worker_says_why_it_died(tmp_path: Path) -> None:
    path = tmp_path / "error.txt"
    path.write_text(DIED, encoding="utf-8")
    assert trial_error(_Trial(str(path))) == (
        "The actor died unexpectedly before finishing this task. "
        "The actor is dead because its worker process has died."
    )


def test_no_error_file_is_no_error(tmp_path: Path) -> None:
    assert trial_error(_Trial(None)) is None
    assert trial_error(_Trial(str(tmp_path / "missing.txt"))) is None


def _record(run_id: str, campaign: str) -> RunRecord:
    return RunRecord.from_tune_result(
        {"trial_id": run_id, "val/macro_f1": 0.5},
        campaign=campaign,
        arm="base",
        tier=0,
        origin="optuna",
        metric="val/macro_f1",
        mode="max",
    )


def _searcher(store: FeedbackStore, budget: int) -> AgentSearcher:
    searcher = AgentSearcher(
        space={"trainer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
        metric="val/macro_f1",
        mode="max",
        seed=0,
        store=store,
        campaign="c",
        signal_thresholds={"budget": budget},
    )
    searcher.set_max_concurrency(4)
    return searcher


def test_the_trial_budget_counts_recorded_and_running_trials_once_each(tmp_path: Path) -> None:
    """A resumed campaign: three runs are in the history, one of them ("b") running again
    (Tune's snapshot predates its end); budget 4 leaves room for one new trial only."""
    store = FeedbackStore(tmp_path / "history")
    for run_id in ("a", "b", "c"):
        store.append(_record(run_id, "c"))
    store.append(_record("x", "another campaign"))  # not this campaign's budget
    searcher = _searcher(store, budget=4)
    assert searcher.suggest("b") is not None  # b reruns: counted once, 3 of 4
    assert searcher.suggest("d") is not None  # 4 of 4
    assert searcher.suggest("e") is None  # b and d running: wait for them, then finish
    assert searcher.stopping
    stop = store.events(campaign="c", kind="recommendation")[-1]
    assert stop.message == "stop: budget spent: 4 trials recorded or running (budget 4)"
    searcher.on_trial_complete("b", {"val/macro_f1": 0.6, "agentune_final": True})
    searcher.on_trial_complete("d", {"val/macro_f1": 0.7, "agentune_final": True})
    finished: object = searcher.suggest("f")  # Tune's FINISHED marker, typed as a config
    assert finished == AgentSearcher.FINISHED
    assert len({r.run_id for r in store.runs(campaign="c")}) == 4


def test_without_a_trial_budget_nothing_is_counted(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    for run_id in ("a", "b", "c"):
        store.append(_record(run_id, "c"))
    searcher = AgentSearcher(
        space={"trainer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
        metric="val/macro_f1",
        mode="max",
        seed=0,
        store=store,
        campaign="c",
    )
    assert all(searcher.suggest(t) is not None for t in ("d", "e", "f"))
