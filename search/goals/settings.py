"""The settings a goal holds: trial resources, escalation, constraints and the agent's LLM.

Each is a strict, frozen pydantic model (`search.goals._base.Schema`) that `CampaignGoal`
nests under its own key (`resources:`, `escalation:`, `constraints.<name>:`, `llm:`).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from feedback.signals import SignalThresholds
from search.goals._base import Schema, fail

__all__ = ["Constraint", "EscalationSettings", "LLMSettings", "TrialResources"]

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Prefixes of real API keys (OpenAI, Anthropic, Hugging Face, Google, GitHub, Groq, AWS...).
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "AIza", "ghp_", "gho_", "github_pat_", "gsk_", "xai-", "AKIA")


class TrialResources(Schema):
    """Resources one trial asks Ray for; `gpu` may be fractional (0.25 = four trials per GPU)."""

    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)

    def as_ray(self) -> dict[str, float]:
        """`{"cpu": ..., "gpu": ...}` for `tune.with_resources`."""
        return {"cpu": self.cpu, "gpu": self.gpu}


_SIGNAL_DEFAULTS = SignalThresholds()


class EscalationSettings(Schema):
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
        trend_k: noise standard deviations per window the values' recent trend must gain for
            a campaign still rising to count as progress (`feedback.signals.recent_trend`).
    """

    # One source of defaults: the signals' own (`feedback.SignalThresholds`).
    window: int = Field(default=_SIGNAL_DEFAULTS.window, ge=2)
    min_delta: float = Field(default=_SIGNAL_DEFAULTS.min_delta, ge=0)
    patience: int = Field(default=_SIGNAL_DEFAULTS.patience, ge=1)
    hopeless_after: int | None = Field(default=_SIGNAL_DEFAULTS.hopeless_after, ge=1)
    noise: float | None = Field(default=_SIGNAL_DEFAULTS.noise, gt=0)
    improvement_k: float = Field(default=_SIGNAL_DEFAULTS.improvement_k, ge=0)
    trend_k: float = Field(default=_SIGNAL_DEFAULTS.trend_k, ge=0)


class Constraint(Schema):
    """Bounds on one value a trial reports (e.g. `num_params`); a violating trial is infeasible."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> Constraint:
        if self.min is None and self.max is None:
            fail("a constraint needs min, max or both, got neither; allowed: min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            fail(f"min must be <= max, got min={self.min!r}, max={self.max!r}")
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


class LLMSettings(Schema):
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
                    fail(
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
