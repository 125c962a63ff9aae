"""The campaign trainable: overrides, generated-model installation, and a real Tune trial."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import ray
from ray import tune

from agent.offline import generated_model_source
from biosignals.data.dataset import SignalDataset, Split
from search.campaign import default_configs_dir
from search.searcher import FINAL_KEY, RESERVED_KEY
from search.trainable import (
    TrialError,
    TrialSpec,
    generated_module_name,
    install_generated_module,
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


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["model=generated", "model._target_=generated_models.net_a.Net"],
            "generated_models.net_a",
        ),
        (["model=resnet1d"], None),
        (["model._target_=biosignals.models.cnn1d.CNN1D"], None),
    ],
)
def test_generated_module_name(overrides: list[str], expected: str | None) -> None:
    assert generated_module_name(overrides) == expected


def test_install_generated_module_registers_an_importable_module() -> None:
    source = generated_model_source(width=4, stages=2, kernel_size=3)
    module = install_generated_module("generated_models.unit_test_seresnet", source)
    try:
        import importlib

        assert importlib.import_module("generated_models.unit_test_seresnet") is module
        net = module.SEResNet1D(in_channels=1, input_length=32, num_classes=3)
        assert net is not None
    finally:
        sys.modules.pop("generated_models.unit_test_seresnet", None)


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        ("os.path", "x = 1", "generated_models.<identifier>"),
        ("generated_models.a.b", "x = 1", "generated_models.<identifier>"),
        ("generated_models.bad", "def (:", "does not compile"),
    ],
)
def test_install_generated_module_rejects_bad_names_and_sources(
    name: str, source: str, message: str
) -> None:
    with pytest.raises(TrialError, match=message):
        install_generated_module(name, source)


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
    """The source travels in the config; the worker runs in another directory."""
    elsewhere = tmp_path / "worker_cwd"
    elsewhere.mkdir()
    module = "generated_models.travelled_seresnet"
    repo = Path(__file__).resolve().parents[2]
    assert not (repo / "generated_models" / "travelled_seresnet.py").exists()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"working_dir": str(elsewhere)},
        log_to_driver=False,
    )
    try:
        spec = _spec(overrides=("trainer.epochs=2",))
        config = {
            "trainer.lr": 3e-3,
            RESERVED_KEY: {
                "arm": "gen",
                "overrides": ["model=generated", f"model._target_={module}.SEResNet1D"],
                "model_source": generated_model_source(width=4, stages=2, kernel_size=3),
            },
        }
        tuner = tune.Tuner(
            make_trainable(spec, _tiny_dataset(np.random.default_rng(0))),
            param_space=config,
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        )
        result = tuner.fit()[0]
    finally:
        ray.shutdown()
    assert result.error is None
    final = result.metrics
    assert final is not None
    assert final[FINAL_KEY] is True
    assert final["status"] == "completed"
    assert final["model"] == "travelled_seresnet"  # the generated module's name
    assert final["epochs_run"] == 2
    assert np.isfinite(final["val/macro_f1"])
    assert result.checkpoint is not None  # every epoch reported with a checkpoint
    run_dir = Path(final["run_dir"])
    assert (run_dir / "summary.json").is_file() and (run_dir / "metrics.jsonl").is_file()
