"""The safety layer in front of everything the agent writes (see SECURITY.md).

* `policy`: the allowlists shared by every check.
* `errors`: `SafetyError` and its subclasses (one-line messages an LLM can act on).
"""

from __future__ import annotations

from agent.safety.errors import (
    SafetyError,
    UnsafeConfigError,
    UnsafeModelError,
    UnsafeOverrideError,
)

__all__ = ["SafetyError", "UnsafeConfigError", "UnsafeModelError", "UnsafeOverrideError"]
