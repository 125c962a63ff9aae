"""The campaign trainable: overrides, generated-model installation, and a real Tune trial."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import ray
from ray import tune

from agent.models.examples import generated_model_source
from biosignals.data.dataset import SignalDataset, Split
from search.contract import FINAL_KEY, RESERVED_KEY
from search.goals import default_configs_dir
from search.trainable import (
    TrialError,
    TrialSpec,
    check_trial_config,
    make_trainable,
    trial_overrides,
)


def _spec(**kw: object) -> TrialSpec:
    args: dict[str, object] = {
        "experiment": "mitbih_aami3_quick",
        "overrides": ("trainer.epochs=2",),
        "config_dir": str(default_configs_dir()),
        "metric": "val/macro_f1",
        "mode": "max",
    }
    args.update(kw)
    return TrialSpec(**args)  # type: ignore[arg-type]


def test_trial_overrides_apply_experiment_goal_arm_then_params_in_order() -> None:
    config = {
        "trainer.lr": 0.1 + 0.2,
        "trainer.batch_size": 64,
        RESERVED_KEY: {"overrides": ["model=resnet1d"], "arm": "resnet1d"},
    }
    assert trial_overrides(_spec(), config) == [
        "experiment=mitbih_aami3_quick",
        "trainer.epochs=2",
        "model=resnet1d",
        "trainer.lr=0.30000000000000004",  # exact: the trial trains what was suggested
        "trainer.batch_size=64",
    ]


def test_nested_params_become_dotted_override_paths() -> None:
    assert trial_overrides(_spec(overrides=()), {"trainer": {"lr": 0.5}}) == [
        "experiment=mitbih_aami3_quick",
        "trainer.lr=0.5",
    ]


TRAVELLED = "travelled_seresnet"
SOURCE = generated_model_source(width=4, stages=2, kernel_size=3)
MODEL_CONFIG = {"_target_": f"generated_models.{TRAVELLED}.SEResNet1D", "width": 4}


def _tier3_config(**changes: object) -> dict[str, object]:
    meta: dict[str, object] = {
        "arm": "gen",
        "tier": 3,
        "overrides": [f"model={TRAVELLED}"],
        "model_source": SOURCE,
        "model_config": dict(MODEL_CONFIG),
    }
    meta.update(changes)
    return {"trainer.lr": 3e-3, RESERVED_KEY: meta}


def test_check_trial_config_accepts_what_the_driver_registered() -> None:
    generated = check_trial_config(_tier3_config())
    assert generated is not None and generated.name == TRAVELLED
    assert generated.targets == {f"generated_models.{TRAVELLED}.SEBlock",
                                 f"generated_models.{TRAVELLED}.SEResNet1D"}  # fmt: skip
    assert check_trial_config({"trainer.lr": 0.1}) is None


TAMPERED = SOURCE.replace("import torch\n", "import torch\nimport subprocess\n", 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_source": TAMPERED}, "subprocess"),
        ({"model_source": SOURCE + "\nprint(open('/etc/passwd').read())\n"}, "open"),
        ({"model_config": {"_target_": "os.system"}}, "not one of the classes"),
        ({"model_config": {**MODEL_CONFIG, "_target_": "generated_models.other.SEResNet1D"}},
         "not one of the classes"),
        ({"model_config": {**MODEL_CONFIG, "width": "${oc.env:HOME}"}}, "plain scalar"),
        ({"overrides": ["model=../../x"]}, "model"),
        ({"overrides": [f"model={TRAVELLED}", "trainer.optimizer._target_=os.system"]},
         "_target_"),
        ({"overrides": []}, "model=<name>"),
    ],
)  # fmt: skip
def test_the_worker_refuses_a_tampered_trial_config(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(TrialError, match="refused on the worker") as info:
        check_trial_config(_tier3_config(**changes))
    assert message in str(info.value)


def _tiny_dataset(rng: np.random.Generator) -> SignalDataset:
    def split(n: int, group: str) -> Split:
        y = rng.integers(0, 3, size=n)
        x = rng.normal(size=(n, 1, 64)).astype(np.float32)
        x[:, 0, 10:20] += y[:, None].astype(np.float32)  # learnable signal
        return Split(x=x, y=y.astype(np.int64), groups=np.array([group] * n))

    return SignalDataset(
        name="tiny",
        task="classification",
        train=split(256, "p1"),
        val=split(96, "p2"),
        test=split(96, "p3"),
        class_names=["N", "S", "V"],
        sampling_rate=100.0,
    )


@pytest.mark.slow
def test_generated_model_trains_on_a_worker_that_never_saw_its_file(tmp_path: Path) -> None:
    """The source and config travel in the config; the worker runs in another directory,
    loads the model under the runtime guard, and refuses a tampered copy."""
    elsewhere = tmp_path / "worker_cwd"
    elsewhere.mkdir()
    repo = Path(__file__).resolve().parents[2]
    assert not (repo / "generated_models" / f"{TRAVELLED}.py").exists()
    assert not (repo / "configs" / "model" / f"{TRAVELLED}.yaml").exists()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"working_dir": str(elsewhere)},
        log_to_driver=False,
    )
    try:
        spec = _spec(overrides=("trainer.epochs=2",))
        trainable = make_trainable(spec, _tiny_dataset(np.random.default_rng(0)))
        results = [
            tune.Tuner(
                trainable,
                param_space=config,
                run_config=tune.RunConfig(storage_path=str(tmp_path / f"ray{i}"), verbose=0),
            ).fit()[0]
            for i, config in enumerate([_tier3_config(), _tier3_config(model_source=TAMPERED)])
        ]
    finally:
        ray.shutdown()
    result, tampered = results
    assert result.error is None
    final = result.metrics
    assert final is not None
    assert final[FINAL_KEY] is True
    assert final["status"] == "completed"
    assert final["model"] == TRAVELLED  # the generated module's name
    assert final["epochs_run"] == 2
    assert np.isfinite(final["val/macro_f1"])
    assert result.checkpoint is not None  # every epoch reported with a checkpoint
    run_dir = Path(final["run_dir"])
    assert (run_dir / "summary.json").is_file() and (run_dir / "metrics.jsonl").is_file()
    assert (run_dir / "model.pt").is_file()  # written inside the run dir, under the guard
    assert tampered.error is not None and "subprocess" in str(tampered.error)


@pytest.mark.slow
def test_asha_capped_at_the_epochs_records_fully_trained_trials_as_completed(
    tmp_path: Path,
) -> None:
    """The real trainable under ASHA with max_t = epochs: a trial that trains all its epochs
    makes exactly that many reports (the last one final), so it is completed, not pruned; one
    ASHA stops at its first rung is pruned."""
    from ray.tune.schedulers import ASHAScheduler

    from feedback import FeedbackStore
    from search import AgentSearcher

    store = FeedbackStore(tmp_path / "history")
    # One at a time, the first the best: ASHA (grace 1, factor 2) lets it run to max_t and
    # stops the later, worse ones at their first rung.
    points = [{"trainer.lr": lr} for lr in (1e-2, 1e-5, 2e-5)]
    searcher = AgentSearcher(
        {"trainer.lr": tune.loguniform(1e-5, 1e-1)},
        "val/macro_f1",
        "max",
        seed=0,
        store=store,
        campaign="asha",
        points_to_evaluate=points,
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = tune.Tuner(
            make_trainable(_spec(), _tiny_dataset(np.random.default_rng(0))),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=3,
                max_concurrent_trials=1,
                scheduler=ASHAScheduler(
                    metric="val/macro_f1", mode="max", max_t=2, grace_period=1, reduction_factor=2
                ),
            ),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    assert not results.errors
    records = {r.params["trainer.lr"]: r for r in store.runs(campaign="asha")}
    iterations = {}
    for i in range(len(results)):
        result = results[i]
        assert result.config is not None and result.metrics is not None
        iterations[result.config["trainer.lr"]] = result.metrics["training_iteration"]
    assert iterations[1e-2] == 2  # both epochs, the second report being the final one
    assert records[1e-2].status == "completed"
    assert records[1e-2].test_metrics["test/macro_f1"] >= 0.0  # the final report arrived
    for lr, record in records.items():
        assert record.status == ("completed" if iterations[lr] == 2 else "pruned"), lr
    assert any(r.status == "pruned" for r in records.values())
