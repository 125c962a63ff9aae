"""The `Proposer` protocol: what the searcher asks of an agent, and what it gets back.

`search.AgentSearcher` calls `Proposer.propose(context, n)` on a background thread when its
escalation policy decides the campaign needs new experiment configs (tier 2: variants of the
built-in models; tier 3: generated model code). The searcher never waits for the answer inside
`suggest()`: the proposals become new *arms* once they arrive.

Call order and ownership:
    1. The searcher builds a `ProposalContext` (a frozen snapshot: plain data only) and submits
       `proposer.propose(context, n)` to its single worker thread.
    2. The proposer returns at most `n` `Proposal` objects (fewer, or none, is fine). It may raise
       any `AgentError` (or any other exception): the searcher records an agent-failure event in
       the feedback store and keeps tuning with Optuna.
    3. The searcher validates each proposal (tier within the campaign's `max_tier`, overrides are
       strings, tier 3 carries `model_source`, the space converts), then passes it through the
       safety layer's proposal check (`agent.safety.ProposalCheck`: the override policy, the
       model-code check, and in a campaign the composed, target-checked trial config) on the
       background thread, and turns the accepted ones into arms; refused ones are written to
       the store as `agent_failure` events with the reason.

Optional proposer attributes the searcher reads: `last_call` (an `AgentCallReport` of the
latest call; an exception may carry one as `.report`), written as an ``agent_call`` event with
the call's tokens, tool calls and outcome; `budget_spent` (True once the campaign's token
budget is used up: the searcher then stops calling and says so once in the history), with
`tokens_used` and `token_budget` for that message. `agent.SmolagentsProposer` has all of them.

Picklability: the searcher is pickled by Ray Tune (at `Tuner` construction and at every
experiment checkpoint), and the proposer travels with it. A proposer must therefore be
picklable, which means building any unpicklable handle (a smolagents `CodeAgent`, an HTTP
client) lazily inside `propose` and dropping it in `__getstate__`.

Keys in `Proposal.params` and `Proposal.space` are Hydra override paths (`trainer.lr`,
`model.width`), the same vocabulary as the campaign's search space and the Parquet history.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

# Re-exported: callers import them from here; the one override parser lives in agent.overrides.
from agent.overrides import model_from_overrides, override_key

__all__ = [
    "AgentCallReport",
    "AgentError",
    "ArmSummary",
    "Proposal",
    "ProposalContext",
    "ProposalError",
    "Proposer",
    "model_from_overrides",
    "override_key",
]

ProposalOrigin = Literal["agent", "human"]


class AgentError(Exception):
    """Base class of every error raised by the `agent` package."""


class ProposalError(AgentError, ValueError):
    """A proposal that breaks a rule of the `Proposal` contract (wrong tier, bad override...)."""


def _new_proposal_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Proposal:
    """One experiment config the agent (or a human) wants the campaign to train.

    A proposal becomes an *arm* of the searcher: a fixed set of Hydra overrides with its own
    Optuna study over the numeric space. The arm's first trial evaluates `params` (when given);
    later trials are sampled by Optuna's TPE inside the arm's space.

    Attributes:
        name: short human-readable arm name (`"resnet1d-w64"`); made unique by the searcher.
        tier: 2 for a config variant of an existing model, 3 for a generated model.
        overrides: Hydra override strings fixed for every trial of the arm
            (`["model=resnet1d", "model.width=64"]`).
        params: an initial point to evaluate first, keyed by override path
            (`{"trainer.lr": 3e-3}`); keys outside the arm's space are ignored with a warning.
        space: additions or replacements for the base search space, keyed by override path.
            Values are Ray Tune domains, Optuna distributions, or spec dicts such as
            `{"type": "loguniform", "low": 1e-4, "high": 1e-2}` (see `search.space`).
            `None` keeps the base space.
        drop_params: override paths removed from the base space for this arm (for example a
            `model.width` the new model does not have). Paths fixed by `overrides` are
            dropped automatically.
        model_source: Python source of a generated model (tier 3 only); it travels with every
            trial of the arm in the suggested config, and the worker validates it again.
        model_config: the registered generated model's config (`_target_` plus its
            hyperparameters; tier 3 only). Filled in by the safety layer's proposal check from
            the registration; it travels with the trials so a worker without the driver's
            `configs/` can compose the model.
        model: short model name for bookkeeping (`"resnet1d"`); defaults to the value of a
            `model=` override when there is one.
        rationale: why the agent proposes it; shown in the dashboard and approval prompts.
        origin: `"agent"` or `"human"`.
        approval: outcome of the approval hook (`"approved"`, `"modified"`, `"auto"`), or None.
        proposal_id: unique id; generated when not given.
        tokens_in: LLM input tokens spent on the proposal (0 when unknown).
        tokens_out: LLM output tokens spent on the proposal (0 when unknown).
        tool_calls: the agent's tool calls in the call that produced the proposal
            (`"check_drift()"`, `"register_generated_model('gen_se_0', <2210 chars>, ...)"`),
            in order; empty when not produced by an agent.
    """

    name: str
    tier: int
    overrides: Sequence[str] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    space: Mapping[str, Any] | None = None
    drop_params: Sequence[str] = ()
    model_source: str | None = None
    model_config: Mapping[str, Any] | None = None
    model: str | None = None
    rationale: str = ""
    origin: ProposalOrigin = "agent"
    approval: str | None = None
    proposal_id: str = field(default_factory=_new_proposal_id)
    tokens_in: int = 0
    tokens_out: int = 0
    tool_calls: tuple[str, ...] = ()

    def model_name(self) -> str | None:
        """The proposal's model name: `model` if set, else the value of a `model=` override."""
        if self.model:
            return self.model
        return model_from_overrides(self.overrides)


@dataclass(frozen=True)
class ArmSummary:
    """What the proposer is told about one existing arm.

    Attributes:
        name: arm name.
        tier: 0 for the campaign's base config, 2 or 3 for proposals.
        overrides: the arm's fixed Hydra overrides.
        model: model name, when known.
        n_results: trials that finished (any status).
        n_completed: trials with a usable metric value.
        best_value: best metric value so far, or None.
        best_params: the parameters of the best trial (empty when none).
    """

    name: str
    tier: int
    overrides: tuple[str, ...]
    model: str | None
    n_results: int
    n_completed: int
    best_value: float | None
    best_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProposalContext:
    """Snapshot of the campaign handed to `Proposer.propose` (plain data, safe across threads).

    Attributes:
        tier: the tier the searcher asks for (2: config variants, 3: generated models).
        metric: the metric being optimised (`"val/macro_f1"`).
        mode: `"min"` or `"max"`.
        campaign: campaign name, or None outside a campaign.
        reasons: why the escalation happened (the feedback recommendation's reasons).
        space: the base search space as readable strings, keyed by override path
            (`{"trainer.lr": "FloatDistribution(low=0.0001, high=0.1, log=True, step=None)"}`).
        arms: every arm so far, best first.
        models: the built-in models the campaign may use (`["cnn1d", "resnet1d"]`).
        tried_models: models already trained in this campaign.
        history: a compact text history of the campaign (`FeedbackStore.history_for_agent`),
            empty when the searcher has no store.
        best_value: best metric value over all arms, or None.
        max_tier: the highest tier the campaign allows.
        constraints: result key -> (op, bound) every trial must meet, e.g.
            `{"num_params": ("<=", 100000)}`; violating trials are recorded as infeasible.
        store_root: the campaign's `FeedbackStore` folder, so the agent's read-only tools
            can open it (None without a store).
    """

    tier: int
    metric: str
    mode: str
    campaign: str | None = None
    reasons: tuple[str, ...] = ()
    space: Mapping[str, str] = field(default_factory=dict)
    arms: tuple[ArmSummary, ...] = ()
    models: tuple[str, ...] = ()
    tried_models: tuple[str, ...] = ()
    history: str = ""
    best_value: float | None = None
    max_tier: int = 2
    constraints: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    store_root: str | None = None

    @property
    def untried_models(self) -> tuple[str, ...]:
        """Models from `models` not yet in `tried_models`, in campaign order."""
        return tuple(m for m in self.models if m not in self.tried_models)


@dataclass(frozen=True)
class AgentCallReport:
    """What one proposer call cost and did; the searcher writes it as an ``agent_call`` event.

    A proposer may expose the report of its latest call as `last_call` (and attach it to an
    exception it raises as `.report`); the searcher reads it right after the call.

    Attributes:
        model: the model id (`"offline"`, `"gpt-4o-mini"`).
        tokens_in: input tokens over the call's model requests.
        tokens_out: output tokens over the call's model requests.
        steps: agent steps taken.
        tool_calls: the tool calls in order (see `Proposal.tool_calls`).
        duration_s: wall time of the call.
        outcome: `"ok"`, `"failed"`, `"interrupted"` (wall time, step or token cap) or
            `"skipped"` (the token budget was already spent).
        error: one line on what went wrong, or None.
        tokens_total: tokens spent by this proposer over the campaign, this call included.
        token_budget: the campaign's token cap, or None.
    """

    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    steps: int = 0
    tool_calls: tuple[str, ...] = ()
    duration_s: float = 0.0
    outcome: str = "ok"
    error: str | None = None
    tokens_total: int = 0
    token_budget: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for event data)."""
        return {
            "model": self.model,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "steps": self.steps,
            "tool_calls": list(self.tool_calls),
            "duration_s": round(self.duration_s, 3),
            "outcome": self.outcome,
            "error": self.error,
            "tokens_total": self.tokens_total,
            "token_budget": self.token_budget,
        }


@runtime_checkable
class Proposer(Protocol):
    """Anything that turns a campaign snapshot into new experiment configs.

    Implementations: the smolagents-backed proposer (the LLM), a scripted one in tests, a
    human at a prompt. Must be picklable (see the module docstring); `propose` runs on the
    searcher's background thread, one call at a time.

    Example:
        .. code-block:: python

            class TwoModels:
                def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
                    return [
                        Proposal(name=m, tier=2, overrides=[f"model={m}"])
                        for m in context.untried_models[:n]
                    ]
    """

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        """Return at most `n` proposals for `context.tier` (an empty list is allowed).

        Args:
            context: the campaign snapshot.
            n: the most proposals the searcher will use from this call.

        Raises:
            AgentError: when the agent cannot produce proposals; the searcher logs it as an
                agent-failure event and continues.
        """
        ...
