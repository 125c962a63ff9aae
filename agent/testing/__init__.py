"""Test helpers that ship with the package: a scripted OpenAI-compatible server on loopback.

`ScriptedOpenAIServer` answers `POST /v1/chat/completions` like OpenAI does, from a script of
`Reply`, `Status`, `Hang` and `Malformed` steps or from a `responder` function, so tests (and a
person, through `python -m agent.testing.openai_stub`) can drive the real client path of
`agent.models.backends` with no network and no API key.

The names are loaded on first use, so `python -m agent.testing.openai_stub` does not import
its own module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.testing.openai_stub import (
        Hang,
        Malformed,
        RecordedRequest,
        Reply,
        Responder,
        ScriptedOpenAIServer,
        Status,
        Step,
        offline_responder,
    )

__all__ = [
    "Hang",
    "Malformed",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedOpenAIServer",
    "Status",
    "Step",
    "offline_responder",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("agent.testing.openai_stub"), name)
    raise AttributeError(f"module 'agent.testing' has no attribute {name!r}")
