"""Tier 1: the read-only tools, always given to the agent.

Each tool reads the active `ToolContext` (`agent.tools.use_context`), logs its call, and
returns plain data a model can print or index. None writes anything, and none returns a
test-set metric: `summary.json`'s `test` block, `test/...` keys and the store's
`test_metrics` are dropped on the way in (`agent.tools._runs.without_test`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from smolagents import tool

from agent.overrides import override_values
from agent.tools._context import ToolContext, ToolError, current_context, log_call
from agent.tools._runs import RunRef, read_config, resolve_run, run_summary

__all__ = [
    "check_drift",
    "compare_runs",
    "get_experiment_history",
    "list_available_configs",
    "read_experiment_config",
    "read_run_results",
    "suggest_search_space",
]

logger = logging.getLogger(__name__)

_MAX_COMPARED = 10
_SKIPPED_ROOTS = ("run_dir", "paths", "hydra")  # differ per run or are the campaign's
_LR_MAX = 1.0  # a suggested learning-rate range never goes above this


# --- list_available_configs -----------------------------------------------------------------


def available_configs(ctx: ToolContext) -> dict[str, list[str]]:
    """Config group folder -> sorted config names, plus "generated_models" (registered)."""
    from agent.safety.errors import SafetyError
    from agent.safety.models import registered_model
    from agent.safety.policy import NAME_PATTERN

    root = ctx.config_root()
    if not root.is_dir():
        raise ToolError(f"the config folder {root} does not exist; check the campaign's configs")
    groups: dict[str, list[str]] = {}
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "_")) or folder.name == "hydra":
            continue
        names = sorted(
            p.stem
            for p in folder.glob("*.yaml")
            if p.is_file() and not p.is_symlink() and NAME_PATTERN.fullmatch(p.stem)
        )
        groups[folder.name] = names
    generated: list[str] = []
    for name in groups.get("model", []):
        try:
            reg = registered_model(name, configs=root, generated=ctx.generated_root())
        except SafetyError:
            reg = None
        if reg is not None:
            generated.append(name)
    groups["generated_models"] = generated
    return groups


@tool
def list_available_configs() -> dict[str, list[str]]:
    """List every config the campaign can use, by Hydra config group. Returns a dict: group name
    -> sorted config names, e.g. {"model": ["cnn1d", "resnet1d", "se_net_a"], "experiment":
    ["mitbih_aami3_quick"], "dataset": [...], "trainer": ["default", "quick"],
    "generated_models": ["se_net_a"]}. "model" includes the generated (tier-3) models, which are
    also listed under "generated_models". Select a config with an override such as
    "model=resnet1d". Example: `configs = list_available_configs(); print(configs["model"])`.
    """
    ctx = current_context()
    log_call(ctx, "list_available_configs")
    return available_configs(ctx)


# --- read_run_results -----------------------------------------------------------------------


@tool
def read_run_results(run_dir: str) -> dict[str, Any]:
    """Read the results of one finished training run. Returns a dict with keys run_id, run_dir
    (None when the files are gone), status, metric, mode, best_value, best_epoch, epochs_run,
    num_params, model, arm, tier, origin, overrides (the arm's fixed Hydra overrides), params
    (the tuned values, e.g. {"trainer.lr": 0.003}), error, epochs (one dict of
    validation/training metrics per epoch) and config (the resolved config, or None). Example:
    `r = read_run_results("3f2a9c1b"); print(r["status"], r["best_value"], r["params"])`.

    Args:
        run_dir: a trainer run directory path (the folder holding config.yaml, metrics.jsonl and
            summary.json), or a run id / trial id from get_experiment_history().
    """
    ctx = current_context()
    log_call(ctx, "read_run_results", run_dir)
    return run_summary(ctx, resolve_run(ctx, run_dir))


# --- read_experiment_config -----------------------------------------------------------------


def _campaign_experiment(ctx: ToolContext) -> tuple[str | None, tuple[str, ...]]:
    """(experiment, base overrides) of the campaign: from the proposal check, else the
    campaign event's data."""
    check = ctx.proposal_check
    experiment = getattr(check, "experiment", None)
    base = tuple(getattr(check, "base_overrides", ()) or ())
    if experiment is None:
        store = ctx.store()
        if store is not None and ctx.campaign:
            for event in reversed(store.events(campaign=ctx.campaign, kind="campaign")):
                value = event.data.get("experiment")
                if isinstance(value, str) and value:
                    experiment = value
                    overrides = event.data.get("overrides")
                    if isinstance(overrides, list) and not base:
                        base = tuple(str(o) for o in overrides)
                    break
    return (str(experiment) if experiment else None), base


def composed_config(ctx: ToolContext, run: RunRef) -> dict[str, Any]:
    """The config of a stored run without a run dir: the campaign's experiment, its fixed
    overrides, the arm's overrides and the run's params, composed by Hydra."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from agent.safety.errors import SafetyError
    from agent.safety.overrides import format_value
    from biosignals.train import compose_config

    row = run.row or {}
    experiment, base = _campaign_experiment(ctx)
    params = row.get("params")
    params = json.loads(params) if isinstance(params, str) else dict(params or {})
    try:
        overrides = [
            *([f"experiment={experiment}"] if experiment else []),
            *base,
            *(row.get("overrides") or []),
            *(f"{k}={format_value(v)}" for k, v in sorted(params.items())),
        ]
    except SafetyError as e:
        raise ToolError(f"run {run.run_id}: a stored value cannot be written back: {e}") from e
    check_dir = getattr(ctx.proposal_check, "config_dir", None)
    directory = ctx.config_dir or check_dir or ctx.config_root()
    try:
        cfg = compose_config(overrides, directory)
    except (HydraException, OmegaConfBaseException) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ToolError(
            f"run {run.run_id} has no run directory and its config does not compose from "
            f"{' '.join(overrides)}: {first}; read the config of another run of its arm"
        ) from e
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        data = OmegaConf.to_container(cfg, resolve=False)
    out: dict[str, Any] = {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
    out.pop("hydra", None)
    if not experiment:
        logger.info("run %s: composed without the campaign's experiment (unknown)", run.run_id)
    return out


def experiment_config(ctx: ToolContext, ref: object) -> dict[str, Any]:
    run = resolve_run(ctx, ref)
    if run.run_dir is not None:
        config = read_config(run.run_dir)
        if config is not None:
            return config
        if run.row is None:
            raise ToolError(
                f"{run.run_dir} has no config.yaml (the run failed before writing it); pass "
                "another run directory or a run id"
            )
    return composed_config(ctx, run)


@tool
def read_experiment_config(run_dir: str) -> dict[str, Any]:
    """Read the full resolved Hydra config a run trained with (model, trainer, dataset
    sections). Returns a nested dict, e.g. {"model": {"_target_":
    "biosignals.models.cnn1d.CNN1D", "width": 8, ...}, "trainer": {"lr": 0.003, "batch_size":
    128, ...}, "dataset": {...}, "seed": 0}. Use its keys as override paths ("model.width",
    "trainer.lr"). Example: `cfg = read_experiment_config("3f2a9c1b"); print(cfg["model"])`.

    Args:
        run_dir: a trainer run directory path, or a run id / trial id from get_experiment_history()
            (a stored run whose files are gone is composed from the campaign's experiment and the
            run's overrides and params).
    """
    ctx = current_context()
    log_call(ctx, "read_experiment_config", run_dir)
    return experiment_config(ctx, run_dir)


# --- compare_runs ---------------------------------------------------------------------------


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _settings(info: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings as flat override paths: its config, then its overrides and params."""
    flat = {
        k: v
        for k, v in _flatten(info.get("config") or {}).items()
        if k.split(".", 1)[0] not in _SKIPPED_ROOTS
    }
    flat.update(override_values(str(item) for item in info.get("overrides") or []))
    flat.update(info.get("params") or {})
    if info.get("model"):
        flat["model"] = info["model"]
    return flat


def _same(values: Sequence[Any]) -> bool:
    first = json.dumps(values[0], sort_keys=True, default=str)
    return all(json.dumps(v, sort_keys=True, default=str) == first for v in values[1:])


def ranked(infos: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """`infos` best first by best_value in `mode`; runs without a value last, stable."""
    sign = -1.0 if mode == "max" else 1.0

    def key(item: tuple[int, dict[str, Any]]) -> tuple[int, float, int]:
        i, info = item
        value = info.get("best_value")
        if value is None or not math.isfinite(value):
            return (1, 0.0, i)
        return (0, sign * float(value), i)

    return [info for _, info in sorted(enumerate(infos), key=key)]


def comparison(ctx: ToolContext, refs: object) -> dict[str, Any]:
    if isinstance(refs, str | Path) or not isinstance(refs, Sequence):
        raise ToolError(
            f"run_dirs must be a list of run directory paths or run ids, got "
            f"{type(refs).__name__} {refs!r}; e.g. compare_runs(['3f2a9c1b', '7d0e4a22'])"
        )
    if not refs:
        raise ToolError("run_dirs is empty; pass two or more run ids or run directory paths")
    if len(refs) > _MAX_COMPARED:
        raise ToolError(
            f"compare_runs takes at most {_MAX_COMPARED} runs, got {len(refs)}; compare the "
            "best few (get_experiment_history() lists them)"
        )
    infos: list[dict[str, Any]] = []
    for ref in refs:
        run = resolve_run(ctx, ref, what="each item of run_dirs")
        info = run_summary(ctx, run)
        if info["config"] is None and run.row is not None:
            try:  # a stored run without its files: compare what it composes to
                info["config"] = composed_config(ctx, run)
            except ToolError as e:
                logger.info("compare_runs: no config for run %s: %s", run.run_id, e)
        infos.append(info)
    metrics = [i["metric"] for i in infos if i.get("metric")]
    modes = [i["mode"] for i in infos if i.get("mode")]
    mode = ctx.mode or (modes[0] if modes else "max")
    order = ranked(infos, mode)
    settings = [_settings(i) for i in order]
    keys = sorted(set().union(*settings)) if settings else []
    differences = {}
    for key in keys:
        values = [s.get(key) for s in settings]
        if len(values) > 1 and not _same(values):
            differences[key] = values
    runs = [{k: v for k, v in i.items() if k not in ("epochs", "config")} for i in order]
    return {
        "metric": ctx.metric or (metrics[0] if metrics else None),
        "mode": mode,
        "runs": runs,
        "differences": differences,
    }


@tool
def compare_runs(run_dirs: list) -> dict[str, Any]:
    """Compare several runs side by side, ranked best first. Returns a dict {"metric": ...,
    "mode": "max" or "min", "runs": [one read_run_results dict per run without epochs and
    config, best first], "differences": {setting: [value per run in the same order]}} where
    differences lists only the settings (override paths such as "trainer.lr", "model.width",
    "model") whose values differ; None means unknown for that run. Example: `c =
    compare_runs(["3f2a9c1b", "7d0e4a22"]); print(c["runs"][0]["run_id"], c["differences"])`.

    Args:
        run_dirs: a list of run directory paths or run ids (at most 10).
    """
    ctx = current_context()
    log_call(ctx, "compare_runs", run_dirs)
    return comparison(ctx, run_dirs)


# --- suggest_search_space -------------------------------------------------------------------


def _sig(x: float) -> float:
    """`x` rounded to 3 significant digits (readable suggestions)."""
    return float(f"{x:.3g}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _log_range(low: float, high: float) -> dict[str, Any]:
    return {"type": "loguniform", "low": _sig(low), "high": _sig(high)}


@dataclasses.dataclass
class _Suggestion:
    observations: list[str] = dataclasses.field(default_factory=list)
    space: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def lr(self, low: float, high: float, start: float) -> None:
        high = min(high, _LR_MAX)
        low = min(low, high / 2)
        self.space["trainer.lr"] = _log_range(low, high)
        self.params["trainer.lr"] = _sig(min(max(start, low), high))


def _curve(epochs: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [v for e in epochs if (v := _number(e.get(key))) is not None]


def _campaign_best(ctx: ToolContext) -> str | None:
    store = ctx.store()
    if store is None or not ctx.campaign:
        return None
    from feedback import FeedbackError

    try:
        best = store.best(ctx.campaign, metric=ctx.metric)
    except FeedbackError:
        return None
    if best is None or best.value is None:
        return None
    return f"{best.value:.4g} (run {best.run_id}, arm {best.arm})"


def suggestion(ctx: ToolContext, ref: object) -> dict[str, Any]:
    run = resolve_run(ctx, ref)
    info = run_summary(ctx, run)
    config = info.get("config")
    if config is None and run.row is not None:
        try:
            config = composed_config(ctx, run)
        except ToolError as e:
            logger.info("suggest_search_space: no config for %s: %s", run.run_id, e)
    flat = _flatten(config or {})
    flat.update(info.get("params") or {})
    status, epochs = info.get("status"), info.get("epochs") or []
    metric = info.get("metric") or "the metric"
    out = _Suggestion()
    lr = _number(flat.get("trainer.lr"))
    value = info.get("best_value")
    shown = "-" if value is None else f"{value:.4g}"
    out.observations.append(
        f"run {info['run_id']}: status {status}, best {metric} {shown} at epoch "
        f"{info.get('best_epoch')} of {info.get('epochs_run')}"
    )
    best = _campaign_best(ctx)
    if best is not None:
        out.observations.append(f"campaign best so far: {best}")
    if status in (None, "rejected", "infeasible") and not epochs:
        out.observations.append(
            "the run has no training curve to learn from; pick a run that trained"
        )
        return _answer(info, out)
    train_loss = _curve(epochs, "train/loss")
    val_loss = _curve(epochs, "val/loss")
    diverged = status == "diverged" or any(not math.isfinite(x) for x in train_loss)
    if status == "failed" and not epochs:
        out.observations.append(
            f"the run failed before any epoch ({info.get('error')}); fix that cause (a config "
            "or code error) before tuning this setup"
        )
        return _answer(info, out)
    if diverged:
        out.observations.append(
            f"the run diverged (the loss became NaN/inf): the learning rate {lr} is too high; "
            "search lower learning rates"
        )
        if lr is not None:
            out.lr(lr / 100, lr / 3, lr / 10)
        return _answer(info, out)
    n = len(epochs)
    best_epoch = info.get("best_epoch") or 0
    planned = _number(flat.get("trainer.epochs"))
    overfit = (
        n >= 3
        and 0 < best_epoch <= 0.6 * n
        and len(val_loss) == n
        and len(train_loss) == n
        and val_loss[-1] > val_loss[best_epoch - 1] * 1.05
        and train_loss[-1] < train_loss[best_epoch - 1]
    )
    underfit = len(train_loss) >= 2 and train_loss[-1] >= 0.8 * train_loss[0]
    if status == "pruned":
        out.observations.append(
            f"the scheduler stopped it after {n} epochs (pruned): its curve was behind other "
            "trials at the same epoch"
        )
    if overfit:
        out.observations.append(
            f"over-fitting: val/loss rose from {val_loss[best_epoch - 1]:.4g} (epoch "
            f"{best_epoch}) to {val_loss[-1]:.4g} (epoch {n}) while train/loss fell from "
            f"{train_loss[best_epoch - 1]:.4g} to {train_loss[-1]:.4g}; regularise more"
        )
        wd = _number(flat.get("trainer.weight_decay"))
        if wd is not None:
            base = max(wd, 1e-5)
            out.space["trainer.weight_decay"] = _log_range(base, min(base * 30, 1.0))
            out.params["trainer.weight_decay"] = _sig(min(base * 3, 1.0))
        dropout = _number(flat.get("model.dropout"))
        if dropout is not None:
            out.space["model.dropout"] = {
                "type": "uniform",
                "low": _sig(dropout),
                "high": _sig(min(0.6, dropout + 0.3)),
            }
            out.params["model.dropout"] = _sig(min(0.6, dropout + 0.1))
        if lr is not None:
            out.lr(lr / 3, lr * 2, lr)
    elif underfit:
        out.observations.append(
            f"under-fitting: train/loss only fell from {train_loss[0]:.4g} to "
            f"{train_loss[-1]:.4g}; try a larger learning rate or a bigger model"
        )
        if lr is not None:
            out.lr(lr, lr * 30, lr * 3)
        width = flat.get("model.width")
        if isinstance(width, int) and not isinstance(width, bool) and width > 0:
            out.space["model.width"] = {"type": "choice", "values": [width, 2 * width, 4 * width]}
            out.params["model.width"] = 2 * width
    elif best_epoch == n and n > 0 and (planned is None or n >= planned):
        out.observations.append(
            f"{metric} still improved at the last epoch ({n}): the run is under-trained; train "
            f"longer (override trainer.epochs={min(2 * n, 1000)}) or raise the learning rate"
        )
        if lr is not None:
            out.lr(lr / 2, lr * 5, lr * 1.5)
    else:
        out.observations.append(
            f"the best epoch was {best_epoch} of {n}: a settled run; refine around its values"
        )
        if lr is not None:
            out.lr(lr / 3, lr * 3, lr)
    batch = flat.get("trainer.batch_size")
    if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0:
        values = sorted({max(8, batch // 2), batch, min(4096, batch * 2)})
        if len(values) > 1:
            out.space["trainer.batch_size"] = {"type": "choice", "values": values}
            out.params.setdefault("trainer.batch_size", batch)
    return _answer(info, out)


def _answer(info: Mapping[str, Any], out: _Suggestion) -> dict[str, Any]:
    if not out.space:
        out.observations.append("no search-space change suggested")
    return {
        "run_id": info.get("run_id"),
        "observations": out.observations,
        "space": out.space,
        "params": out.params,
    }


@tool
def suggest_search_space(run_dir: str) -> dict[str, Any]:
    """Suggest data-driven next steps from one finished run's training curve (diverged,
    over-fitting, under-fitting, still improving, settled). Returns a dict {"run_id": ...,
    "observations": [sentences], "space": {override path: spec dict}, "params": {override path:
    value to start at}}; space and params can go straight into a proposal for propose_trials.
    Spec dicts look like {"type": "loguniform", "low": 0.0001, "high": 0.01}, {"type":
    "uniform", "low": 0.1, "high": 0.4} or {"type": "choice", "values": [64, 128]}. Example: `s
    = suggest_search_space("3f2a9c1b"); print(s["observations"]); print(s["space"])`.

    Args:
        run_dir: a trainer run directory path, or a run id / trial id from get_experiment_history().
    """
    ctx = current_context()
    log_call(ctx, "suggest_search_space", run_dir)
    return suggestion(ctx, run_dir)


# --- check_drift ----------------------------------------------------------------------------


def drift_reading(ctx: ToolContext) -> dict[str, Any]:
    from feedback import FeedbackError, SignalThresholds, recommend
    from feedback._history import campaign_thresholds

    store, campaign = ctx.require_campaign("check_drift()")
    table = store.table(campaign=campaign)
    if ctx.metric is not None and table.num_rows:
        import pyarrow.compute as pc

        table = table.filter(pc.equal(table["metric"], ctx.metric))
    thresholds = campaign_thresholds(store, campaign) or SignalThresholds()
    try:
        rec = recommend(table, thresholds)
    except FeedbackError as e:
        raise ToolError(f"check_drift(): the signals cannot be read: {e}") from e
    stag = dataclasses.asdict(rec.stagnation) if rec.stagnation is not None else None
    drift = dataclasses.asdict(rec.drift) if rec.drift is not None else None
    return {
        "action": rec.action,
        "reasons": list(rec.reasons),
        "stagnation": stag,
        "drift": drift,
        "n_runs": table.num_rows,
        "best_value": rec.stagnation.best if rec.stagnation is not None else None,
    }


@tool
def check_drift() -> dict[str, Any]:
    """Read the campaign's signals: is the search stagnating or drifting, and what should happen
    next. Returns a dict {"action": "continue" | "change_lr" | "change_model" | "stop",
    "reasons": [sentences], "stagnation": {"stagnant": bool, "runs_without_improvement": int,
    "best": float, "reason": str, ...} or None, "drift": {"drifting": bool, "trend": bool,
    "regression": bool, "reason": str, ...} or None, "n_runs": int, "best_value": float or
    None}. Example: `s = check_drift(); print(s["action"], s["reasons"])`.
    """
    ctx = current_context()
    log_call(ctx, "check_drift")
    return drift_reading(ctx)


# --- get_experiment_history -----------------------------------------------------------------


@tool
def get_experiment_history() -> str:
    """Read the campaign's compact history: run counts, the best run with its config, the
    signals and their reasons, each arm's best configurations with their tuned values, the
    spread of the tuned values, the most recent runs (with errors) and recent events. Returns
    text of a few thousand characters at most; run ids in it can be passed to read_run_results
    and compare_runs. Example: `print(get_experiment_history())`.
    """
    ctx = current_context()
    log_call(ctx, "get_experiment_history")
    store, campaign = ctx.require_campaign("get_experiment_history()")
    return store.history_for_agent(campaign, max(200, int(ctx.history_chars)))
