"""Every experiment config composes, passes the target allowlist and instantiates its model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from agent.safety.files import is_generated_text
from biosignals.config_safety import check_targets
from biosignals.train import config_dir, main_from_argv
from biosignals.trainer import TrainerSettings

CONFIG_DIR = config_dir()


def _human_configs(group: str) -> list[str]:
    """The group's human-authored configs: a campaign run in the checkout adds generated ones
    (tier-3 registrations need the safety layer to load their code)."""
    return sorted(
        p.stem
        for p in (CONFIG_DIR / group).glob("*.yaml")
        if not is_generated_text(p.read_text(encoding="utf-8"))
    )


EXPERIMENTS = _human_configs("experiment")
MODELS = _human_configs("model")
REPO = Path(__file__).resolve().parents[2]


def compose_cfg(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_required_experiments_exist() -> None:
    assert {"mitbih_aami3", "mitbih_aami3_quick", "galaxyppg_hr_ppg", "galaxyppg_hr_quick"} <= set(
        EXPERIMENTS
    )
    assert {"cnn1d", "resnet1d", "encoder_classifier"} <= set(MODELS)


def test_config_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTUNE_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path.resolve()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment: str) -> None:
    cfg = compose_cfg([f"experiment={experiment}"])
    check_targets(cfg)
    assert cfg.run_dir is None and "hydra" not in cfg
    assert OmegaConf.select(cfg, "dataset._target_").startswith("biosignals.")
    OmegaConf.to_container(cfg, resolve=True)  # resolvable without Hydra's runtime
    model = instantiate(cfg.model, in_channels=1, input_length=256, num_classes=3)
    assert model(torch.randn(2, 1, 256)).shape == (2, 3)
    optimizer = instantiate(cfg.trainer.optimizer)(model.parameters())
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["lr"] == cfg.trainer.lr
    task = "classification" if experiment.startswith("mitbih") else "regression"
    settings = TrainerSettings.from_cfg(cfg.trainer, task)
    expected = ("val/macro_f1", "max") if task == "classification" else ("val/mae", "min")
    assert (settings.metric, settings.mode) == expected


@pytest.mark.parametrize("model", MODELS)
def test_each_model_group_instantiates(model: str) -> None:
    cfg = compose_cfg([f"model={model}", "trainer=quick"])
    check_targets(cfg)
    assert cfg.trainer.epochs == 3
    net = instantiate(cfg.model, in_channels=2, input_length=128, num_classes=1)
    assert net(torch.randn(3, 2, 128)).shape == (3, 1)


def test_defaults_and_overrides() -> None:
    cfg = compose_cfg(["model=resnet1d", "trainer.lr=1e-4", "seed=7", "model.width=8"])
    assert cfg.trainer.optimizer.lr == 1e-4  # interpolated from trainer.lr
    assert (cfg.seed, cfg.model.width) == (7, 8)
    assert cfg.trainer.num_workers == 0 and cfg.trainer.device == "auto"
    assert cfg.trainer.scheduler in ("cosine", "onecycle", "none")


def test_cache_dir_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTUNE_CACHE_DIR", raising=False)
    assert compose_cfg([]).paths.cache_dir is None
    monkeypatch.setenv("AGENTUNE_CACHE_DIR", "/tmp/agentune-cache")
    assert compose_cfg([]).paths.cache_dir == "/tmp/agentune-cache"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.lrr=1", "Could not override 'trainer.lrr'"),
        ("model=nope", "Could not find 'model/nope'"),
        ("experiment=nope", "Could not find 'experiment/nope'"),
    ],
)
def test_bad_override_exits_nonzero_with_hydra_error(
    override: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_from_argv([override]) != 0
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_and_writes_artifacts(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "biosignals.train",
            "experiment=mitbih_aami3_quick",
            "trainer.epochs=1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    assert f"run_dir: {run_dir}" in proc.stdout and "best val/macro_f1" in proc.stdout
    for name in ("metrics.jsonl", "summary.json", "config.yaml", "model.pt"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 1
