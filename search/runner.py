"""Run a campaign goal end to end: Ray, the dataset, the searcher, Tune, the history, the dashboard.

`run_campaign(goal, options)` is what `agentune run GOAL` calls:

1. Picks the campaign directory `<storage>/<file>-<goal>/<timestamp>/` (`--resume`: the newest
   one of that goal) holding `history/` (the Parquet `FeedbackStore`), `ray/` (Tune's
   experiment) and `dashboard.html`.
2. Joins the cluster in `RAY_ADDRESS` (as under `ray job submit`), or starts an embedded Ray
   on this machine (node address 127.0.0.1) sized to its CPUs (`search.campaign_env`).
3. Builds the experiment's dataset once (through the on-disk cache) and hands it to every trial
   through Ray's object store.
4. Runs Tune with an `AgentSearcher` (per-arm Optuna, escalation through the proposer, every
   proposal through the safety layer's `ProposalCheck` for this campaign's config) for
   `budget` trials, `max_concurrent` at a time, within the goal's wall-time budget, printing
   one line per finished trial, while `search.metrics` exports the campaign's metrics
   (best value, trials, tier, signals, agent use) to Ray's Prometheus endpoint. Each trial
   asks for the goal's `resources` (refused at once when no node of an embedded Ray has
   them); one that raises or whose worker dies is retried `max_failures` times from its
   last checkpoint, each retry a ``note`` event, and a spent one is recorded with its error.
5. Writes the dashboard and returns a `CampaignResult` (best run, paths).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.safety.proposals import ProposalCheck
from search.arms import fitted_startup_trials
from search.campaign_dirs import campaign_directory, campaign_name
from search.campaign_env import check_trial_resources, init_ray, quiet_libraries
from search.goals import (
    CampaignError,
    CampaignGoal,
    check_goal_composes,
    default_configs_dir,
)
from search.searcher import AgentSearcher, Constraint
from search.trainable import TrialSpec, make_trainable
from search.tune_hooks import (
    RunReporter,
    attach_approval_hook,
    attach_reporter,
    trial_dirname,
    tuner_searcher,
)

if TYPE_CHECKING:
    from agent.hooks import ApprovalHook
    from agent.smolagents_proposer import SmolagentsProposer
    from feedback import ConfigResult, FeedbackStore, RunRecord, SignalThresholds
    from search.metrics import CampaignMetrics, CampaignSnapshot

logger = logging.getLogger(__name__)


Approval = Literal["auto", "terminal"]
# The most one agent call may take (model requests, tool calls, smoke tests together).
_AGENT_WALL_TIME_S = 300.0


@dataclass
class CampaignOptions:
    """Command-line choices that override or complete the goal.

    Attributes:
        budget: trials to run instead of the goal's `budget`.
        approval: who approves every trial before it is launched: "auto" approves them all
            (`agent.hooks.AutoApprovalHook`); "terminal" asks at the terminal
            (`agent.hooks.TerminalApprovalHook`; needs an interactive stdin).
        approval_hook: the approval hook to use; takes precedence over `approval` (the CLI
            passes a terminal hook that pauses its progress display while it asks).
        model: the LLM instead of the goal's `llm.model` ("offline": the offline model).
        api_base: an OpenAI-compatible server instead of the goal's `llm.api_base`.
        resume: continue the newest campaign of this goal instead of starting a new one.
        storage: root folder of campaign directories (default `$AGENTUNE_STORAGE` or
            `./agentune_runs`).
        seed: seed for the searcher (default the goal's, else 0).
        stamp: the campaign directory's name instead of the UTC start time (`agentune submit`
            passes its submission's timestamp, so the job metadata can name the history's
            path before the job starts); refused when that directory exists; ignored with
            `resume`.
        metrics: export the campaign's metrics through `ray.util.metrics`
            (`search.metrics.METRICS`) while it runs.
    """

    budget: int | None = None
    approval: Approval = "auto"
    approval_hook: ApprovalHook | None = None
    model: str | None = None
    api_base: str | None = None
    resume: bool = False
    storage: Path | None = None
    seed: int | None = None
    stamp: str | None = None
    metrics: bool = True


@dataclass
class CampaignResult:
    """What a finished campaign leaves behind.

    Attributes:
        campaign: the campaign's name in the history (`mitbih-aami3_quick-20261125-210000`).
        campaign_dir: its folder; `history_dir` and `dashboard` live inside.
        best: the best completed, feasible run (of the configuration with the best mean), or
            None.
        best_config: that configuration's evaluations (mean and spread over its seeds).
        n_runs: runs recorded in the history.
        counts: runs per status.
        stop_reason: why the search ended.
        duration_s: the campaign's wall time.
        summary: the agent's summary of the campaign (also an ``agent_summary`` event).
    """

    campaign: str
    campaign_dir: Path
    history_dir: Path
    dashboard: Path
    best: RunRecord | None
    n_runs: int
    counts: dict[str, int] = field(default_factory=dict)
    stop_reason: str = ""
    duration_s: float = 0.0
    summary: str = ""
    best_config: ConfigResult | None = None


def searcher_constraints(goal: CampaignGoal) -> dict[str, Constraint]:
    """The goal's `{key: {min, max}}` constraints as the searcher's `{key: (op, bound)}`.

    Raises:
        CampaignError: a constraint with both bounds (the searcher takes one per key).
    """
    out: dict[str, Constraint] = {}
    for key, bound in goal.constraints.items():
        if bound.min is not None and bound.max is not None:
            raise CampaignError(
                f"{goal.spec}: constraints.{key}: give min or max, not both (got min="
                f"{bound.min}, max={bound.max})"
            )
        out[key] = ("<=", bound.max) if bound.max is not None else (">=", float(bound.min or 0))
    return out


def build_proposer(goal: CampaignGoal, options: CampaignOptions) -> SmolagentsProposer | None:
    """The goal's agent (`llm` settings, `--model`, `--api-base`); None when max_tier < 2.

    Built before Ray starts so that a model that cannot work (an unset API key variable)
    fails at once; `run_campaign` adds the campaign's proposal check and data dimensions.

    Raises:
        CampaignError: the model cannot be built.
    """
    if goal.max_tier < 2:
        return None
    from agent.proposer import AgentError
    from agent.smolagents_proposer import proposer_from_settings

    try:
        return proposer_from_settings(
            goal.llm,
            model=options.model,
            api_base=options.api_base,
            wall_time_s=_AGENT_WALL_TIME_S,
            config_dir=default_configs_dir(),
        )
    except (AgentError, ValueError) as e:
        raise CampaignError(f"{goal.spec}: llm: {e}") from e


def campaign_approval_hook(options: CampaignOptions) -> ApprovalHook:
    """The hook that approves every trial: `options.approval_hook`, else `hook_for(approval)`.

    Raises:
        CampaignError: an unknown `approval`, or "terminal" without an interactive terminal.
    """
    if options.approval_hook is not None:
        return options.approval_hook
    from agent.hooks import hook_for

    try:
        return hook_for(options.approval)
    except ValueError as e:
        raise CampaignError(str(e)) from e


def start_metrics(
    history_dir: Path,
    campaign: str,
    thresholds: SignalThresholds | None,
    searcher: AgentSearcher | None,
) -> CampaignMetrics:
    """Start exporting the campaign's metrics (`search.metrics`), refreshed every 10 s from
    the history and the live searcher's `state_summary()` until `stop()`."""
    from feedback import FeedbackStore
    from search.metrics import CampaignMetrics, read_snapshot

    # A store object of its own: the searcher's is written on Tune's thread, and a store
    # caches per object.
    reader = FeedbackStore(history_dir)
    summary = searcher.state_summary if searcher is not None else None

    def read() -> CampaignSnapshot:
        return read_snapshot(reader, campaign, thresholds=thresholds, searcher_summary=summary)

    return CampaignMetrics(campaign, read).start()


def resumed_budget(store: FeedbackStore, campaign: str, requested: int | None) -> int:
    """The trial budget a resumed campaign keeps: the one it started with.

    Tune restores the saved experiment with its own trial count and searcher, so another
    budget cannot be applied to it; asking for one is refused rather than ignored.

    Raises:
        CampaignError: no campaign event in the history, or `requested` differs from it.
    """
    events = store.events(campaign=campaign, kind="campaign")
    saved = events[0].data.get("budget") if events else None
    if not isinstance(saved, int):
        raise CampaignError(
            f"--resume: the history of {campaign} does not say what budget the campaign "
            "started with; start a new campaign instead (without --resume)"
        )
    if requested is not None and requested != saved:
        raise CampaignError(
            f"--resume continues {campaign} with the budget it started with ({saved} trials), "
            f"got --budget {requested}; drop --budget, or start a new campaign with it"
        )
    return saved


def load_campaign_dataset(goal: CampaignGoal) -> Any:
    """Compose the goal's experiment once on the driver and load its dataset (cached on disk)."""
    from biosignals.data.cache import load_dataset
    from biosignals.train import compose_config

    cfg = compose_config([f"experiment={goal.experiment}", *goal.overrides], default_configs_dir())
    return load_dataset(cfg.dataset, cfg.paths.cache_dir)


def run_campaign(
    goal: CampaignGoal,
    options: CampaignOptions | None = None,
    *,
    on_run: Callable[[RunRecord, str, RunRecord | None], None] | None = None,
    num_cpus: int | None = None,
) -> CampaignResult:
    """Run `goal` to the end and write its history and dashboard.

    Args:
        goal: the loaded goal (`search.goals.load_goal`).
        options: command-line choices (budget, approval, model, resume, storage, seed).
        on_run: called on the driver for every finished run with the record, the latest
            recommendation and the best run so far (the CLI prints a line).
        num_cpus: CPUs of an embedded Ray (default: all of this machine's).

    Returns:
        The `CampaignResult`.

    Raises:
        CampaignError: a goal whose arms do not compose or name a refused target
            (`check_goal_composes`), or options that contradict the goal (e.g. --resume with
            nothing to resume).
    """
    from ray import tune

    from feedback import Event, FeedbackStore, write_dashboard

    options = options or CampaignOptions()
    t0 = time.perf_counter()
    quiet_libraries()
    # Every arm composes and passes the target check before anything starts: a bad space key
    # would otherwise fail every trial and end the campaign as "hopeless".
    check_goal_composes(goal, default_configs_dir())
    campaign_dir = campaign_directory(goal, options)
    campaign = campaign_name(goal, campaign_dir)
    history_dir = campaign_dir / "history"
    budget = options.budget or goal.budget
    approval_hook = campaign_approval_hook(options)
    proposer = build_proposer(goal, options)
    constraints = searcher_constraints(goal)
    thresholds = dataclasses.replace(goal.signal_thresholds(), budget=budget)
    campaign_dir.mkdir(parents=True, exist_ok=True)
    store = FeedbackStore(history_dir)
    if options.resume:
        budget = resumed_budget(store, campaign, options.budget)
        thresholds = dataclasses.replace(thresholds, budget=budget)
    else:
        store.append_event(
            Event(
                campaign=campaign,
                kind="campaign",
                message=f"{goal.spec}: {goal.description}",
                data={
                    "goal": goal.spec,
                    "experiment": goal.experiment,
                    "overrides": list(goal.overrides),
                    "thresholds": thresholds.to_dict(),
                    "budget": budget,
                },
            )
        )
    started_ray = init_ray(num_cpus)
    try:
        check_trial_resources(goal, embedded=started_ray)
        dataset = load_campaign_dataset(goal)
        spec = TrialSpec(
            experiment=goal.experiment,
            overrides=tuple(goal.overrides),
            config_dir=str(default_configs_dir()),
            metric=goal.metric,
            mode=goal.mode,
            campaign=campaign,
        )
        trainable = tune.with_resources(make_trainable(spec, dataset), goal.resources.as_ray())
        proposal_check = ProposalCheck(
            config_dir=spec.config_dir,
            experiment=goal.experiment,
            base_overrides=tuple(goal.overrides),
            space_keys=tuple(goal.tune_space()),
            smoke_dims={
                "in_channels": dataset.in_channels,
                "input_length": dataset.input_length,
                "num_classes": dataset.num_outputs,
                "num_features": dataset.num_features,
            },
        )
        if proposer is not None:
            proposer.proposal_check = proposal_check
            proposer.smoke_dims = dict(proposal_check.smoke_dims)
        searcher = AgentSearcher(
            space=goal.tune_space(),
            metric=goal.metric,
            mode=goal.mode,
            seed=options.seed if options.seed is not None else (goal.seed or 0),
            proposer=proposer,
            store=store,
            campaign=campaign,
            models=list(goal.models),
            max_tier=goal.max_tier,
            constraints=constraints,
            signal_thresholds=thresholds,
            proposal_check=proposal_check,
            approval_hook=approval_hook,
            sampler=goal.sampler,
            tpe_kwargs={"n_startup_trials": fitted_startup_trials(budget)},
            repeats=goal.repeats,
        )
        reporter = RunReporter(store, campaign, on_run)
        ray_dir = campaign_dir / "ray"
        experiment = ray_dir / "experiment"
        if options.resume and tune.Tuner.can_restore(str(experiment)):
            # Errored trials stay errored: they were retried max_failures times already and
            # are in the history as failed (the searcher would ignore a second result).
            tuner = tune.Tuner.restore(
                str(experiment), trainable=trainable, resume_errored=False, param_space={}
            )
            attach_approval_hook(tuner, approval_hook)
            attach_reporter(tuner, reporter)
        else:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=budget,
                    max_concurrent_trials=goal.max_concurrent,
                    time_budget_s=goal.wall_time_s,
                    reuse_actors=False,
                    trial_dirname_creator=trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name="experiment",
                    storage_path=str(ray_dir),
                    callbacks=[reporter],
                    verbose=0,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    failure_config=tune.FailureConfig(max_failures=goal.max_failures),
                ),
            )
        metrics = (
            start_metrics(store.root, campaign, thresholds, tuner_searcher(tuner) or searcher)
            if options.metrics
            else None
        )
        try:
            tuner.fit()
        finally:
            if metrics is not None:
                metrics.stop()
        reporter.flush()
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    summary = write_summary(store, campaign, proposer, goal)
    result = _finish(goal, campaign, campaign_dir, store, t0, budget, write_dashboard)
    return dataclasses.replace(result, summary=summary)


def write_summary(
    store: FeedbackStore,
    campaign: str,
    proposer: SmolagentsProposer | None,
    goal: CampaignGoal,
) -> str:
    """Have the agent summarise the campaign (the facts alone without one) and store it as an
    ``agent_summary`` event; returns the text."""
    from agent.summary import campaign_facts, facts_summary
    from feedback import Event

    facts = campaign_facts(store.root, campaign, models=goal.models, max_tier=goal.max_tier)
    if proposer is None:
        text, source = facts_summary(facts), "facts"
    else:
        text, source = proposer.summarize(facts), proposer.model_id
    data: dict[str, Any] = {"source": source}
    report = getattr(proposer, "last_call", None)
    if report is not None:
        data["call"] = report.to_dict()
    store.append_event(Event(campaign=campaign, kind="agent_summary", message=text, data=data))
    return text


def _finish(
    goal: CampaignGoal,
    campaign: str,
    campaign_dir: Path,
    store: FeedbackStore,
    t0: float,
    budget: int,
    write_dashboard: Callable[..., Path],
) -> CampaignResult:
    records = store.runs(campaign=campaign)
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    duration = time.perf_counter() - t0
    stops = store.events(campaign=campaign, kind="recommendation")
    stop_reason = next((e.message for e in reversed(stops) if e.data.get("action") == "stop"), "")
    if not stop_reason:
        if len(records) - counts.get("rejected", 0) >= budget:  # rejected trials never ran
            stop_reason = f"trial budget reached ({budget} trials)"
        elif goal.wall_time_s is not None and duration >= goal.wall_time_s:
            stop_reason = f"wall-time budget reached ({goal.wall_time_min:g} min)"
        else:
            stop_reason = "interrupted before the budget was spent; continue with --resume"
    dashboard = write_dashboard(campaign_dir, campaign=campaign)
    best = store.best_config(campaign)
    return CampaignResult(
        campaign=campaign,
        campaign_dir=campaign_dir,
        history_dir=store.root,
        dashboard=dashboard,
        best=best.best_run if best else None,
        best_config=best,
        n_runs=len(records),
        counts=counts,
        stop_reason=stop_reason,
        duration_s=duration,
    )
