"""The campaign the tools work on: one `ToolContext`, active process-wide while an agent runs.

The agent's tools take only the arguments a model gives them; everything else (which store,
which campaign, where configs are written, how many proposals one call may make) comes from
the active context:

    ctx = ToolContext(store_root=campaign_dir / "history", campaign="ecg-1", max_tier=3)
    with use_context(ctx):
        agent.run(task)          # every tool call reads ctx and appends to ctx.tool_log
    ctx.proposals                # what propose_trials accepted

The active context is a module global behind a lock, not a `contextvars.ContextVar`:
smolagents may run a code action on another thread, which would not see a context variable.
One agent runs at a time per process; `use_context` restores the previous context on exit, so
nesting works.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.proposer import AgentError, Proposal

if TYPE_CHECKING:
    from feedback import FeedbackStore

__all__ = ["ToolContext", "ToolError", "current_context", "log_call", "use_context"]

logger = logging.getLogger(__name__)

_ARGS_CHARS = 80  # a tool_log entry shows at most this many characters of arguments


class ToolError(AgentError, ValueError):
    """A tool call that cannot be answered; the message says what was wrong and what to do."""


@dataclass
class ToolContext:
    """What the tools know about the campaign they serve (see the module docstring).

    Attributes:
        store_root: the campaign's `FeedbackStore` root (`<campaign_dir>/history`); None:
            no campaign history (tools that need one say so).
        campaign: the campaign's name in that store.
        campaign_dir: where trial run dirs live
            (`<campaign_dir>/ray/experiment/trial_<trial_id>/run`); default
            `store_root.parent`.
        config_dir: the Hydra config folder; default `agent.safety.files.config_dir()`.
        generated_dir: the generated-model folder; default
            `agent.safety.files.generated_dir()`.
        tier: the tier the searcher asked for in this call.
        max_tier: the campaign's highest tier; `propose_trials` refuses anything above it.
        metric: the campaign's metric (`val/macro_f1`), when known.
        mode: `"min"` or `"max"`, when known.
        max_proposals: how many proposals `propose_trials` accepts in one agent call.
        smoke_dims: `in_channels`, `input_length`, `num_classes` (and optional
            `num_features`) of the campaign's data, for the smoke test of
            `register_generated_model`.
        proposal_check: run on every proposal before it is accepted (e.g.
            `agent.safety.ProposalCheck`); it returns the checked proposal or raises.
        history_chars: the length bound of `get_experiment_history()`.
        proposals: the sink: every proposal `propose_trials` accepted, in order.
        tool_log: one `"tool_name(args...)"` entry per tool call, in call order.
    """

    store_root: Path | None = None
    campaign: str | None = None
    campaign_dir: Path | None = None
    config_dir: Path | None = None
    generated_dir: Path | None = None
    tier: int = 2
    max_tier: int = 2
    metric: str | None = None
    mode: str | None = None
    max_proposals: int = 2
    smoke_dims: Mapping[str, int] | None = None
    proposal_check: Callable[[Proposal], Proposal] | None = None
    history_chars: int = 4000
    proposals: list[Proposal] = field(default_factory=list)
    tool_log: list[str] = field(default_factory=list)
    _store: Any = field(default=None, init=False, repr=False, compare=False)

    # --- resolved locations -------------------------------------------------------------

    def config_root(self) -> Path:
        """`config_dir`, else the safety layer's default (`$AGENTUNE_CONFIG_DIR` or configs/)."""
        from agent.safety.files import config_dir

        return Path(self.config_dir).expanduser().resolve() if self.config_dir else config_dir()

    def generated_root(self) -> Path:
        """`generated_dir`, else the default (`$AGENTUNE_GENERATED_DIR` or generated_models/)."""
        from agent.safety.files import generated_dir

        if self.generated_dir:
            return Path(self.generated_dir).expanduser().resolve()
        return generated_dir()

    def campaign_root(self) -> Path | None:
        """`campaign_dir`, else the parent of `store_root`, else None."""
        if self.campaign_dir is not None:
            return Path(self.campaign_dir)
        if self.store_root is not None:
            return Path(self.store_root).parent
        return None

    def store(self) -> FeedbackStore | None:
        """A reader of the campaign's store, or None when there is none on disk.

        Never creates a store: a `store_root` that is not an existing directory gives None.
        """
        if self.store_root is None or not Path(self.store_root).is_dir():
            return None
        if self._store is None:
            from feedback import FeedbackStore

            self._store = FeedbackStore(self.store_root)
        store: FeedbackStore = self._store
        return store

    def require_campaign(self, what: str) -> tuple[FeedbackStore, str]:
        """(store, campaign) for a tool that needs the campaign history.

        Raises:
            ToolError: no active campaign (no store on disk or no campaign name).
        """
        store = self.store()
        if store is None or not self.campaign:
            raise ToolError(
                f"{what}: no campaign history is available (no campaign is active in this "
                "session); read a single run instead with read_run_results('<run directory "
                "path>') or suggest_search_space('<run directory path>')"
            )
        return store, self.campaign


_LOCK = threading.Lock()
_ACTIVE: ToolContext | None = None


@contextmanager
def use_context(ctx: ToolContext) -> Iterator[ToolContext]:
    """Make `ctx` the active context for the duration of the `with` block.

    Process-wide (every thread sees it); the previous context comes back on exit.
    """
    global _ACTIVE
    if not isinstance(ctx, ToolContext):
        raise TypeError(f"use_context takes a ToolContext, got {type(ctx).__name__}")
    with _LOCK:
        previous, _ACTIVE = _ACTIVE, ctx
    try:
        yield ctx
    finally:
        with _LOCK:
            _ACTIVE = previous


def current_context() -> ToolContext:
    """The active context, else a fresh default `ToolContext()` (no campaign, tier 2)."""
    with _LOCK:
        active = _ACTIVE
    return active if active is not None else ToolContext()


def clip(text: str, limit: int = _ARGS_CHARS) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def log_call(ctx: ToolContext, name: str, *args: object, shown: str | None = None) -> str:
    """Append `"name(args)"` to `ctx.tool_log` and return it.

    Args:
        ctx: the context the tool serves.
        name: the tool's name.
        *args: the call's arguments, shown by `repr`.
        shown: the argument text to show instead of the reprs (e.g. a code's length).
    """
    text = shown if shown is not None else ", ".join(repr(a) for a in args)
    entry = f"{name}({clip(text)})"
    ctx.tool_log.append(entry)
    logger.debug("tool call %s", entry)
    return entry
