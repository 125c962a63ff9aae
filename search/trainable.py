"""The Ray Tune trainable that runs one campaign trial: the biosignals trainer on a Ray worker.

`make_trainable(spec, dataset)` returns a function trainable bound (through
`tune.with_parameters`) to the campaign's `TrialSpec` and its dataset, which Ray puts in the
object store once: every trial reads the same arrays and none rebuilds them.

One trial:
    1. Turns the suggested config into Hydra overrides: the experiment, the goal's fixed
       overrides, the arm's overrides (``config["agentune"]["overrides"]``) and the sampled
       parameters (``trainer.lr=0.003``).
    2. Installs a tier-3 model's source (``config["agentune"]["model_source"]``) as the module
       its `_target_` names, so a worker that never saw the driver's `generated_models/` trains
       it all the same.
    3. Composes the config and calls `biosignals.trainer.train` in-process, reporting every
       epoch to Tune with `tune.report` and a checkpoint; a restored trial resumes from it.
    4. Makes one last report with the run's best value under the metric name,
       ``agentune_final: True`` and the trainer's summary (status, num_params, ...), which the
       `AgentSearcher` turns into the trial's record.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import tempfile
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from search.campaign import format_override_value, iter_override_items
from search.searcher import FINAL_KEY, RESERVED_KEY, RUN_ID_KEY

logger = logging.getLogger(__name__)

GENERATED_PACKAGE = "generated_models"
_MODULE_NAME = re.compile(r"^generated_models\.[A-Za-z_][A-Za-z0-9_]*$")
_TARGET_OVERRIDE = re.compile(r"^\+?model\._target_=(?P<target>[\w.]+)$")


class TrialError(ValueError):
    """A trial config the trainable cannot run; the message says what to change."""


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one campaign shares.

    Attributes:
        experiment: the `configs/experiment/` name (`mitbih_aami3_quick`).
        overrides: the goal's fixed Hydra overrides, applied before each arm's.
        config_dir: absolute Hydra config directory (the driver's; workers on one machine or
            a shared filesystem read the same files).
        metric: the campaign's metric, reported under this name.
        mode: "min" or "max".
        campaign: campaign name, for the trial's log line.
        cache_dir: dataset cache directory, used only when no dataset was shipped.
    """

    experiment: str
    overrides: tuple[str, ...]
    config_dir: str
    metric: str
    mode: str
    campaign: str = ""
    cache_dir: str | None = None


def trial_overrides(spec: TrialSpec, config: Mapping[str, Any]) -> list[str]:
    """The Hydra overrides one trial trains with, in the order they apply.

    Args:
        spec: the campaign's shared settings.
        config: the suggested config: flat params keyed by override path, plus the optional
            reserved ``"agentune"`` entry with the arm's fixed overrides.
    """
    meta = config.get(RESERVED_KEY) or {}
    overrides = [f"experiment={spec.experiment}", *spec.overrides, *meta.get("overrides", ())]
    params = {key: value for key, value in config.items() if key != RESERVED_KEY}
    overrides += [
        f"{key}={format_override_value(value)}" for key, value in iter_override_items(params)
    ]
    return overrides


def generated_module_name(overrides: Sequence[str]) -> str | None:
    """The `generated_models.<name>` module a `model._target_=` override points into, if any."""
    for override in overrides:
        match = _TARGET_OVERRIDE.match(override)
        if match and match["target"].startswith(GENERATED_PACKAGE + "."):
            return match["target"].rsplit(".", 1)[0]
    return None


def install_generated_module(module_name: str, source: str) -> types.ModuleType:
    """Execute a generated model's source as module `module_name` and register it.

    The source was validated by the agent's safety layer before it became an arm; it runs
    here so that Hydra's `_target_` import finds it on a worker that has no copy of the file.

    Raises:
        TrialError: the name is not `generated_models.<identifier>` or the source does not
            compile.
    """
    if not _MODULE_NAME.match(module_name):
        raise TrialError(
            f"generated model module must be named generated_models.<identifier>, got "
            f"{module_name!r}; set model._target_=generated_models.<file>.<Class>"
        )
    try:
        code = compile(source, f"<{module_name}>", "exec")
    except SyntaxError as e:
        raise TrialError(f"generated model {module_name} does not compile: {e}") from e
    __import__(GENERATED_PACKAGE)
    module = types.ModuleType(module_name)
    module.__file__ = f"<{module_name}>"
    exec(code, module.__dict__)  # validated source; see the docstring
    sys.modules[module_name] = module
    setattr(sys.modules[GENERATED_PACKAGE], module_name.rsplit(".", 1)[1], module)
    return module


def compose_trial_config(spec: TrialSpec, overrides: Sequence[str], run_dir: Path) -> Any:
    """Compose the trial's Hydra config and point its `run_dir` at `run_dir`."""
    from omegaconf import open_dict

    from biosignals.train import compose_config

    cfg = compose_config(overrides, spec.config_dir)
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
        if spec.cache_dir is not None:
            cfg.paths.cache_dir = spec.cache_dir
    return cfg


def run_trial(config: dict[str, Any], spec: TrialSpec, dataset: Any = None) -> None:
    """Function trainable body: train one config and report to Tune (see module docstring)."""
    from biosignals.trainer import EpochReport, train

    meta = config.get(RESERVED_KEY) or {}
    overrides = trial_overrides(spec, config)
    source = meta.get("model_source")
    if source:
        module_name = generated_module_name(overrides)
        if module_name is None:
            raise TrialError(
                "a trial with model_source needs an override model._target_="
                "generated_models.<file>.<Class> naming the class it defines"
            )
        install_generated_module(module_name, source)

    logger.info("campaign %s: training with %s", spec.campaign or "-", " ".join(overrides))
    trial_dir = Path(tune.get_context().get_trial_dir() or tempfile.mkdtemp())
    run_dir = trial_dir / "run"
    cfg = compose_trial_config(spec, overrides, run_dir)

    def report_epoch(report: EpochReport) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            report.save_checkpoint(Path(tmp))
            tune.report(
                {**report.metrics, FINAL_KEY: False},
                checkpoint=tune.Checkpoint.from_directory(tmp),
            )

    with _checkpoint_dir(tune.get_checkpoint()) as resume_dir:
        summary = train(cfg, dataset=dataset, epoch_callback=report_epoch, resume_from=resume_dir)

    best = summary.best_value
    final: dict[str, Any] = {
        spec.metric: float("nan") if best is None else best,
        FINAL_KEY: True,
        RUN_ID_KEY: tune.get_context().get_trial_id(),
        "status": summary.status,
        "num_params": summary.num_params,
        "model": summary.model,
        "best_epoch": summary.best_epoch or 0,
        "epochs_run": summary.epochs_run,
        "dataset": summary.dataset,
        "duration_s": summary.duration_s,
        "run_dir": str(run_dir),
        **summary.test,
    }
    if summary.error:
        final["error"] = summary.error
    tune.report(final)


@contextlib.contextmanager
def _checkpoint_dir(checkpoint: tune.Checkpoint | None) -> Iterator[str | None]:
    """The checkpoint's local directory while the block runs, or None without a checkpoint."""
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as path:
        yield path


def make_trainable(spec: TrialSpec, dataset: Any = None) -> Callable[..., Any]:
    """The campaign's trainable: `run_trial` with `spec` and the dataset in the object store.

    Args:
        spec: the campaign's shared trial settings.
        dataset: the `SignalDataset` every trial trains on; `tune.with_parameters` puts it in
            Ray's object store once. None: each trial loads it from the on-disk cache.
    """
    trainable: Callable[..., Any] = tune.with_parameters(run_trial, spec=spec, dataset=dataset)
    return trainable
