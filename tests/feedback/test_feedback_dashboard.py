from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from feedback_helpers import history, make_record

from feedback import (
    Event,
    FeedbackError,
    FeedbackStore,
    SignalThresholds,
    populate_demo_history,
    render_dashboard,
    write_dashboard,
    write_demo_dashboard,
)


def _svg_sections(page: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r'<section id="(\w+)">(.*?)</section>', page, flags=re.S)
    }


def test_demo_dashboard_is_standalone(tmp_path: Path) -> None:
    out = write_demo_dashboard(tmp_path / "demo.html", seed=1)
    page = out.read_text()
    sections = _svg_sections(page)
    for name in ("progress", "curves"):
        svg = sections[name]
        assert "<svg" in svg
        assert svg.count("<path") > 20, name
    assert "<script" not in page
    # nothing to fetch: the only URLs are XML namespaces
    urls = set(re.findall(r"(?:src|href)\s*=\s*[\"'](?!#)([^\"']+)", page))
    assert urls == set(), urls
    assert "@import" not in page and "url(http" not in page
    for text in ("Approval timeline", "Agent summary", "Experiment log", "→ tier 2", "→ tier 3"):
        assert text in page
    for status in ("completed", "failed", "diverged", "pruned", "rejected", "infeasible"):
        assert f">{status}</span>" in page, status


def test_demo_history_tells_the_story(store: FeedbackStore) -> None:
    populate_demo_history(store, campaign="demo", seed=0)
    runs = store.table(campaign="demo")
    assert runs.num_rows >= 80
    assert set(runs["tier"].to_pylist()) == {0, 2, 3}
    kinds = {e.kind for e in store.events(campaign="demo")}
    assert {"escalation", "approval", "agent_summary", "agent_failure"} <= kinds
    best = store.best("demo")
    assert best is not None and best.tier == 3
    assert store.curve(best.run_id)


def test_untrusted_text_is_escaped(store: FeedbackStore) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    store.append(make_record(campaign="c", arm=evil, overrides=[evil], error=evil, status="failed"))
    store.append(make_record(campaign="c", run_id=evil, value=0.9))
    store.append_event(Event(campaign="c", kind="agent_summary", message=evil))
    store.append_event(Event(campaign="c", kind="approval", message=evil, data={"decision": evil}))
    page = render_dashboard(store)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_write_dashboard_for_a_campaign_dir(tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match="no feedback history"):
        write_dashboard(tmp_path)
    store = FeedbackStore(tmp_path / "history")
    empty = write_dashboard(tmp_path)
    assert empty == tmp_path / "dashboard.html" and "no runs yet" in empty.read_text()
    store.append_many(history([0.5, 0.6, None, 0.7], campaign="c"))
    store.append_event(
        Event(campaign="c", kind="campaign", data={"thresholds": {"window": 3, "target": 0.65}})
    )
    out = write_dashboard(tmp_path, tmp_path / "x" / "d.html", refresh_s=30)
    page = out.read_text()
    assert 'http-equiv="refresh" content="30"' in page
    assert "target reached" in page  # the stored thresholds were used
    page2 = render_dashboard(store, "c", thresholds=SignalThresholds(window=3))
    assert "target reached" not in page2


def test_dashboard_picks_the_latest_campaign(store: FeedbackStore) -> None:
    store.append_many(history([0.1], campaign="old"))
    store.append_many(history([0.2], campaign="new"))
    page = render_dashboard(store)
    assert "agentune · new" in page and "other campaigns in this store: old" in page


def test_dashboard_300_runs_is_small_and_quick(store: FeedbackStore) -> None:
    values = [0.5 + 0.3 * (1 - 0.99**i) for i in range(300)]
    recs = history(values, lr=lambda i: 10 ** -(2 + i % 3), campaign="c")
    store.append_many(recs)
    for r in recs:
        store.append_curve(
            r.run_id,
            [{"epoch": e, "val/macro_f1": 0.5 + e / 40, "val/loss": 1 / e} for e in range(1, 21)],
            campaign="c",
        )
    start = time.perf_counter()
    page = render_dashboard(store)
    elapsed = time.perf_counter() - start
    assert len(page.encode()) < 2_000_000
    assert elapsed < 5.0
    assert page.count("<tr>") == 301
