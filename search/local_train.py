"""`agentune train` with a generated model: loaded by the safety layer, trained under its guard.

A config whose `model._target_` lies under `generated_models.` cannot go through the plain
Hydra entry point: the trainer's target check never imports generated code from disk. Here
the registration (`generated_models/<name>.py` plus `configs/model/<name>.yaml`) is checked
like a worker checks a trial (`agent.safety.worker`), the dataset is loaded first (its cache
may write), and the model is loaded with restricted builtins and trained with the runtime
guard armed, writes allowed only inside the run directory.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from biosignals.trainer import TrainSummary

__all__ = ["GENERATED_PREFIX", "generated_model_name", "train_generated"]

GENERATED_PREFIX = "generated_models."


def generated_model_name(cfg: Any) -> str | None:
    """The generated model a composed config trains (`<name>` of its target), or None."""
    target = cfg.get("model", {}).get("_target_") if hasattr(cfg, "get") else None
    if isinstance(target, str) and target.startswith(GENERATED_PREFIX):
        return target.removeprefix(GENERATED_PREFIX).split(".", 1)[0]
    return None


def train_generated(cfg: Any) -> TrainSummary:
    """Train the composed config `cfg`, whose model is a registered generated model.

    Raises:
        agent.safety.SafetyError: the model is not registered, or its files fail the checks.
        Exception: whatever the trainer raises (its summary says "failed").
    """
    from omegaconf import open_dict

    from agent.safety import UnsafeModelError
    from agent.safety.models import registered_model
    from agent.safety.worker import check_generated_trial, guarded_generated_model, model_targets
    from biosignals.data.cache import load_dataset
    from biosignals.trainer import train

    name = generated_model_name(cfg)
    registration = registered_model(name) if name else None
    if name is None or registration is None:
        raise UnsafeModelError(
            f"model._target_ {cfg.model.get('_target_')!r} is not a registered generated "
            "model; register the code with agent.tools.register_generated_model first"
        )
    report = check_generated_trial(name, registration.source, registration.config)
    if str(cfg.model._target_) not in model_targets(name, report):
        raise UnsafeModelError(
            f"model._target_ {cfg.model._target_!r} is not a class of generated_models/{name}.py"
        )
    with open_dict(cfg):
        if not cfg.get("run_dir"):
            cfg.run_dir = str(Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
    run_dir = Path(str(cfg.run_dir)).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(cfg.dataset, cfg.get("paths", {}).get("cache_dir"))
    with guarded_generated_model(name, registration.source, write_roots=[run_dir], report=report):
        return train(cfg, dataset=dataset)
