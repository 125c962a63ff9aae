"""Done when (issue 11): a campaign submitted to a Ray head on loopback with `ray job submit`
succeeds, leaves exactly the budget's runs in the Parquet history, logs one line per trial,
and exports its metrics at the cluster's Prometheus endpoint while it runs; `agentune submit`
does the same and names the campaign and its paths in the job metadata.

One head for the module (its own temp dir and ports; stopped by pid, never `ray stop`).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import REPO, VENV_BIN, LoopbackHead, job_info, loopback_head, ray_env

from feedback import FeedbackStore
from search.metrics import EXPORTED_NAMES

pytestmark = pytest.mark.slow

BUDGET = 4
GOAL = "mitbih:aami3_quick"
JOB_TIMEOUT_S = 480
# Trial lines as `agentune run` prints them (search.cli.format_run_line).
TRIAL_LINE = re.compile(r"^trial \S+\s+arm \S+\s+tier \d", re.MULTILINE)


@pytest.fixture(scope="module")
def head() -> Iterator[LoopbackHead]:
    with loopback_head(num_cpus=2) as started:
        yield started


def _ray(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "ray"), *args],
        cwd=REPO,
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _status(head: LoopbackHead, submission_id: str) -> str:
    return str(job_info(head, submission_id)["status"])


def _campaign_series(text: str) -> dict[str, set[str]]:
    """`{exported name: campaigns}` of the agentune series in a Prometheus export."""
    found: dict[str, set[str]] = {}
    for match in re.finditer(r'^(ray_agentune_\w+)\{[^}]*campaign="([^"]+)"', text, re.M):
        found.setdefault(match.group(1), set()).add(match.group(2))
    return found


def _watch(head: LoopbackHead, submission_id: str) -> tuple[str, dict[str, set[str]], bool]:
    """Poll the job until it ends: its final status, the agentune series seen on the metrics
    endpoint meanwhile, and whether a trial line was in the logs while it still ran."""
    seen: dict[str, set[str]] = {}
    live_trial_line = False
    deadline = time.monotonic() + JOB_TIMEOUT_S
    status = "PENDING"
    while time.monotonic() < deadline:
        status = _status(head, submission_id)
        for name, campaigns in _campaign_series(head.metrics_text()).items():
            seen.setdefault(name, set()).update(campaigns)
        if status == "RUNNING" and not live_trial_line:
            logs = _ray("job", "logs", submission_id, "--address", head.dashboard_url)
            live_trial_line = bool(TRIAL_LINE.search(logs.stdout))
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(2)
    return status, seen, live_trial_line


def _history_runs(storage: Path) -> list[object]:
    histories = sorted(storage.glob("mitbih-aami3_quick/*/history"))
    assert len(histories) == 1, f"expected one campaign under {storage}, found {histories}"
    return list(FeedbackStore(histories[0]).runs())


def _generated_files() -> set[Path]:
    return set(REPO.glob("generated_models/gen_*.py")) | set(REPO.glob("configs/model/gen_*.yaml"))


def test_ray_job_submit_runs_a_campaign_with_metrics(head: LoopbackHead, tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    generated_before = _generated_files()
    submission_id = f"agentune-it-{int(time.time())}"
    t0 = time.perf_counter()
    submit = _ray(
        "job",
        "submit",
        "--address",
        head.dashboard_url,
        "--runtime-env",
        "cluster/runtime_env.yaml",
        "--submission-id",
        submission_id,
        "--no-wait",
        "--",
        "agentune",
        "run",
        GOAL,
        "--budget",
        str(BUDGET),
        "--storage",
        str(storage),
        timeout=120,
    )
    assert submit.returncode == 0, submit.stderr[-2000:]
    status, seen, live_trial_line = _watch(head, submission_id)
    elapsed = time.perf_counter() - t0
    logs = _ray("job", "logs", submission_id, "--address", head.dashboard_url).stdout
    assert status == "SUCCEEDED", f"job ended {status} after {elapsed:.0f}s:\n{logs[-3000:]}"
    print(f"ray job submit: head start {head.start_s:.1f}s, job {elapsed:.1f}s")

    runs = _history_runs(storage)
    assert len(runs) == BUDGET
    assert len(TRIAL_LINE.findall(logs)) == BUDGET, logs[-3000:]
    assert live_trial_line, "no trial line reached the job's logs before the job ended"
    campaign = next(iter(seen.get("ray_agentune_trials", set())), None)
    assert campaign is not None and campaign.startswith("mitbih-aami3_quick-"), seen
    # Every series the campaign exports showed up while it ran (best value after the first
    # completed trial), all under this campaign's tag.
    assert set(EXPORTED_NAMES) <= set(seen), set(EXPORTED_NAMES) - set(seen)
    assert all(campaign in campaigns for campaigns in seen.values())
    assert _generated_files() == generated_before  # the job's agent writes in its own copy


def test_agentune_submit_follows_a_campaign_to_success(head: LoopbackHead, tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    env = ray_env()
    # Without RAY_AUTH_MODE in the shell: agentune submit finds the token (~/.ray/auth_token,
    # which `ray start` wrote) and sends it itself.
    del env["RAY_AUTH_MODE"]
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            str(VENV_BIN / "agentune"),
            "submit",
            GOAL,
            "--address",
            head.dashboard_url,
            "--budget",
            str(BUDGET),
            "--storage",
            str(storage),
            "--follow",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )
    elapsed = time.perf_counter() - t0
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    print(f"agentune submit --follow: {elapsed:.1f}s")
    submitted = re.search(
        r"^submitted: (agentune-mitbih-aami3_quick-\d{8}-\d{6}) ", done.stdout, re.M
    )
    assert submitted, done.stdout[:2000]
    submission_id = submitted.group(1)
    assert f"job {submission_id}: SUCCEEDED" in done.stdout
    assert len(TRIAL_LINE.findall(done.stdout)) == BUDGET

    info = job_info(head, submission_id)
    metadata = info["metadata"]
    assert isinstance(metadata, dict)
    campaign = submission_id.removeprefix("agentune-")
    campaign_dir = storage.resolve() / "mitbih-aami3_quick" / "-".join(campaign.split("-")[-2:])
    assert metadata == {
        "campaign": campaign,
        "goal": GOAL,
        "budget": str(BUDGET),
        "history": str(campaign_dir / "history"),
        "dashboard": str(campaign_dir / "dashboard.html"),
    }
    assert (campaign_dir / "dashboard.html").is_file()
    assert len(list(FeedbackStore(campaign_dir / "history").runs(campaign=campaign))) == BUDGET
