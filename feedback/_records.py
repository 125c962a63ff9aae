"""What the store keeps: one :class:`RunRecord` per trial, epoch curves and :class:`Event` s.

Records are built by the search side from the trainer's run artifacts
(:meth:`RunRecord.from_run_dir`) or from a Ray Tune result dict
(:meth:`RunRecord.from_tune_result`); the per-epoch curve of a run directory comes from
:func:`load_epoch_metrics`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._errors import FeedbackError

__all__ = [
    "APPROVALS",
    "EVENT_KINDS",
    "MODES",
    "ORIGINS",
    "STATUSES",
    "TIERS",
    "TRAINER_STATUS_MAP",
    "Event",
    "ParamValue",
    "RunRecord",
    "load_epoch_metrics",
    "parse_epoch_metrics",
]

logger = logging.getLogger(__name__)

#: 0 Optuna tuning, 2 agent-generated config, 3 agent-generated code. Tier 1 is read-only
#: analysis: it proposes nothing, so no run ever carries it.
TIERS: tuple[int, ...] = (0, 2, 3)
#: ``repeat``: another evaluation, with another seed, of a configuration already run.
ORIGINS: tuple[str, ...] = ("optuna", "agent", "human", "warm_start", "repeat")
STATUSES: tuple[str, ...] = ("completed", "failed", "diverged", "pruned", "rejected", "infeasible")
MODES: tuple[str, ...] = ("min", "max")
APPROVALS: tuple[str, ...] = ("approved", "modified", "rejected", "auto")
#: ``campaign`` holds the campaign goal (``data["thresholds"]`` feeds the dashboard's signals).
EVENT_KINDS: tuple[str, ...] = (
    "campaign",
    "escalation",
    "approval",
    "agent_summary",
    "agent_failure",
    "agent_call",
    "recommendation",
    "note",
)
#: Trainer ``summary.json`` status -> record status. ``stopped`` means the epoch callback
#: (the Tune scheduler) ended the run early, which is what pruning is.
TRAINER_STATUS_MAP: dict[str, str] = {
    "completed": "completed",
    "diverged": "diverged",
    "stopped": "pruned",
    "failed": "failed",
}

ParamValue = float | int | str | bool | None

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # the Parquet column of seed is int64


def _choice(name: str, value: object, allowed: Iterable[object], hint: str = "") -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise FeedbackError(
            f"{name} must be one of {allowed}, but got {value!r}.{' ' + hint if hint else ''}"
        )


def _text(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or (not optional and not value):
        raise FeedbackError(
            f"{name} must be a non-empty string, but got {value!r}."
            if not optional
            else f"{name} must be a string or None, but got {value!r}."
        )


def _count(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FeedbackError(f"{name} must be an integer >= 0, but got {value!r}.")


def _utc(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise FeedbackError(
            f"{name} must be a timezone-aware datetime or None, but got {value!r}; "
            "parse ISO strings with datetime.fromisoformat first."
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise FeedbackError(
            f"{name} must be timezone-aware (UTC), but got the naive datetime {value!r}; "
            "use datetime.now(timezone.utc) or .replace(tzinfo=timezone.utc)."
        )
    return value.astimezone(UTC)


def _finite_or_none(value: object) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _json_object(name: str, value: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(value), sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise FeedbackError(
            f"{name} must be JSON-serializable with finite numbers, but got {value!r} ({e})."
        ) from e


def _parse_time(value: object) -> datetime | None:
    """ISO-8601 string (``Z`` allowed) or epoch seconds -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as e:
            raise FeedbackError(
                f"timestamps must be ISO-8601, but got {value!r}; the trainer writes "
                "e.g. '2025-01-31T12:00:00+00:00'."
            ) from e
    else:
        raise FeedbackError(f"timestamps must be ISO-8601 strings, but got {value!r}.")
    if parsed.tzinfo is None:  # the trainer contract says UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _dataclass_row(
    obj: Any, json_fields: tuple[str, ...], write_seq: int, schema_version: int
) -> dict[str, Any]:
    """A stored row of a record dataclass: its fields, `json_fields` as JSON text, bookkeeping."""
    row = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    for name in json_fields:
        row[name] = _json_object(name, getattr(obj, name))
    row["write_seq"] = write_seq
    row["schema_version"] = schema_version
    return row


def _dataclass_kwargs(
    cls: type, row: Mapping[str, Any], json_fields: tuple[str, ...]
) -> dict[str, Any]:
    """Constructor arguments of `cls` from a stored row (the inverse of `_dataclass_row`)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in row.items() if k in names}
    for name in json_fields:
        kwargs[name] = json.loads(row[name])
    return kwargs


@dataclass(kw_only=True)
class RunRecord:
    """One trial of a campaign, as the feedback store keeps it.

    Keys of ``params`` and strings in ``overrides`` are Hydra override paths
    (``trainer.lr``, ``model.width``), the vocabulary shared from campaign file to Parquet.

    Attributes:
        run_id: Unique id of the run (stored once; appending it again replaces it).
        campaign: Campaign name.
        arm: The experiment/config identity the trial belongs to (e.g. one per-arm Optuna
            study, or one agent proposal).
        tier: 0 Optuna tuning, 2 generated config, 3 generated code (1 never occurs).
        origin: ``optuna``, ``agent``, ``human``, ``warm_start`` or ``repeat`` (another
            seed of a configuration already run, `feedback.rank_configs`).
        status: ``completed``, ``failed``, ``diverged``, ``pruned``, ``rejected`` (the approval
            hook refused it) or ``infeasible`` (could not be built or run as specified).
        metric: Name of the campaign metric, e.g. ``val/macro_f1``.
        mode: ``max`` or ``min``: which direction is better.
        trial_id: Ray Tune trial id, if any.
        overrides: Hydra override strings that define the run's config.
        params: Flat dict of the searched parameters.
        value: Best value of ``metric`` in the run; required when ``status`` is
            ``completed``; non-finite numbers become None.
        best_epoch: Epoch of ``value`` (1-based).
        epochs_run: Epochs trained.
        duration_s: Wall time of the run.
        started_at: Start, timezone-aware (stored as UTC).
        finished_at: End, timezone-aware (stored as UTC).
        error: Error message of a failed/infeasible run.
        model: Short model name (``cnn1d``, a generated model's name).
        num_params: Trainable parameter count.
        approval: ``approved``, ``modified``, ``rejected``, ``auto`` or None (no approval step).
        tokens_in: LLM input tokens spent to propose this run.
        tokens_out: LLM output tokens spent to propose this run.
        dataset: Dataset name.
        test_metrics: Test metrics of the best checkpoint (``test/...``).
        rationale: The proposer's reason for this config, if any.
        seed: The seed the trainer used (its summary's ``seed``), if known.
        git_commit: The project's git commit when the run was made (:func:`feedback.git_commit`:
            ``HEAD``'s hash, ``-dirty`` appended when tracked files had uncommitted changes),
            or None outside a git checkout.
        dataset_hash: Hash of the arrays the run trained and was tested on (the trainer's
            ``dataset_hash``: the same value means the same windows, labels and splits).
        simulator_version: Simulator and version that generated the data, e.g.
            ``ecg_synth/2``; None for recorded data. An integer becomes its string.

    Together ``overrides``/``params``, ``seed``, ``git_commit``, ``dataset_hash`` and
    ``simulator_version`` are what it takes to reproduce the run.
    """

    run_id: str
    campaign: str
    arm: str
    tier: int
    origin: str
    status: str
    metric: str
    mode: str
    trial_id: str | None = None
    overrides: list[str] = field(default_factory=list)
    params: dict[str, ParamValue] = field(default_factory=dict)
    value: float | None = None
    best_epoch: int | None = None
    epochs_run: int = 0
    duration_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    model: str | None = None
    num_params: int | None = None
    approval: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    dataset: str | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    rationale: str | None = None
    seed: int | None = None
    git_commit: str | None = None
    dataset_hash: str | None = None
    simulator_version: str | None = None

    def __post_init__(self) -> None:
        for name in ("run_id", "campaign", "arm", "metric"):
            _text(name, getattr(self, name))
        if isinstance(self.simulator_version, int) and not isinstance(self.simulator_version, bool):
            self.simulator_version = str(self.simulator_version)
        for name in (
            "trial_id", "error", "model", "dataset", "rationale",
            "git_commit", "dataset_hash", "simulator_version",
        ):  # fmt: skip
            _text(name, getattr(self, name), optional=True)
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not _INT64_MIN <= self.seed <= _INT64_MAX
        ):
            raise FeedbackError(
                f"seed must be an integer that fits in 64 bits (the trainer's cfg.seed) or None, "
                f"but got {self.seed!r}."
            )
        if isinstance(self.tier, bool) or self.tier not in TIERS:
            raise FeedbackError(
                f"tier must be one of {TIERS} (0 Optuna tuning, 2 generated config, 3 generated "
                f"code; tier 1 is read-only analysis and runs nothing), but got {self.tier!r}."
            )
        _choice("origin", self.origin, ORIGINS)
        _choice("status", self.status, STATUSES)
        _choice("mode", self.mode, MODES)
        if self.approval is not None:
            _choice("approval", self.approval, APPROVALS, "Use None when nothing was approved.")
        if isinstance(self.overrides, str) or not all(isinstance(o, str) for o in self.overrides):
            raise FeedbackError(
                f"overrides must be a list of Hydra override strings, but got {self.overrides!r}."
            )
        self.overrides = list(self.overrides)
        if not isinstance(self.params, Mapping):
            raise FeedbackError(f"params must be a flat dict, but got {self.params!r}.")
        for key, val in self.params.items():
            if not isinstance(key, str) or not (val is None or isinstance(val, str | int | float)):
                raise FeedbackError(
                    "params must be a flat dict of str -> float|int|str|bool, but got "
                    f"{key!r}: {val!r}; flatten nested values into dotted keys."
                )
        self.params = dict(self.params)
        if self.value is not None and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise FeedbackError(f"value must be a number or None, but got {self.value!r}.")
        self.value = _finite_or_none(self.value)
        if self.status == "completed" and self.value is None:
            raise FeedbackError(
                f"a completed run needs a finite value of {self.metric!r}, but run "
                f"{self.run_id!r} has none; record it as 'failed' with an error message."
            )
        for name in ("best_epoch", "num_params"):
            _count(name, getattr(self, name), optional=True)
        for name in ("epochs_run", "tokens_in", "tokens_out"):
            _count(name, getattr(self, name))
        if self.duration_s is not None:
            if isinstance(self.duration_s, bool) or not isinstance(self.duration_s, int | float):
                raise FeedbackError(f"duration_s must be seconds or None, got {self.duration_s!r}")
            self.duration_s = float(self.duration_s)
        self.started_at = _utc("started_at", self.started_at)
        self.finished_at = _utc("finished_at", self.finished_at)
        if not isinstance(self.test_metrics, Mapping):
            raise FeedbackError(f"test_metrics must be a dict, but got {self.test_metrics!r}.")
        self.test_metrics = {
            str(k): float(v) for k, v in self.test_metrics.items() if _finite_or_none(v) is not None
        }
        # Fail here, not in the store, if params cannot be stored.
        _json_object("params", self.params)

    # --- conversion -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (datetimes as ISO strings)."""
        out = dataclasses.asdict(self)
        for name in ("started_at", "finished_at"):
            if out[name] is not None:
                out[name] = out[name].isoformat()
        return out

    def _to_row(self, write_seq: int, schema_version: int) -> dict[str, Any]:
        return _dataclass_row(self, ("params", "test_metrics"), write_seq, schema_version)

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        kwargs = _dataclass_kwargs(cls, row, ("params", "test_metrics"))
        kwargs["overrides"] = list(row["overrides"] or [])
        return cls(**kwargs)

    # --- builders ---------------------------------------------------------------------

    @classmethod
    def from_run_dir(
        cls,
        run_dir: str | Path,
        *,
        run_id: str,
        campaign: str,
        arm: str,
        tier: int,
        origin: str,
        trial_id: str | None = None,
        overrides: Iterable[str] = (),
        params: Mapping[str, ParamValue] | None = None,
        status: str | None = None,
        metric: str | None = None,
        mode: str | None = None,
        error: str | None = None,
        approval: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        rationale: str | None = None,
        git_commit: str | None = None,
    ) -> RunRecord:
        """Build a record from the trainer's artifacts in ``run_dir``.

        Reads ``summary.json`` (status, metric, mode, best value and epoch, epochs run,
        parameter count, duration, UTC start/finish, model, dataset, test metrics, error,
        and the provenance ``seed``, ``dataset_hash`` and ``simulator_version``;
        the test confusion matrix ``test_confusion`` becomes ``test/cm_<true>_<pred>`` counts
        in ``test_metrics``, as a campaign trial reports it),
        ``metrics.jsonl`` (epochs run, when there is no summary) and ``config.yaml`` (model
        name, when the summary has none). Trainer status ``stopped`` becomes ``pruned``
        (:data:`TRAINER_STATUS_MAP`). A run dir without ``summary.json`` (the trainer died)
        gives a ``failed`` record. A ``completed`` summary without a finite best value gives
        a ``failed`` record with an explaining error.

        Args:
            run_dir: The trainer's ``cfg.run_dir``.
            run_id: Identity of the run; ``campaign``, ``arm``, ``tier``, ``origin``,
                ``trial_id``, ``overrides``, ``params``, ``approval``, ``tokens_in``,
                ``tokens_out`` and ``rationale`` are copied into the record as given.
            campaign: See :class:`RunRecord`.
            arm: See :class:`RunRecord`.
            tier: See :class:`RunRecord`.
            origin: See :class:`RunRecord`.
            trial_id: See :class:`RunRecord`.
            overrides: See :class:`RunRecord`.
            params: See :class:`RunRecord`.
            status: Overrides the status derived from the summary (e.g. ``pruned`` when the
                scheduler stopped the trial).
            metric: Used when the summary does not name the metric.
            mode: Used when the summary does not give the mode.
            error: Used when the summary carries no error message.
            approval: See :class:`RunRecord`.
            tokens_in: See :class:`RunRecord`.
            tokens_out: See :class:`RunRecord`.
            rationale: See :class:`RunRecord`.
            git_commit: See :class:`RunRecord`; the trainer does not know it, the driver
                does (:func:`feedback.git_commit`).

        Raises:
            FeedbackError: ``run_dir`` does not exist, ``summary.json`` is not JSON or has an
                unknown status, or neither the summary nor the arguments give metric and mode.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FeedbackError(
                f"run_dir must be the trainer's run directory, but {str(run_dir)!r} does not "
                "exist; pass cfg.run_dir of the trial."
            )
        summary: dict[str, Any] = {}
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            try:
                summary = json.loads(summary_path.read_text())
            except json.JSONDecodeError as e:
                raise FeedbackError(
                    f"{summary_path} is not valid JSON ({e}); the trainer writes it atomically, "
                    "so the file was modified by something else."
                ) from e
        epochs = load_epoch_metrics(run_dir)
        if summary:
            trainer_status = summary.get("status")
            if trainer_status not in TRAINER_STATUS_MAP:
                raise FeedbackError(
                    f"{summary_path}: status must be one of {tuple(TRAINER_STATUS_MAP)}, but got "
                    f"{trainer_status!r}."
                )
            derived = TRAINER_STATUS_MAP[trainer_status]
            summary_error = summary.get("error")
        else:
            derived = "failed"
            summary_error = (
                f"no summary.json in {run_dir}: the trainer did not finish "
                f"({len(epochs)} epochs logged)"
            )
        final_metric = summary.get("metric") or metric
        final_mode = summary.get("mode") or mode
        if not final_metric or not final_mode:
            raise FeedbackError(
                f"{run_dir}: the metric name and mode are unknown (summary.json gives "
                f"metric={summary.get('metric')!r}, mode={summary.get('mode')!r}); pass "
                "metric= and mode= from the campaign goal."
            )
        value = _finite_or_none(summary.get("best_value"))
        final_status = status or derived
        final_error = error or summary_error
        if final_status == "completed" and value is None:
            final_status = "failed"
            final_error = final_error or (
                f"the trainer reported 'completed' without a finite {final_metric!r}"
            )
        model = summary.get("model") or _model_from_config(run_dir / "config.yaml")
        test = summary.get("test") or {}
        test = (
            {**test, **_flat_confusion(summary.get("test_confusion"), "test")}
            if isinstance(test, Mapping)
            else {}
        )
        return cls(
            run_id=run_id,
            campaign=campaign,
            trial_id=trial_id,
            arm=arm,
            tier=tier,
            origin=origin,
            overrides=list(overrides),
            params=dict(params or {}),
            status=final_status,
            metric=final_metric,
            mode=final_mode,
            value=value,
            best_epoch=summary.get("best_epoch"),
            epochs_run=int(summary.get("epochs_run", len(epochs)) or 0),
            duration_s=_finite_or_none(summary.get("duration_s")),
            started_at=_parse_time(summary.get("started_at")),
            finished_at=_parse_time(summary.get("finished_at")),
            error=final_error,
            model=model,
            num_params=summary.get("num_params"),
            approval=approval,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            dataset=summary.get("dataset"),
            test_metrics=test,
            rationale=rationale,
            seed=summary.get("seed"),
            git_commit=git_commit,
            dataset_hash=summary.get("dataset_hash"),
            simulator_version=summary.get("simulator_version"),
        )

    @classmethod
    def from_tune_result(
        cls,
        result: Mapping[str, Any],
        *,
        campaign: str,
        arm: str,
        tier: int,
        origin: str,
        metric: str,
        mode: str,
        run_id: str | None = None,
        status: str = "completed",
        overrides: Iterable[str] = (),
        params: Mapping[str, ParamValue] | None = None,
        value: float | None = None,
        error: str | None = None,
        approval: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        rationale: str | None = None,
        git_commit: str | None = None,
    ) -> RunRecord:
        """Build a record from a Ray Tune result dict (``Result.metrics`` or a callback's).

        ``value`` defaults to ``result[metric]`` (the last reported value: pass the best one
        when the trial reported several); ``run_id`` to ``result["trial_id"]``; ``params`` to
        ``result["config"]`` flattened into dotted keys; ``epochs_run`` is the result's
        ``epochs_run`` when reported, else ``training_iteration``; ``duration_s`` is
        ``time_total_s``; ``finished_at`` is ``timestamp`` (epoch seconds) and ``started_at``
        that minus the duration. Optional keys ``best_epoch``, ``num_params``, ``model`` and
        the provenance the trainer reports (``seed``, ``dataset_hash``,
        ``simulator_version``: the trainable copies them from the trainer's summary) are
        copied when present; ``git_commit`` comes from the caller (the driver's
        :func:`feedback.git_commit`).

        Raises:
            FeedbackError: Neither ``run_id`` nor ``result["trial_id"]`` is given.
        """
        rid = run_id or result.get("trial_id")
        if not rid:
            raise FeedbackError(
                "the run id is unknown: the Tune result has no 'trial_id' and run_id= was not "
                "given."
            )
        duration = _finite_or_none(result.get("time_total_s"))
        finished = _parse_time(result.get("timestamp"))
        started = (
            finished - timedelta(seconds=duration)
            if finished is not None and duration is not None
            else None
        )
        val = value if value is not None else _finite_or_none(result.get(metric))
        if status == "completed" and _finite_or_none(val) is None:
            status = "failed"
            error = error or f"the trial reported no finite {metric!r}"
        config = result.get("config") or {}
        return cls(
            run_id=str(rid),
            campaign=campaign,
            trial_id=result.get("trial_id"),
            arm=arm,
            tier=tier,
            origin=origin,
            overrides=list(overrides),
            params=dict(params) if params is not None else _flatten(config),
            status=status,
            metric=metric,
            mode=mode,
            value=val,
            best_epoch=result.get("best_epoch"),
            epochs_run=int(result.get("epochs_run", result.get("training_iteration", 0)) or 0),
            duration_s=duration,
            started_at=started,
            finished_at=finished,
            error=error,
            model=result.get("model"),
            num_params=result.get("num_params"),
            approval=approval,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            rationale=rationale,
            seed=result.get("seed"),
            git_commit=git_commit,
            dataset_hash=result.get("dataset_hash"),
            simulator_version=result.get("simulator_version"),
        )


_CLASS_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def _flat_confusion(confusion: object, prefix: str) -> dict[str, float]:
    """A trainer confusion matrix (``{"classes": [...], "matrix": [[...]]}``, rows true) as
    ``<prefix>/cm_<true>_<pred>`` counts, class names made key tokens the way
    ``biosignals.metrics.class_key`` does; {} (with a warning) for anything malformed."""
    if confusion is None:
        return {}
    classes = confusion.get("classes") if isinstance(confusion, Mapping) else None
    matrix = confusion.get("matrix") if isinstance(confusion, Mapping) else None
    if isinstance(classes, list) and isinstance(matrix, list):
        tokens = [_CLASS_TOKEN_UNSAFE.sub("-", str(c)).strip("-") for c in classes]
        k = len(tokens)
        rows = [row for row in matrix if isinstance(row, list) and len(row) == k]
        counts = [_finite_or_none(v) for row in rows for v in row]
        if (
            k > 0
            and all(tokens)
            and len(set(tokens)) == k
            and len(rows) == len(matrix) == k
            and None not in counts
        ):
            return {
                f"{prefix}/cm_{t}_{p}": float(rows[i][j])
                for i, t in enumerate(tokens)
                for j, p in enumerate(tokens)
            }
    logger.warning("ignoring a malformed confusion matrix in summary.json: %r", confusion)
    return {}


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, ParamValue]:
    out: dict[str, ParamValue] = {}
    for key, val in config.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping):
            out.update(_flatten(val, name + "."))
        elif val is None or isinstance(val, str | int | float):
            out[name] = val
        else:
            out[name] = str(val)
    return out


def _model_from_config(path: Path) -> str | None:
    """The short model name from ``config.yaml``'s ``model._target_`` (class name, lowered)."""
    if not path.exists():
        return None
    import yaml  # only needed for this fallback

    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        logger.warning("could not parse %s; the record has no model name", path)
        return None
    target = (cfg or {}).get("model", {}).get("_target_") if isinstance(cfg, dict) else None
    return str(target).rsplit(".", 1)[-1].lower() if target else None


def parse_epoch_metrics(text: str, source: str = "metrics.jsonl") -> list[dict[str, int | float]]:
    """Parse the text of a ``metrics.jsonl``: one dict of numeric values per epoch.

    Lines that are not JSON objects with an ``epoch`` key (e.g. a last line cut short by a
    killed trainer) are skipped with a logged warning; non-numeric values (and booleans) are
    dropped; numbers keep their JSON type.

    Args:
        text: The file's content.
        source: What to name in warnings (the file's path).
    """
    out: list[dict[str, int | float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d is not a JSON object; line skipped", source, lineno)
            continue
        if not isinstance(obj, dict) or "epoch" not in obj:
            logger.warning("%s:%d has no 'epoch'; line skipped", source, lineno)
            continue
        out.append(
            {
                str(k): v
                for k, v in obj.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
    return out


def load_epoch_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """Read the per-epoch metrics of a run from ``metrics.jsonl``.

    See :func:`parse_epoch_metrics` for what is skipped; values come back as floats.

    Args:
        run_dir: The trainer's run directory.

    Returns:
        One dict per epoch, each with an ``epoch`` key, in file order; empty when the file
        does not exist.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [
        {k: float(v) for k, v in row.items()}
        for row in parse_epoch_metrics(path.read_text(), str(path))
    ]


@dataclass(kw_only=True)
class Event:
    """Something that happened in a campaign besides a run.

    Kinds (:data:`EVENT_KINDS`): ``campaign`` (the goal; ``data["thresholds"]`` is a
    :meth:`feedback.SignalThresholds.to_dict`), ``escalation`` (``tier`` is the tier escalated
    to), ``approval`` (``data["decision"]`` one of :data:`APPROVALS`, ``run_id``/``arm`` of the
    proposal), ``agent_summary`` (``message`` is the agent's summary text),
    ``agent_failure``, ``agent_call`` (one proposer call: ``data`` holds its model, tokens,
    steps, tool calls and outcome), ``recommendation`` and ``note``.

    Attributes:
        campaign: Campaign name.
        kind: One of :data:`EVENT_KINDS`.
        message: Free text (untrusted: the dashboard escapes it).
        time: When it happened (timezone-aware; default now, UTC).
        tier: Tier concerned, if any.
        run_id: Run concerned, if any.
        arm: Arm concerned, if any.
        data: JSON-serializable details.
        event_id: Unique id (default a random UUID); appending it again replaces it.
    """

    campaign: str
    kind: str
    message: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    tier: int | None = None
    run_id: str | None = None
    arm: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        _text("campaign", self.campaign)
        _text("event_id", self.event_id)
        _choice("kind", self.kind, EVENT_KINDS)
        if not isinstance(self.message, str):
            raise FeedbackError(f"message must be a string, but got {self.message!r}.")
        if self.tier is not None and (isinstance(self.tier, bool) or self.tier not in (0, 1, 2, 3)):
            raise FeedbackError(f"tier must be 0, 1, 2, 3 or None, but got {self.tier!r}.")
        _text("run_id", self.run_id, optional=True)
        _text("arm", self.arm, optional=True)
        time = _utc("time", self.time)
        assert time is not None  # _utc maps only None to None
        self.time = time
        if not isinstance(self.data, Mapping):
            raise FeedbackError(f"data must be a dict, but got {self.data!r}.")
        self.data = dict(self.data)
        _json_object("data", self.data)

    def _to_row(self, write_seq: int, schema_version: int) -> dict[str, Any]:
        return _dataclass_row(self, ("data",), write_seq, schema_version)

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> Event:
        return cls(**_dataclass_kwargs(cls, row, ("data",)))
