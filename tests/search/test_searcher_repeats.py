"""Repeats: new incumbents are re-evaluated with other seeds, and the best is chosen by mean.

The objective is scripted per (params, seed) like a noisy trainer; the searcher, its Optuna
studies, the trainable's override builder and the feedback store are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ray import tune
from searcher_fakes import ScriptedRecommender, final_result

from feedback import FeedbackStore
from search import RESERVED_KEY, AgentSearcher
from search.trainable import TrialSpec, trial_overrides

METRIC = "val/macro_f1"
SPACE: dict[str, Any] = {"trainer.lr": tune.loguniform(1e-4, 1e-1)}


def _searcher(store: FeedbackStore, repeats: int, copies: int = 0) -> AgentSearcher:
    """A campaign searcher; its base arm first evaluates one point `copies` times (as a sampler
    does when it returns to a corner of the box it believes in)."""
    return AgentSearcher(
        SPACE,
        metric=METRIC,
        mode="max",
        seed=0,
        store=store,
        campaign="ecg",
        recommender=ScriptedRecommender(["continue"]),
        repeats=repeats,
        points_to_evaluate=[{"trainer.lr": 0.01}] * copies,
    )


def _run(searcher: AgentSearcher, n: int, value_of: Any) -> list[dict[str, Any]]:
    configs = []
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        configs.append(config)
        seed = config[RESERVED_KEY]["seed"]
        searcher.on_trial_complete(
            f"t{i}", final_result(METRIC, value_of(i, seed), seed=0 if seed is None else seed)
        )
    return configs


def test_a_new_incumbent_is_repeated_with_other_seeds(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    # The first trial is lucky (0.9 with its own seed), its seeds 1 and 2 say 0.5; the others
    # are steady at 0.7.
    lucky = {None: 0.9, 1: 0.5, 2: 0.5}
    configs = _run(_searcher(store, 2), 6, lambda i, seed: lucky[seed] if i < 3 else 0.7)
    first, rep1, rep2 = configs[:3]
    assert rep1["trainer.lr"] == rep2["trainer.lr"] == first["trainer.lr"]
    assert [c[RESERVED_KEY]["origin"] for c in configs[:3]] == ["optuna", "repeat", "repeat"]
    assert [c[RESERVED_KEY]["seed"] for c in configs[:3]] == [None, 1, 2]
    runs = store.runs(campaign="ecg")
    assert [r.origin for r in runs[:3]] == ["optuna", "repeat", "repeat"]
    assert [r.seed for r in runs[:3]] == [0, 1, 2]
    # Trial 4 (0.7) beats the lucky config's mean (0.633) and is repeated in turn.
    assert [c[RESERVED_KEY]["origin"] for c in configs[3:]] == ["optuna", "repeat", "repeat"]
    best = store.best_config("ecg")
    assert best is not None and best.n == 3 and best.mean == pytest.approx(0.7)
    best_run = store.best("ecg")
    assert best_run is not None and best_run.value == pytest.approx(0.7)
    # The old rule kept the lucky single value as the campaign's best.
    assert max(r.value for r in runs if r.value is not None) == 0.9


def test_without_repeats_nothing_is_repeated(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    configs = _run(_searcher(store, 0), 4, lambda i, seed: 0.5 + 0.1 * i)
    assert all(c[RESERVED_KEY]["origin"] == "optuna" for c in configs)
    assert all(c[RESERVED_KEY]["seed"] is None for c in configs)
    best_run = store.best("ecg")
    assert best_run is not None and best_run.value == pytest.approx(0.8)


def test_the_trainable_trains_a_repeat_with_its_seed() -> None:
    spec = TrialSpec(
        experiment="mitbih_aami3_quick", overrides=(), config_dir="/x", metric=METRIC, mode="max"
    )
    reserved: dict[str, Any] = {"overrides": ["model=cnn1d"], "seed": 2}
    config = {"trainer.lr": 0.001, RESERVED_KEY: reserved}
    assert trial_overrides(spec, config)[-1] == "seed=2"
    reserved["seed"] = None
    assert not any(o.startswith("seed=") for o in trial_overrides(spec, config))


def test_repeats_need_the_reserved_entry() -> None:
    with pytest.raises(ValueError, match="annotate"):
        AgentSearcher(SPACE, metric=METRIC, mode="max", repeats=2, annotate=False)


def test_a_copy_of_an_evaluated_config_trains_with_an_unused_seed(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    value = {None: 0.6, 1: 0.8, 2: 0.7}
    configs = _run(_searcher(store, 0, copies=3), 3, lambda i, seed: value[seed])
    assert all(c["trainer.lr"] == 0.01 for c in configs)
    assert [c[RESERVED_KEY]["seed"] for c in configs] == [None, 1, 2]
    assert [r.seed for r in store.runs(campaign="ecg")] == [0, 1, 2]
    best = store.best_config("ecg")  # one configuration, evaluated three times
    assert best is not None and best.n == 3 and best.mean == pytest.approx(0.7)


def test_copies_and_repeats_never_share_a_seed(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "history")
    configs = _run(_searcher(store, 2, copies=3), 7, lambda i, seed: 0.5 + 0.01 * (seed or 0))
    lrs = [c["trainer.lr"] for c in configs]
    seeds = [c[RESERVED_KEY]["seed"] or 0 for c in configs]
    same = [s for s, lr in zip(seeds, lrs, strict=True) if lr == 0.01]
    assert len(same) >= 5  # three copies and the repeats of the first incumbents
    assert len(set(same)) == len(same)


def test_without_the_reserved_entry_copies_keep_their_seed() -> None:
    # A drop-in search (no reserved entry) cannot tell the trainable a seed: nothing changes.
    point = {"trainer.lr": 0.01}
    searcher = AgentSearcher(
        SPACE, metric=METRIC, mode="max", seed=0, points_to_evaluate=[point, point]
    )
    for i in range(2):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict) and RESERVED_KEY not in config
        searcher.on_trial_complete(f"t{i}", final_result(METRIC, 0.5))
