"""`AgentSearcher`: a Ray Tune searcher of per-arm Optuna studies that an agent extends.

See the class docstring for usage, the reserved config entry and the contracts with Tune.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import pickle
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import optuna
import pyarrow as pa
from optuna.trial import TrialState
from ray.tune.result import DEFAULT_METRIC
from ray.tune.search import Searcher

from agent.hooks import (
    ApprovalDecision,
    ApprovalHook,
    TrialRequest,
    merge_overrides,
)
from agent.proposer import (
    AgentCallReport,
    Proposal,
    ProposalContext,
    ProposalError,
    Proposer,
    model_from_overrides,
    override_key,
)
from agent.safety.proposals import ProposalCheck
from search.approvals import REJECTED_CONSTRAINT, split_modified, trial_overrides, worst_value
from search.arms import BASE_ARM, SAMPLERS, Arm, ArmRegistry
from search.escalation import EscalationDecision, EscalationPolicy
from search.space import (
    SearchSpaceError,
    convert_search_space,
    describe_space,
    flatten_config,
    hydra_path,
    is_finite_number,
    merge_spaces,
    snap_to_steps,
    unflatten_params,
)

if TYPE_CHECKING:
    from feedback import Event, FeedbackStore, RunRecord

__all__ = ["FINAL_KEY", "RESERVED_KEY", "RUN_ID_KEY", "AgentSearcher", "Constraint"]

logger = logging.getLogger(__name__)

RESERVED_KEY = "agentune"
"""Config entry carrying the arm (see `AgentSearcher`); never a search-space key."""

FINAL_KEY = "agentune_final"
"""Result key a campaign trainable sets to True in the report made when training ended by
itself (False or absent in earlier reports): a finished trial without it was pruned."""

EPOCH_KEY = "epoch"
"""Result key of a per-epoch report; such results become the run's stored epoch curve."""

RUN_ID_KEY = "agentune_run_id"
"""Optional result key: the run id to store the trial under (default: the Tune trial id)."""

Constraint = tuple[str, float]
_OPS = ("<=", "<", ">=", ">", "==")
_TRAINER_STATUS = {
    "completed": "completed",
    "diverged": "diverged",
    "stopped": "pruned",
    "failed": "failed",
}

UNDEFINED_SPACE = (
    "{cls} has no search space: pass `space=` to the constructor or a `param_space` with "
    "search domains to the Tuner."
)
UNDEFINED_METRIC_MODE = (
    "{cls} needs a metric and a mode, got metric={metric!r}, mode={mode!r}: pass them to the "
    "constructor. `tune.TuneConfig(metric=..., mode=...)` only reaches the searcher when the "
    "Tuner's `param_space` is not empty."
)


@dataclass
class _Pending:
    """A suggested trial that has not finished."""

    arm: str
    # None for adopted and modified trials (added to the study when they finish, not told)
    trial: optuna.Trial | None
    params: dict[str, Any]
    origin: str
    started_at: datetime
    last_step: int = 0
    # per-epoch metrics reported so far (campaign mode), stored as the run's epoch curve
    curve: list[dict[str, float]] = field(default_factory=list)
    # the trial's fixed overrides when the approval hook changed them (else the arm's)
    overrides: tuple[str, ...] | None = None
    approval: str | None = None  # the approval hook's verdict (else the arm's approval)


@dataclass
class _Request:
    """A proposer call in flight (or lost by pickling)."""

    tier: int
    reasons: tuple[str, ...]
    submitted_at: float
    n: int


@dataclass
class _Outcome:
    status: str
    value: float | None
    error: str | None
    constraints: dict[str, float] = field(default_factory=dict)


@dataclass
class _Batch:
    """What one proposer call produced: checked proposals and the refused ones with reasons."""

    accepted: list[Proposal] = field(default_factory=list)
    refused: list[tuple[Any, str]] = field(default_factory=list)
    report: AgentCallReport | None = None  # the proposer's `last_call`, when it has one


class _ProposerFailedError(Exception):
    """The proposer raised: carries the error and the call's report to the searcher thread."""

    def __init__(self, error: BaseException, report: AgentCallReport | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.report = report


def _call_report(proposer: Any, error: BaseException | None = None) -> AgentCallReport | None:
    """The call's report: the error's `.report`, else the proposer's `last_call`, if any."""
    report = getattr(error, "report", None) if error is not None else None
    if report is None:
        report = getattr(proposer, "last_call", None)
    return report if isinstance(report, AgentCallReport) else None


def _run_proposer(
    proposer: Proposer,
    context: ProposalContext,
    n: int,
    store: FeedbackStore | None,
    history_chars: int,
    check: Callable[[Any], Proposal],
) -> _Batch:
    """Worker-thread body: add the store's history to the context, call the proposer, and
    put each of its first `n` proposals through `check` (the proposal contract and the safety
    layer), here rather than in `suggest()`: a tier-3 check runs a sandboxed smoke test."""
    if store is not None and context.campaign:
        try:
            # A reader of its own: the searcher's store object is not shared across threads.
            reader = type(store)(store.root) if hasattr(store, "root") else store
            context = replace(
                context, history=reader.history_for_agent(context.campaign, history_chars)
            )
        except (OSError, ValueError) as e:  # a broken store must not cost the proposal
            logger.warning("Could not read the campaign history for the agent: %s", e)
    try:
        proposals = list(proposer.propose(context, n))
    except Exception as e:  # the proposer is untrusted code: any failure is recorded
        raise _ProposerFailedError(e, _call_report(proposer, e)) from e
    if len(proposals) > n:
        logger.info("The proposer returned %d proposals; using the first %d.", len(proposals), n)
    batch = _Batch(report=_call_report(proposer))
    for proposal in proposals[:n]:
        try:
            batch.accepted.append(check(proposal))
        except ValueError as e:  # ProposalError, SafetyError, SearchSpaceError
            batch.refused.append((proposal, str(e)))
        except Exception as e:  # fail closed: a check that cannot finish refuses
            batch.refused.append((proposal, f"the check failed ({type(e).__name__}: {e})"))
    return batch


def _start_worker(fn: Callable[..., _Batch], *args: Any) -> Future[_Batch]:
    """Run `fn(*args)` on a new daemon thread; its outcome lands in the returned future.

    One request runs at a time (the escalation policy waits for the previous one), so this is
    the searcher's single worker. A daemon thread, unlike a `ThreadPoolExecutor` worker, does
    not hold up interpreter exit while an LLM call is still running.
    """
    future: Future[_Batch] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # delivered to the searcher through the future
            future.set_exception(e)

    threading.Thread(target=run, name="agentune-proposer", daemon=True).start()
    return future


class AgentSearcher(Searcher):
    """Per-arm Optuna TPE studies, escalated by an agent when tuning stalls.

    Drop-in use (no campaign, no LLM): like `OptunaSearch`, it tunes a plain Tune search
    space with TPE, seeded, and suggested configs are plain dicts.

    .. code-block:: python

        from ray import tune
        from search import AgentSearcher

        space = {"trainer.lr": tune.loguniform(1e-4, 1e-1), "model.width": tune.choice([32, 64])}
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                search_alg=AgentSearcher(seed=0),
                metric="val/macro_f1",
                mode="max",
                num_samples=20,
                max_concurrent_trials=2,  # without it Tune runs custom searchers one at a time
            ),
        )
        tuner.fit()

    Campaign use: the base config is arm `"base"`; the searcher writes a `RunRecord` per
    finished trial to the `FeedbackStore`, reads the feedback recommendation after each one,
    and asks the proposer (on a background thread) for new arms when it says `change_model`.

    .. code-block:: python

        searcher = AgentSearcher(
            space={"trainer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}},
            metric="val/macro_f1", mode="max", seed=0,
            proposer=my_proposer, store=FeedbackStore(campaign_dir / "history"),
            campaign="ecg", base_overrides=["model=cnn1d"],
            models=["cnn1d", "resnet1d", "encoder_classifier"], max_tier=3,
            constraints={"num_params": ("<=", 100_000)},
        )

    Suggested configs: the flat parameters (keys are the space's keys: Hydra override paths
    such as `"trainer.lr"`; nested-dict spaces come back nested) plus, in campaign mode only,
    the reserved entry ``config["agentune"]``::

        {"arm": "resnet1d-w64",          # arm name
         "tier": 2,                      # 0 base, 2 config variant, 3 generated model
         "origin": "agent",              # optuna | agent | human | warm_start
         "overrides": ["model=resnet1d", "model.width=64"],  # fixed by the arm (plus
                                         # keys an approval hook's modify fixed for the trial)
         "model": "resnet1d",            # or None
         "model_source": None,           # generated model code (tier 3)
         "model_config": None,           # its registered config (tier 3)
         "proposal_id": "3f2a..."}       # or None

    A trainable turns it into Hydra overrides: ``overrides + [f"{k}={v}" for k, v in params]``.
    Campaign mode (reading the signals after each trial, escalating, stopping) is on when
    `campaign` or `proposer` is given; `store` alone only records the runs of a drop-in search
    and changes none of its decisions. The reserved entry is added in campaign mode (or with
    `annotate=True`).

    What the trainable reports (campaign mode): the metric (its final report should carry
    the run's best value under the metric name); ``agentune_final: True`` in the report made
    when training ended by itself and ``agentune_final: False`` in the earlier ones (a trial
    whose last report says False was stopped by the scheduler and is recorded as pruned; a
    trainable that never reports the flag has its finished trials counted as completed);
    optionally ``status`` (trainer status: completed/diverged/stopped/failed), ``error``,
    ``num_params``, ``model``, ``best_epoch``, ``dataset``, ``test/...`` metrics,
    ``agentune_run_id`` (the run id in the store; default the trial id), and every key named
    in `constraints`. In drop-in mode a finished trial counts as completed.

    Trial status (written to the store, and told to Optuna):
        ``error=True`` -> failed (FAIL); result ``status`` "diverged" -> diverged (FAIL);
        missing, NaN or infinite metric -> failed (FAIL); a constraint violated -> infeasible
        (COMPLETE with Optuna constraint values, so TPE learns to avoid it); ``status``
        "stopped" or ``agentune_final: False`` -> pruned (PRUNED, ranked by the reported
        intermediate values); otherwise
        completed (COMPLETE). A trial Tune removes before it ran (no result, no error) closes
        its Optuna trial as FAIL and is not recorded.

    Contracts with Tune: picklable (the worker future and the proposal queue are dropped in
    `__getstate__` and rebuilt lazily; the proposer must be picklable, and while a call runs
    the copy pickled when it started is saved; the store is re-opened from its root; the
    approval hook is kept only when it pickles, see `approval_hook`);
    `save`/`restore` round-trip studies, arms, pending trials and counters into a fresh
    instance (an in-flight proposer call is lost and re-requested by the policy); results
    for unknown trial ids use the config in the result; results after completion are
    ignored; `add_evaluated_point` warm-starts the base arm (or the arm named by
    ``parameters["agentune"]["arm"]``).

    Args:
        space: search space (Tune domains, Optuna distributions or spec dicts; see
            `search.space`). None: taken from the Tuner's `param_space`.
        metric: metric to optimise. None: from `set_search_properties`.
        mode: "min" or "max". None: from `set_search_properties`.
        seed: seeds every arm's TPE sampler (arm i: seed + i) and the arm-selection RNG.
        points_to_evaluate: parameter dicts the base arm evaluates first.
        proposer: the agent; None disables proposals (escalation is then off).
        store: the campaign's `FeedbackStore`; None keeps records in memory only.
        campaign: campaign name written to records and events (default "default").
        base_overrides: Hydra overrides of the base arm (e.g. `["model=cnn1d"]`).
        models: built-in models the campaign may try (drives tier 2 -> 3).
        max_tier: highest escalation tier (0 or 1: none, 2: config variants, 3: generated
            models).
        min_trials_per_arm: trials every arm gets before exploitation (see `search.arms`).
        exploit_prob: probability of exploiting the best arm afterwards.
        max_arm_failures: consecutive failures that retire a non-base arm without values.
        proposals_per_request: `n` passed to `Proposer.propose`.
        max_agent_requests: most proposer calls (None: unlimited).
        constraints: result key -> (op, bound), op one of <=, <, >=, >, ==; e.g.
            `{"num_params": ("<=", 100_000)}`. A key missing from the final result (or not a
            finite number) counts as a violation.
        signal_thresholds: thresholds for `feedback.recommend` (a `feedback.SignalThresholds`
            or a dict of its fields); None uses the feedback defaults.
        recommender: replaces `feedback.recommend`: a picklable callable taking the
            campaign's history in finishing order (the store's `table(campaign=...)`, or a
            list of `RunRecord` when there is no store) and returning an object with
            `action` (continue/change_lr/change_model/stop) and `reasons`.
        history_chars: length cap of the history text given to the proposer.
        tpe_kwargs: extra sampler arguments (e.g. `{"n_startup_trials": 5}`).
        sampler: each arm's Optuna sampler, "tpe" (default, as Tune's `OptunaSearch`) or
            "gp" (Optuna's `GPSampler`: better at small budgets, slower per suggestion; the
            campaign goals' default; see `search.arms.ArmRegistry`).
        annotate: force the reserved config entry on (True) or off (False); None: on in
            campaign mode.
        proposal_check: the safety layer's check every proposal passes before it becomes an
            arm (a picklable callable returning the checked proposal or raising a
            `ValueError` with the reason); default `agent.safety.ProposalCheck()`, the
            structural checks (override policy, model-code check). `agentune run` passes one
            that also composes and target-checks the campaign's trial config.
        approval_hook: reviews every trial before it is launched, whoever proposed it (an
            `agent.hooks.ApprovalHook`; the agent does not know it is there). Called in
            `suggest` on Tune's driver thread (it may block while a person answers) with an
            `agent.hooks.TrialRequest`. Approve: the trial runs (record approval
            ``approved``, or ``auto`` for an automatic approval). Modify: the decision's
            overrides are merged by key over the proposed ones; keys of the arm's space
            become the trial's parameters, other keys are fixed for this trial only (the
            reserved entry's ``overrides``); the result passes `proposal_check` like a
            proposal (a refusal rejects the trial) and is recorded ``modified``; the asked
            Optuna trial is closed as FAIL and the finished run is added to the arm's study
            with its actual parameters when they fit its distributions. Reject (also: a hook
            that raises): the trial is not launched; it is recorded with status
            ``rejected`` and told to the arm's study as a constraint violation (TPE learns
            to avoid it), counts against the arm like a failure (an arm rejected
            `max_arm_failures` times without a value retires), and the searcher samples
            again. Every decision is an ``approval`` event. None: every trial runs (records
            carry the arm's approval). Pickling keeps the hook when it pickles (standard
            `pickle`); one that does not (a callback closing over local state) stays with
            the live searcher object only, and a copy unpickled without it stops the campaign
            rather than run trials nobody approved (re-attach with `approval_hook = ...`).
        max_consecutive_rejections: rejections in a row after which the campaign stops (the
            reason is written as a ``recommendation`` event with action ``stop``).

    Raises:
        ValueError: invalid mode, thresholds or constraint operators.
        TypeError: a list of metrics (multi-objective is not supported).
        SearchSpaceError: a space entry Optuna cannot sample.
    """

    def __init__(
        self,
        space: Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
        *,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        proposer: Proposer | None = None,
        store: FeedbackStore | None = None,
        campaign: str | None = None,
        base_overrides: Sequence[str] = (),
        models: Sequence[str] = (),
        max_tier: int = 2,
        min_trials_per_arm: int = 3,
        exploit_prob: float = 0.7,
        max_arm_failures: int = 3,
        proposals_per_request: int = 2,
        max_agent_requests: int | None = None,
        constraints: Mapping[str, Constraint] | None = None,
        signal_thresholds: Any = None,
        recommender: Callable[[Any], Any] | None = None,
        history_chars: int = 4000,
        tpe_kwargs: Mapping[str, Any] | None = None,
        sampler: str = "tpe",
        annotate: bool | None = None,
        proposal_check: Callable[[Proposal], Proposal] | None = None,
        approval_hook: ApprovalHook | None = None,
        max_consecutive_rejections: int = 10,
    ) -> None:
        if metric is not None and not isinstance(metric, str):
            raise TypeError(
                f"AgentSearcher optimises one metric; `metric` must be a str, got {metric!r}."
            )
        if mode not in (None, "min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max', got {mode!r}.")
        if proposals_per_request < 1:
            raise ValueError(f"`proposals_per_request` must be >= 1, got {proposals_per_request}.")
        if max_consecutive_rejections < 1:
            raise ValueError(
                f"`max_consecutive_rejections` must be >= 1, got {max_consecutive_rejections}."
            )
        if approval_hook is not None and not callable(getattr(approval_hook, "review", None)):
            raise TypeError(
                "`approval_hook` must have a review(request) method (an agent.hooks."
                f"ApprovalHook), got {type(approval_hook).__name__}."
            )
        for key, spec in (constraints or {}).items():
            if not (isinstance(spec, tuple | list) and len(spec) == 2 and spec[0] in _OPS):
                raise ValueError(
                    f"constraint {key!r} must be (op, bound) with op in {_OPS}, got {spec!r}; "
                    "e.g. {'num_params': ('<=', 100000)}."
                )
        super().__init__(metric=metric, mode=mode)
        self._seed = seed
        self._base_space = convert_search_space(space) if space is not None else None
        self._points_to_evaluate = [dict(p) for p in points_to_evaluate or ()]
        self._proposer = proposer
        self._store = store
        self._campaign = campaign
        # Recording: runs and their curves go to the store. Campaign mode (a campaign name or a
        # proposer) also reads the signals and escalates or stops; a store alone only adds the
        # history to a drop-in search and changes none of its decisions.
        self._campaign_mode = campaign is not None or proposer is not None
        self._recording = self._campaign_mode or store is not None
        self._annotate = self._campaign_mode if annotate is None else bool(annotate)
        self._base_overrides = tuple(base_overrides)
        self._models = tuple(models)
        self._policy = EscalationPolicy(
            max_tier=max_tier if proposer is not None else min(max_tier, 1),
            models=models,
            max_requests=max_agent_requests,
        )
        self._max_tier = max_tier
        self._min_trials_per_arm = min_trials_per_arm
        self._exploit_prob = exploit_prob
        self._max_arm_failures = max_arm_failures
        self._proposals_per_request = proposals_per_request
        self._constraints = {k: (str(v[0]), float(v[1])) for k, v in (constraints or {}).items()}
        self._signal_thresholds = signal_thresholds
        self._recommender = recommender
        self._history_chars = history_chars
        self._tpe_kwargs = dict(tpe_kwargs or {})
        if sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}.")
        self._sampler = sampler
        self._proposal_check: Callable[[Proposal], Proposal] = proposal_check or ProposalCheck()
        # The live hook; __getstate__ keeps it only when it pickles (see the class docstring).
        self._approval_hook: ApprovalHook | None = approval_hook
        self._approval_expected = approval_hook is not None  # a copy without it must not run
        self._max_consecutive_rejections = max_consecutive_rejections
        self._approval_runs = 0  # trials put to the hook (TrialRequest.run_num)
        self._consecutive_rejections = 0
        self._last_recommendation = ""  # latest recommendation text, for TrialRequest

        self._registry: ArmRegistry | None = None
        self._pending: dict[str, _Pending] = {}
        self._finished: set[str] = set()
        self._records: list[RunRecord] = []  # session records when there is no store
        self._stopping = False
        self._stop_reasons: tuple[str, ...] = ()
        self._last_action: str | None = None
        self._requests_made = 0
        self._request: _Request | None = None
        self._request_arms: list[str] = []
        self._results_at_request = 0
        self._n_results = 0
        self._n_suggested = 0
        self._peak_pending = 0
        self._max_concurrent: int | None = None
        # proposals waiting for the searcher to be set up, with whether they were checked
        self._held: list[tuple[Proposal, bool]] = []
        self._budget_noted = False  # the "token budget spent" event was written
        # Handles rebuilt lazily (dropped by __getstate__).
        self._future: Future[_Batch] | None = None
        self._inbox: queue.SimpleQueue[Proposal] | None = None
        self._proposer_snapshot: bytes | None = None  # the proposer as pickled at submit time
        if self._base_space is not None and self._metric_and_mode_known():
            self._setup()

    # ------------------------------------------------------------------ properties

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
        """True once the policy decided to stop."""
        return self._stopping

    @property
    def proposal_pending(self) -> bool:
        """True while a proposer call runs in the background."""
        return self._future is not None and not self._future.done()

    @property
    def campaign(self) -> str:
        """Campaign name used in records and events."""
        return self._campaign or "default"

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_future"] = None
        state["_proposer_snapshot"] = None
        if self.proposal_pending and self._proposer_snapshot is not None:
            # The worker thread may be mutating the live proposer (building its agent):
            # pickle the copy taken when the call started instead of racing with it.
            state["_proposer"] = None
            state["_proposer_blob"] = self._proposer_snapshot
        held = list(self._held)
        inbox = self._inbox
        if inbox is not None:  # keep queued human proposals; the queue object is not picklable
            drained: list[Proposal] = []
            while True:
                try:
                    drained.append(inbox.get_nowait())
                except queue.Empty:
                    break
            for p in drained:
                inbox.put(p)
            held.extend((p, False) for p in drained)
        state["_held"] = held
        state["_inbox"] = None
        store = self._store
        if store is not None and hasattr(store, "root"):
            state["_store"] = None  # re-opened from its root: its read cache is not state
            state["_store_ref"] = (type(store), str(store.root))
        hook = self._approval_hook
        if hook is not None and not _picklable(hook):
            # The live object keeps its hook; a copy made from this state stops the campaign
            # instead of launching trials nobody approved (see the class docstring).
            state["_approval_hook"] = None
            if not self.__dict__.get("_hook_warned"):
                self._hook_warned = True
                logger.warning(
                    "The approval hook %s cannot be pickled: it stays with this searcher "
                    "object, and a copy restored from a checkpoint stops the campaign until "
                    "one is re-attached (searcher.approval_hook = hook).",
                    type(hook).__name__,
                )
        state.pop("_hook_warned", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        ref = state.pop("_store_ref", None)
        blob = state.pop("_proposer_blob", None)
        self.__dict__.update({**_APPROVAL_STATE_DEFAULTS, **state})  # older checkpoints too
        if blob is not None:
            self._proposer = pickle.loads(blob)
        if ref is not None and self._store is None:
            store_type, root = ref
            self._store = store_type(root)
        if self._request is not None and self._future is None:
            logger.info("A proposer call in flight when the searcher was saved is dropped.")
            self._request = None

    def save(self, checkpoint_path: str) -> None:
        """Pickle the whole state (studies, arms, pending trials, counters) atomically.

        The file is written under a temporary name and `os.replace`d, so a crash leaves the
        previous checkpoint intact. Called by Tune at every experiment checkpoint.
        """
        tmp = f"{checkpoint_path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as f:
                pickle.dump(self.__getstate__(), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, checkpoint_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def restore(self, checkpoint_path: str) -> None:
        """Load a `save`d state into this instance; it continues the same studies.

        A proposer, store or approval hook given to this instance's constructor replaces the
        saved one (re-attach after a restart); otherwise the saved ones are used. The approval
        run count (`TrialRequest.run_num`) continues from the saved one.
        """
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        if not isinstance(state, dict) or "_registry" not in state:
            raise ValueError(
                f"{checkpoint_path!r} is not an AgentSearcher checkpoint (got "
                f"{type(state).__name__}); pass a file written by AgentSearcher.save."
            )
        proposer, store, hook = self._proposer, self._store, self._approval_hook
        self.close()
        self.__setstate__(state)
        if proposer is not None:
            self._proposer = proposer
        if hook is not None:
            self.approval_hook = hook
        if store is not None:
            self._store = store

    def close(self) -> None:
        """Forget a running proposer call (its daemon thread ends on its own; not waited for)."""
        if self._future is not None:
            self._future.cancel()
        self._future = None
        self._request = None

    # ------------------------------------------------------------------ set-up

    def _metric_and_mode_known(self) -> bool:
        if self._mode and not self._metric:
            self._metric = DEFAULT_METRIC  # like OptunaSearch: a mode alone means "_metric"
        return bool(self._metric and self._mode)

    def _setup(self) -> ArmRegistry:
        if self._registry is not None:
            return self._registry
        assert self._base_space is not None and self._mode is not None  # callers checked
        registry = ArmRegistry(
            mode=self._mode,
            seed=self._seed,
            min_trials_per_arm=self._min_trials_per_arm,
            exploit_prob=self._exploit_prob,
            max_arm_failures=self._max_arm_failures,
            tpe_kwargs=self._tpe_kwargs,
            sampler=self._sampler,
        )
        base = registry.add(
            BASE_ARM,
            tier=0,
            overrides=self._base_overrides,
            space=merge_spaces(self._base_space, None, self._fixed_keys(self._base_overrides)),
        )
        for point in self._points_to_evaluate:
            registry.enqueue(base, flatten_config(point), "human")
        self._registry = registry
        return registry

    def _ready(self) -> ArmRegistry:
        if self._base_space is None:
            raise RuntimeError(UNDEFINED_SPACE.format(cls=type(self).__name__))
        if not self._metric_and_mode_known():
            raise RuntimeError(
                UNDEFINED_METRIC_MODE.format(
                    cls=type(self).__name__, metric=self._metric, mode=self._mode
                )
            )
        return self._setup()

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Take metric, mode and (when none was given) the space from the Tuner.

        Returns:
            False when the constructor already set a space and `config` holds search domains
            too (Tune then raises its "already instantiated with a search space" error);
            True otherwise.
        """
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            if mode not in ("min", "max"):
                raise ValueError(f"`mode` must be 'min' or 'max', got {mode!r}.")
            self._mode = mode
        converted = convert_search_space(config)
        if self._base_space is not None and self._registry is not None:
            return not converted
        if self._base_space is None or (converted and not self._base_space):
            self._base_space = converted
        elif converted:
            return False
        if self._metric_and_mode_known():
            self._setup()
        return True

    # ------------------------------------------------------------------ suggest

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next config; never waits for the agent (but waits for the approval hook).

        With an approval hook, each sampled trial is put to it; a rejected one is recorded
        and another is sampled, until one is approved (or modified) or
        `max_consecutive_rejections` rejections in a row stop the campaign.

        Returns:
            A config (see the class docstring), `Searcher.FINISHED` once the policy (or the
            approval hook's rejections) said stop and no trial is running, or None while
            stopping with trials still running.

        Raises:
            RuntimeError: no space, metric or mode is known yet.
        """
        self._poll()
        if self._stopping:
            return None if self._pending else Searcher.FINISHED  # type: ignore[return-value]
        registry = self._ready()
        if trial_id in self._pending:
            return self._config(self._pending[trial_id])
        if self._max_concurrent is not None and len(self._pending) >= self._max_concurrent:
            return None
        pending = self._sample_approved(registry, trial_id)
        if pending is None:  # the approval hook's rejections stopped the campaign
            return None if self._pending else Searcher.FINISHED  # type: ignore[return-value]
        self._pending[trial_id] = pending
        registry[pending.arm].n_pending += 1
        self._n_suggested += 1
        self._peak_pending = max(self._peak_pending, len(self._pending))
        return self._config(pending)

    # ------------------------------------------------------------------ approval

    @property
    def approval_hook(self) -> ApprovalHook | None:
        """The hook that reviews every trial (None: every trial runs)."""
        return self._approval_hook

    @approval_hook.setter
    def approval_hook(self, hook: ApprovalHook | None) -> None:
        """Attach (or re-attach after unpickling) the approval hook; None turns approval off."""
        self._approval_hook = hook
        self._approval_expected = hook is not None

    def _sample(self, arm: Arm) -> _Pending:
        """Ask the arm's study for the next trial (not yet pending anywhere)."""
        trial = arm.study.ask(fixed_distributions=arm.space)
        origin = "optuna"
        if arm.queued_origins:  # ask() pops the enqueued point first
            origin = arm.queued_origins.pop(0)
        elif arm.origin != "campaign" and arm.n_started == 0:
            origin = arm.origin  # the arm itself is the proposal being evaluated
        return _Pending(
            arm=arm.name,
            trial=trial,
            params=snap_to_steps(trial.params, arm.space),
            origin=origin,
            started_at=datetime.now(UTC),
        )

    def _sample_approved(self, registry: ArmRegistry, trial_id: str) -> _Pending | None:
        """Sample trials until the approval hook lets one run; None once rejections (or a hook
        lost in pickling) stopped the campaign."""
        if self._approval_hook is None and self._approval_expected:
            self._stop_campaign(
                "the approval hook did not survive pickling (it could not be pickled), so no "
                "trial can be approved; re-attach it (searcher.approval_hook = hook) or use a "
                "picklable hook (a module-level callback)"
            )
            return None
        while True:
            arm = registry.select()
            pending = self._sample(arm)
            if self._approval_hook is None:
                return pending
            approved = self._review(arm, pending, trial_id)
            if approved is not None:
                self._consecutive_rejections = 0
                return approved
            self._consecutive_rejections += 1
            if self._consecutive_rejections >= self._max_consecutive_rejections:
                self._stop_campaign(
                    f"{self._consecutive_rejections} trials in a row were rejected by the "
                    "approval hook"
                )
                return None

    def _review(self, arm: Arm, pending: _Pending, trial_id: str) -> _Pending | None:
        """Put one sampled trial to the hook; the trial to launch, or None when rejected."""
        hook = self._approval_hook
        assert hook is not None
        self._approval_runs += 1
        proposed = trial_overrides(arm.overrides, pending.params)
        request = TrialRequest(
            overrides=tuple(proposed),
            run_num=self._approval_runs,
            arm=arm.name,
            tier=arm.tier,
            origin=pending.origin,
            campaign=self.campaign,
            store=self._store,
            rationale=arm.rationale,
            model_source=arm.model_source,
            recommendation=self._last_recommendation,
        )
        try:
            decision = hook.review(request)
            if not isinstance(decision, ApprovalDecision):
                decision = ApprovalDecision.reject(
                    f"the approval hook returned {type(decision).__name__}, not an ApprovalDecision"
                )
        except Exception as e:  # fail closed: a hook that cannot answer rejects
            logger.warning("The approval hook raised on trial %d: %s", request.run_num, e)
            decision = ApprovalDecision.reject(f"the approval hook raised {type(e).__name__}: {e}")
        if decision.action == "modify":
            try:
                modified = self._modified(arm, pending, proposed, decision)
            except ValueError as e:  # ProposalError, SafetyError, a value of the wrong type
                decision = ApprovalDecision.reject(f"modification refused: {e}")
            except Exception as e:  # fail closed: a check that cannot finish refuses
                decision = ApprovalDecision.reject(
                    f"modification refused: the check failed ({type(e).__name__}: {e})"
                )
            else:
                verdict = "modified" if modified is not pending else "approved"
                fixed = modified.overrides if modified.overrides is not None else arm.overrides
                run = trial_overrides(fixed, modified.params)
                modified.approval = verdict
                self._approval_event(verdict, request, run, decision.reason, trial_id)
                return modified
        if decision.action == "approve":
            pending.approval = "auto" if decision.auto else "approved"
            self._approval_event(pending.approval, request, proposed, decision.reason, trial_id)
            return pending
        reason = decision.reason or "rejected by the approval hook"
        run_id = f"{trial_id}-rejected-{request.run_num}"
        self._reject(arm, pending, reason, run_id)
        self._approval_event("rejected", request, proposed, reason, run_id)
        return None

    def _modified(
        self, arm: Arm, pending: _Pending, proposed: list[str], decision: ApprovalDecision
    ) -> _Pending:
        """The trial a modification asks for, checked like a proposal (`pending` itself when
        the modification changes nothing).

        Raises:
            ValueError: a value of the wrong type, or the proposal check's refusal.
        """
        merged = merge_overrides(proposed, decision.overrides or ())
        if merged == proposed:
            return pending
        params, fixed = split_modified(merged, arm.space)
        proposal = Proposal(
            name=arm.name,
            tier=max(arm.tier, 2),
            overrides=fixed,
            params={hydra_path(k): v for k, v in params.items()},
            model_source=arm.model_source,
            model_config=arm.model_config,
            origin="human",
        )
        checked = self._proposal_check(proposal)
        if pending.trial is not None:  # the study learns the actual params when it finishes
            arm.study.tell(pending.trial, None, state=TrialState.FAIL)
        return replace(pending, trial=None, params=params, overrides=tuple(checked.overrides))

    def _reject(self, arm: Arm, pending: _Pending, reason: str, run_id: str) -> None:
        """Feed a rejected trial back (Optuna, the arm's counters) and record it."""
        trial = pending.trial
        if trial is not None:
            if isinstance(arm.study.sampler, optuna.samplers.TPESampler):
                # like an infeasible trial: TPE ranks it below every feasible one
                trial.set_constraint(REJECTED_CONSTRAINT, 1.0)
                arm.study.tell(trial, worst_value(arm.study), state=TrialState.COMPLETE)
            else:
                arm.study.tell(trial, None, state=TrialState.FAIL)
        self._registry_or_raise().record(arm, None, pending.params, failed=True)
        pending.approval = "rejected"
        self._write_record(
            run_id, arm, pending, _Outcome("rejected", None, reason), None, launched=False
        )

    def _registry_or_raise(self) -> ArmRegistry:
        registry = self._registry
        assert registry is not None  # set up before anything is sampled
        return registry

    def _approval_event(
        self,
        decision: str,
        request: TrialRequest,
        run: Sequence[str],
        reason: str,
        run_id: str,
    ) -> None:
        logger.info(
            "trial %d (%s, arm %s): %s", request.run_num, request.origin, request.arm, decision
        )
        self._event(
            "approval",
            f"trial {request.run_num} ({request.origin}, arm {request.arm}): {decision}"
            + (f": {reason}" if reason else ""),
            tier=request.tier,
            arm=request.arm,
            run_id=run_id,
            data={
                "decision": decision,
                "run_num": request.run_num,
                "origin": request.origin,
                "arm": request.arm,
                "overrides_proposed": list(request.overrides),
                "overrides_run": [] if decision == "rejected" else list(run),
                "reason": reason,
            },
        )

    def _stop_campaign(self, reason: str) -> None:
        """Stop as the policy's stop does, with `reason` as a ``recommendation`` event."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_reasons = (reason,)
        self._last_action = "stop"
        logger.warning("Stopping the campaign: %s", reason)
        self._event(
            "recommendation",
            f"stop: {reason}",
            data={"action": "stop", "reasons": [reason], "decision": "stop"},
        )

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Enforce Tune's `max_concurrent_trials` here instead of in `ConcurrencyLimiter`.

        The limiter drops completions of trial ids it did not hand out, which after
        `Tuner.restore(..., restart_errored=True)` are exactly the rerun trials; limiting here
        lets them reach `on_trial_complete`.

        Returns:
            True (the limiter then passes every call through).
        """
        if max_concurrent < 1:
            raise ValueError(f"`max_concurrent` must be >= 1, got {max_concurrent}.")
        self._max_concurrent = max_concurrent
        return True

    def _config(self, pending: _Pending) -> dict[str, Any]:
        config = unflatten_params(pending.params)
        if self._annotate:
            assert self._registry is not None
            arm = self._registry[pending.arm]
            config[RESERVED_KEY] = {
                "arm": arm.name,
                "tier": arm.tier,
                "origin": pending.origin,
                # the approval hook may have changed this trial's fixed overrides
                "overrides": list(
                    pending.overrides if pending.overrides is not None else arm.overrides
                ),
                "model": arm.model,
                "model_source": arm.model_source,
                "model_config": arm.model_config,
                "proposal_id": arm.proposal_id,
            }
        return config

    # ------------------------------------------------------------------ results

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Report the metric as an Optuna intermediate value (ranks pruned trials later).

        In campaign mode, a result with an ``epoch`` key is also kept as a point of the run's
        epoch curve, written to the store with the run (so curves need no shared filesystem).
        """
        pending = self._pending.get(trial_id)
        if pending is None:
            return
        if self._recording and is_finite_number(result.get(EPOCH_KEY)):
            pending.curve.append(_epoch_row(result))
        if pending.trial is None or not self._metric:
            return
        value = result.get(self._metric)
        step = result.get("training_iteration", pending.last_step + 1)
        if not is_finite_number(value) or not isinstance(step, int) or step <= pending.last_step:
            return
        pending.trial.report(float(value), step)
        pending.last_step = step

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell the arm's study, store a `RunRecord`, and run the escalation policy.

        Never raises (an exception here would end the whole Tune experiment): NaN/inf/missing
        metrics and errors are recorded as failures; a second completion of the same trial is
        ignored; an unknown trial id (Tune restarts trials under new ids) is attributed from
        the config in the result (``result["config"]``, or the ``config/...`` keys of Tune's
        flattened results); anything else that goes wrong (a recommender returning an unknown
        action, a store that cannot be written) is logged and kept as a ``note`` event, and
        the search goes on.
        """
        try:
            self._complete(trial_id, result, error)
        except Exception as e:  # the contract: Tune's loop must not die of one trial
            logger.exception("Handling the completion of trial %s failed", trial_id)
            with contextlib.suppress(Exception):
                self._event(
                    "note",
                    f"handling the completion of trial {trial_id} failed: {type(e).__name__}: {e}",
                )

    def _complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        """The body of `on_trial_complete`, which guards it."""
        if trial_id in self._finished:
            logger.debug("Ignoring a second completion of trial %s.", trial_id)
            return
        pending = self._pending.pop(trial_id, None)
        adopted = False
        if pending is None:
            pending = self._claim_pending(result)
        if pending is None:
            pending = self._adopt(trial_id, result)
            if pending is None:
                return
            adopted = True
        registry = self._registry
        assert registry is not None  # _adopt returns None before set-up
        arm = registry[pending.arm]
        if not adopted:
            arm.n_pending = max(0, arm.n_pending - 1)
        self._finished.add(trial_id)
        if result is None and not error:
            # Tune removed the trial before it ran (e.g. the experiment ended): close the
            # Optuna trial, but it is neither a result nor a run.
            if pending.trial is not None:
                arm.study.tell(pending.trial, None, state=TrialState.FAIL)
            logger.debug("Trial %s was removed before it reported anything.", trial_id)
            return
        outcome = self._classify(result, error)
        self._tell(arm, pending, outcome, adopted, result)
        registry.record(
            arm,
            outcome.value if outcome.status == "completed" else None,
            pending.params,
            failed=outcome.status in ("failed", "diverged", "infeasible"),
        )
        self._n_results += 1
        record = self._write_record(trial_id, arm, pending, outcome, result)
        if self._campaign_mode and record is not None:
            self._escalate()
        self._poll()

    def _claim_pending(self, result: Mapping[str, Any] | None) -> _Pending | None:
        """Pop the pending trial whose arm and parameters the result's config repeats (a
        trial Tune restarted under a new id), so its Optuna trial is told, not orphaned."""
        config = _result_config(result)
        if config is None or not self._pending:
            return None
        reserved = config.get(RESERVED_KEY)
        arm_name = reserved.get("arm") if isinstance(reserved, Mapping) else None
        flat = flatten_config({k: v for k, v in config.items() if k != RESERVED_KEY})
        for key, pending in self._pending.items():
            if not pending.params and arm_name is None:
                continue  # nothing to compare
            same_arm = arm_name is None or arm_name == pending.arm
            if same_arm and all(flat.get(k) == v for k, v in pending.params.items()):
                return self._pending.pop(key)
        return None

    def _adopt(self, trial_id: str, result: Mapping[str, Any] | None) -> _Pending | None:
        """A `_Pending` for a trial this searcher never suggested, from its result's config."""
        config = _result_config(result)
        if self._registry is None or config is None:
            logger.warning(
                "Trial %s finished but was never suggested and its result has no config; "
                "it is not recorded.",
                trial_id,
            )
            return None
        reserved = config.get(RESERVED_KEY)
        arm = self._registry[BASE_ARM]
        origin = "optuna"
        if isinstance(reserved, Mapping):
            named = reserved.get("arm")
            if isinstance(named, str) and named in self._registry:
                arm = self._registry[named]
            else:
                found = self._registry.find(
                    list(reserved.get("overrides") or ()), reserved.get("model_source")
                )
                arm = found or arm
            origin = str(reserved.get("origin") or "optuna")
        flat = flatten_config({k: v for k, v in config.items() if k != RESERVED_KEY})
        params = {k: flat[k] for k in arm.space if k in flat}
        return _Pending(
            arm=arm.name,
            trial=None,
            params=params,
            origin=origin,
            started_at=datetime.now(UTC),
        )

    def _classify(self, result: Mapping[str, Any] | None, error: bool) -> _Outcome:
        metric = self._metric or DEFAULT_METRIC
        if error:
            msg = (result or {}).get("error") or "the trial raised an error"
            return _Outcome("failed", None, str(msg))
        if not result:
            return _Outcome("failed", None, "the trial finished without reporting a result")
        reported = result.get("status")
        status = _TRAINER_STATUS.get(reported) if isinstance(reported, str) else None
        raw = result.get(metric)
        value = float(raw) if is_finite_number(raw) else None
        if status == "failed":
            return _Outcome("failed", None, str(result.get("error") or "the trainer failed"))
        if status == "diverged":
            return _Outcome("diverged", None, str(result.get("error") or "training diverged"))
        if value is None:
            return _Outcome(
                "failed", None, f"metric {metric!r} missing or not finite (got {raw!r})"
            )
        constraints, violated = self._constraint_values(result)
        if violated:
            return _Outcome("infeasible", value, "; ".join(violated), constraints)
        final = result.get(FINAL_KEY)
        # Only a trainable that speaks the final-report protocol can be read as stopped by
        # its flag; one that never reports it finished normally (drop-in use).
        pruned = status == "pruned" or final is False
        if pruned:
            return _Outcome("pruned", value, None, constraints)
        return _Outcome("completed", value, None, constraints)

    def _constraint_values(self, result: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
        values: dict[str, float] = {}
        violated: list[str] = []
        for key, (op, bound) in self._constraints.items():
            got = result.get(key)
            if not is_finite_number(got):
                values[key] = 1.0
                violated.append(
                    f"constraint {key} {op} {bound:g} not checkable: {key!r} "
                    f"not reported as a finite number (got {got!r})"
                )
                continue
            x = float(got)
            ok = {
                "<=": x <= bound,
                "<": x < bound,
                ">=": x >= bound,
                ">": x > bound,
                "==": x == bound,
            }[op]
            scale = max(abs(bound), 1.0)
            values[key] = 0.0 if ok else max(abs(x - bound) / scale, 1e-9)
            if not ok:
                violated.append(f"constraint violated: {key} {op} {bound:g} (got {x:g})")
        return values, violated

    def _tell(
        self,
        arm: Arm,
        pending: _Pending,
        outcome: _Outcome,
        adopted: bool,
        result: Mapping[str, Any] | None,
    ) -> None:
        if outcome.status in ("completed", "infeasible"):
            state, value = TrialState.COMPLETE, outcome.value
        elif outcome.status == "pruned":
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.FAIL, None
        if adopted or pending.trial is None:
            # a trial the study never asked for (adopted), or one the approval hook modified
            # (its asked trial was closed): added with the parameters it actually ran
            dists = {k: arm.space[k] for k in pending.params if k in arm.space}
            step = int((result or {}).get("training_iteration") or 1)
            intermediate = (
                {step: outcome.value}
                if state == TrialState.PRUNED and outcome.value is not None
                else None
            )
            try:
                frozen = optuna.trial.create_trial(
                    state=state,
                    value=value,
                    params=pending.params,
                    distributions=dists,
                    intermediate_values=intermediate,
                    constraints=outcome.constraints or None,
                )
                arm.study.add_trial(frozen)
            except ValueError as e:  # e.g. a modified value outside the distribution
                logger.warning(
                    "Trial not added to the study of arm %r (its parameters do not fit the "
                    "arm's space): %s",
                    arm.name,
                    e,
                )
            return
        trial = pending.trial
        for key, amount in outcome.constraints.items():
            trial.set_constraint(key, amount)
        if (
            state == TrialState.PRUNED
            and outcome.value is not None
            and pending.last_step == 0  # nothing reported yet: rank it by its final value
        ):
            trial.report(outcome.value, max(pending.last_step, 1))
        arm.study.tell(trial, value, state=state)

    # ------------------------------------------------------------------ warm start

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
        registry = self._ready()
        reserved = parameters.get(RESERVED_KEY)
        if arm is None and isinstance(reserved, Mapping) and reserved.get("arm") in registry:
            arm = str(reserved["arm"])
        target = registry[arm or BASE_ARM]
        flat = flatten_config({k: v for k, v in parameters.items() if k != RESERVED_KEY})
        by_path = {hydra_path(k): k for k in target.space}
        params: dict[str, Any] = {}
        for key, v in flat.items():
            name = key if key in target.space else by_path.get(hydra_path(key))
            if name is not None:
                params[name] = v
        number = float(value) if is_finite_number(value) else None
        if error or (not pruned and number is None):
            state, val = TrialState.FAIL, None
        elif pruned:
            state, val = TrialState.PRUNED, None
        else:
            state, val = TrialState.COMPLETE, number
        steps = {
            i: float(v) for i, v in enumerate(intermediate_values or ()) if is_finite_number(v)
        }
        if pruned and number is not None and not steps:
            steps = {1: number}
        frozen = optuna.trial.create_trial(
            state=state,
            value=val,
            params=params,
            distributions={k: target.space[k] for k in params},
            intermediate_values=steps or None,
            constraints={"warm_start": 1.0} if infeasible and val is not None else None,
        )
        target.study.add_trial(frozen)
        registry.record(
            target,
            None if infeasible or state != TrialState.COMPLETE else val,
            params,
            failed=state == TrialState.FAIL or infeasible,
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
        sources = dict(model_sources or {})
        added = 0
        for r in records:
            if r.status == "rejected":
                continue
            if r.arm not in registry:
                source = sources.get(r.arm)
                arm = self.add_arm(
                    r.arm,
                    tier=r.tier,
                    overrides=r.overrides,
                    model_source=source,
                    model=r.model,
                    origin=r.origin if r.origin in ("agent", "human") else "agent",
                )
                arm.tokens_charged = True
                if r.tier == 3 and source is None:
                    arm.retired = True
                    logger.warning(
                        "Warm start: tier-3 arm %r has no model source; it is kept retired.", r.arm
                    )
            try:
                self.add_evaluated_point(
                    dict(r.params),
                    r.value,
                    error=r.status in ("failed", "diverged"),
                    pruned=r.status == "pruned",
                    arm=r.arm,
                    infeasible=r.status == "infeasible",
                )
            except ValueError as e:
                logger.warning("Warm start: run %s skipped: %s", r.run_id, e)
                continue
            added += 1
        return added

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
        assert self._base_space is not None
        return registry.add(
            name,
            tier=tier,
            overrides=overrides,
            space=merge_spaces(
                self._base_space, space, [*drop_params, *self._fixed_keys(overrides)]
            ),
            model_source=model_source,
            model_config=dict(model_config) if model_config else None,
            model=model,
            origin="agent" if origin == "agent" else "human",
        )

    # ------------------------------------------------------------------ proposals

    def submit_proposal(self, proposal: Proposal) -> None:
        """Queue a proposal from outside the agent (a human, the CLI); thread-safe.

        It is validated and turned into an arm at the next `suggest` or completion.
        """
        if self._inbox is None:
            self._inbox = queue.SimpleQueue()
        self._inbox.put(proposal)

    def _poll(self) -> None:
        """Collect a finished proposer call and queued proposals (never blocks)."""
        future = self._future
        if future is not None and future.done():
            self._future = None
            request, self._request = self._request, None
            try:
                batch = future.result()
            except Exception as failure:  # the proposer is untrusted code: any failure is recorded
                e = failure.error if isinstance(failure, _ProposerFailedError) else failure
                report = failure.report if isinstance(failure, _ProposerFailedError) else None
                logger.warning(
                    "The proposer failed (%s: %s); tuning continues.", type(e).__name__, e
                )
                self._event(
                    "agent_failure",
                    f"{type(e).__name__}: {e}",
                    tier=request.tier if request else None,
                    data={
                        "error_type": type(e).__name__,
                        **({"call": report.to_dict()} if report else {}),
                    },
                )
                batch = _Batch(report=report)
            if batch.report is not None:
                self._record_call(batch, request)
            for proposal, reason in batch.refused:
                self._refuse(proposal, reason)
            self._held.extend((p, True) for p in batch.accepted)
            self._results_at_request = self._n_results
        if self._inbox is not None:
            while True:
                try:
                    self._held.append((self._inbox.get_nowait(), False))
                except queue.Empty:
                    break
        if self._held and self._registry is not None:
            held, self._held = self._held, []
            for proposal, checked in held:
                self._apply(proposal, checked=checked)

    def _fixed_keys(self, overrides: Iterable[str]) -> list[str]:
        return [k for k in (override_key(o) for o in overrides) if k]

    def _check(self, proposal: Any) -> Proposal:
        """The proposal contract, the space conversion and the safety layer's check, in order.

        Runs on the proposer's worker thread for the agent's proposals (it reads only settings
        fixed at construction) and inside `_apply` for proposals submitted from outside.

        Raises:
            ValueError: a `ProposalError`/`SafetyError`/`SearchSpaceError` naming the rule.
        """
        problem = self._validate(proposal)
        if problem is not None:
            raise ProposalError(f"invalid proposal: {problem}")
        p: Proposal = proposal
        if p.approval == "rejected":  # never becomes an arm: nothing to check or register
            return p
        if p.space:
            try:
                p = replace(p, space=convert_search_space(p.space))
            except SearchSpaceError as e:
                raise ProposalError(f"invalid proposal space: {e}") from e
        return self._proposal_check(p)

    def _refuse(self, proposal: Any, reason: str) -> None:
        """Log and record a refused proposal (an ``agent_failure`` event with the reason)."""
        name = getattr(proposal, "name", None)
        tier = getattr(proposal, "tier", None)
        logger.warning("Proposal %r refused: %s", name, reason)
        self._event(
            "agent_failure",
            f"proposal {name!r} refused: {reason}",
            tier=tier if tier in (2, 3) else None,
            data={
                "proposal_id": getattr(proposal, "proposal_id", None),
                "name": name if isinstance(name, str) else None,
                "reason": reason,
                "check": "proposal",
            },
        )

    def _apply(self, proposal: Any, *, checked: bool = False) -> Arm | None:
        """Check a proposal (unless the worker thread did) and add it as an arm; a refused one
        becomes an ``agent_failure`` event with the reason."""
        registry = self._registry
        assert registry is not None and self._base_space is not None
        if not checked:
            try:
                proposal = self._check(proposal)
            except ValueError as e:
                self._refuse(proposal, str(e))
                return None
            except Exception as e:  # fail closed: a check that cannot finish refuses
                self._refuse(proposal, f"the check failed ({type(e).__name__}: {e})")
                return None
        p: Proposal = proposal
        if p.approval == "rejected":
            logger.info("Skipping proposal %r: its approval was rejected.", p.name)
            return None
        existing = registry.find(p.overrides, p.model_source)
        if existing is not None:
            if p.params:
                registry.enqueue(existing, self._flat_params(existing, p.params), p.origin)
            self._event(
                "note",
                f"proposal {p.name!r} repeats arm {existing.name!r}",
                arm=existing.name,
                data={"proposal_id": p.proposal_id},
            )
            return existing
        try:
            space = merge_spaces(
                self._base_space, p.space, [*p.drop_params, *self._fixed_keys(p.overrides)]
            )
        except SearchSpaceError as e:
            self._refuse(p, f"invalid proposal space: {e}")
            return None
        arm = registry.add(
            p.name,
            tier=p.tier,
            overrides=p.overrides,
            space=space,
            model_source=p.model_source,
            model_config=dict(p.model_config) if p.model_config else None,
            origin=p.origin,
            model=p.model_name(),
            proposal_id=p.proposal_id,
            rationale=p.rationale,
            approval=p.approval,
            tokens_in=p.tokens_in,
            tokens_out=p.tokens_out,
        )
        if p.params:
            registry.enqueue(arm, self._flat_params(arm, p.params), p.origin)
        self._request_arms.append(arm.name)
        self._event(
            "note",
            f"new arm {arm.name!r} (tier {arm.tier}) from {p.origin}: {' '.join(arm.overrides)}",
            tier=arm.tier,
            arm=arm.name,
            data={
                "proposal_id": p.proposal_id,
                "overrides": list(arm.overrides),
                "rationale": p.rationale,
                "tokens_in": p.tokens_in,
                "tokens_out": p.tokens_out,
                "tool_calls": list(p.tool_calls),
            },
        )
        return arm

    def _flat_params(self, arm: Arm, params: Mapping[str, Any]) -> dict[str, Any]:
        by_path = {hydra_path(k): k for k in arm.space}
        return {by_path.get(hydra_path(k), k): v for k, v in flatten_config(params).items()}

    def _validate(self, p: Any) -> str | None:
        if not isinstance(p, Proposal):
            return f"expected an agent.Proposal, got {type(p).__name__}"
        if p.tier not in (2, 3):
            return f"tier must be 2 or 3, got {p.tier!r}"
        if isinstance(p.overrides, str) or not all(isinstance(o, str) for o in p.overrides):
            return f"overrides must be a list of Hydra override strings, got {p.overrides!r}"
        bad = [o for o in p.overrides if override_key(o) is None and not o.startswith("~")]
        if bad:
            return f"overrides must look like key=value, got {bad!r}"
        has_source = isinstance(p.model_source, str) and bool(p.model_source.strip())
        if (
            p.tier == 3
            and not has_source
            and (p.model_source is not None or model_from_overrides(p.overrides) is None)
        ):
            return (
                "a tier-3 proposal needs model_source (the generated model's code) or "
                "model=<a registered generated model>"
            )
        if p.tier == 2 and p.model_source is not None:
            return "a tier-2 proposal cannot carry model_source; use tier 3"
        if not p.overrides and p.model_source is None:
            return "a proposal needs overrides or model_source (it would repeat the base arm)"
        if p.tier > self._max_tier:
            return f"tier {p.tier} exceeds the campaign's max_tier={self._max_tier}"
        return None

    # ------------------------------------------------------------------ escalation

    def _arms_settled(self) -> bool:
        registry = self._registry
        assert registry is not None
        for name in self._request_arms:
            arm = registry[name]
            if not arm.retired and arm.n_results < self._min_trials_per_arm:
                return False
        cooldown = max(1, self._min_trials_per_arm)
        return self._requests_made == 0 or self._n_results - self._results_at_request >= cooldown

    def _recommendation(self, records: Any) -> tuple[str, tuple[str, ...], str | None]:
        """The feedback recommendation over the campaign's runs: (action, reasons, the arm a
        drift reading names or None)."""
        if self._recommender is not None:
            rec = self._recommender(records)
        else:
            from feedback import recommend

            rec = recommend(records, thresholds=self._thresholds())
        reading = getattr(rec, "drift", None)
        drifting = bool(getattr(reading, "drifting", False))
        arm = getattr(reading, "arm", None) if drifting else None
        return str(rec.action), tuple(str(r) for r in rec.reasons), arm or None

    def _campaign_history(self) -> Any:
        """The campaign's runs in finishing order: the store's pyarrow Table, else records."""
        if self._store is not None:
            return self._store.table(campaign=self.campaign)
        return list(self._records)

    def _thresholds(self) -> Any:
        from feedback import SignalThresholds

        th = self._signal_thresholds
        if th is None or isinstance(th, SignalThresholds):
            return th
        return SignalThresholds(**dict(th))

    def _escalate(self) -> None:
        """Read the recommendation and act on it (after every stored completion)."""
        try:
            records = self._campaign_history()
            action, reasons, drift_arm = self._recommendation(records)
            decision = self._policy.decide(
                action,
                reasons,
                tried_models=self._tried_models(records),
                requests_made=self._requests_made,
                request_in_flight=self._future is not None,
                arms_settled=self._arms_settled(),
            )
        except (OSError, ValueError) as e:
            logger.warning("Could not compute the feedback recommendation: %s", e)
            return
        text = f"{action}: {'; '.join(reasons)}" if reasons else action
        self._last_recommendation = text  # shown to the approval hook
        if action != self._last_action:
            self._event(
                "recommendation",
                text,
                data={"action": action, "reasons": list(reasons), "decision": decision.kind},
            )
            self._last_action = action
        if decision.kind == "stop":
            self._stopping = True
            self._stop_reasons = decision.reasons
            logger.info("Stopping the campaign: %s", "; ".join(decision.reasons))
            return
        if drift_arm is not None and self._registry is not None:
            retired = self._registry.retire_for_drift(drift_arm)
            if retired is not None:
                self._event("note", retired, arm=drift_arm, data={"signal": "drift"})
        if decision.kind == "propose":
            self._request_proposals(decision, records)

    def _tried_models(self, records: Any) -> list[str]:
        registry = self._registry
        assert registry is not None
        tried = registry.tried_models()
        rows: Iterable[tuple[Any, Any]]
        if isinstance(records, pa.Table):
            rows = zip(
                records.column("model").to_pylist(),
                records.column("status").to_pylist(),
                strict=True,
            )
        else:
            rows = ((r.model, r.status) for r in records)
        for model, status in rows:
            if model and model not in tried and status != "rejected":
                tried.append(model)
        return tried

    def _context(self, tier: int, reasons: Sequence[str], records: Any) -> ProposalContext:
        registry = self._registry
        assert registry is not None and self._base_space is not None and self._mode
        arms = sorted(
            registry.arms.values(),
            key=lambda a: (
                a.best_value is None,
                -(a.best_value or 0.0) if self._mode == "max" else (a.best_value or 0.0),
            ),
        )
        best = registry.best()
        tried = self._tried_models(records)
        return ProposalContext(
            tier=tier,
            metric=self._metric or DEFAULT_METRIC,
            mode=self._mode,
            campaign=self._campaign,
            reasons=tuple(reasons),
            space=describe_space(self._base_space),
            arms=tuple(a.summary() for a in arms),
            models=self._models,
            tried_models=tuple(tried),
            best_value=best.best_value if best else None,
            max_tier=self._max_tier,
            constraints=dict(self._constraints),
            store_root=str(self._store.root) if self._store is not None else None,
        )

    def _record_call(self, batch: _Batch, request: _Request | None) -> None:
        """Write the proposer call's report (tokens, tool calls, outcome) as an event."""
        report = batch.report
        assert report is not None
        names = [p.name for p in batch.accepted]
        spent = f"{report.tokens_in + report.tokens_out} tokens"
        if report.token_budget is not None:
            spent += f" ({report.tokens_total} of {report.token_budget} over the campaign)"
        self._event(
            "agent_call",
            f"{report.model}: {report.outcome}, {report.steps} steps, {spent}, "
            f"{len(report.tool_calls)} tool calls"
            + (f"; proposed {', '.join(names)}" if names else "")
            + (f"; {report.error}" if report.error else ""),
            tier=request.tier if request else None,
            data={**report.to_dict(), "proposals": names},
        )

    def _agent_budget_spent(self, proposer: Proposer) -> bool:
        """Whether the proposer's token budget is spent; says so in the history once."""
        if not getattr(proposer, "budget_spent", False):
            return False
        if not self._budget_noted:
            self._budget_noted = True
            used = getattr(proposer, "tokens_used", None)
            cap = getattr(proposer, "token_budget", None)
            self._event(
                "agent_failure",
                f"token budget spent ({used} of {cap} tokens): the agent is not called again; "
                "Optuna keeps tuning the existing arms",
                data={"reason": "token_budget", "tokens_used": used, "token_budget": cap},
            )
        return True

    def _request_proposals(self, decision: EscalationDecision, records: Any) -> None:
        proposer = self._proposer
        if proposer is None or decision.tier is None or self._agent_budget_spent(proposer):
            return
        context = self._context(decision.tier, decision.reasons, records)
        n = self._proposals_per_request
        try:
            self._proposer_snapshot = pickle.dumps(proposer)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            logger.error(
                "The proposer is not picklable (%s); Tune cannot checkpoint this searcher. "
                "Build unpicklable handles lazily and drop them in __getstate__.",
                e,
            )
            self._proposer_snapshot = None
        self._future = _start_worker(
            _run_proposer, proposer, context, n, self._store, self._history_chars, self._check
        )
        self._request = _Request(decision.tier, decision.reasons, time.time(), n)
        self._requests_made += 1
        self._request_arms = []
        self._event(
            "escalation",
            f"asking the proposer for {n} tier-{decision.tier} proposals: "
            + "; ".join(decision.reasons),
            tier=decision.tier,
            data={"action": decision.action, "reasons": list(decision.reasons), "n": n},
        )

    # ------------------------------------------------------------------ store

    def _event(
        self,
        kind: str,
        message: str,
        *,
        tier: int | None = None,
        arm: str | None = None,
        run_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        if self._store is None:
            return
        from feedback import Event

        try:
            event: Event = Event(
                campaign=self.campaign,
                kind=kind,
                message=message,
                tier=tier,
                arm=arm,
                run_id=run_id,
                data=dict(data or {}),
            )
            self._store.append_event(event)
        except (OSError, ValueError) as e:  # FeedbackError is a ValueError
            logger.error("Could not write a %s event to the feedback store: %s", kind, e)

    def _write_record(
        self,
        trial_id: str,
        arm: Arm,
        pending: _Pending,
        outcome: _Outcome,
        result: Mapping[str, Any] | None,
        *,
        launched: bool = True,
    ) -> RunRecord | None:
        """Store the run of `pending` (campaign mode); `launched=False` for a trial the
        approval hook rejected (no Tune trial: `trial_id` is only its run id)."""
        if not self._recording:
            return None
        from feedback import RunRecord

        result = result or {}
        charge = not arm.tokens_charged and arm.origin != "campaign"
        try:
            record = RunRecord.from_tune_result(
                {k: v for k, v in result.items() if k != "config" and not k.startswith("config/")},
                campaign=self.campaign,
                arm=arm.name,
                tier=arm.tier,
                origin=pending.origin,
                metric=self._metric or DEFAULT_METRIC,
                mode=self._mode or "max",
                run_id=str(result.get(RUN_ID_KEY) or trial_id),
                status=outcome.status,
                overrides=pending.overrides if pending.overrides is not None else arm.overrides,
                params={hydra_path(k): _param_value(v) for k, v in pending.params.items()},
                value=outcome.value,
                error=outcome.error,
                approval=pending.approval or arm.approval,
                tokens_in=arm.tokens_in if charge else 0,
                tokens_out=arm.tokens_out if charge else 0,
                rationale=arm.rationale or None,
            )
            record = replace(
                record,
                value=outcome.value,  # None for failures, whatever the last report said
                trial_id=trial_id if launched else None,
                model=record.model or arm.model,
                dataset=_str_or_none(result.get("dataset")),
                test_metrics={
                    k: float(v)
                    for k, v in result.items()
                    if k.startswith("test/") and is_finite_number(v)
                },
                started_at=record.started_at or pending.started_at,
                finished_at=record.finished_at or datetime.now(UTC),
            )
        except (TypeError, ValueError) as e:  # FeedbackError is a ValueError
            logger.error("Could not build the record of trial %s: %s", trial_id, e)
            return None
        if self._store is None:
            self._records.append(record)
        else:
            try:
                self._store.append(record)
                if pending.curve:
                    self._store.append_curve(record.run_id, pending.curve, campaign=self.campaign)
            except (OSError, ValueError) as e:
                logger.error("Could not write trial %s to the feedback store: %s", trial_id, e)
                return None
        if charge:
            arm.tokens_charged = True
        return record

    # ------------------------------------------------------------------ debugging

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
            "pending": sorted(self._pending),
            "peak_pending": self._peak_pending,
            "n_suggested": self._n_suggested,
            "n_results": self._n_results,
            "requests_made": self._requests_made,
            "proposal_pending": self.proposal_pending,
            "stopping": self._stopping,
            "approval_runs": self._approval_runs,
            "consecutive_rejections": self._consecutive_rejections,
        }

    def __deepcopy__(self, memo: dict[int, Any]) -> AgentSearcher:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new


_APPROVAL_STATE_DEFAULTS: dict[str, Any] = {
    "_approval_hook": None,
    "_approval_expected": False,
    "_max_consecutive_rejections": 10,
    "_approval_runs": 0,
    "_consecutive_rejections": 0,
    "_last_recommendation": "",
}
"""Approval state a checkpoint written before the approval step existed lacks."""


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError):
        return False
    return True


def _epoch_row(result: Mapping[str, Any]) -> dict[str, float]:
    """The epoch and the finite metrics with a slash (`train/loss`, `val/macro_f1`) of a result."""
    row = {EPOCH_KEY: float(result[EPOCH_KEY])}
    for key, value in result.items():
        if "/" in key and not key.startswith("config/") and is_finite_number(value):
            row[key] = float(value)
    return row


def _result_config(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The trial config inside a result: `result["config"]`, or the `config/...` keys of the
    flattened results Tune hands to searchers (nested back into dicts); None if absent."""
    if not result:
        return None
    config = result.get("config")
    if isinstance(config, Mapping):
        return dict(config)
    prefix = "config/"
    flat = {k[len(prefix) :]: v for k, v in result.items() if k.startswith(prefix)}
    return unflatten_params(flat) if flat else None


def _param_value(v: Any) -> float | int | str | bool | None:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if is_finite_number(v):
        return float(v)
    return str(v)


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None
