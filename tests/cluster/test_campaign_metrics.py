"""Campaign metrics without a cluster: history -> snapshot -> samples, and the refresh thread.

The export itself (Ray's gauges at the Prometheus endpoint) is tested end to end in
test_job_submit_integration.py.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from feedback import Event, FeedbackStore, RunRecord, SignalThresholds
from search.metrics import (
    EXPORTED_NAMES,
    METRIC_NAMES,
    METRICS,
    STATUS_RUNNING,
    CampaignMetrics,
    CampaignSnapshot,
    Sample,
    metric_samples,
    read_snapshot,
)

CAMPAIGN = "mitbih-aami3_quick-20261201-120000"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _run(i: int, status: str, value: float | None, tier: int = 0) -> RunRecord:
    return RunRecord(
        run_id=f"r{i}",
        campaign=CAMPAIGN,
        arm="base" if tier == 0 else f"arm{tier}",
        tier=tier,
        origin="optuna" if tier == 0 else "agent",
        status=status,
        metric="val/macro_f1",
        mode="max",
        value=value,
        params={"trainer.lr": 0.001 * (i + 1)},
        error=None if status == "completed" else "boom",
    )


def _campaign(store: FeedbackStore, budget: int = 12) -> None:
    store.append_event(Event(campaign=CAMPAIGN, kind="campaign", time=T0, data={"budget": budget}))


def test_snapshot_counts_trials_best_tier_agent_use_and_rate(store: FeedbackStore) -> None:
    _campaign(store)
    store.append_many(
        [
            _run(0, "completed", 0.60),
            _run(1, "completed", 0.70),
            _run(2, "failed", None),
            _run(3, "rejected", None),
            _run(4, "completed", 0.65, tier=2),
        ]
    )
    store.append_event(Event(campaign=CAMPAIGN, kind="escalation", tier=3, message="up"))
    store.append_event(
        Event(campaign=CAMPAIGN, kind="agent_call", data={"tokens_in": 1000, "tokens_out": 50})
    )
    store.append_event(  # a failed call still spent tokens
        Event(
            campaign=CAMPAIGN,
            kind="agent_failure",
            data={"call": {"tokens_in": 200, "tokens_out": 7}},
        )
    )
    store.append_event(  # a refused proposal is no call
        Event(campaign=CAMPAIGN, kind="agent_failure", data={"reason": "bad key"})
    )
    store.append_event(Event(campaign="other", kind="agent_call", data={"tokens_in": 9}))
    summary = {"arms": [{"tier": 0, "n_pending": 2}, {"tier": 2, "n_pending": 1}]}

    snap = read_snapshot(
        store, CAMPAIGN, searcher_summary=lambda: summary, now=T0 + timedelta(minutes=30)
    )

    assert snap.best_value == pytest.approx(0.70)
    assert snap.metric == "val/macro_f1"
    assert snap.trials == {
        ("completed", 0): 2,
        ("failed", 0): 1,
        ("rejected", 0): 1,
        ("completed", 2): 1,
        (STATUS_RUNNING, 0): 2,
        (STATUS_RUNNING, 2): 1,
    }
    assert snap.budget == 12
    assert snap.current_tier == 3  # escalated to 3 before any tier-3 trial ran
    assert (snap.agent_calls, snap.tokens_in, snap.tokens_out) == (2, 1200, 57)
    # 4 finished (not rejected, not running) trials in half an hour
    assert snap.trials_per_hour == pytest.approx(8.0)


def test_snapshot_of_an_empty_campaign(store: FeedbackStore) -> None:
    snap = read_snapshot(store, CAMPAIGN)
    assert snap == CampaignSnapshot(campaign=CAMPAIGN)


def test_stagnation_flag_follows_the_signal(store: FeedbackStore) -> None:
    _campaign(store)
    flat = [_run(i, "completed", 0.70 - 0.001 * i) for i in range(6)]
    store.append_many(flat)
    thresholds = SignalThresholds(window=3, min_delta=0.01, patience=1)
    assert read_snapshot(store, CAMPAIGN, thresholds=thresholds).stagnation is True
    store.append(_run(6, "completed", 0.90))
    assert read_snapshot(store, CAMPAIGN, thresholds=thresholds).stagnation is False


def test_samples_cover_every_status_and_tier_and_every_metric() -> None:
    snap = CampaignSnapshot(
        campaign=CAMPAIGN,
        metric="val/macro_f1",
        best_value=0.7,
        trials={("completed", 0): 3, (STATUS_RUNNING, 3): 1},
        budget=24,
        current_tier=2,
        drift=True,
        agent_calls=2,
        tokens_in=100,
        tokens_out=10,
        trials_per_hour=12.5,
    )
    samples = metric_samples(snap)
    assert {s.name for s in samples} == set(METRIC_NAMES)
    assert all(s.tags["campaign"] == CAMPAIGN for s in samples)
    for sample in samples:  # every sample carries exactly its metric's tags
        spec = next(m for m in METRICS if m.name == sample.name)
        assert set(sample.tags) == set(spec.tag_keys)
    trials = {
        (s.tags["status"], s.tags["tier"]): s.value for s in samples if s.name == "agentune_trials"
    }
    assert len(trials) == 7 * 3  # six history statuses and running, tiers 0, 2, 3
    assert trials[("completed", "0")] == 3.0
    assert trials[("running", "3")] == 1.0
    assert trials[("failed", "2")] == 0.0  # zeros are published: no stale series
    values = {
        s.name: s.value for s in samples if s.name not in ("agentune_trials", "agentune_llm_tokens")
    }
    assert values == {
        "agentune_best_value": 0.7,
        "agentune_budget": 24.0,
        "agentune_current_tier": 2.0,
        "agentune_drift": 1.0,
        "agentune_stagnation": 0.0,
        "agentune_trials_per_hour": 12.5,
        "agentune_agent_calls": 2.0,
    }
    tokens = {s.tags["direction"]: s.value for s in samples if s.name == "agentune_llm_tokens"}
    assert tokens == {"in": 100.0, "out": 10.0}


def test_no_best_value_sample_before_a_completed_trial() -> None:
    names = {s.name for s in metric_samples(CampaignSnapshot(campaign=CAMPAIGN))}
    assert "agentune_best_value" not in names
    assert "agentune_budget" not in names


def test_exported_names_are_rays_prometheus_names() -> None:
    assert tuple(f"ray_{name}" for name in METRIC_NAMES) == EXPORTED_NAMES
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)


def test_metrics_refresh_on_a_thread_until_stopped() -> None:
    published: list[list[Sample]] = []
    reads = 0

    def read() -> CampaignSnapshot:
        nonlocal reads
        reads += 1
        return CampaignSnapshot(campaign=CAMPAIGN, agent_calls=reads)

    metrics = CampaignMetrics(CAMPAIGN, read, interval_s=0.05, publish=published.append)
    with metrics:
        assert len(published) == 1  # published at once, not only after the first interval
        time.sleep(0.4)
    after_stop = len(published)
    time.sleep(0.2)
    assert len(published) == after_stop  # the thread is gone
    assert after_stop >= 4  # refreshed meanwhile, and once more on stop
    assert metrics.last is not None and metrics.last.agent_calls == reads
    assert not any(t.name.startswith("agentune-metrics") for t in threading.enumerate())


def test_a_failing_read_never_raises_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def read() -> CampaignSnapshot:
        raise OSError("history unreadable")

    metrics = CampaignMetrics(CAMPAIGN, read, interval_s=0.02, publish=lambda s: None)
    with caplog.at_level("WARNING", logger="search.metrics"):
        metrics.start()
        time.sleep(0.15)
        metrics.stop()
    assert metrics.refreshes == 0
    warnings = [r for r in caplog.records if "could not be refreshed" in r.getMessage()]
    assert len(warnings) == 1
    assert "history unreadable" in warnings[0].getMessage()


@pytest.mark.parametrize("interval", [0, -1.0])
def test_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        CampaignMetrics(CAMPAIGN, lambda: CampaignSnapshot(campaign=CAMPAIGN), interval_s=interval)
