"""smolagents models for the agent: the deterministic offline policy, its architecture
templates (tier 3), and the real-LLM backends.

`OfflineModel` is the `llm.model: offline` default: a smolagents `Model` whose replies are
code actions that call the agent's tools, decided from the messages alone.
`agent.models.architectures` holds the template family it writes tier-3 models from.
`agent.models.backends.build_model` builds smolagents' `OpenAIServerModel` or `LiteLLMModel`
from the campaign's `llm` settings, wrapped in a picklable `LazyModel` that holds no key.
"""

from __future__ import annotations

from agent.models.architectures import (
    DEFAULT_MAX_PARAMS,
    FAMILY_BASES,
    ArchitectureSpec,
    base_spec,
    estimate_params,
    family_of,
    model_args,
    mutations,
    render_source,
)
from agent.models.backends import (
    AgentModelError,
    LazyModel,
    ModelConfigError,
    ModelSettings,
    build_model,
)
from agent.models.offline import FACTS_PREFIX, OfflineModel

__all__ = [
    "DEFAULT_MAX_PARAMS",
    "FACTS_PREFIX",
    "FAMILY_BASES",
    "AgentModelError",
    "ArchitectureSpec",
    "LazyModel",
    "ModelConfigError",
    "ModelSettings",
    "OfflineModel",
    "base_spec",
    "build_model",
    "estimate_params",
    "family_of",
    "model_args",
    "mutations",
    "render_source",
]
