"""`SmolagentsProposer`: the searcher's agent, a smolagents `CodeAgent` that calls agentune's tools.

`search.AgentSearcher` calls `propose(context, n)` on its background thread when tuning stalls.
Each call builds a fresh `CodeAgent` (agents hold locks and are not picklable; the proposer is
pickled with the searcher) over:

* the tools of `agent.tools.tools_for_tier(context.max_tier)`: read-only analysis always,
  config writers from tier 2, model code from tier 3, and `propose_trials`;
* the campaign's model: the offline policy (`agent.models.OfflineModel`, the default) or a
  real LLM (`agent.models.backends`), metered by a wrapper that counts every request's tokens
  and refuses a request once the wall time or the campaign's token budget is spent;
* agentune's system prompt (`agent/prompts/code_agent.yaml`) and a task that states what is
  asked and the campaign's facts.

The agent's code actions run in smolagents' local executor with no extra authorised imports:
the tools are its only way to read or change anything, and everything they write goes through
the safety layer. The proposals are those `propose_trials` accepted, else the ones in the final
answer; each carries the call's tool calls and its share of the tokens. A failing model (HTTP
errors, timeouts, garbage) or agent never ends the campaign: `propose` raises an `AgentError`
with the reason and the call's `AgentCallReport` attached, which the searcher records.

Token budget: `tokens_used` counts every request over the campaign (it travels with the
pickled proposer, and a resumed campaign also counts the ``agent_call`` events in its history);
once it reaches `token_budget`, `budget_spent` is True and the searcher stops calling.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.proposer import AgentCallReport, AgentError, Proposal, ProposalContext

if TYPE_CHECKING:
    from smolagents.models import ChatMessage, Model

logger = logging.getLogger(__name__)

__all__ = ["AgentBudgetError", "SmolagentsProposer", "proposer_from_settings"]

DEFAULT_WALL_TIME_S = 300.0


class AgentBudgetError(AgentError):
    """The call's wall time or the campaign's token budget ran out before a model request."""


def _one_line(text: str, n: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@functools.cache
def _metered_model_class() -> type:
    """`_MeteredModel`, defined on first use so importing this module does not import
    smolagents' model stack."""
    from smolagents.models import Model

    class _MeteredModel(Model):
        """Counts each request's tokens and refuses requests past the deadline or budget."""

        def __init__(
            self, inner: Model, *, deadline: float, budget_left: int | None, model_id: str
        ) -> None:
            super().__init__(model_id=model_id)
            self.inner = inner
            self.deadline = deadline
            self.budget_left = budget_left
            self.tokens_in = 0
            self.tokens_out = 0
            self.requests = 0
            self.stopped: str | None = None

        def generate(
            self,
            messages: list[Any],
            stop_sequences: list[str] | None = None,
            response_format: dict[str, str] | None = None,
            tools_to_call_from: list[Any] | None = None,
            **kwargs: Any,
        ) -> ChatMessage:
            if time.monotonic() >= self.deadline:
                self.stopped = "the agent's wall time ran out"
                raise AgentBudgetError(self.stopped)
            spent = self.tokens_in + self.tokens_out
            if self.budget_left is not None and spent >= self.budget_left:
                self.stopped = "the campaign's token budget is spent"
                raise AgentBudgetError(self.stopped)
            message = self.inner.generate(
                messages,
                stop_sequences=stop_sequences,
                response_format=response_format,
                tools_to_call_from=tools_to_call_from,
                **kwargs,
            )
            self.requests += 1
            usage = getattr(message, "token_usage", None)
            if usage is not None:
                self.tokens_in += int(usage.input_tokens or 0)
                self.tokens_out += int(usage.output_tokens or 0)
            return message

    return _MeteredModel


def _failure_reason(error: BaseException) -> str:
    """One line for an agent failure: the innermost cause that says something."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for candidate in reversed(seen):
        if isinstance(candidate, AgentError) or type(candidate).__module__.startswith("agent."):
            return _one_line(f"{type(candidate).__name__}: {candidate}")
    return _one_line(f"{type(error).__name__}: {error}")


class SmolagentsProposer:
    """A `Proposer` backed by a smolagents `CodeAgent` (see the module docstring).

    Args:
        model: a smolagents `Model` (the offline policy, a backend from
            `agent.models.backends.build_model`, or a scripted fake in tests); None: the
            offline model. Must be picklable (backends are: they drop their client and key).
        max_steps: agent steps per call (`llm.max_steps`).
        wall_time_s: the most time one call may take; no model request starts after it.
        token_budget: the campaign's cap on tokens (in + out) over all calls; None: no cap.
        config_dir: Hydra config folder the tools read and write (default: the safety
            layer's, `$AGENTUNE_CONFIG_DIR` or the repository's `configs/`).
        generated_dir: where tier-3 code is registered (default `generated_models/`).
        smoke_dims: in_channels, input_length, num_classes (and optional num_features) for
            the tier-3 smoke test.
        proposal_check: run by `propose_trials` so the agent sees refusals at once (the
            searcher checks again); None: the structural `agent.safety.ProposalCheck()`.
        history_chars: length cap of the history text in the task.
        temperature: recorded for the report; the backend applies it.

    Attributes:
        tokens_used: tokens spent over the campaign so far.
        last_call: the `AgentCallReport` of the latest call, or None.
    """

    def __init__(
        self,
        model: Model | None = None,
        *,
        max_steps: int = 6,
        wall_time_s: float = DEFAULT_WALL_TIME_S,
        token_budget: int | None = None,
        config_dir: str | Path | None = None,
        generated_dir: str | Path | None = None,
        smoke_dims: Mapping[str, int] | None = None,
        proposal_check: Any = None,
        history_chars: int = 4000,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if token_budget is not None and token_budget < 1:
            raise ValueError(f"token_budget must be >= 1 or None, got {token_budget}")
        if model is None:
            from agent.models.offline import OfflineModel

            model = OfflineModel()
        self.model = model
        self.max_steps = max_steps
        self.wall_time_s = float(wall_time_s)
        self.token_budget = token_budget
        self.config_dir = None if config_dir is None else str(config_dir)
        self.generated_dir = None if generated_dir is None else str(generated_dir)
        self.smoke_dims = dict(smoke_dims) if smoke_dims else None
        if proposal_check is None:
            from agent.safety.proposals import ProposalCheck

            proposal_check = ProposalCheck()
        self.proposal_check = proposal_check
        self.history_chars = history_chars
        self.tokens_used = 0
        self.last_call: AgentCallReport | None = None

    # ------------------------------------------------------------------ budget

    @property
    def model_id(self) -> str:
        """The model's id (`"offline"`, `"gpt-4o-mini"`)."""
        return str(getattr(self.model, "model_id", None) or type(self.model).__name__)

    @property
    def budget_spent(self) -> bool:
        """Whether the token budget is spent (never, without one)."""
        return self.token_budget is not None and self.tokens_used >= self.token_budget

    def _sync_tokens(self, store_root: str | None, campaign: str | None) -> None:
        """Count the tokens the history's ``agent_call`` events record (a resumed campaign,
        or a searcher restored from a checkpoint taken while a call was running)."""
        if store_root is None or campaign is None:
            return
        from agent.summary import recorded_tokens

        try:
            from feedback import FeedbackStore

            events = FeedbackStore(store_root).events(campaign=campaign, kind="agent_call")
        except (OSError, ValueError) as e:
            logger.debug("Could not read the agent_call events: %s", e)
            return
        self.tokens_used = max(self.tokens_used, recorded_tokens(events))

    # ------------------------------------------------------------------ calls

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        """Run the agent for `context.tier` and return at most `n` checked-by-tools proposals.

        Raises:
            AgentError: the model or the agent failed, or the budget was spent before any
                proposal; `.report` holds the call's `AgentCallReport`.
        """
        from agent.prompts import context_facts, propose_task
        from agent.tools import proposals_from_answer, tools_for_tier

        self._sync_tokens(context.store_root, context.campaign)
        facts = context_facts(context, n, rejected=self._rejected(context))
        task = propose_task(facts, context.history)
        tool_context = self._tool_context(
            context.store_root,
            context.campaign,
            tier=context.tier,
            max_tier=context.max_tier,
            metric=context.metric,
            mode=context.mode,
            max_proposals=n,
        )
        output, report, error = self._run(task, tools_for_tier(context.max_tier), tool_context)
        proposals = list(tool_context.proposals)
        if not proposals and error is None:
            proposals = proposals_from_answer(output, tool_context)
        proposals = proposals[:n]
        self.last_call = report
        if not proposals and error is not None:
            raise _with_report(AgentError(error), report)
        if not proposals:
            logger.info("The agent proposed nothing: %s", _one_line(str(output)))
        return _share_tokens(proposals, report)

    def summarize(self, facts: Mapping[str, Any]) -> str:
        """The agent's end-of-campaign summary (read-only tools); a factual one on failure.

        Args:
            facts: `agent.summary.campaign_facts(...)` (runs, best run, tiers, tokens).
        """
        from agent.prompts import summary_task
        from agent.summary import facts_summary
        from agent.tools import tools_for_tier

        store_root = facts.get("store_root")
        self._sync_tokens(store_root, facts.get("campaign"))
        if self.budget_spent:
            self.last_call = AgentCallReport(
                model=self.model_id,
                outcome="skipped",
                error="the token budget is spent",
                tokens_total=self.tokens_used,
                token_budget=self.token_budget,
            )
            return facts_summary(facts)
        tool_context = self._tool_context(
            store_root,
            facts.get("campaign"),
            tier=1,
            max_tier=1,
            metric=facts.get("metric"),
            mode=facts.get("mode"),
            max_proposals=0,
        )
        output, report, error = self._run(summary_task(facts), tools_for_tier(1), tool_context)
        self.last_call = report
        text = "" if output is None else str(output).strip()
        if error is not None or not text:
            logger.warning("The agent wrote no summary (%s); using the facts.", error or "empty")
            return facts_summary(facts)
        return text

    def _tool_context(
        self,
        store_root: str | None,
        campaign: str | None,
        *,
        tier: int,
        max_tier: int,
        metric: str | None,
        mode: str | None,
        max_proposals: int,
    ) -> Any:
        """The `agent.tools.ToolContext` of one call: the campaign's store and folders, this
        proposer's config/generated dirs, smoke dimensions and proposal check."""
        from agent.tools import ToolContext

        root = Path(store_root) if store_root else None
        return ToolContext(
            store_root=root,
            campaign=campaign,
            campaign_dir=root.parent if root is not None else None,
            config_dir=Path(self.config_dir) if self.config_dir else None,
            generated_dir=Path(self.generated_dir) if self.generated_dir else None,
            tier=tier,
            max_tier=max_tier,
            metric=metric,
            mode=mode,
            max_proposals=max_proposals,
            smoke_dims=self.smoke_dims,
            proposal_check=self.proposal_check,
            history_chars=self.history_chars,
        )

    def _run(
        self, task: str, tools: Sequence[Any], tool_context: Any
    ) -> tuple[Any, AgentCallReport, str | None]:
        """Run one agent over `task`: (final output, report, error line or None)."""
        from smolagents import CodeAgent
        from smolagents.monitoring import LogLevel

        from agent.prompts import load_prompt_templates
        from agent.tools import use_context

        started = time.monotonic()
        budget_left = (
            None if self.token_budget is None else max(0, self.token_budget - self.tokens_used)
        )
        metered = _metered_model_class()(
            self.model,
            deadline=started + self.wall_time_s,
            budget_left=budget_left,
            model_id=self.model_id,
        )
        output: Any = None
        error: str | None = None
        steps = 0
        outcome = "ok"
        try:
            agent = CodeAgent(
                tools=list(tools),
                model=metered,
                prompt_templates=load_prompt_templates(),
                additional_authorized_imports=[],
                max_steps=self.max_steps,
                verbosity_level=LogLevel.OFF,
                executor_type="local",
            )
            with use_context(tool_context):
                result = agent.run(task, return_full_result=True)
            output = result.output
            steps = sum(1 for s in result.steps if s.get("step_number") is not None)
            if result.state != "success":
                outcome = "interrupted"
                error = f"the agent used all {self.max_steps} steps without a final answer"
        except Exception as e:  # the model and its code are untrusted: never end the campaign
            outcome = "interrupted" if metered.stopped else "failed"
            error = metered.stopped or _failure_reason(e)
            logger.warning("The agent failed: %s", error)
        tokens = metered.tokens_in + metered.tokens_out
        self.tokens_used += tokens
        if outcome == "interrupted" and metered.stopped:
            error = f"stopped: {metered.stopped}"
        report = AgentCallReport(
            model=self.model_id,
            tokens_in=metered.tokens_in,
            tokens_out=metered.tokens_out,
            steps=steps or metered.requests,
            tool_calls=tuple(tool_context.tool_log),
            duration_s=time.monotonic() - started,
            outcome=outcome,
            error=error,
            tokens_total=self.tokens_used,
            token_budget=self.token_budget,
        )
        return output, report, error

    @staticmethod
    def _rejected(context: ProposalContext) -> list[list[str]]:
        """Override lists of the campaign's rejected trials (newest last, at most 10)."""
        if not context.store_root or not context.campaign:
            return []
        try:
            from feedback import FeedbackStore

            runs = FeedbackStore(context.store_root).runs(campaign=context.campaign)
        except (OSError, ValueError):
            return []
        out = [
            [*r.overrides, *(f"{k}={v}" for k, v in sorted(r.params.items()))]
            for r in runs
            if r.status == "rejected"
        ]
        return out[-10:]


def _with_report(error: AgentError, report: AgentCallReport) -> AgentError:
    error.report = report  # type: ignore[attr-defined]
    return error


def _share_tokens(proposals: list[Proposal], report: AgentCallReport) -> list[Proposal]:
    """Split the call's tokens over its proposals (the first takes the remainder), and attach
    the call's tool calls to each, so summed records never count a token twice."""
    k = len(proposals)
    if k == 0:
        return proposals
    out = []
    for i, p in enumerate(proposals):
        t_in = report.tokens_in // k + (report.tokens_in % k if i == 0 else 0)
        t_out = report.tokens_out // k + (report.tokens_out % k if i == 0 else 0)
        out.append(replace(p, tokens_in=t_in, tokens_out=t_out, tool_calls=report.tool_calls))
    return out


def proposer_from_settings(
    llm: Any,
    *,
    model: str | None = None,
    api_base: str | None = None,
    wall_time_s: float = DEFAULT_WALL_TIME_S,
    **kwargs: Any,
) -> SmolagentsProposer:
    """A `SmolagentsProposer` from a campaign's `llm` settings and the command line.

    Honours `model`, `temperature`, `max_steps`, `api_base`, `api_key_env` and
    `token_budget` of `llm` (a `search.goals.LLMSettings` or anything with those
    attributes); `model`/`api_base` replace the file's values (`--model`, `--api-base`).

    Args:
        llm: the settings.
        model: the model id instead of `llm.model`.
        api_base: an OpenAI-compatible server instead of `llm.api_base`.
        wall_time_s: the most time one agent call may take.
        **kwargs: passed to `SmolagentsProposer` (config_dir, smoke_dims, proposal_check...).

    Raises:
        AgentError: the model cannot be built (e.g. its API key variable is unset).
    """
    from agent.models.backends import ModelSettings, build_model

    settings = ModelSettings.from_llm(llm, model=model, api_base=api_base)
    return SmolagentsProposer(
        build_model(settings),
        max_steps=int(getattr(llm, "max_steps", 6)),
        wall_time_s=wall_time_s,
        token_budget=getattr(llm, "token_budget", None),
        **kwargs,
    )
