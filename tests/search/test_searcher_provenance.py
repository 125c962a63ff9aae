"""Each stored run says what reproduces it: seed, git commit, dataset hash, simulator version."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray import tune
from searcher_fakes import ScriptedRecommender, final_result

from feedback import FeedbackStore
from search import AgentSearcher
from search.contract import GIT_COMMIT_ENV

METRIC = "val/macro_f1"


def _one_run(tmp_path: Path) -> FeedbackStore:
    store = FeedbackStore(tmp_path / "history")
    searcher = AgentSearcher(
        {"trainer.lr": tune.loguniform(1e-4, 1e-1)},
        metric=METRIC,
        mode="max",
        store=store,
        campaign="ecg",
        recommender=ScriptedRecommender(["continue"]),
    )
    assert isinstance(searcher.suggest("t0"), dict)
    searcher.on_trial_complete(
        "t0",
        final_result(
            METRIC, 0.7, seed=3, dataset_hash="0123456789abcdef", simulator_version="ecg_synth/2"
        ),
    )
    return store


def test_a_record_carries_the_trainers_provenance_and_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GIT_COMMIT_ENV, "feedc0de")  # what `agentune submit` passes to a job
    (run,) = _one_run(tmp_path).runs(campaign="ecg")
    assert run.seed == 3
    assert run.git_commit == "feedc0de"
    assert run.dataset_hash == "0123456789abcdef"
    assert run.simulator_version == "ecg_synth/2"


def test_without_the_variable_the_commit_is_the_working_directorys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(GIT_COMMIT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # not a git checkout
    (run,) = _one_run(tmp_path).runs(campaign="ecg")
    assert run.git_commit is None and run.seed == 3
