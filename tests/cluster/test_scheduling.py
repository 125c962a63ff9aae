"""Scheduling (issue 11): trials ask Ray for the goal's CPUs and GPUs, and on a cluster of
several nodes they spread across the nodes, each sees its own GPU ids, quarter-GPU trials
pack four to a GPU, and no node runs more than it declared.

One cluster for the module, simulated on this machine (`cluster_helpers.local_cluster`): a
head without CPUs (the driver only) and two workers that each declare 2 CPUs and 2 GPUs this
machine does not have. Every check reads the trials' own reports (`search.trainable`'s
`trial_placement`: node id, GPU ids; the start and end of the trial).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import (
    REPO,
    VENV_BIN,
    LocalCluster,
    local_cluster,
    processes_naming,
    ray_env,
    stop_processes,
    trial_reports,
)
from ray import tune

from feedback import FeedbackStore
from search import AgentSearcher
from search.goals import load_goal
from search.runner import CampaignOptions, run_campaign
from search.trainable import GPU_IDS_KEY, NODE_KEY

pytestmark = pytest.mark.slow

NODE_CPUS, NODE_GPUS = 2, 2
BARRIER_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    node = {"num_cpus": NODE_CPUS, "num_gpus": NODE_GPUS}
    with local_cluster([node, node]) as started:
        print(f"cluster of 3 nodes started in {started.start_s:.1f}s")
        yield started


@dataclass(frozen=True)
class Span:
    """One trial as it reported itself."""

    trial: str
    node: str
    gpus: tuple[str, ...]
    start: float
    end: float


def barrier_trainable(barrier_dir: Path, parties: int, hold_s: float) -> Callable[..., None]:
    """A trial that waits until `parties` trials have started (or a timeout), holds its
    resources `hold_s` more, and reports where it ran: the first `parties` trials are then
    running together, if the cluster can hold that many."""

    def trainable(config: dict[str, Any]) -> None:
        from search.trainable import trial_placement

        start = time.time()
        (barrier_dir / tune.get_context().get_trial_id()).touch()
        while len(os.listdir(barrier_dir)) < parties and time.time() - start < BARRIER_TIMEOUT_S:
            time.sleep(0.1)
        time.sleep(hold_s)
        tune.report(
            {
                "score": config["x"],
                **trial_placement(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                "started": start,
                "ended": time.time(),
            }
        )

    return trainable


def run_drop_in(
    tmp_path: Path, resources: Mapping[str, float], trials: int, parties: int
) -> list[dict[str, Any]]:
    """`trials` barrier trials through the AgentSearcher (drop-in mode), all allowed at once;
    returns their final reports."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    trainable = tune.with_resources(
        barrier_trainable(barrier, parties, hold_s=1.0), dict(resources)
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(
            search_alg=AgentSearcher(seed=0),
            metric="score",
            mode="max",
            num_samples=trials,
            max_concurrent_trials=trials,
        ),
        run_config=tune.RunConfig(name="sched", storage_path=str(tmp_path / "ray"), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors, results.errors
    return [dict(results[i].metrics or {}) for i in range(len(results))]


def spans(reports: Sequence[Mapping[str, Any]]) -> list[Span]:
    return [
        Span(
            trial=str(r["trial_id"]),
            node=str(r[NODE_KEY]),
            gpus=tuple(g for g in str(r[GPU_IDS_KEY]).split(",") if g),
            start=float(r["started"]),
            end=float(r["ended"]),
        )
        for r in reports
    ]


def running_sets(found: Sequence[Span]) -> list[list[Span]]:
    """The trials running together at each trial's start (every instant the set can grow)."""
    return [[s for s in found if s.start <= t.start < s.end] for t in found]


def check_within_nodes(
    found: Sequence[Span], cpu: float, gpu: float, node_ids: Sequence[str]
) -> None:
    """No node ever ran more CPUs or GPUs than it declared, and no GPU more than one whole."""
    assert {s.node for s in found} <= set(node_ids), "a trial ran on the head (0 CPUs)"
    for together in running_sets(found):
        for node in node_ids:
            here = [s for s in together if s.node == node]
            assert len(here) * cpu <= NODE_CPUS + 1e-9, f"node {node[:8]}: {len(here)} trials"
            assert len(here) * gpu <= NODE_GPUS + 1e-9, f"node {node[:8]}: {len(here)} trials"
            for gpu_id in {g for s in here for g in s.gpus}:
                sharing = [s for s in here if gpu_id in s.gpus]
                assert len(sharing) * gpu <= 1 + 1e-9, (node[:8], gpu_id, sharing)


def test_whole_gpu_trials_spread_across_nodes_on_gpus_of_their_own(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    t0 = time.perf_counter()
    capacity = 2 * NODE_GPUS  # one GPU and one CPU per trial: two per node
    reports = run_drop_in(tmp_path, {"cpu": 1, "gpu": 1}, trials=8, parties=capacity)
    print(f"8 whole-GPU trials in {time.perf_counter() - t0:.1f}s")
    found = spans(reports)
    assert len(found) == 8
    for s, report in zip(found, reports, strict=True):
        assert len(s.gpus) == 1 and s.gpus[0] in {"0", "1"}, s
        assert report["cuda_visible_devices"] == s.gpus[0]  # what the trial's process sees
    check_within_nodes(found, cpu=1, gpu=1, node_ids=cluster.worker_ids())
    peak = max(running_sets(found), key=len)
    assert len(peak) == capacity, f"at most {len(peak)} trials ran at once"
    assert {s.node for s in peak} == set(cluster.worker_ids()), "not spread across the nodes"
    owners = [(s.node, s.gpus[0]) for s in peak]
    assert len(set(owners)) == len(owners), f"two running trials shared a GPU: {owners}"


def test_quarter_gpu_trials_pack_four_to_a_gpu(cluster: LocalCluster, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    # 0.25 GPU and 0.25 CPU each: the GPUs are what limits, 4 x 2 GPUs x 2 nodes = 16
    capacity = 4 * NODE_GPUS * 2
    reports = run_drop_in(tmp_path, {"cpu": 0.25, "gpu": 0.25}, trials=capacity, parties=capacity)
    print(f"{capacity} quarter-GPU trials in {time.perf_counter() - t0:.1f}s")
    found = spans(reports)
    for s, report in zip(found, reports, strict=True):
        assert len(s.gpus) == 1 and report["cuda_visible_devices"] == s.gpus[0], s
    check_within_nodes(found, cpu=0.25, gpu=0.25, node_ids=cluster.worker_ids())
    peak = max(running_sets(found), key=len)
    assert len(peak) == capacity, f"at most {len(peak)} quarter-GPU trials ran at once"
    per_gpu: dict[tuple[str, str], int] = {}
    for s in peak:
        per_gpu[(s.node, s.gpus[0])] = per_gpu.get((s.node, s.gpus[0]), 0) + 1
    assert sorted(per_gpu.values()) == [4, 4, 4, 4], per_gpu  # every GPU: four trials at once


def test_gpu_campaign_trains_on_the_gpus_ray_assigns(cluster: LocalCluster, tmp_path: Path) -> None:
    """`run_campaign` with cluster/campaigns/gpu.yaml's aami3_gpu (2 CPUs and a quarter GPU
    per trial), shrunk to four one-epoch trials of the quick data set: each trial gets one
    GPU id, one trial per node (their CPUs limit), and trains all the same on this machine
    without CUDA (the trainer's device "auto" falls back to the CPU)."""
    goal = load_goal(f"{REPO / 'cluster/campaigns/gpu.yaml'}:aami3_gpu")
    assert goal.resources.gpu == 0.25 and goal.resources.cpu == NODE_CPUS
    goal = goal.model_copy(
        update={
            "experiment": "mitbih_aami3_quick",
            "overrides": ["trainer.epochs=1"],
            "budget": 4,
            "max_concurrent": 4,
            "max_tier": 0,
            "models": [],
            "wall_time_min": None,
        }
    )
    t0 = time.perf_counter()
    result = run_campaign(goal, CampaignOptions(storage=tmp_path / "runs", metrics=False))
    print(f"GPU campaign of 4 trials in {time.perf_counter() - t0:.1f}s")
    runs = FeedbackStore(result.history_dir).runs(campaign=result.campaign)
    assert len(runs) == 4 and {r.status for r in runs} == {"completed"}, runs

    reports = trial_reports(result.campaign_dir / "ray" / "experiment")
    assert set(reports) == {r.trial_id for r in runs}
    finals = {trial: rows[-1] for trial, rows in reports.items()}
    for trial, final in finals.items():
        assert final[GPU_IDS_KEY] in {"0", "1"}, (trial, final[GPU_IDS_KEY])
    assert {f[NODE_KEY] for f in finals.values()} == set(cluster.worker_ids())
    # One trial per node at a time (2 CPUs each); the records' spans are the trainer's.
    found = [
        Span(
            trial=r.run_id,
            node=str(finals[str(r.trial_id)][NODE_KEY]),
            gpus=(str(finals[str(r.trial_id)][GPU_IDS_KEY]),),
            start=r.started_at.timestamp() if r.started_at else 0.0,
            end=r.finished_at.timestamp() if r.finished_at else 0.0,
        )
        for r in runs
    ]
    check_within_nodes(found, cpu=NODE_CPUS, gpu=0.25, node_ids=cluster.worker_ids())


def test_a_gpu_goal_on_a_machine_without_gpus_is_refused_at_once(tmp_path: Path) -> None:
    """Without a cluster, `agentune run` starts Ray on this machine; when no GPU is there,
    a goal asking for GPUs is refused in one line (Tune itself would wait for one forever)."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="agr", dir="/tmp"))
    env = {**ray_env(), "RAY_TMPDIR": str(ray_tmp), "CUDA_VISIBLE_DEVICES": ""}
    goal_spec = f"{REPO / 'cluster/campaigns/gpu.yaml'}:aami3_gpu"
    try:
        done = subprocess.run(
            [str(VENV_BIN / "agentune"), "run", goal_spec, "--storage", str(tmp_path / "runs")],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        stop_processes(processes_naming(str(ray_tmp)))
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    error = done.stderr.strip().splitlines()[-1]
    assert "each trial asks for 2 CPU and 0.25 GPU" in error and "0 GPU" in error, error
    assert "no trial could start" in error and "resources.gpu" in error, error
    assert not FeedbackStore(next((tmp_path / "runs").glob("*/*/history"))).runs()
