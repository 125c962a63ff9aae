"""The Ray Tune trainable that runs one campaign trial: the biosignals trainer on a Ray worker.

`make_trainable(spec, dataset)` returns a function trainable bound (through
`tune.with_parameters`) to the campaign's `TrialSpec` and its dataset, which Ray puts in the
object store once: every trial reads the same arrays and none rebuilds them.

One trial:
    1. Turns the suggested config into Hydra overrides: the experiment, the goal's fixed
       overrides, the arm's overrides (``config["agentune"]["overrides"]``) and the sampled
       parameters (``trainer.lr=0.003``).
    2. Checks what the arm sent (`check_trial_config`): its overrides pass the override
       policy again, and a tier-3 model's source (``config["agentune"]["model_source"]``)
       and registered config (``["model_config"]``) pass the safety layer's checks again:
       the config may have been altered on the way.
    3. Composes the config and calls `biosignals.trainer.train` in-process, reporting every
       epoch but the last to Tune with `tune.report` and a checkpoint; a restored trial
       resumes from it. The last epoch's metrics and checkpoint travel with the final report,
       so a trial makes exactly `trainer.epochs` reports when it trains them all, and a
       scheduler capped at the epochs (ASHA's ``max_t``) sees it complete.
       A tier-3 model is loaded from the source that travelled (a worker that never saw the
       driver's `generated_models/` trains it all the same) with restricted builtins, and
       imported, built and trained under the runtime guard, which allows writes only inside
       the trial's run directory (`agent.safety.worker`).
    4. Makes one last report (`final_report`) with the run's best value under the metric
       name, ``agentune_final: True``, the trainer's summary (status, num_params, ...) and the
       held-out test metrics as ``test/...`` floats (per-class Se/PPV and the confusion
       matrix's counts included), which the `AgentSearcher` turns into the trial's record
       (``test/...`` into `RunRecord.test_metrics`, never into what it decides on).

Every report also says where the trial runs (`trial_placement`): ``node_id`` (the Ray node)
and ``gpu_ids`` (the GPUs Ray gave it, as in its ``CUDA_VISIBLE_DEVICES``). A trial retried
after a failure (`max_failures`: a raised error, a killed worker, a lost node) restarts from
its last epoch checkpoint, wherever Ray places it, and reports its new place.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from agent.overrides import format_override_value, iter_override_items
from search.contract import FINAL_KEY, RESERVED_KEY, RUN_ID_KEY

if TYPE_CHECKING:
    from biosignals.trainer import TrainSummary

logger = logging.getLogger(__name__)


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
    if type(meta.get("seed")) is int:  # a repeat: the same config trained with another seed
        overrides.append(f"seed={meta['seed']}")
    return overrides


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


@dataclass(frozen=True)
class _GeneratedModel:
    """A tier-3 trial's model as it travelled: name, source, registered config, checked."""

    name: str
    source: str
    config: Mapping[str, Any] | None
    report: Any  # agent.safety.code_policy.CodeReport

    @property
    def targets(self) -> set[str]:
        from agent.safety.worker import model_targets

        return model_targets(self.name, self.report)


def check_trial_config(config: Mapping[str, Any]) -> _GeneratedModel | None:
    """Check what the arm put into a suggested config before anything is composed or run.

    An agent's arm's fixed overrides pass the override policy again (structurally: the config
    may have been altered between the driver and this worker), and a tier-3 arm's model
    source and config pass `agent.safety.worker.check_generated_trial`. Every `_target_` is
    checked again by the trainer before it instantiates anything.

    Returns:
        The checked generated model, or None for a trial of a built-in or tier-2 config.

    Raises:
        TrialError: naming the rule broken.
    """
    from agent.proposer import model_from_overrides
    from agent.safety import SafetyError
    from agent.safety.overrides import check_overrides
    from agent.safety.worker import check_generated_trial

    meta = config.get(RESERVED_KEY) or {}
    arm_overrides = list(meta.get("overrides") or ())
    source = meta.get("model_source")
    try:
        if meta.get("tier") != 0 or source:  # tier 0: the campaign's own (trusted) base arm
            check_overrides(arm_overrides)
        if not source:
            return None
        name = model_from_overrides(arm_overrides)
        model_config = meta.get("model_config")
        report = check_generated_trial(name, source, model_config)
    except SafetyError as e:
        raise TrialError(f"refused on the worker: {e}") from e
    assert isinstance(name, str) and isinstance(source, str)  # checked above
    return _GeneratedModel(name, source, model_config, report)


def _store_model_config(model: _GeneratedModel) -> None:
    """Make `model=<name>` compose on a worker without the driver's `configs/model/<name>.yaml`
    (Hydra's config store; the folder's own file, when there is one, is found first)."""
    if model.config is None:
        return
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="model", name=model.name, node=dict(model.config))


NODE_KEY = "node_id"
"""Result key: the id of the Ray node the trial runs on (every report)."""

GPU_IDS_KEY = "gpu_ids"
"""Result key: the GPU ids Ray assigned the trial, comma-separated ("" without GPUs)."""


def trial_placement() -> dict[str, str]:
    """Where this trial runs: ``{NODE_KEY: node id, GPU_IDS_KEY: "0,1"}``.

    The GPU ids are Ray's (`ray.get_gpu_ids()`), the ones it put in this process's
    ``CUDA_VISIBLE_DEVICES``; a fractional request reports the GPU it shares. Call it inside
    a Ray worker.
    """
    import ray

    gpu_ids = ",".join(str(i) for i in ray.get_gpu_ids())
    return {NODE_KEY: ray.get_runtime_context().get_node_id(), GPU_IDS_KEY: gpu_ids}


def run_trial(config: dict[str, Any], spec: TrialSpec, dataset: Any = None) -> None:
    """Function trainable body: train one config and report to Tune (see module docstring)."""
    from biosignals.trainer import EpochReport, train

    placement = trial_placement()
    generated = check_trial_config(config)
    overrides = trial_overrides(spec, config)
    logger.info("campaign %s: training with %s", spec.campaign or "-", " ".join(overrides))
    trial_dir = Path(tune.get_context().get_trial_dir() or tempfile.mkdtemp())
    run_dir = trial_dir / "run"
    if generated is not None:
        _store_model_config(generated)
    cfg = compose_trial_config(spec, overrides, run_dir)
    guard: Any = None
    last: dict[str, Any] = {}  # the last epoch's metrics and checkpoint dir, for the final

    def report_epoch(report: EpochReport) -> None:
        # trusted code between epochs: Tune's checkpoint upload writes outside the run dir
        suspended = guard.suspended() if guard is not None else contextlib.nullcontext()
        with suspended:
            if report.is_last:
                # The last epoch goes out with the final report: a scheduler that caps a trial
                # at its epochs (ASHA with max_t = epochs) stops it at that report, so a
                # separate final report would never arrive and a fully trained trial would be
                # recorded as pruned.
                last["dir"] = tempfile.mkdtemp(prefix="agentune-ckpt-")
                report.save_checkpoint(Path(last["dir"]))
                last["metrics"] = dict(report.metrics)
                return
            with tempfile.TemporaryDirectory() as tmp:
                report.save_checkpoint(Path(tmp))
                tune.report(
                    {**report.metrics, FINAL_KEY: False, **placement},
                    checkpoint=tune.Checkpoint.from_directory(tmp),
                )

    try:
        with _checkpoint_dir(tune.get_checkpoint()) as resume_dir:
            if generated is None:
                summary = train(
                    cfg, dataset=dataset, epoch_callback=report_epoch, resume_from=resume_dir
                )
            else:
                from agent.safety import SafetyError
                from agent.safety.worker import guarded_generated_model

                target = str(cfg.model.get("_target_"))
                if target not in generated.targets:
                    raise TrialError(
                        f"model._target_ {target!r} is not the registered target of generated "
                        f"model {generated.name!r} ({sorted(generated.targets)})"
                    )
                if dataset is None:  # the cache may write: load before the guard is armed
                    dataset = _load_dataset(cfg)
                run_dir.mkdir(parents=True, exist_ok=True)
                try:
                    with guarded_generated_model(
                        generated.name,
                        generated.source,
                        write_roots=[run_dir],
                        report=generated.report,
                    ) as guard:
                        summary = train(
                            cfg,
                            dataset=dataset,
                            epoch_callback=report_epoch,
                            resume_from=resume_dir,
                        )
                except SafetyError as e:
                    raise TrialError(str(e)) from e
        final = {
            **final_report(spec, summary, run_dir, tune.get_context().get_trial_id()),
            **placement,
        }
        if "dir" not in last:
            tune.report(final)
            return
        checkpoint = tune.Checkpoint.from_directory(last["dir"])
        tune.report({**last["metrics"], **final}, checkpoint=checkpoint)
    finally:
        if "dir" in last:
            shutil.rmtree(last["dir"], ignore_errors=True)


def final_report(
    spec: TrialSpec, summary: TrainSummary, run_dir: Path, trial_id: str
) -> dict[str, Any]:
    """The trial's last Tune report (step 4 of the module docstring).

    Besides the best value and the summary's fields, it carries the held-out test results of
    the best weights as flat floats: ``summary.test`` (``test/macro_f1``, ``test/se_S``,
    ``test/ppv_S``, ...) and, for classification, the test confusion matrix as counts
    ``test/cm_<true>_<pred>`` (`biosignals.metrics.flatten_confusion`). The searcher copies
    every ``test/...`` key into `RunRecord.test_metrics` and decides on none of them; the
    dashboard draws the matrix from the store, without the run directory.

    Args:
        spec: the campaign's shared settings (the metric's name).
        summary: what `biosignals.trainer.train` returned.
        run_dir: the trial's run directory.
        trial_id: Tune's id of the trial (the run id).
    """
    from biosignals.metrics import flatten_confusion

    best = summary.best_value
    final: dict[str, Any] = {
        spec.metric: float("nan") if best is None else best,
        FINAL_KEY: True,
        RUN_ID_KEY: trial_id,
        "status": summary.status,
        "num_params": summary.num_params,
        "model": summary.model,
        "best_epoch": summary.best_epoch or 0,
        "epochs_run": summary.epochs_run,
        "dataset": summary.dataset,
        "duration_s": summary.duration_s,
        "run_dir": str(run_dir),
        # what reproduces the run (`RunRecord.seed`, `dataset_hash`, `simulator_version`)
        "seed": summary.seed,
        **{
            k: v
            for k, v in (
                ("dataset_hash", summary.dataset_hash),
                ("simulator_version", summary.simulator_version),
            )
            if v is not None
        },
        **summary.test,
    }
    if summary.test_confusion is not None:
        final.update(flatten_confusion(summary.test_confusion, "test"))
    if summary.error:
        final["error"] = summary.error
    return final


def _load_dataset(cfg: Any) -> Any:
    from biosignals.data.cache import load_dataset

    return load_dataset(cfg.dataset, cfg.get("paths", {}).get("cache_dir"))


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
