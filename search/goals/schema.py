"""The goal schema: `CampaignGoal` and the settings it holds, validated by pydantic.

Every model is strict and frozen and forbids unknown keys (`search.goals._base.Schema`), so a
typo'd key is an error naming close matches. With a validation context
`{"configs_dir": Path}` the experiment and model names are checked against `configs/`.
`CampaignGoal` also converts the goal for its users: the Tune and Optuna spaces, the Hydra
overrides of a trial, the feedback signals' thresholds.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from agent.overrides import format_override_value, iter_override_items, parse_override
from feedback.signals import SignalThresholds
from search.goals._base import CampaignError, Schema, fail, short
from search.goals._paths import display
from search.goals.domains import SearchDomain
from search.goals.settings import Constraint, EscalationSettings, LLMSettings, TrialResources

__all__ = ["ALLOWED_TIERS", "METRIC_MODES", "CampaignError", "CampaignGoal"]

logger = logging.getLogger(__name__)

# Metrics the trainer reports (see biosignals.trainer) and the only sensible direction for each.
METRIC_MODES: dict[str, Literal["min", "max"]] = {
    "val/macro_f1": "max",
    "val/accuracy": "max",
    "val/balanced_accuracy": "max",
    "val/loss": "min",
    "val/mae": "min",
    "val/rmse": "min",
    "train/loss": "min",
}
# Tiers RunRecord knows: 0 = Optuna only, 2 = + agent config variants, 3 = + generated models.
ALLOWED_TIERS = (0, 2, 3)

_OVERRIDE_KEY_RE = re.compile(r"^(\+\+|\+)?[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")


class CampaignGoal(Schema):
    """One named goal of a campaign file; see `campaigns/README.md` for every key.

    `name` and `source` are filled by the loader (the key under `goals:` and the file).
    """

    _internal_fields: ClassVar[frozenset[str]] = frozenset({"name", "source"})

    name: str
    source: Path | None = None
    description: str = Field(min_length=1)
    experiment: str = Field(min_length=1)
    overrides: list[str] = Field(default_factory=list)
    metric: str = Field(min_length=1)
    mode: Literal["min", "max"]
    target: float | None = None
    budget: int = Field(ge=1)
    max_concurrent: int = Field(default=1, ge=1)
    wall_time_min: float | None = Field(default=None, gt=0)
    resources: TrialResources = Field(default_factory=TrialResources)
    # Retries of a trial whose process raised or died (a lost node included), each from its
    # last checkpoint: Tune's `FailureConfig(max_failures=...)`. A diverged trial is not an
    # error to Tune (its NaN would come back with the same seed) and is not retried.
    max_failures: int = Field(default=0, ge=0)
    space: dict[str, SearchDomain]
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    max_tier: int = 0
    models: list[str] = Field(default_factory=list)
    constraints: dict[str, Constraint] = Field(default_factory=dict)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    seed: int | None = None
    # Each arm's Optuna sampler; GP beats TPE at campaign budgets (bench/tpe_settings.py).
    sampler: Literal["tpe", "gp", "auto", "random"] = "gp"
    # Extra evaluations, with other seeds, of each new incumbent; the best config is then the
    # one with the best mean (one lucky seed cannot stay the campaign's best).
    repeats: int = Field(default=0, ge=0, le=10)

    @field_validator("overrides")
    @classmethod
    def _check_overrides(cls, value: list[Any]) -> list[str]:
        for i, item in enumerate(value):
            if not isinstance(item, str):
                fail(f"an override is a string 'key=value', got {short(item)}", at=f"[{i}]")
            error = _override_syntax_error(item)
            if error:
                fail(f"not a valid Hydra override ({error}), got {item!r}", at=f"[{i}]")
            try:
                key = parse_override(item).key
            except ValueError as e:  # Hydra takes `=1`; a goal's override needs a key
                fail(str(e), at=f"[{i}]")
            if key == "experiment":
                fail(
                    f"set the experiment with the experiment key, not an override, got {item!r}",
                    at=f"[{i}]",
                )
        return value

    @field_validator("experiment")
    @classmethod
    def _known_experiment(cls, value: str, info: Any) -> str:
        _check_config_name(value, "experiment", info.context)
        return value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[Any], info: Any) -> list[str]:
        for i, name in enumerate(value):
            if not isinstance(name, str):
                fail(f"a model is a configs/model/*.yaml name, got {short(name)}", at=f"[{i}]")
            try:
                _check_config_name(name, "model", info.context)
            except ValueError as e:
                fail(str(e), at=f"[{i}]")
        if len(set(value)) != len(value):
            raise ValueError(f"models must be distinct, got {value!r}")
        return value

    @field_validator("max_tier")
    @classmethod
    def _tier(cls, value: int) -> int:
        if value not in ALLOWED_TIERS:
            raise ValueError(
                f"max_tier must be one of {', '.join(map(str, ALLOWED_TIERS))} (0 = Optuna only, "
                f"2 = + agent config variants, 3 = + generated models), got {value!r}"
            )
        return value

    @field_validator("space", mode="before")
    @classmethod
    def _space_keys(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(f"space must map Hydra override paths to domains, got {short(value)}")
        if not value:
            raise ValueError(
                "space needs at least one key (a Hydra override path such as trainer.lr), got {}"
            )
        for key in value:
            if not isinstance(key, str) or not _OVERRIDE_KEY_RE.match(key):
                fail(
                    f"space keys are Hydra override paths like trainer.lr or model.width, "
                    f"got {key!r}",
                    at=str(key),
                )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> CampaignGoal:
        expected = METRIC_MODES.get(self.metric)
        if expected is not None and expected != self.mode:
            better = "larger" if expected == "max" else "smaller"
            fail(
                f"{self.metric} is better when {better}, so mode must be {expected}, got "
                f"{self.mode!r}",
                at="mode",
            )
        if self.max_concurrent > self.budget:
            fail(
                f"max_concurrent must be <= budget ({self.budget}), got {self.max_concurrent}",
                at="max_concurrent",
            )
        fixed = {parse_override(o).key: o for o in self.overrides}  # checked by _check_overrides
        for key in self.space:
            if key.lstrip("+") in fixed:
                fail(
                    f"{key} is both searched and fixed by override {fixed[key.lstrip('+')]!r}; "
                    f"remove one",
                    at=f"space.{key}",
                )
        if self.models and self.max_tier < 2:
            fail(
                f"models lists what tier 2 may switch model= to, but max_tier is "
                f"{self.max_tier}; raise max_tier to 2 or 3, or drop models",
                at="models",
            )
        return self

    # ---- conversions -------------------------------------------------------------------------

    @property
    def spec(self) -> str:
        """`file:goal`, the address this goal is loaded by."""
        stem = self.source.stem if self.source is not None else "?"
        return f"{stem}:{self.name}"

    @property
    def wall_time_s(self) -> float | None:
        """The wall-time budget in seconds (None: no limit)."""
        return None if self.wall_time_min is None else self.wall_time_min * 60.0

    def tune_space(self) -> dict[str, Any]:
        """`{override path: ray.tune Domain}` for `Tuner(param_space=...)` or a searcher."""
        return {key: domain.to_tune() for key, domain in self.space.items()}

    def optuna_space(self) -> dict[str, Any]:
        """`{override path: optuna distribution}` (integer bounds inclusive, as in the YAML)."""
        return {key: domain.to_optuna() for key, domain in self.space.items()}

    def hydra_overrides(self, config: Mapping[str, Any]) -> list[str]:
        """Hydra `key=value` override strings for a suggested config, in the config's order.

        Args:
            config: flat `{override path: value}` (as the searcher suggests it); nested mappings
                are flattened with dots (`{"trainer": {"lr": 0.1}}` -> `trainer.lr=0.1`).

        Returns:
            `["trainer.lr=0.001", "model=resnet1d", ...]`; floats keep every digit (`repr`).

        Raises:
            CampaignError: a key that is not an override path or a value Hydra cannot take.
        """
        out: list[str] = []
        for key, value in iter_override_items(config):
            if not _OVERRIDE_KEY_RE.match(key):
                raise CampaignError(
                    f"{self.spec}: config key {key!r} is not a Hydra override path (like "
                    f"trainer.lr); fix the proposal or the searcher that produced it"
                )
            try:
                out.append(f"{key}={format_override_value(value)}")
            except (TypeError, ValueError) as e:
                raise CampaignError(f"{self.spec}: {key}: {e}") from e
        return out

    def compose_overrides(self, config: Mapping[str, Any] | None = None) -> list[str]:
        """Everything one trial passes to Hydra: experiment, fixed overrides, then the config."""
        return [
            f"experiment={self.experiment}",
            *self.overrides,
            *self.hydra_overrides(config or {}),
        ]

    def sample_config(self) -> dict[str, str | int | float | bool | None]:
        """A deterministic point of the space (each domain's `sample_point`)."""
        return {key: domain.sample_point() for key, domain in self.space.items()}

    def constraint_violations(self, reported: Mapping[str, Any]) -> list[str]:
        """Why a trial's reported values break the goal's constraints; [] means feasible.

        A constrained key that was not reported counts as a violation.
        """
        out: list[str] = []
        for name, constraint in self.constraints.items():
            reason = constraint.violation(name, reported.get(name))
            if reason is not None:
                out.append(reason)
        return out

    def is_feasible(self, reported: Mapping[str, Any]) -> bool:
        """True when no constraint is violated."""
        return not self.constraint_violations(reported)

    def reached_target(self, value: float | None) -> bool:
        """Whether `value` meets the goal's target (never, when there is no target)."""
        if self.target is None or value is None or math.isnan(value):
            return False
        return value >= self.target if self.mode == "max" else value <= self.target

    def signal_thresholds(self) -> SignalThresholds:
        """The goal as `feedback.signals.SignalThresholds` (what the escalation policy reads).

        Maps `escalation.{window, min_delta, patience, hopeless_after, noise, improvement_k,
        trend_k}`,
        `target`, `budget`
        (not `llm.token_budget`: the agent enforces it, and a spent budget ends the agent's
        calls, not the campaign). `wall_time_min` is not mapped: it is wall-clock time for the
        whole campaign (Tune's `TuneConfig(time_budget_s=goal.wall_time_s)`), while the
        thresholds' `time_budget_s` sums the runs' durations.
        """
        return SignalThresholds(
            window=self.escalation.window,
            min_delta=self.escalation.min_delta,
            patience=self.escalation.patience,
            hopeless_after=self.escalation.hopeless_after,
            noise=self.escalation.noise,
            improvement_k=self.escalation.improvement_k,
            trend_k=self.escalation.trend_k,
            target=self.target,
            budget=self.budget,
        )


def _check_config_name(name: str, group: str, context: Any) -> None:
    """Raise ValueError unless `configs/<group>/<name>.yaml` exists (skipped without configs)."""
    configs_dir = context.get("configs_dir") if isinstance(context, Mapping) else None
    if configs_dir is None:
        return
    group_dir = Path(configs_dir) / group
    if not group_dir.is_dir():
        logger.debug("no %s; skipping the check of %s=%s", group_dir, group, name)
        return
    available = sorted(p.stem for p in group_dir.glob("*.yaml"))
    if name not in available:
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"no {group} config {name!r} in {display(group_dir)}{hint}, got {name!r}; "
            f"allowed: {', '.join(available) or '(none)'}"
        )


def _override_syntax_error(text: str) -> str | None:
    """Hydra's parse error for one override string, or None when it parses."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_override(text)
    except HydraException as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None
