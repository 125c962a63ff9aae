"""`AgentSearcher`'s methods beyond Tune's `Searcher` API: properties, outside results.

A mixin, so `search.searcher` stays the Searcher API itself: results evaluated elsewhere
(`add_evaluated_point`, `warm_start`), arms and proposals added from outside (`add_arm`,
`submit_proposal`), its read-only properties and `state_summary`. The state it reads is
`AgentSearcher`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from search import warm_start

if TYPE_CHECKING:
    from agent.hooks import ApprovalHook
    from agent.proposer import Proposal
    from feedback import RunRecord
    from search.agent_loop import AgentLoop
    from search.arms import Arm, ArmRegistry
    from search.recorder import HistoryRecorder
    from search.review import TrialReviewer
    from search.trials import TrialBook

__all__ = ["SearcherExtensions"]


class SearcherExtensions:
    """The outside-results half of `AgentSearcher` (see the module docstring)."""

    @property
    def arms(self) -> list[Arm]:
        """The arms in creation order (empty before the space, metric and mode are known)."""
        return list(self._registry.arms.values()) if self._registry else []

    @property
    def arms_by_name(self) -> dict[str, Arm]:
        """The arms keyed by name (a copy; empty before set-up)."""
        return dict(self._registry.arms) if self._registry else {}

    @property
    def stopping(self) -> bool:
        """True once the policy (or the approval step) decided to stop."""
        return self._agent.escalator.stopping

    @property
    def proposal_pending(self) -> bool:
        """True while a proposer call runs in the background (and has not timed out)."""
        return self._agent.worker.running

    @property
    def campaign(self) -> str:
        """Campaign name used in records and events."""
        return self._recorder.campaign

    @property
    def approval_hook(self) -> ApprovalHook | None:
        """The hook that reviews every trial (None: every trial runs)."""
        return self._reviewer.hook

    @approval_hook.setter
    def approval_hook(self, hook: ApprovalHook | None) -> None:
        """Attach (or re-attach after unpickling) the approval hook; None turns approval off."""
        self._reviewer.attach(hook)

    if TYPE_CHECKING:  # set by AgentSearcher.__init__
        _base_space: dict[str, Any] | None
        _agent: AgentLoop
        _reviewer: TrialReviewer
        _trials: TrialBook
        _n_results: int

        _registry: ArmRegistry | None
        _recorder: HistoryRecorder

        def _ready(self) -> ArmRegistry: ...

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float | None,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
        *,
        arm: str | None = None,
        infeasible: bool = False,
    ) -> None:
        """Add a result evaluated outside this searcher (warm start; not written to the store).

        Args:
            parameters: the config (flat or nested; keys outside the arm's space are ignored;
                a ``parameters["agentune"]["arm"]`` entry selects the arm).
            value: the metric value; NaN/inf/None count as a failure unless `pruned`.
            error: the evaluation failed.
            pruned: the evaluation was stopped early.
            intermediate_values: per-step values (used to rank pruned points).
            arm: the arm to add it to (default: from `parameters`, else the base arm).
            infeasible: the point broke a campaign constraint (added with an Optuna
                constraint violation, never the arm's best).

        Raises:
            RuntimeError: no space, metric or mode is known yet.
            KeyError: `arm` names no arm.
            ValueError: a parameter lies outside its distribution.
        """
        warm_start.add_evaluated(
            self._ready(),
            parameters,
            value,
            error=error,
            pruned=pruned,
            intermediate_values=intermediate_values,
            arm=arm,
            infeasible=infeasible,
        )

    def warm_start(
        self,
        records: Iterable[RunRecord],
        model_sources: Mapping[str, str] | None = None,
    ) -> int:
        """Replay a campaign's earlier runs (e.g. `store.runs(campaign=...)`) into the studies.

        Each record goes to the arm of its name, created when missing from the record's tier
        and overrides (a tier-3 arm needs its code in `model_sources`, else it is created
        retired: it keeps its history but is never suggested). Status mapping: completed ->
        COMPLETE, pruned -> PRUNED, infeasible -> infeasible point, failed/diverged -> FAIL;
        rejected runs are skipped. Records are not written back to the store, and proposal
        tokens already spent are not charged again.

        Args:
            records: runs in finishing order.
            model_sources: arm name -> generated model code for tier-3 arms.

        Returns:
            How many records were added; the others are logged (parameters outside the
            current space, unknown statuses).

        Raises:
            RuntimeError: no space, metric or mode is known yet.
        """
        registry = self._ready()
        assert self._base_space is not None  # _ready checked
        return warm_start.replay(registry, self._base_space, records, model_sources)

    def add_arm(
        self,
        name: str,
        *,
        tier: int,
        overrides: Sequence[str],
        space: Mapping[str, Any] | None = None,
        drop_params: Sequence[str] = (),
        model_source: str | None = None,
        model_config: Mapping[str, Any] | None = None,
        model: str | None = None,
        origin: str = "human",
    ) -> Arm:
        """Add an arm directly (warm-starting a campaign's earlier arms, tests, CLI).

        The arm is trusted as given: no proposal check runs (use `submit_proposal` for
        anything an agent or a user typed).

        Raises:
            RuntimeError: no space, metric or mode is known yet.
            SearchSpaceError: `space` cannot be converted.
        """
        registry = self._ready()
        assert self._base_space is not None  # _ready checked
        return warm_start.add_trusted_arm(
            registry,
            self._base_space,
            name,
            tier=tier,
            overrides=overrides,
            space=space,
            drop_params=drop_params,
            model_source=model_source,
            model_config=model_config,
            model=model,
            origin=origin,
        )

    def submit_proposal(self, proposal: Proposal) -> None:
        """Queue a proposal from outside the agent (a human, the CLI); thread-safe.

        It is validated and turned into an arm at the next `suggest` or completion.
        """
        self._agent.worker.submit(proposal)

    def state_summary(self) -> dict[str, Any]:
        """A JSON-friendly snapshot (arms, counters, stop/request state) for logs and tests."""
        return {
            "arms": [
                {
                    "name": a.name,
                    "tier": a.tier,
                    "overrides": list(a.overrides),
                    "n_results": a.n_results,
                    "n_pending": a.n_pending,
                    "best_value": a.best_value,
                    "retired": a.retired,
                }
                for a in self.arms
            ],
            "pending": sorted(self._trials.pending),
            "peak_pending": self._trials.peak_pending,
            "n_suggested": self._trials.n_suggested,
            "n_results": self._n_results,
            "requests_made": self._agent.escalator.requests_made,
            "proposal_pending": self.proposal_pending,
            "stopping": self.stopping,
            "approval_runs": self._reviewer.runs,
            "consecutive_rejections": self._reviewer.consecutive_rejections,
        }
