"""Campaign goals: the YAML files a user writes to describe a search campaign.

A campaign file (`campaigns/<file>.yaml`) holds named goals under `goals:`; a goal is addressed as
`file:goal` (`mitbih:aami3_quick`). `campaigns/README.md` documents every key. Loading validates
the whole goal through a pydantic schema (`extra="forbid"` everywhere, so a typo'd key is an
error), and checks the experiment and model names against `configs/`, so a bad goal fails before
anything runs with a one-line message naming the file, the key, the value and what is allowed::

    campaigns/mitbih.yaml: goals.aami3_quick.space.trainer.lr: low must be < high, got low=0.1, ...

Usage::

    goal = load_goal("mitbih:aami3_quick")
    space = goal.tune_space()                       # {"trainer.lr": tune.loguniform(...), ...}
    overrides = goal.compose_overrides({"trainer.lr": 0.001})
    # ["experiment=mitbih_aami3_quick", "trainer.epochs=3", "trainer.lr=0.001"]

Search-space keys, proposal keys and history columns are all Hydra override paths.
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from feedback.signals import SignalThresholds

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "DOMAIN_KINDS",
    "METRIC_MODES",
    "CampaignError",
    "CampaignGoal",
    "Constraint",
    "EscalationSettings",
    "LLMSettings",
    "SearchDomain",
    "TrialResources",
    "check_goal_composes",
    "default_campaigns_dir",
    "default_configs_dir",
    "format_override_value",
    "list_goals",
    "load_campaign_file",
    "load_goal",
]

logger = logging.getLogger(__name__)

CAMPAIGNS_DIR_ENV = "AGENTUNE_CAMPAIGNS_DIR"
CONFIGS_DIR_ENV = "AGENTUNE_CONFIG_DIR"  # the same variable as biosignals.train.config_dir()
_REPO_ROOT = Path(__file__).resolve().parents[1]

# kind -> what the list after it holds; integer kinds are inclusive at both ends.
DOMAIN_KINDS: dict[str, str] = {
    "uniform": "[low, high]",
    "quniform": "[low, high, q]",
    "loguniform": "[low, high]",
    "randint": "[low, high] (integers, both ends included)",
    "qrandint": "[low, high, q] (integers, both ends included)",
    "lograndint": "[low, high] (integers, both ends included)",
    "choice": "[value, ...]",
}
DomainKind = Literal[
    "uniform", "quniform", "loguniform", "randint", "qrandint", "lograndint", "choice"
]
_INT_KINDS = frozenset({"randint", "qrandint", "lograndint"})
_LOG_KINDS = frozenset({"loguniform", "lograndint"})
_QUANTIZED_KINDS = frozenset({"quniform", "qrandint"})

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

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_OVERRIDE_KEY_RE = re.compile(r"^(\+\+|\+)?[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Prefixes of real API keys (OpenAI, Anthropic, Hugging Face, Google, GitHub, Groq, AWS...).
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "AIza", "ghp_", "gho_", "github_pat_", "gsk_", "xai-", "AKIA")
_BARE_STRING_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-/.]*$")
_HYDRA_WORDS = frozenset({"true", "false", "null", "nan", "inf"})
_ERR_AT = "campaign_at"  # pydantic error context key: extra key path appended to the error's loc


class CampaignError(ValueError):
    """A campaign file or goal is invalid, or a goal spec names nothing that exists.

    The message is one line: `<file>: <key path>: <rule>, got <value>[; allowed: ...]`.
    `errors` holds every problem found (the message shows the first and counts the rest).
    """

    def __init__(self, message: str, errors: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.errors: list[str] = list(errors) if errors else [message]


def _fail(message: str, at: str = "") -> NoReturn:
    """Raise a validation error whose location gets `at` appended (see `_format_errors`)."""
    raise PydanticCustomError("campaign", message, {_ERR_AT: at})


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Schema(BaseModel):
    """Base of every campaign schema: strict types, frozen, unknown keys listed with a hint."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    _internal_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            _fail(f"must be a mapping of keys to values, got {_short(data)}")
        allowed = [name for name in cls.model_fields if name not in cls._internal_fields]
        for key in data:
            if key in cls.model_fields:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"unknown key{hint}; allowed: {', '.join(allowed)}", at=str(key))
        return data


class SearchDomain(_Schema):
    """One search-space entry, normalized from the YAML shape `{kind: [args...]}`.

    YAML shapes (integer kinds include both ends):
        `{uniform: [low, high]}`, `{quniform: [low, high, q]}`, `{loguniform: [low, high]}`,
        `{randint: [low, high]}`, `{qrandint: [low, high, q]}`, `{lograndint: [low, high]}`,
        `{choice: [v1, v2, ...]}` (scalars: str, int, float, bool).
    """

    kind: DomainKind
    low: float | None = None
    high: float | None = None
    q: float | None = None
    values: list[str | int | float | bool | None] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_shape(cls, data: Any) -> Any:
        shapes = "; ".join(f"{{{kind}: {args}}}" for kind, args in DOMAIN_KINDS.items())
        if isinstance(data, Mapping) and "kind" in data:
            return _normalized_args(data)  # constructed in code, or a model_dump() round trip
        if not isinstance(data, Mapping) or len(data) != 1:
            _fail(
                f"a search domain is one mapping of a kind to its arguments, got "
                f"{_short(data)}; allowed: {shapes}"
            )
        ((kind, args),) = data.items()
        if kind not in DOMAIN_KINDS:
            close = difflib.get_close_matches(str(kind), list(DOMAIN_KINDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"unknown domain kind {kind!r}{hint}; allowed: {', '.join(DOMAIN_KINDS)}")
        if not isinstance(args, list):
            _fail(f"{kind} takes a list {DOMAIN_KINDS[kind]}, got {_short(args)}", at=str(kind))
        if kind == "choice":
            return _choice_args(args)
        return _range_args(str(kind), args)

    def to_tune(self) -> Any:
        """The equivalent `ray.tune` search domain (imports ray lazily)."""
        from ray import tune

        low, high, q = self.low, self.high, self.q
        if self.kind == "choice":
            return tune.choice(list(self.values or []))
        assert low is not None and high is not None  # guaranteed by validation
        if self.kind == "uniform":
            return tune.uniform(low, high)
        if self.kind == "quniform":
            assert q is not None  # guaranteed by validation
            return tune.quniform(low, high, q)
        if self.kind == "loguniform":
            return tune.loguniform(low, high)
        if self.kind == "randint":
            return tune.randint(int(low), int(high) + 1)  # tune's upper bound is exclusive
        if self.kind == "lograndint":
            return tune.lograndint(int(low), int(high) + 1)  # tune's upper bound is exclusive
        # tune.qrandint includes the upper bound only when q > 1
        if q is None or int(q) == 1:
            return tune.randint(int(low), int(high) + 1)
        return tune.qrandint(int(low), int(high), int(q))

    def to_optuna(self) -> Any:
        """The equivalent `optuna.distributions` distribution (imports optuna lazily)."""
        from optuna import distributions as od

        if self.kind == "choice":
            return od.CategoricalDistribution(list(self.values or []))
        assert self.low is not None and self.high is not None  # guaranteed by validation
        if self.kind in _INT_KINDS:
            step = int(self.q) if self.q is not None else 1
            return od.IntDistribution(
                int(self.low), int(self.high), log=self.kind in _LOG_KINDS, step=step
            )
        return od.FloatDistribution(self.low, self.high, log=self.kind in _LOG_KINDS, step=self.q)

    def to_spec(self) -> dict[str, Any]:
        """The `search.space` spec-dict form (`{"type": ..., "low": ..., ...}`).

        Note the spec form follows Tune's bounds: `randint`/`lograndint` exclude `high` there,
        so their `high` is one more than the (inclusive) YAML bound.
        """
        if self.kind == "choice":
            return {"type": "choice", "values": list(self.values or [])}
        assert self.low is not None and self.high is not None  # guaranteed by validation
        if self.kind in _INT_KINDS:
            high = int(self.high) + (1 if self.kind in ("randint", "lograndint") else 0)
            spec: dict[str, Any] = {"type": self.kind, "low": int(self.low), "high": high}
            if self.q is not None:
                spec["q"] = int(self.q)
            return spec
        spec = {"type": self.kind, "low": self.low, "high": self.high}
        if self.q is not None:
            spec["q"] = self.q
        return spec

    def contains(self, value: object) -> bool:
        """Whether `value` is a point of this domain (quantization is not checked for floats)."""
        if self.kind == "choice":
            return any(_same_choice(value, v) for v in self.values or [])
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        assert self.low is not None and self.high is not None
        if self.kind in _INT_KINDS and not isinstance(value, numbers.Integral):
            return False
        return self.low <= float(value) <= self.high

    def sample_point(self) -> str | int | float | bool | None:
        """A deterministic point inside the domain (used to check that a goal composes)."""
        if self.kind == "choice":
            return (self.values or [""])[0]
        assert self.low is not None and self.high is not None
        if self.kind in _INT_KINDS:
            return int(self.low)
        if self.kind in _LOG_KINDS:
            return math.sqrt(self.low * self.high)
        return self.low

    def describe(self) -> str:
        """The YAML shape this domain came from, e.g. `loguniform[0.0001, 0.01]`."""
        if self.kind == "choice":
            return f"choice{self.values}"
        args = [self.low, self.high] + ([self.q] if self.q is not None else [])
        if self.kind in _INT_KINDS:
            return f"{self.kind}{[int(a) for a in args if a is not None]}"
        return f"{self.kind}{args}"


def _normalized_args(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the normalized form `{kind, low, high, q, values}` by the YAML-shape rules."""
    kind = data["kind"]
    if kind not in DOMAIN_KINDS:
        _fail(f"unknown domain kind {kind!r}; allowed: {', '.join(DOMAIN_KINDS)}", at="kind")
    if kind == "choice":
        wanted = {"kind", "values"}
        args: list[Any] = list(data.get("values") or [])
    else:
        wanted = {"kind", "low", "high"} | ({"q"} if kind in _QUANTIZED_KINDS else set())
        args = [data.get(name) for name in ("low", "high", "q") if name in wanted]
        if kind in _INT_KINDS:  # a model_dump() holds integer bounds as floats
            args = [int(a) if isinstance(a, float) and a.is_integer() else a for a in args]
    given = {k for k, v in data.items() if v is not None}
    if not given <= wanted:
        _fail(f"{kind} takes {', '.join(sorted(wanted))}, got {', '.join(sorted(given))}")
    return _choice_args(args) if kind == "choice" else _range_args(str(kind), args)


def _same_choice(a: object, b: object) -> bool:
    """Choice equality: bools only equal bools, numbers compare by value (numpy included)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _choice_args(args: list[Any]) -> dict[str, Any]:
    if not args:
        _fail("choice needs at least one value, got []", at="choice")
    for value in args:
        if value is not None and not isinstance(value, str | int | float | bool):
            _fail(
                f"choice values must be scalars (str, int, float, bool, null), got {_short(value)}",
                at="choice",
            )
    seen: list[Any] = []
    for value in args:
        if any(_same_choice(value, s) for s in seen):
            _fail(f"choice values must be distinct, got {value!r} twice", at="choice")
        seen.append(value)
    return {"kind": "choice", "values": list(args)}


def _range_args(kind: str, args: list[Any]) -> dict[str, Any]:
    quantized = kind in _QUANTIZED_KINDS
    want = 3 if quantized else 2
    if len(args) != want:
        _fail(f"{kind} takes {DOMAIN_KINDS[kind]}, got {_short(args)}", at=kind)
    is_int = kind in _INT_KINDS
    for name, value in zip(("low", "high", "q"), args, strict=False):
        ok = isinstance(value, int) if is_int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or (not is_int and not math.isfinite(value)):
            number = "an integer" if is_int else "a finite number"
            _fail(f"{name} must be {number}, got {name}={value!r}", at=kind)
    low, high = args[0], args[1]
    if not low < high:
        _fail(f"low must be < high, got low={low!r}, high={high!r}")
    if kind in _LOG_KINDS and low <= 0:
        _fail(f"{kind} needs positive bounds (0 < low < high), got low={low!r}, high={high!r}")
    out: dict[str, Any] = {"kind": kind, "low": low, "high": high}
    if quantized:
        q = args[2]
        if not q > 0:
            _fail(f"q must be > 0, got q={q!r}")
        steps = (high - low) / q
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            _fail(f"(high - low) must be a multiple of q, got low={low!r}, high={high!r}, q={q!r}")
        out["q"] = q
    return out


class TrialResources(_Schema):
    """Resources one trial asks Ray for; `gpu` may be fractional (0.25 = four trials per GPU)."""

    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)

    def as_ray(self) -> dict[str, float]:
        """`{"cpu": ..., "gpu": ...}` for `tune.with_resources`."""
        return {"cpu": self.cpu, "gpu": self.gpu}


_SIGNAL_DEFAULTS = SignalThresholds()


class EscalationSettings(_Schema):
    """When stagnation hands the search to the next tier.

    Attributes:
        window: completed trials the stagnation signal looks back over (>= 2).
        min_delta: smallest improvement of the best value, in metric units, that counts as
            progress over a window.
        patience: stagnant stretches of `window` trials tolerated before changing the model.
        hopeless_after: stop after this many completed trials in a row without a gain of
            more than the bar (None: never for this reason).
        noise: the run-to-run standard deviation of the metric for one config (e.g. the seed
            noise `bench/val_test_agreement.py` measures), in metric units; None: estimated
            from the campaign's own values.
        improvement_k: noise standard deviations a gain must exceed to count as progress (the
            bar is `max(min_delta, improvement_k * noise)`).
    """

    # One source of defaults: the signals' own (`feedback.SignalThresholds`).
    window: int = Field(default=_SIGNAL_DEFAULTS.window, ge=2)
    min_delta: float = Field(default=_SIGNAL_DEFAULTS.min_delta, ge=0)
    patience: int = Field(default=_SIGNAL_DEFAULTS.patience, ge=1)
    hopeless_after: int | None = Field(default=_SIGNAL_DEFAULTS.hopeless_after, ge=1)
    noise: float | None = Field(default=_SIGNAL_DEFAULTS.noise, gt=0)
    improvement_k: float = Field(default=_SIGNAL_DEFAULTS.improvement_k, ge=0)


class Constraint(_Schema):
    """Bounds on one value a trial reports (e.g. `num_params`); a violating trial is infeasible."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> Constraint:
        if self.min is None and self.max is None:
            _fail("a constraint needs min, max or both, got neither; allowed: min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            _fail(f"min must be <= max, got min={self.min!r}, max={self.max!r}")
        return self

    def violation(self, name: str, value: object) -> str | None:
        """Why `value` breaks this constraint, or None when it satisfies it."""
        if value is None:
            return f"{name} was not reported"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"{name} must be a number, got {value!r}"
        number = float(value)
        if math.isnan(number):
            return f"{name} is NaN"
        if self.min is not None and number < self.min:
            return f"{name}={value!r} < min {self.min!r}"
        if self.max is not None and number > self.max:
            return f"{name}={value!r} > max {self.max!r}"
        return None


class LLMSettings(_Schema):
    """The agent's model. `model: offline` is the deterministic offline model (no LLM, no network).

    The API key itself never appears in a campaign file: `api_key_env` names the environment
    variable that holds it. `api_base` points at an OpenAI-compatible server; `token_budget`
    caps the agent's tokens (in + out) over the campaign.
    """

    model: str = Field(default="offline", min_length=1)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_steps: int = Field(default=6, ge=1)
    api_key_env: str | None = None
    api_base: str | None = None
    token_budget: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in ("api_key", "key", "token", "api_token", "secret"):
                if key in data:
                    _fail(
                        "never put an API key in a campaign file; set it in an environment "
                        "variable and name that variable in api_key_env",
                        at=key,
                    )
        return data

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(_KEY_PREFIXES) or (len(value) >= 24 and not value.isupper()):
            shown = value[:4] + "..." if len(value) > 4 else "****"
            raise PydanticCustomError(
                "campaign",
                f"api_key_env must name an environment variable, and the value looks like an "
                f"API key itself ({shown}); remove it from the file, export it as e.g. "
                f"OPENAI_API_KEY and write api_key_env: OPENAI_API_KEY",
                {},
            )
        if not _ENV_NAME_RE.match(value):
            raise ValueError(
                f"api_key_env must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), "
                f"got {value!r}"
            )
        return value

    def api_key(self) -> str | None:
        """The key read from `api_key_env` now, or None when unset."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class CampaignGoal(_Schema):
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
    space: dict[str, SearchDomain]
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    max_tier: int = 0
    models: list[str] = Field(default_factory=list)
    constraints: dict[str, Constraint] = Field(default_factory=dict)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    seed: int | None = None
    # Each arm's Optuna sampler; GP beats TPE at campaign budgets (bench/tpe_settings.py).
    sampler: Literal["tpe", "gp"] = "gp"

    @field_validator("overrides")
    @classmethod
    def _check_overrides(cls, value: list[Any]) -> list[str]:
        for i, item in enumerate(value):
            if not isinstance(item, str):
                _fail(f"an override is a string 'key=value', got {_short(item)}", at=f"[{i}]")
            error = _override_syntax_error(item)
            if error:
                _fail(f"not a valid Hydra override ({error}), got {item!r}", at=f"[{i}]")
            key = item.split("=", 1)[0].lstrip("+~")
            if key == "experiment":
                _fail(
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
                _fail(f"a model is a configs/model/*.yaml name, got {_short(name)}", at=f"[{i}]")
            try:
                _check_config_name(name, "model", info.context)
            except ValueError as e:
                _fail(str(e), at=f"[{i}]")
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
            raise ValueError(f"space must map Hydra override paths to domains, got {_short(value)}")
        if not value:
            raise ValueError(
                "space needs at least one key (a Hydra override path such as trainer.lr), got {}"
            )
        for key in value:
            if not isinstance(key, str) or not _OVERRIDE_KEY_RE.match(key):
                _fail(
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
            _fail(
                f"{self.metric} is better when {better}, so mode must be {expected}, got "
                f"{self.mode!r}",
                at="mode",
            )
        if self.max_concurrent > self.budget:
            _fail(
                f"max_concurrent must be <= budget ({self.budget}), got {self.max_concurrent}",
                at="max_concurrent",
            )
        fixed = {o.split("=", 1)[0].lstrip("+~"): o for o in self.overrides}
        for key in self.space:
            if key.lstrip("+") in fixed:
                _fail(
                    f"{key} is both searched and fixed by override {fixed[key.lstrip('+')]!r}; "
                    f"remove one",
                    at=f"space.{key}",
                )
        if self.models and self.max_tier < 2:
            _fail(
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

        Maps `escalation.{window, min_delta, patience, hopeless_after, noise, improvement_k}`,
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
            target=self.target,
            budget=self.budget,
        )


# ---- Hydra value formatting ------------------------------------------------------------------


def format_override_value(value: Any) -> str:
    """Format a Python value as a Hydra override value that parses back to the same value.

    Floats use `repr` (shortest exact form: `0.001`, `1e-05`, `nan`, `inf`); ints, bools
    (`true`/`false`) and None (`null`) as Hydra spells them; strings bare when unambiguous,
    else single-quoted; lists/tuples as `[a,b]`, mappings as `{k:v}`.

    Raises:
        TypeError: a value of another type.
        ValueError: a string holding `${` (values are data, never interpolations).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return "nan"
        return repr(number)
    if isinstance(value, str):
        if "${" in value:
            raise ValueError(f"values may not hold interpolations ('${{'), got {value!r}")
        if _BARE_STRING_RE.match(value) and value.lower() not in _HYDRA_WORDS:
            return value
        return _quote(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{_map_key(k)}:{format_override_value(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    raise TypeError(
        f"cannot write a {type(value).__name__} as a Hydra override value, got {_short(value)}; "
        "use str, int, float, bool, None, list or dict"
    )


def _quote(text: str) -> str:
    # Hydra: inside '...', a quote is escaped as \' and backslashes only need doubling where
    # they come right before a quote (or the closing quote).
    escaped = re.sub(r"(\\*)('|\Z)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return f"'{escaped}'"


def _map_key(key: object) -> str:
    if not isinstance(key, str) or not _BARE_STRING_RE.match(key):
        raise ValueError(f"mapping keys in override values must be plain names, got {key!r}")
    return key


def iter_override_items(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`(override path, value)` pairs of a config; nested mappings join their keys with dots."""
    for key, value in config.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from iter_override_items(value, prefix=f"{full}.")
        else:
            yield full, value


def _override_syntax_error(text: str) -> str | None:
    """Hydra's parse error for one override string, or None when it parses."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_override(text)
    except HydraException as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


# ---- config directory checks ------------------------------------------------------------------


def default_configs_dir() -> Path:
    """The Hydra config dir: env AGENTUNE_CONFIG_DIR, else `<repo>/configs` (as biosignals)."""
    env = os.environ.get(CONFIGS_DIR_ENV)
    return Path(env).expanduser().resolve() if env else _REPO_ROOT / "configs"


def default_campaigns_dir() -> Path:
    """The campaigns dir: env AGENTUNE_CAMPAIGNS_DIR, else `<repo>/campaigns`."""
    env = os.environ.get(CAMPAIGNS_DIR_ENV)
    return Path(env).expanduser().resolve() if env else _REPO_ROOT / "campaigns"


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
            f"no {group} config {name!r} in {_display(group_dir)}{hint}, got {name!r}; "
            f"allowed: {', '.join(available) or '(none)'}"
        )


# ---- loading ---------------------------------------------------------------------------------


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _format_loc(parts: Sequence[int | str]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.startswith("[")):
            text += f"[{part}]" if isinstance(part, int) else part
        else:
            text += f".{part}" if text else str(part)
    return text


def _format_errors(error: ValidationError, where: str, prefix: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for item in error.errors():
        ctx = item.get("ctx") or {}
        loc: list[int | str] = [*prefix, *item["loc"]]
        extra = ctx.get(_ERR_AT)
        if extra:
            if str(extra).startswith("space."):
                loc = [*prefix, *str(extra).split(".", 1)]
            else:
                loc.append(str(extra))
        msg = str(item["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if item["type"] == "missing":
            msg = "required key is missing; see campaigns/README.md"
        elif item["type"] not in ("campaign", "value_error"):
            msg = msg.replace("Input should be", "must be") + f", got {_short(item['input'])}"
        lines.append(f"{where}: {_format_loc(loc)}: {msg}")
    return lines


def _campaign_error(lines: list[str]) -> CampaignError:
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return CampaignError(lines[0] + more, lines)


def _read_goals(path: Path) -> dict[str, Any]:
    where = _display(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CampaignError(f"{where}: {at}not valid YAML ({problem})") from e
    except OSError as e:
        raise CampaignError(f"{where}: cannot read the file ({e.strerror})") from e
    if not isinstance(raw, Mapping) or set(raw) != {"goals"}:
        keys = sorted(map(str, raw)) if isinstance(raw, Mapping) else _short(raw)
        raise CampaignError(
            f"{where}: a campaign file holds exactly one top-level key, goals, got {keys}; "
            "allowed: goals (a mapping of goal names to goals)"
        )
    goals = raw["goals"]
    if not isinstance(goals, Mapping) or not goals:
        raise CampaignError(f"{where}: goals: must map goal names to goals, got {_short(goals)}")
    for name in goals:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise CampaignError(
                f"{where}: goals.{name}: goal names are letters, digits, _ and -, starting with "
                f"a letter, got {name!r}"
            )
    return dict(goals)


def _validate_goal(path: Path, name: str, raw: Any, configs_dir: Path | None) -> CampaignGoal:
    where = _display(path)
    if isinstance(raw, Mapping):
        for internal in ("name", "source"):
            if internal in raw:
                raise CampaignError(
                    f"{where}: goals.{name}.{internal}: set by the loader (the goal's key and "
                    f"file), got {_short(raw[internal])}; remove it"
                )
        data: Any = {**raw, "name": name, "source": path}
    else:
        data = raw
    try:
        return CampaignGoal.model_validate(data, context={"configs_dir": configs_dir})
    except ValidationError as e:
        # not chained: pydantic's text repeats the input, which may hold a pasted API key
        raise _campaign_error(_format_errors(e, where, ["goals", name])) from None


def load_campaign_file(
    path: str | Path, *, configs_dir: Path | Literal["default"] | None = "default"
) -> dict[str, CampaignGoal]:
    """Every goal of one campaign file, validated, by name (file order).

    Args:
        path: the YAML file.
        configs_dir: Hydra config dir to check experiment/model names against; "default" uses
            `default_configs_dir()`, None skips those checks.

    Raises:
        CampaignError: the file is missing, not YAML, or any goal is invalid.
    """
    path = Path(path)
    cdir = default_configs_dir() if configs_dir == "default" else configs_dir
    goals = _read_goals(path)
    return {name: _validate_goal(path, name, raw, cdir) for name, raw in goals.items()}


def _campaign_files(campaigns_dir: Path) -> list[Path]:
    return sorted(campaigns_dir.glob("*.yaml"))


def _resolve_file(file_part: str, campaigns_dir: Path, spec: str) -> Path:
    if file_part.endswith((".yaml", ".yml")) or "/" in file_part or os.sep in file_part:
        path = Path(file_part).expanduser()
        if not path.is_file():
            raise CampaignError(f"{spec}: campaign file {file_part!r} does not exist")
        return path
    path = campaigns_dir / f"{file_part}.yaml"
    if not path.is_file():
        available = [p.stem for p in _campaign_files(campaigns_dir)]
        close = difflib.get_close_matches(file_part, available, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CampaignError(
            f"{spec}: no campaign file {file_part!r} in {_display(campaigns_dir)}{hint}; "
            f"allowed: {', '.join(available) or '(none)'}"
        )
    return path


def load_goal(
    spec: str,
    campaigns_dir: Path | None = None,
    *,
    configs_dir: Path | Literal["default"] | None = "default",
    compose: bool = False,
) -> CampaignGoal:
    """Load and validate one goal addressed as `file:goal`.

    Args:
        spec: `file:goal` (`mitbih:aami3_quick`), where file is a name in `campaigns_dir`
            (without `.yaml`) or a path to a YAML file (`./my.yaml:fast`).
        campaigns_dir: where campaign files live; default `default_campaigns_dir()`.
        configs_dir: Hydra config dir to check experiment/model names against; "default" uses
            `default_configs_dir()`, None skips those checks.
        compose: also run `check_goal_composes` (about 0.1 s per composition; needs
            configs_dir).

    Raises:
        CampaignError: a malformed spec, an unknown file or goal (the message lists what
            exists), or an invalid goal (the message names file, key, value and what is
            allowed).
    """
    file_part, sep, goal_name = spec.rpartition(":")
    if not sep or not file_part or not goal_name:
        raise CampaignError(
            f"a goal is addressed as file:goal (e.g. mitbih:aami3_quick), got {spec!r}; "
            "`agentune list` shows them"
        )
    cdir = Path(campaigns_dir) if campaigns_dir is not None else default_campaigns_dir()
    path = _resolve_file(file_part, cdir, spec)
    goals = _read_goals(path)
    if goal_name not in goals:
        close = difflib.get_close_matches(goal_name, list(goals), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CampaignError(
            f"{_display(path)}: goals.{goal_name}: no such goal{hint}, got {goal_name!r}; "
            f"allowed: {', '.join(goals)}"
        )
    resolved = default_configs_dir() if configs_dir == "default" else configs_dir
    goal = _validate_goal(path, goal_name, goals[goal_name], resolved)
    if compose:
        if resolved is None:
            raise CampaignError(f"{spec}: compose=True needs a configs_dir, got None")
        check_goal_composes(goal, resolved)
    return goal


def list_goals(campaigns_dir: Path | None = None) -> list[tuple[str, str]]:
    """`(file:goal, description)` for every goal in every campaign file, sorted by file.

    Each file is validated (without the configs-dir checks, to stay fast).

    Raises:
        CampaignError: a campaign file that does not load (the first one).
    """
    goals, errors = scan_goals(campaigns_dir)
    if errors:
        raise errors[0]
    return goals


def scan_goals(
    campaigns_dir: Path | None = None,
) -> tuple[list[tuple[str, str]], list[CampaignError]]:
    """Like `list_goals`, but a file that does not load is reported, not raised.

    Returns:
        `(file:goal, description)` of every goal of the files that load, and one
        `CampaignError` per file that does not (its message names the file and the reason).
    """
    cdir = Path(campaigns_dir) if campaigns_dir is not None else default_campaigns_dir()
    out: list[tuple[str, str]] = []
    errors: list[CampaignError] = []
    for path in _campaign_files(cdir):
        try:
            goals = load_campaign_file(path, configs_dir=None)
        except CampaignError as e:
            errors.append(e)
            continue
        out.extend((f"{path.stem}:{name}", goal.description) for name, goal in goals.items())
    return out, errors


def check_goal_composes(
    goal: CampaignGoal,
    configs_dir: Path | None = None,
    *,
    config_name: str = "config",
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
        config_name: the primary config (`configs/config.yaml`).
        models: also compose each `goal.models` entry.

    Returns:
        The composed config of the base experiment with the sample point.

    Raises:
        CampaignError: Hydra could not compose, a target is refused, or the metric disagrees;
            the message names the goal's file and key and the reason.
    """
    from omegaconf import OmegaConf

    from biosignals.train import COMPOSE_LOCK

    cdir = (configs_dir or default_configs_dir()).resolve()
    where = f"{_display(goal.source) if goal.source is not None else goal.spec}: goals.{goal.name}"
    sample = goal.sample_config()
    attempts: list[tuple[str, list[str]]] = [("", goal.compose_overrides(sample))]
    if models:
        non_model = {k: v for k, v in sample.items() if k.lstrip("+").split(".")[0] != "model"}
        for model in goal.models:
            overrides = [*goal.compose_overrides(non_model), f"model={model}"]
            attempts.append((f".models: model={model}:", overrides))
    with COMPOSE_LOCK:
        composed = _compose_attempts(cdir, config_name, attempts, where)
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
    cdir: Path, config_name: str, attempts: Sequence[tuple[str, list[str]]], where: str
) -> DictConfig:
    """Compose every attempt in a clean Hydra state, then put back whatever was there (e.g. a
    running app's); returns the first composed config.

    Raises:
        CampaignError: an attempt does not compose (naming its goal key and Hydra's reason).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    composed: DictConfig | None = None
    saved = Singleton.get_state()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(cdir), version_base="1.3"):
            for key, overrides in attempts:
                try:
                    cfg = compose(config_name, overrides=overrides)
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
    assert composed is not None  # attempts always holds the base experiment
    return composed
