"""Campaign metrics for Ray's Prometheus endpoint: best value, trials, tier, signals, agent use.

A running campaign exports, through `ray.util.metrics` gauges, the series named in `METRICS`
(every one tagged with `campaign`). Ray serves them at each node's metrics-export port as
`ray_<name>` (`EXPORTED_NAMES`); Prometheus scrapes them and `cluster/grafana-dashboard.json`
plots them (a test checks it plots only these, and all of them).

Every series is a gauge, totals included (agent calls, tokens): they are read from the
history, so a resumed campaign (a new driver) continues from the same totals, where a Ray
`Counter` would restart at zero, and could not even show the zero (its `inc` refuses 0).

Who does what:

1. `read_snapshot(store, campaign, ...)` reads the driver's view of the campaign, a
   `CampaignSnapshot`, from the `feedback.FeedbackStore` (runs, events) and, when given, the
   searcher's `state_summary()` (trials running now). Pure reads; no Ray.
2. `metric_samples(snapshot)` turns a snapshot into `Sample`s, the values to publish (every
   status x tier combination, zeros included, so a series never sticks at a stale value).
   Pure; unit-tested without a cluster.
3. `CampaignMetrics` publishes samples to Ray gauges, again every `interval_s`
   on a daemon thread: Ray drops a gauge from its export about 30 s after it was last set.
   `stop()` publishes a last time and joins the thread.

Example::

    metrics = CampaignMetrics(campaign, lambda: read_snapshot(store, campaign))
    metrics.start()
    try:
        tuner.fit()
    finally:
        metrics.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feedback import STATUSES, TIERS

if TYPE_CHECKING:
    from feedback import Event, FeedbackStore, SignalThresholds

__all__ = [
    "EXPORTED_NAMES",
    "METRICS",
    "METRIC_NAMES",
    "STATUS_RUNNING",
    "CampaignMetrics",
    "CampaignSnapshot",
    "MetricSpec",
    "Sample",
    "exported_name",
    "metric_samples",
    "read_snapshot",
]

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 10.0
"""Seconds between refreshes: well inside the ~30 s after which Ray drops an unset gauge."""
STATUS_RUNNING = "running"
"""The `status` tag of trials the searcher has launched and not heard back from."""
_EVENT_KINDS = ("campaign", "escalation", "agent_call", "agent_failure", "agent_summary")


@dataclass(frozen=True)
class MetricSpec:
    """One exported series (a `ray.util.metrics.Gauge`).

    Attributes:
        name: the `ray.util.metrics` name (Ray exports it as `ray_<name>`).
        description: the Prometheus HELP text.
        tag_keys: the tags every sample carries; `campaign` first.
    """

    name: str
    description: str
    tag_keys: tuple[str, ...] = ("campaign",)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "agentune_best_value",
        "Best value of the campaign metric over completed, feasible trials.",
        ("campaign", "metric"),
    ),
    MetricSpec(
        "agentune_trials",
        "Trials by status (completed, failed, ..., running) and tier (0 Optuna, 2 config, 3 code).",
        ("campaign", "status", "tier"),
    ),
    MetricSpec("agentune_budget", "The campaign's trial budget."),
    MetricSpec(
        "agentune_current_tier",
        "Highest tier of the escalation ladder the campaign has reached (0, 2 or 3).",
    ),
    MetricSpec("agentune_drift", "1 while the drift signal fires, else 0."),
    MetricSpec("agentune_stagnation", "1 while the stagnation signal fires, else 0."),
    MetricSpec(
        "agentune_trials_per_hour",
        "Finished trials per hour since the campaign started.",
    ),
    MetricSpec(
        "agentune_agent_calls",
        "Agent (LLM) calls so far: proposal calls, failed calls and the summary.",
    ),
    MetricSpec(
        "agentune_llm_tokens",
        "LLM tokens the agent used so far, by direction (in, out).",
        ("campaign", "direction"),
    ),
)
"""Every series a campaign exports: the single list the dashboard and the tests read."""

METRIC_NAMES: tuple[str, ...] = tuple(spec.name for spec in METRICS)


def exported_name(spec: MetricSpec) -> str:
    """The name Ray's Prometheus endpoint gives `spec`: `ray_<name>`."""
    return f"ray_{spec.name}"


EXPORTED_NAMES: tuple[str, ...] = tuple(exported_name(spec) for spec in METRICS)
_SPECS = {spec.name: spec for spec in METRICS}


@dataclass(frozen=True)
class CampaignSnapshot:
    """What the driver knows about a campaign at one moment.

    Attributes:
        campaign: the campaign's name in the history.
        metric: the campaign metric (`val/macro_f1`), "" before any run.
        best_value: the best completed value, None before one.
        trials: `{(status, tier): count}`; status `running` for launched, unfinished trials.
        budget: the trial budget, None when unknown.
        current_tier: highest tier reached (escalated to, or run at).
        drift: whether the drift signal fires on the latest history.
        stagnation: whether the stagnation signal fires on the latest history.
        agent_calls: agent calls with a report (proposals, failed calls, the summary).
        tokens_in: LLM input tokens over those calls.
        tokens_out: LLM output tokens over those calls.
        trials_per_hour: finished (not rejected) trials per hour since the campaign started.
    """

    campaign: str
    metric: str = ""
    best_value: float | None = None
    trials: Mapping[tuple[str, int], int] = field(default_factory=dict)
    budget: int | None = None
    current_tier: int = 0
    drift: bool = False
    stagnation: bool = False
    agent_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    trials_per_hour: float = 0.0


@dataclass(frozen=True)
class Sample:
    """One value to publish: a metric of `METRICS`, its tags (all of its `tag_keys`)."""

    name: str
    tags: Mapping[str, str]
    value: float


def _call_report(event: Event) -> Mapping[str, Any] | None:
    """The proposer report an event carries: an agent_call's data, else its `call` entry."""
    if event.kind == "agent_call":
        return event.data
    call = event.data.get("call")
    return call if isinstance(call, Mapping) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def read_snapshot(
    store: FeedbackStore,
    campaign: str,
    *,
    thresholds: SignalThresholds | None = None,
    searcher_summary: Callable[[], Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> CampaignSnapshot:
    """Read `campaign`'s snapshot from its history and, optionally, the live searcher.

    Args:
        store: the campaign's `FeedbackStore` (a reader's own instance is safest: the store
            caches per object).
        campaign: the campaign's name in the history.
        thresholds: the goal's signal thresholds, for the drift and stagnation flags
            (default: the signals' defaults).
        searcher_summary: `AgentSearcher.state_summary`, read for the trials running now;
            None counts no running trials.
        now: the clock for trials per hour (default: now, UTC).

    Returns:
        The snapshot; drift and stagnation read False when the signals cannot be computed.
    """
    from feedback import FeedbackError, drift, stagnation

    table = store.table(campaign=campaign)
    runs = table.select(["status", "tier", "metric"]).to_pylist()
    trials: dict[tuple[str, int], int] = {}
    for row in runs:
        key = (str(row["status"]), int(row["tier"]))
        trials[key] = trials.get(key, 0) + 1
    if searcher_summary is not None:
        for arm in searcher_summary().get("arms", []):
            pending = _count(arm.get("n_pending"))
            if pending:
                key = (STATUS_RUNNING, int(arm.get("tier", 0)))
                trials[key] = trials.get(key, 0) + pending
    try:
        best = store.best(campaign)
    except FeedbackError as e:  # several metrics in one campaign: no single best
        logger.debug("no best value for %s: %s", campaign, e)
        best = None
    events = store.events(campaign=campaign, kind=_EVENT_KINDS)
    started = next((e.time for e in events if e.kind == "campaign"), None)
    budget = next((e.data.get("budget") for e in events if e.kind == "campaign"), None)
    tiers = [int(r["tier"]) for r in runs if r["status"] != "rejected"]
    tiers += [e.tier for e in events if e.kind == "escalation" and e.tier is not None]
    reports = [r for r in (_call_report(e) for e in events) if r is not None]
    completed = sum(n for (status, _), n in trials.items() if status == "completed")
    flags = (False, False)
    if completed:
        try:
            flags = (
                drift(table, thresholds).drifting,
                stagnation(table, thresholds).stagnant,
            )
        except (ValueError, ArithmeticError) as e:  # FeedbackError is a ValueError
            logger.debug("signals unavailable for %s: %s", campaign, e)
    finished = sum(
        n for (status, _), n in trials.items() if status not in ("rejected", STATUS_RUNNING)
    )
    elapsed_s = ((now or datetime.now(UTC)) - started).total_seconds() if started else 0.0
    return CampaignSnapshot(
        campaign=campaign,
        metric=best.metric if best is not None else (str(runs[-1]["metric"]) if runs else ""),
        best_value=best.value if best is not None else None,
        trials=trials,
        budget=_count(budget) or None,
        current_tier=max(tiers, default=0),
        drift=bool(flags[0]),
        stagnation=bool(flags[1]),
        agent_calls=len(reports),
        tokens_in=sum(_count(r.get("tokens_in")) for r in reports),
        tokens_out=sum(_count(r.get("tokens_out")) for r in reports),
        trials_per_hour=finished * 3600.0 / elapsed_s if finished and elapsed_s > 0 else 0.0,
    )


def metric_samples(snapshot: CampaignSnapshot) -> list[Sample]:
    """The values of every series of `METRICS` for `snapshot`.

    Every status (the history's six and `running`) x tier (0, 2, 3) pair gets a trials sample,
    zero included; the best value only once there is one.
    """
    camp = {"campaign": snapshot.campaign}
    samples: list[Sample] = []
    if snapshot.best_value is not None:
        tags = {**camp, "metric": snapshot.metric}
        samples.append(Sample("agentune_best_value", tags, float(snapshot.best_value)))
    for status in (*STATUSES, STATUS_RUNNING):
        for tier in TIERS:
            count = snapshot.trials.get((status, tier), 0)
            tags = {**camp, "status": status, "tier": str(tier)}
            samples.append(Sample("agentune_trials", tags, float(count)))
    if snapshot.budget is not None:
        samples.append(Sample("agentune_budget", camp, float(snapshot.budget)))
    samples += [
        Sample("agentune_current_tier", camp, float(snapshot.current_tier)),
        Sample("agentune_drift", camp, 1.0 if snapshot.drift else 0.0),
        Sample("agentune_stagnation", camp, 1.0 if snapshot.stagnation else 0.0),
        Sample("agentune_trials_per_hour", camp, float(snapshot.trials_per_hour)),
        Sample("agentune_agent_calls", camp, float(snapshot.agent_calls)),
        Sample("agentune_llm_tokens", {**camp, "direction": "in"}, float(snapshot.tokens_in)),
        Sample("agentune_llm_tokens", {**camp, "direction": "out"}, float(snapshot.tokens_out)),
    ]
    return samples


_METRIC_OBJECTS: dict[str, Any] = {}
_METRIC_LOCK = threading.Lock()


def _ray_metric(spec: MetricSpec) -> Any:
    """The process's one Ray gauge for `spec` (several campaigns in one process share it;
    their samples differ by the campaign tag)."""
    from ray.util.metrics import Gauge

    with _METRIC_LOCK:
        metric = _METRIC_OBJECTS.get(spec.name)
        if metric is None:
            metric = Gauge(spec.name, description=spec.description, tag_keys=spec.tag_keys)
            _METRIC_OBJECTS[spec.name] = metric
        return metric


class CampaignMetrics:
    """Publishes a campaign's snapshot to Ray's gauges, now and every `interval_s`.

    A failed read or publish is logged once and retried at the next tick: the metrics never
    end a campaign.

    Args:
        campaign: the campaign's name (the `campaign` tag).
        read: returns the current snapshot (e.g. a `read_snapshot` closure).
        interval_s: seconds between refreshes (> 0; Ray drops gauges unset for ~30 s).
        publish: where samples go (default: Ray's gauges); tests pass a list's `extend`.

    Raises:
        ValueError: `interval_s` is not positive.
    """

    def __init__(
        self,
        campaign: str,
        read: Callable[[], CampaignSnapshot],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        publish: Callable[[list[Sample]], None] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {interval_s!r}")
        self.campaign = campaign
        self._read = read
        self._interval_s = float(interval_s)
        self._publish = publish or self._publish_to_ray
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        self.refreshes = 0
        self.last: CampaignSnapshot | None = None

    def refresh(self) -> CampaignSnapshot | None:
        """Read a snapshot and publish it; returns it (None when the read or publish failed)."""
        try:
            snapshot = self._read()
            self._publish(metric_samples(snapshot))
        except Exception as e:  # metrics are a side channel: nothing here may end a campaign
            if not self._warned:
                self._warned = True
                logger.warning(
                    "Campaign metrics for %s could not be refreshed (%s: %s); retrying every "
                    "%.0f s, further failures logged at debug level.",
                    self.campaign,
                    type(e).__name__,
                    e,
                    self._interval_s,
                )
            else:
                logger.debug("metrics refresh failed: %s: %s", type(e).__name__, e)
            return None
        self.refreshes += 1
        self.last = snapshot
        return snapshot

    @staticmethod
    def _publish_to_ray(samples: list[Sample]) -> None:
        for sample in samples:
            _ray_metric(_SPECS[sample.name]).set(sample.value, tags=dict(sample.tags))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.refresh()

    def start(self) -> CampaignMetrics:
        """Publish once, then keep refreshing on a daemon thread until `stop()`."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self.refresh()
        self._thread = threading.Thread(
            target=self._loop, name=f"agentune-metrics-{self.campaign}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread (waiting up to `timeout_s` for a refresh in progress) and publish
        the final snapshot once more."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout_s)
        self.refresh()

    def __enter__(self) -> CampaignMetrics:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
