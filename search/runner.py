"""Run a campaign goal end to end: Ray, the dataset, the searcher, Tune, the history, the dashboard.

`run_campaign(goal, options)` is what `agentune run GOAL` calls:

1. Picks the campaign directory `<storage>/<file>-<goal>/<timestamp>/` (`--resume`: the newest
   one of that goal) holding `history/` (the Parquet `FeedbackStore`), `ray/` (Tune's
   experiment) and `dashboard.html`.
2. Joins the cluster in `RAY_ADDRESS` (as under `ray job submit`), or starts an embedded Ray
   on this machine (node address 127.0.0.1) sized to its CPUs.
3. Builds the experiment's dataset once (through the on-disk cache) and hands it to every trial
   through Ray's object store.
4. Runs Tune with an `AgentSearcher` (per-arm Optuna, escalation through the proposer, every
   proposal through the safety layer's `ProposalCheck` for this campaign's config) for
   `budget` trials, `max_concurrent` at a time, within the goal's wall-time budget, printing
   one line per finished trial.
5. Writes the dashboard and returns a `CampaignResult` (best run, paths).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ray.tune import Callback

from agent.safety.proposals import ProposalCheck
from search.campaign import CampaignError, CampaignGoal, default_configs_dir
from search.searcher import AgentSearcher, Constraint
from search.trainable import TrialSpec, make_trainable

if TYPE_CHECKING:
    from agent.proposer import Proposer
    from feedback import FeedbackStore, RunRecord

logger = logging.getLogger(__name__)

STORAGE_ENV = "AGENTUNE_STORAGE"
DEFAULT_STORAGE = "agentune_runs"
_TIMESTAMP = "%Y%m%d-%H%M%S"

Approval = Literal["auto", "terminal"]


@dataclass
class CampaignOptions:
    """Command-line choices that override or complete the goal.

    Attributes:
        budget: trials to run instead of the goal's `budget`.
        approval: "auto" accepts every agent proposal; "terminal" asks at the prompt.
        model: the LLM instead of the goal's `llm.model` ("offline": no LLM).
        resume: continue the newest campaign of this goal instead of starting a new one.
        storage: root folder of campaign directories (default `$AGENTUNE_STORAGE` or
            `./agentune_runs`).
        seed: seed for the searcher (default the goal's, else 0).
    """

    budget: int | None = None
    approval: Approval = "auto"
    model: str | None = None
    resume: bool = False
    storage: Path | None = None
    seed: int | None = None


@dataclass
class CampaignResult:
    """What a finished campaign leaves behind.

    Attributes:
        campaign: the campaign's name in the history (`mitbih-aami3_quick-20261125-210000`).
        campaign_dir: its folder; `history_dir` and `dashboard` live inside.
        best: the best completed, feasible run, or None.
        n_runs: runs recorded in the history.
        counts: runs per status.
        stop_reason: why the search ended.
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


def storage_root(storage: Path | None) -> Path:
    """The folder that holds campaign directories, absolute (Ray jobs run in a copy of cwd)."""
    root = storage or Path(os.environ.get(STORAGE_ENV, DEFAULT_STORAGE))
    return root.expanduser().resolve()


def campaign_directory(goal: CampaignGoal, options: CampaignOptions) -> Path:
    """A fresh `<storage>/<file>-<goal>/<timestamp>/`, or with `resume` the newest existing one.

    Raises:
        CampaignError: `resume` with no earlier campaign of this goal.
    """
    goal_dir = storage_root(options.storage) / goal.spec.replace(":", "-")
    if options.resume:
        earlier = sorted(p for p in goal_dir.glob("*") if (p / "history").is_dir())
        if not earlier:
            raise CampaignError(
                f"--resume: no earlier campaign of {goal.spec} under {goal_dir}; run it "
                "without --resume first, or pass the --storage it used"
            )
        return earlier[-1]
    stamp = datetime.now(UTC).strftime(_TIMESTAMP)
    path = goal_dir / stamp
    suffix = 1
    while path.exists():  # two campaigns started in the same second
        path = goal_dir / f"{stamp}-{suffix}"
        suffix += 1
    return path


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


def build_proposer(
    goal: CampaignGoal, options: CampaignOptions, history_dir: Path, campaign: str
) -> Proposer | None:
    """The proposer the goal asks for, wrapped in the approval hook; None when max_tier < 2.

    Raises:
        CampaignError: an LLM that is not available, or terminal approval without a terminal.
    """
    if goal.max_tier < 2:
        return None
    from agent.approval import ApprovingProposer, hook_for
    from agent.offline import OfflineProposer

    model = options.model or goal.llm.model
    if model != "offline":
        raise CampaignError(
            f"{goal.spec}: llm.model {model!r} is not available yet; the LLM-backed proposer "
            "ships with the agent package. Use --model offline (the default)"
        )
    try:
        hook = hook_for(options.approval)
    except ValueError as e:
        raise CampaignError(str(e)) from e
    return ApprovingProposer(OfflineProposer(), hook, history_dir, campaign)


def _init_ray(num_cpus: int | None = None) -> bool:
    """Join `RAY_ADDRESS` or start an embedded Ray (node address 127.0.0.1, no dashboard).

    Returns:
        True when this call started Ray (the caller shuts it down), False when it joined one.
    """
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        logger.info("Joining the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=False)
        return False
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    return True


def _quiet_libraries() -> None:
    """Keep the terminal for the campaign's own lines: Tune's tables and Optuna's study logs
    go to the log files and `--verbose`, not to every run's output."""
    import optuna

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # one checkpoint per epoch is the design (a restored trial resumes from its last epoch)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not logger.isEnabledFor(logging.INFO):
        optuna.logging.set_verbosity(optuna.logging.WARNING)


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
        goal: the loaded goal (`search.campaign.load_goal`).
        options: command-line choices (budget, approval, model, resume, storage, seed).
        on_run: called on the driver for every finished run with the record, the latest
            recommendation and the best run so far (the CLI prints a line).
        num_cpus: CPUs of an embedded Ray (default: all of this machine's).

    Returns:
        The `CampaignResult`.

    Raises:
        CampaignError: options that contradict the goal (e.g. --resume with nothing to resume).
    """
    from ray import tune

    from feedback import Event, FeedbackStore, write_dashboard

    options = options or CampaignOptions()
    t0 = time.perf_counter()
    _quiet_libraries()
    campaign_dir = campaign_directory(goal, options)
    campaign = f"{goal.spec.replace(':', '-')}-{campaign_dir.name}"
    history_dir = campaign_dir / "history"
    budget = options.budget or goal.budget
    proposer = build_proposer(goal, options, history_dir, campaign)
    constraints = searcher_constraints(goal)
    thresholds = dataclasses.replace(goal.signal_thresholds(), budget=budget)
    campaign_dir.mkdir(parents=True, exist_ok=True)
    store = FeedbackStore(history_dir)
    if not options.resume:
        store.append_event(
            Event(
                campaign=campaign,
                kind="campaign",
                message=f"{goal.spec}: {goal.description}",
                data={"goal": goal.spec, "thresholds": thresholds.to_dict(), "budget": budget},
            )
        )
    started_ray = _init_ray(num_cpus)
    try:
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
            },
        )
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
        )
        reporter = _RunReporter(store, campaign, on_run)
        ray_dir = campaign_dir / "ray"
        experiment = ray_dir / "experiment"
        if options.resume and tune.Tuner.can_restore(str(experiment)):
            tuner = tune.Tuner.restore(
                str(experiment), trainable=trainable, resume_errored=True, param_space={}
            )
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
                ),
            )
        tuner.fit()
        reporter.flush()
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return _finish(goal, campaign, campaign_dir, store, t0, budget, write_dashboard)


def trial_dirname(trial: Any) -> str:
    """Short trial folder names: Tune's default repeats the whole config, generated code too."""
    return f"trial_{trial.trial_id}"


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
        if len(records) >= budget:
            stop_reason = f"trial budget reached ({budget} trials)"
        elif goal.wall_time_s is not None and duration >= goal.wall_time_s:
            stop_reason = f"wall-time budget reached ({goal.wall_time_min:g} min)"
        else:
            stop_reason = "interrupted before the budget was spent; continue with --resume"
    dashboard = write_dashboard(campaign_dir, campaign=campaign)
    return CampaignResult(
        campaign=campaign,
        campaign_dir=campaign_dir,
        history_dir=store.root,
        dashboard=dashboard,
        best=store.best(campaign),
        n_runs=len(records),
        counts=counts,
        stop_reason=stop_reason,
        duration_s=duration,
    )


def _latest_recommendation(store: FeedbackStore, campaign: str) -> str:
    events = store.events(campaign=campaign, kind="recommendation")
    return str(events[-1].data.get("action", "")) if events else "continue"


class _RunReporter(Callback):
    """Tune callback: after the searcher stored a finished trial, report it through `on_run`.

    Tune calls the searcher's `on_trial_complete` before the callbacks, so the record is in
    the store by then; records are reported once each, in finishing order.
    """

    def __init__(
        self,
        store: FeedbackStore,
        campaign: str,
        on_run: Callable[[RunRecord, str, RunRecord | None], None] | None,
    ) -> None:
        self._store = store
        self._campaign = campaign
        self._on_run = on_run
        self._seen: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; the printing hook (which holds
        # the terminal) and the store's caches stay with the live driver object.
        state = dict(self.__dict__)
        state["_on_run"] = None
        state["_store"] = self._store.root
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from feedback import FeedbackStore

        self.__dict__.update(state)
        self._store = FeedbackStore(state["_store"])

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.flush()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.flush()

    def flush(self) -> None:
        """Report every stored run not reported yet."""
        if self._on_run is None:
            return
        new = [r for r in self._store.runs(campaign=self._campaign) if r.run_id not in self._seen]
        if not new:
            return
        recommendation = _latest_recommendation(self._store, self._campaign)
        best = self._store.best(self._campaign)
        for record in new:
            self._seen.add(record.run_id)
            self._on_run(record, recommendation, best)
