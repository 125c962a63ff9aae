"""Does a goal compose? Hydra composition of its experiment, overrides and space.

The schema checks each key of a goal on its own; only Hydra can tell whether the experiment
has a `trainer.lr` to search, whether an override's value has the right type and whether a
`_target_` is one the trainer accepts. `check_goal_composes` composes the goal with a sample
point of its space (and each of its `models`) through `biosignals.train.compose_config`, the
project's one composition entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from search.goals._base import CampaignError
from search.goals._paths import default_configs_dir, display
from search.goals.schema import CampaignGoal

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["check_goal_composes"]


def check_goal_composes(
    goal: CampaignGoal,
    configs_dir: Path | None = None,
    *,
    models: bool = True,
) -> DictConfig:
    """Compose the goal's experiment with its overrides and a sample point of its space.

    Catches what the schema cannot see: a space key the config lacks (`trainer.lrr`), a value
    of the wrong type, an override of a missing key, an instantiation target the trainer would
    refuse (`biosignals.config_safety.check_targets`; generated models are vouched for by their
    registration and not imported here), and an experiment that selects its best epoch by
    another metric than the goal's (`trainer.metric`/`trainer.mode`). With `models`,
    also composes each entry of `goal.models` as `model=<name>` (without the space's `model.*`
    keys, which another model may legitimately lack).

    Args:
        goal: a loaded goal.
        configs_dir: the Hydra config dir; default `default_configs_dir()`.
        models: also compose each `goal.models` entry.

    Returns:
        The composed config (`configs/config.yaml`) of the base experiment with the sample
        point.

    Raises:
        CampaignError: Hydra could not compose, a target is refused, or the metric disagrees;
            the message names the goal's file and key and the reason.
    """
    from omegaconf import OmegaConf

    cdir = (configs_dir or default_configs_dir()).resolve()
    where = f"{display(goal.source) if goal.source is not None else goal.spec}: goals.{goal.name}"
    sample = goal.sample_config()
    attempts: list[tuple[str, list[str]]] = [("", goal.compose_overrides(sample))]
    if models:
        non_model = {k: v for k, v in sample.items() if k.lstrip("+").split(".")[0] != "model"}
        for model in goal.models:
            overrides = [*goal.compose_overrides(non_model), f"model={model}"]
            attempts.append((f".models: model={model}:", overrides))
    composed = _compose_attempts(cdir, attempts, where)
    for key, wanted in (("metric", goal.metric), ("mode", goal.mode)):
        selected = OmegaConf.select(composed, f"trainer.{key}", default=None)
        if selected is not None and selected != wanted:
            raise CampaignError(
                f"{where}.{key}: experiment {goal.experiment} selects best epochs by "
                f"trainer.{key}={selected}, got {key}={wanted!r}; use {selected!r} or add "
                f"'trainer.{key}={wanted}' to overrides"
            )
    return composed


def _check_composed_targets(cfg: DictConfig, where: str) -> None:
    """Raise CampaignError when a `_target_` of a composed config is one the trainer refuses."""
    from biosignals.config_safety import UnsafeTargetError, check_targets, find_targets

    generated = [t for t in find_targets(cfg).values() if t.startswith("generated_models.")]
    try:
        check_targets(cfg, registered=generated)
    except UnsafeTargetError as e:
        raise CampaignError(f"{where}: {e}") from e


def _compose_attempts(
    cdir: Path, attempts: Sequence[tuple[str, list[str]]], where: str
) -> DictConfig:
    """Compose every attempt, then put back whatever Hydra state was there; returns the first
    composed config.

    `compose_config` leaves Hydra's global state cleared, which would break a running Hydra
    app (e.g. a `@hydra.main` script that checks a goal), so the state is saved first and
    restored after, under the same lock `compose_config` takes (an `RLock`).

    Raises:
        CampaignError: an attempt does not compose (naming its goal key and Hydra's reason).
    """
    from hydra.core.singleton import Singleton
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from biosignals.train import COMPOSE_LOCK, compose_config

    composed: DictConfig | None = None
    with COMPOSE_LOCK:
        saved = Singleton.get_state()
        try:
            for key, overrides in attempts:
                try:
                    cfg = compose_config(overrides, cdir)
                except (HydraException, OmegaConfBaseException) as e:
                    reason = " ".join(str(e).split("Config search path")[0].split())
                    raise CampaignError(
                        f"{where}{key}: Hydra cannot compose the experiment with the goal's "
                        f"overrides and a point of its space ({reason}), got {overrides}"
                    ) from e
                _check_composed_targets(cfg, f"{where}{key}")
                if composed is None:
                    composed = cfg
        finally:
            Singleton.set_state(saved)
    if composed is None:  # attempts always holds the base experiment
        raise CampaignError(f"{where}: nothing to compose, got attempts={list(attempts)}")
    return composed
