"""The agent's tools that write: every one of them goes through the safety layer.

Plain functions, callable with these keyword arguments (the agent issue wraps them as
smolagents tools; each error is a `ValueError` subclass whose one-line message says what was
wrong and what to try instead, because a model reads it):

* `create_config_variant(group, base, name, mods)`: tier 2, a variant of an existing
  `configs/<group>/<base>.yaml` written as `configs/<group>/<name>.yaml`.
* `compose_experiment_config(name, components, overrides)`: tier 2, a new
  `configs/experiment/<name>.yaml` from existing component configs.
* `register_generated_model(name, code, args)`: tier 3, model code that passed the static
  check and the sandboxed smoke test, written as `generated_models/<name>.py` with
  `configs/model/<name>.yaml`.
"""

from __future__ import annotations

from agent.safety.configs import compose_experiment_config, create_config_variant
from agent.safety.models import RegisteredModel, register_generated_model

__all__ = [
    "RegisteredModel",
    "compose_experiment_config",
    "create_config_variant",
    "register_generated_model",
]
