"""The safety layer in front of everything the agent writes (threat model: SECURITY.md).

Every write path goes through it:

* `ProposalCheck` (`proposals`): every proposal before it becomes an arm: the override
  policy (`overrides`, `values`), the model-code check, and in a campaign the composed,
  target-checked trial config (the target rules live in `biosignals.config_safety`).
* `create_config_variant`, `compose_experiment_config` (`configs`): tier-2 YAML, through the
  safe loader (`yaml_io`) and the file rules (`files`).
* `register_generated_model` (`models`): tier-3 code, after `validate_model_source`
  (`code_policy`, static) and `smoke_test` (`smoke`, a sandboxed child process with the
  runtime guard of `guard` and the restricted builtins of `sandbox`).
* `check_generated_trial`, `guarded_generated_model` (`worker`): a tier-3 trial on a worker.
* `check_model_file` (`model_check`): what `agentune check-model` runs.

`policy` holds the allowlists every check shares; `errors` the exceptions: each refusal is a
`SafetyError` (a `ValueError`) with a one-line message saying what to try instead.
"""

from __future__ import annotations

from agent.safety.code_policy import CodeReport, require_valid_model_source, validate_model_source
from agent.safety.configs import compose_experiment_config, create_config_variant
from agent.safety.errors import (
    SafetyError,
    UnsafeConfigError,
    UnsafeModelError,
    UnsafeOverrideError,
)
from agent.safety.model_check import ModelCheck, check_model_file
from agent.safety.models import RegisteredModel, register_generated_model
from agent.safety.overrides import CheckedOverride, check_overrides
from agent.safety.proposals import ProposalCheck
from agent.safety.smoke import SmokeLimits, SmokeResult, smoke_test
from agent.safety.worker import check_generated_trial, guarded_generated_model

__all__ = [
    "CheckedOverride",
    "CodeReport",
    "ModelCheck",
    "ProposalCheck",
    "RegisteredModel",
    "SafetyError",
    "SmokeLimits",
    "SmokeResult",
    "UnsafeConfigError",
    "UnsafeModelError",
    "UnsafeOverrideError",
    "check_generated_trial",
    "check_model_file",
    "check_overrides",
    "compose_experiment_config",
    "create_config_variant",
    "guarded_generated_model",
    "register_generated_model",
    "require_valid_model_source",
    "smoke_test",
    "validate_model_source",
]
