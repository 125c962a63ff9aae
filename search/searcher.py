"""`AgentSearcher`: a Ray Tune searcher of per-arm Optuna studies that an agent extends.

This module is Tune's `Searcher` API and nothing else; the parts it delegates to:
`search.trials` (running trials), `search.outcomes` (a result -> a run status),
`search.optuna_bridge` (what the studies learn), `search.review` (the approval step),
`search.recorder` (the history), `search.agent_loop` with `search.escalator`,
`search.proposal_worker` and `search.proposals` (the agent side), `search.warm_start`
(outside results), `search.repeats` (re-evaluating incumbents) and `search.checkpoint`
(files); learning the space, metric, mode and concurrency (Tune's set-up handshake) and
building the base arm is the mixin `search.searcher_setup`, the methods beyond Tune's API
(properties, outside results, `state_summary`) the mixin `search.searcher_extensions`. The
keys shared with the trainable are in `search.contract`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ray.tune.result import DEFAULT_METRIC
from ray.tune.search import Searcher

from agent.hooks import ApprovalHook
from agent.proposer import Proposal, Proposer
from agent.safety.proposals import ProposalCheck
from search import optuna_bridge
from search.agent_loop import AgentLoop
from search.arms import ArmRegistry
from search.checkpoint import read_state, write_state
from search.contract import EPOCH_KEY, FINAL_KEY, RESERVED_KEY, RUN_ID_KEY
from search.escalation import EscalationPolicy
from search.escalator import Escalator
from search.outcomes import Constraint, check_constraints, classify, goal_noise, int_or_none
from search.proposal_worker import ProposalWorker
from search.recorder import HistoryRecorder, epoch_row
from search.repeats import RepeatPlanner
from search.review import StopCampaign, TrialReviewer
from search.samplers import SAMPLERS
from search.searcher_extensions import SearcherExtensions
from search.searcher_setup import SearcherSetup
from search.space import convert_search_space, is_finite_number
from search.trials import PendingTrial, TrialBook, suggested_config

if TYPE_CHECKING:
    from feedback import FeedbackStore

__all__ = ["EPOCH_KEY", "FINAL_KEY", "RESERVED_KEY", "RUN_ID_KEY", "AgentSearcher", "Constraint"]

logger = logging.getLogger(__name__)


class AgentSearcher(SearcherSetup, SearcherExtensions, Searcher):
    """Per-arm Optuna studies, escalated by an agent when tuning stalls.

    Drop-in use (no campaign, no LLM): like `OptunaSearch`, it tunes a plain Tune search
    space with Bayesian optimisation (Optuna's GP sampler for the first 64 trials, then TPE),
    seeded, and suggested configs are plain dicts.

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
    such as `"trainer.lr"`; nested-dict spaces come back nested) plus, in campaign mode only
    (or with `annotate=True`), the reserved entry ``config["agentune"]`` with the arm (its
    name, tier, origin, fixed overrides, model, model code, training seed; layout in
    `search.contract`). With it, no configuration trains twice with one seed: a sampler's
    copy of an evaluated config gets the config's next unused seed (`search.repeats`).
    Campaign mode (reading the signals after each trial, escalating, stopping) is on when
    `campaign` or `proposer` is given; `store` alone only records the runs of a drop-in search
    and changes none of its decisions.

    What a campaign trainable reports (the metric, ``agentune_final``, optionally
    ``status``, ``error``, ``num_params``, ``epoch``, ``test/...``, every key named in
    `constraints`) is in `search.contract`; in drop-in mode a finished trial counts as
    completed. The run statuses (failed, diverged, infeasible, pruned, completed) and what
    Optuna is told are in `search.outcomes`. A trial Tune removes before it ran (no result,
    no error) closes its Optuna trial as FAIL and is not recorded.

    Contracts with Tune: picklable (the worker thread's future and the proposal queue are
    dropped and rebuilt; the proposer must be picklable, and while a call runs the copy
    pickled when it started is saved; the store pickles as its root and re-opens; the
    approval hook is kept only when it pickles, see `approval_hook`); `save`/`restore`
    round-trip studies, arms, pending trials and counters into a fresh instance (an
    in-flight proposer call is lost and re-requested by the policy); results for unknown
    trial ids use the config in the result; results after completion are ignored;
    `add_evaluated_point` warm-starts the base arm (or the arm named by
    ``parameters["agentune"]["arm"]``).

    Args:
        space: search space (Tune domains, Optuna distributions or spec dicts; see
            `search.space`). None: taken from the Tuner's `param_space`.
        metric: metric to optimise. None: from `set_search_properties`.
        mode: "min" or "max". None: from `set_search_properties`.
        seed: seeds every arm's sampler (arm i: seed + i) and the arm-selection RNG.
        points_to_evaluate: parameter dicts the base arm evaluates first.
        proposer: the agent; None disables proposals (escalation is then off).
        store: the campaign's `FeedbackStore`; None keeps records in memory only.
        campaign: campaign name written to records and events (default "default").
        base_overrides: Hydra overrides of the base arm (e.g. `["model=cnn1d"]`).
        models: built-in models the campaign may try (drives tier 2 -> 3).
        max_tier: highest escalation tier (0 or 1: none, 2: config variants, 3: generated
            models).
        min_trials_per_arm: trials every arm gets before exploitation (see `search.arms`);
            also the finished runs (completed, pruned, diverged or infeasible) each of
            `models` needs before tier 3 is asked for (see `search.escalator`).
        exploit_prob: probability of exploiting the best arm afterwards.
        max_arm_failures: consecutive failures that retire a non-base arm without values.
        proposals_per_request: `n` passed to `Proposer.propose`.
        max_agent_requests: most proposer calls (None: unlimited).
        proposer_timeout_s: seconds one proposer call may run; after that the searcher
            stops waiting for it (the thread cannot be killed: its late answer is ignored),
            records an ``agent_failure`` and an ``agent_call`` (outcome ``interrupted``)
            event, logs a warning, and the escalation policy may ask again (later calls go
            to a copy of the proposer). None waits forever.
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
        sampler: each arm's Optuna sampler (`search.samplers`): "auto" (default: Optuna's
            `GPSampler` for an arm's first 64 finished trials, where it beats TPE, then
            `TPESampler`, so long searches stay cheap per suggestion), "gp" (the campaign
            goals' default), "tpe" (as Tune's `OptunaSearch`) or "random".
        annotate: force the reserved config entry on (True) or off (False); None: on in
            campaign mode.
        proposal_check: the safety layer's check every proposal passes before it becomes an
            arm (a picklable callable returning the checked proposal or raising a
            `ValueError` with the reason); default `agent.safety.ProposalCheck()`, the
            structural checks (override policy, model-code check). `agentune run` passes one
            that also composes and target-checks the campaign's trial config.
        approval_hook: reviews every trial before it is launched, whoever proposed it (an
            `agent.hooks.ApprovalHook`), in `suggest` on Tune's driver thread (it may block
            while a person answers): approve, modify (checked like a proposal) or reject
            (also: a hook that raises; recorded ``rejected`` and sampled again); every
            decision is an ``approval`` event (details in `search.review`). None: every
            trial runs. A hook that cannot be pickled stays with the live searcher object
            only; a copy unpickled without it stops the campaign rather than run trials
            nobody approved (re-attach with `approval_hook = ...`).
        max_consecutive_rejections: rejections in a row after which the campaign stops (the
            reason is written as a ``recommendation`` event with action ``stop``).
        repeats: extra evaluations, with seeds ``seed + 1 ..``, of each trial that beats the
            best configuration's mean (`search.repeats`); needs the reserved entry (campaign
            mode or `annotate=True`) and a trainable that trains with its ``seed``. 0: off.

    Raises:
        ValueError: invalid mode, thresholds, constraint operators or timeout.
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
        proposer_timeout_s: float | None = 600.0,
        constraints: Mapping[str, Constraint] | None = None,
        signal_thresholds: Any = None,
        recommender: Callable[[Any], Any] | None = None,
        history_chars: int = 4000,
        tpe_kwargs: Mapping[str, Any] | None = None,
        sampler: str = "auto",
        annotate: bool | None = None,
        proposal_check: Callable[[Proposal], Proposal] | None = None,
        approval_hook: ApprovalHook | None = None,
        max_consecutive_rejections: int = 10,
        repeats: int = 0,
    ) -> None:
        if metric is not None and not isinstance(metric, str):
            raise TypeError(
                f"AgentSearcher optimises one metric; `metric` must be a str, got {metric!r}."
            )
        if mode not in (None, "min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max', got {mode!r}.")
        if sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}.")
        if repeats and annotate is False:
            raise ValueError("`repeats` needs the reserved config entry (annotate=True).")
        checked_constraints = check_constraints(constraints)
        super().__init__(metric=metric, mode=mode)
        self._base_space = convert_search_space(space) if space is not None else None
        self._points_to_evaluate = [dict(p) for p in points_to_evaluate or ()]
        self._base_overrides = tuple(base_overrides)
        self._constraints = checked_constraints
        self._arm_settings: dict[str, Any] = {  # ArmRegistry's, once the mode is known
            "seed": seed,
            "min_trials_per_arm": min_trials_per_arm,
            "exploit_prob": exploit_prob,
            "max_arm_failures": max_arm_failures,
            "tpe_kwargs": dict(tpe_kwargs or {}),
            "sampler": sampler,
            "noise": goal_noise(signal_thresholds),  # spreads the arm-choice draws
        }
        self._repeats_wanted = repeats
        # Campaign mode (a campaign name or a proposer) reads the signals and escalates or
        # stops; a store alone only adds the history to a drop-in search.
        self._campaign_mode = campaign is not None or proposer is not None
        self._annotate = self._campaign_mode if annotate is None else bool(annotate)
        safety_check = proposal_check or ProposalCheck()
        self._recorder = HistoryRecorder(
            store, campaign or "default", recording=self._campaign_mode or store is not None
        )
        policy = EscalationPolicy(
            max_tier=max_tier if proposer is not None else min(max_tier, 1),
            models=models,
            max_requests=max_agent_requests,
        )
        self._agent = AgentLoop(
            ProposalWorker(proposer, timeout_s=proposer_timeout_s),
            Escalator(
                policy,
                recorder=self._recorder,
                recommender=recommender,
                signal_thresholds=signal_thresholds,
                min_trials_per_arm=min_trials_per_arm,
            ),
            self._recorder,
            safety_check=safety_check,
            max_tier=max_tier,
            proposals_per_request=proposals_per_request,
            history_chars=history_chars,
            models=models,
            constraints=checked_constraints,
            campaign=campaign,
        )
        self._reviewer = TrialReviewer(
            approval_hook,
            proposal_check=safety_check,
            recorder=self._recorder,
            max_consecutive_rejections=max_consecutive_rejections,
        )
        self._registry: ArmRegistry | None = None
        self._repeats: RepeatPlanner | None = None
        self._trials = TrialBook()
        self._n_results = 0
        self._max_concurrent: int | None = None
        if self._base_space is not None and self._metric_and_mode_known():
            self._setup()

    # ------------------------------------------------------------------ checkpoints

    def save(self, checkpoint_path: str) -> None:
        """Pickle the whole state (studies, arms, pending trials, counters) atomically.

        The file is written under a temporary name and `os.replace`d, so a crash leaves the
        previous checkpoint intact. Called by Tune at every experiment checkpoint.
        """
        write_state(checkpoint_path, self.__dict__.copy())

    def restore(self, checkpoint_path: str) -> None:
        """Load a `save`d state into this instance; it continues the same studies.

        A proposer, store or approval hook given to this instance's constructor replaces the
        saved one (re-attach after a restart); otherwise the saved ones are used. The approval
        run count (`TrialRequest.run_num`) continues from the saved one.

        Raises:
            ValueError: the file is not an `AgentSearcher` checkpoint of this version.
        """
        state = read_state(checkpoint_path)
        proposer, store = self._agent.worker.proposer, self._recorder.store
        hook = self.approval_hook
        self.close()
        self.__dict__.update(state)
        if proposer is not None:
            self._agent.worker.proposer = proposer
        if hook is not None:
            self.approval_hook = hook
        if store is not None:
            self._recorder.store = store

    def close(self) -> None:
        """Forget a running proposer call (its daemon thread ends on its own; not waited for)."""
        self._agent.worker.close()

    # ------------------------------------------------------------------ trials

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
        running = self._trials.pending
        if self.stopping:
            return None if running else Searcher.FINISHED  # type: ignore[return-value]
        registry = self._ready()
        if trial_id in running:
            return self._config(running[trial_id])
        if self._max_concurrent is not None and len(running) >= self._max_concurrent:
            return None
        if self._agent.escalator.stop_at_trial_budget(running):  # a resumed campaign's runs
            return None if running else Searcher.FINISHED  # type: ignore[return-value]
        pending = self._reviewer.next_trial(
            registry,
            trial_id,
            metric=self._metric or DEFAULT_METRIC,
            mode=self._mode or "max",
            recommendation=self._agent.escalator.last_recommendation,
        )
        if isinstance(pending, StopCampaign):
            self._agent.escalator.stop(pending.reason)
            return None if running else Searcher.FINISHED  # type: ignore[return-value]
        if self._annotate and self._repeats is not None and pending.origin != "repeat":
            # a copy of an evaluated config trains with another seed (repeats reserved theirs)
            pending.seed = self._repeats.fresh_seed(pending.arm, pending.params, pending.seed)
        self._trials.start(trial_id, pending, registry[pending.arm])
        return self._config(pending)

    def _config(self, pending: PendingTrial) -> dict[str, Any]:
        assert self._registry is not None  # pending trials exist only after set-up
        return suggested_config(pending, self._registry[pending.arm], annotate=self._annotate)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Report the metric as an Optuna intermediate value (ranks pruned trials later).

        In campaign mode, a result with an ``epoch`` key is also kept as a point of the run's
        epoch curve, written to the store with the run (so curves need no shared filesystem).
        """
        pending = self._trials.pending.get(trial_id)
        if pending is None:
            return
        if self._recorder.recording and is_finite_number(result.get(EPOCH_KEY)):
            pending.curve.append(epoch_row(result))
        if self._metric:
            step = result.get("training_iteration", pending.last_step + 1)
            optuna_bridge.report(pending, result.get(self._metric), step)

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
                self._recorder.event(
                    "note",
                    f"handling the completion of trial {trial_id} failed: {type(e).__name__}: {e}",
                )

    def _complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        """The body of `on_trial_complete`, which guards it."""
        found = self._trials.finish(trial_id, self._registry, result)
        if found is None:
            return
        pending, arm = found
        registry, base = self._registry, self._base_space
        assert registry is not None and base is not None  # a trial was found: set up
        if result is None and not error:
            # Tune removed the trial before it ran (e.g. the experiment ended): close the
            # Optuna trial, but it is neither a result nor a run.
            optuna_bridge.close(arm, pending.trial)
            logger.debug("Trial %s was removed before it reported anything.", trial_id)
            return
        metric, mode = self._metric or DEFAULT_METRIC, self._mode or "max"
        outcome = classify(result, error, metric, self._constraints)
        optuna_bridge.tell(arm, pending, outcome, result)
        registry.record(
            arm,
            outcome.value if outcome.status == "completed" else None,
            pending.params,
            failed=outcome.status in ("failed", "diverged", "infeasible"),
        )
        if outcome.status == "completed" and outcome.value is not None and self._repeats:
            self._repeats.observe(
                registry,
                arm,
                pending.params,
                outcome.value,
                origin=pending.origin,
                seed=pending.seed if pending.seed is not None else int_or_none(result, "seed"),
            )
        self._n_results += 1
        record = self._recorder.run(
            trial_id, arm, pending, outcome, result, metric=metric, mode=mode
        )
        if self._campaign_mode and record is not None:
            self._agent.after_result(registry, base, self._n_results, metric=metric, mode=mode)
        self._poll()

    def _poll(self) -> None:
        """Take in the agent's answers and queued proposals (never blocks)."""
        self._agent.poll(self._registry, self._base_space, self._n_results)
