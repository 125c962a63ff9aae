"""`AgentSearcher` checkpoint files: its pickled state, written atomically, read with checks.

The state is the searcher's attributes; each part drops its own unpicklable handles when
pickled (the proposer's thread, the inbox, the store's caches, a hook that does not pickle).
"""

from __future__ import annotations

import os
import pickle
import uuid
from typing import Any

__all__ = ["read_state", "write_state"]

_REQUIRED = ("_registry", "_trials", "_agent")  # attributes every checkpoint of this layout has

_OLD_LAYOUT = (
    "{path!r} was written by an AgentSearcher from before its state was split into parts "
    "({why}); it cannot be restored. Start the campaign again (its store is kept) and replay "
    "the earlier runs with AgentSearcher.warm_start(store.runs(campaign=...))."
)


def write_state(path: str, state: dict[str, Any]) -> None:
    """Pickle `state` to `path`: a temporary name, then `os.replace`, so a crash leaves the
    previous checkpoint intact."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_state(path: str) -> dict[str, Any]:
    """The state `write_state` wrote.

    Raises:
        ValueError: the file is not an `AgentSearcher` checkpoint, or one of an older layout.
    """
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except (AttributeError, ImportError) as e:  # a class it names no longer exists
        raise ValueError(_OLD_LAYOUT.format(path=path, why=e)) from e
    if not isinstance(state, dict) or "_registry" not in state:
        raise ValueError(
            f"{path!r} is not an AgentSearcher checkpoint (got {type(state).__name__}); pass a "
            "file written by AgentSearcher.save."
        )
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(_OLD_LAYOUT.format(path=path, why=f"no {', '.join(missing)}"))
    return state
