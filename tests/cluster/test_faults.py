"""Faults (issue 11), each provoked here, each survived by a real campaign (the campaign
trainable on the quick ECG set, real Ray and Tune):

1. In one campaign with ``max_failures: 1``, a trial that raises, one that diverges (NaN
   loss) and one whose worker process is killed with SIGKILL after its first epoch: the
   raising one is retried once and recorded failed with the trainer's error, the diverged one
   is recorded diverged (a NaN is not an error to retry), the killed one is retried from its
   epoch checkpoint and completes, every retry is a ``note`` event, and the campaign spends
   its whole budget.
2. A driver killed with SIGKILL mid-campaign (`agentune run` as a subprocess): `--resume`
   continues Tune's experiment and the Parquet history, ending with exactly the budget's runs
   under distinct ids, none lost, and prints the new trials' lines as they finish.
3. A worker node removed mid-trial (`cluster_helpers.local_cluster`): the trial is retried on
   the surviving node from its checkpoint and the campaign finishes.

The faulty trials are the goal's own (a campaign's base config is trusted, where the safety
layer would refuse `trainer.grad_clip=-1.0` from an agent or an approval hook):
`trainer.grad_clip=-1.0` makes the trainer raise, `trainer.lr=1.0e9` overflows the loss.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import (
    VENV_BIN,
    local_cluster,
    processes_naming,
    ray_env,
    stop_processes,
    trial_reports,
)

from feedback import FeedbackStore
from search.goals import CampaignGoal, load_goal
from search.runner import CampaignOptions, run_campaign
from search.trainable import NODE_KEY

pytestmark = pytest.mark.slow

GOALS = """
goals:
  faults:
    # All four trials are asked for at once, before any result, so the sampler draws them
    # from its seeded random start: with seed 2 they are (normal, diverges, normal, raises).
    description: four two-epoch trials at once; one raises, one diverges, one is killed
    experiment: mitbih_aami3_quick
    overrides: ["trainer.epochs=2"]
    metric: val/macro_f1
    mode: max
    budget: 4
    max_concurrent: 4
    max_failures: 1
    resources: {cpu: 0.5, gpu: 0}
    space:
      trainer.grad_clip: {choice: [1.0, -1.0]}  # -1: the trainer refuses it (raises)
      trainer.lr: {choice: [0.003, 1.0e+9]}     # 1e9: the loss overflows (diverges)
    seed: 2
  resume:
    description: six one-epoch trials, two at a time
    experiment: mitbih_aami3_quick
    overrides: ["trainer.epochs=1"]
    metric: val/macro_f1
    mode: max
    budget: 6
    max_concurrent: 2
    resources: {cpu: 1, gpu: 0}
    space:
      trainer.lr: {loguniform: [1.0e-3, 1.0e-2]}
      model.width: {randint: [4, 8]}
    seed: 0
  node_loss:
    description: three two-epoch trials on two one-CPU workers, a lost trial retried once
    experiment: mitbih_aami3_quick
    overrides: ["trainer.epochs=2"]
    metric: val/macro_f1
    mode: max
    budget: 3
    max_concurrent: 2
    max_failures: 1
    resources: {cpu: 1, gpu: 0}
    space:
      trainer.lr: {loguniform: [1.0e-3, 1.0e-2]}
      model.width: {randint: [4, 8]}
    seed: 0
"""
RESUME_BUDGET = 6
KILL_AFTER_RUNS = 3
CAMPAIGN_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def goals_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("goals") / "faults.yaml"
    path.write_text(GOALS, encoding="utf-8")
    return path


def goal(goals_file: Path, name: str) -> CampaignGoal:
    return load_goal(f"{goals_file}:{name}")


@pytest.fixture
def ray_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private Ray temp dir (`RAY_TMPDIR`) for an embedded Ray; whatever is left running
    in it afterwards is stopped by pid."""
    folder = Path(tempfile.mkdtemp(prefix="agf", dir="/tmp"))  # short: socket paths
    monkeypatch.setenv("RAY_TMPDIR", str(folder))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield folder
    stop_processes(processes_naming(str(folder)))
    subprocess.run(["rm", "-rf", str(folder)], check=False)


class Watcher(threading.Thread):
    """Polls the trials' live reports under `root` and, once, acts on the first report that
    `pick` returns True for (in this thread, while the campaign runs in the test's)."""

    def __init__(
        self, root: Path, pick: Callable[[dict[str, Any]], bool], act: Callable[..., None]
    ):
        super().__init__(daemon=True)
        self.root, self.pick, self.act = root, pick, act
        self.done = threading.Event()
        self.hit: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.is_set():
                for rows in trial_reports(self.root).values():
                    row = next((r for r in rows if self.pick(r)), None)
                    if row is not None:
                        self.hit = row
                        self.act(row)
                        return
                self.done.wait(0.5)
        except BaseException as e:  # reported by the test
            self.error = e

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)
        if self.error is not None:
            raise self.error


def first_epoch(row: dict[str, Any]) -> bool:
    """A two-epoch trial's first report (before it, nothing is checkpointed)."""
    return row.get("epoch") == 1 and row.get("agentune_final") is False


def retry_notes(store: FeedbackStore, campaign: str) -> dict[str, list[Any]]:
    """`{run id: its retry notes}` (the runner writes one per failed attempt Tune retries)."""
    notes: dict[str, list[Any]] = {}
    for event in store.events(campaign=campaign, kind="note"):
        if event.data.get("failure") is not None and event.run_id:
            notes.setdefault(event.run_id, []).append(event)
    return notes


def curve_epochs(store: FeedbackStore, run_id: str) -> list[int]:
    return [int(row["epoch"]) for row in store.curve(run_id)]


def test_raised_diverged_and_killed_trials_are_recorded_retried_and_the_budget_spent(
    goals_file: Path, tmp_path: Path, ray_tmp: Path
) -> None:
    killed: dict[str, Any] = {}

    def kill(row: dict[str, Any]) -> None:
        killed.update(trial=str(row["trial_id"]), pid=int(row["pid"]))
        os.kill(int(row["pid"]), signal.SIGKILL)

    watcher = Watcher(ray_tmp, first_epoch, kill)
    watcher.start()
    t0 = time.perf_counter()
    try:
        result = run_campaign(
            goal(goals_file, "faults"),
            CampaignOptions(storage=tmp_path / "runs", metrics=False),
            num_cpus=2,
        )
    finally:
        watcher.stop()
    print(f"faults campaign: {time.perf_counter() - t0:.1f}s, killed {killed}")
    assert killed, "no trial reached its first epoch to be killed"

    store = FeedbackStore(result.history_dir)
    runs = store.runs(campaign=result.campaign)
    assert len(runs) == 4 and len({r.run_id for r in runs}) == 4  # the whole budget
    by_status = {s: [r for r in runs if r.status == s] for s in {r.status for r in runs}}
    assert sorted(by_status) == ["completed", "diverged", "failed"], by_status
    (raised,) = by_status["failed"]
    (diverged,) = by_status["diverged"]
    assert raised.params["trainer.grad_clip"] == -1.0 and diverged.params["trainer.lr"] == 1e9
    assert [r.params["trainer.grad_clip"] for r in by_status["completed"]] == [1.0, 1.0]
    assert raised.error and "grad_clip must be >= 0" in raised.error, raised.error
    assert raised.error.endswith("(2 failures)"), raised.error  # tried once, retried once
    assert diverged.error and diverged.value is None, diverged
    assert killed["trial"] in {r.run_id for r in by_status["completed"]}

    notes = retry_notes(store, result.campaign)
    assert set(notes) == {raised.run_id, killed["trial"]}, notes
    assert [len(notes[raised.run_id]), len(notes[killed["trial"]])] == [1, 1]
    assert "grad_clip" in notes[raised.run_id][0].data["error"]
    assert "died" in notes[killed["trial"]][0].data["error"], notes[killed["trial"]][0].data
    assert diverged.run_id not in notes  # diverging is a result, not an error: no retry

    # The killed trial went on from its first epoch's checkpoint in a new worker process.
    assert curve_epochs(store, killed["trial"]) == [1, 2]
    final = trial_reports(result.campaign_dir / "ray" / "experiment")[killed["trial"]][-1]
    assert final["pid"] != killed["pid"] and final["agentune_final"] is True


def _read_lines(stream: Any, lines: list[tuple[float, str]]) -> None:
    for line in stream:
        lines.append((time.monotonic(), line.rstrip("\n")))


def _experiment_trials(experiment: Path) -> list[set[str]]:
    """Trial ids of each of Tune's experiment snapshots, oldest first."""
    found = []
    for path in sorted(experiment.glob("experiment_state-*.json")):
        state = json.loads(path.read_text(encoding="utf-8"))
        found.append({json.loads(trial)["trial_id"] for trial, _ in state["trial_data"]})
    return found


def test_a_driver_killed_mid_campaign_resumes_with_every_run_once(
    goals_file: Path, tmp_path: Path
) -> None:
    storage = tmp_path / "runs"
    ray_tmp = Path(tempfile.mkdtemp(prefix="agd", dir="/tmp"))
    env = {**ray_env(), "RAY_TMPDIR": str(ray_tmp)}
    cmd = [str(VENV_BIN / "agentune"), "run", f"{goals_file}:resume", "--storage", str(storage)]
    try:
        # Tune snapshots its experiment at most every 10 s, so a driver killed at any moment
        # may leave runs in the history that the snapshot lacks; one snapshot only (at the
        # start) makes that certain: the resumed Tune knows none of the trials started later.
        first_log = (tmp_path / "first.log").open("w")
        first = subprocess.Popen(
            cmd, env={**env, "TUNE_GLOBAL_CHECKPOINT_S": "3600"}, stdout=first_log, stderr=first_log
        )
        deadline = time.monotonic() + CAMPAIGN_TIMEOUT_S
        before: list[Any] = []
        while time.monotonic() < deadline and first.poll() is None:
            histories = list(storage.glob("faults-resume/*/history"))
            before = FeedbackStore(histories[0]).runs() if histories else []
            if len(before) >= KILL_AFTER_RUNS:
                break
            time.sleep(0.5)
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        first_log.close()
        stop_processes(processes_naming(str(ray_tmp)))  # what the driver's Ray left behind
        (campaign_dir,) = storage.glob("faults-resume/*")
        before_ids = {r.run_id for r in FeedbackStore(campaign_dir / "history").runs()}
        assert KILL_AFTER_RUNS <= len(before_ids) < RESUME_BUDGET
        snapshot = _experiment_trials(campaign_dir / "ray" / "experiment")[-1]
        assert not before_ids <= snapshot, "the history holds no run Tune's snapshot lacks"

        t0 = time.monotonic()
        resumed = subprocess.Popen(
            [*cmd, "--resume"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: list[tuple[float, str]] = []
        reader = threading.Thread(target=_read_lines, args=(resumed.stdout, lines), daemon=True)
        reader.start()
        resumed.wait(timeout=CAMPAIGN_TIMEOUT_S)
        reader.join(timeout=10)
        output = "\n".join(text for _, text in lines)
        assert resumed.returncode == 0, output[-4000:]
        print(f"resumed after {len(before_ids)} runs, finished in {time.monotonic() - t0:.1f}s")
    finally:
        stop_processes(processes_naming(str(ray_tmp)))
        subprocess.run(["rm", "-rf", str(ray_tmp)], check=False)

    runs = FeedbackStore(campaign_dir / "history").runs()
    after_ids = [r.run_id for r in runs]
    assert len(after_ids) == RESUME_BUDGET == len(set(after_ids)), after_ids  # budget kept
    assert before_ids <= set(after_ids)  # no run lost
    assert {r.status for r in runs} == {"completed"}
    # Tune's experiment was continued, not started again: its first snapshot's trials are in
    # the resumed experiment.
    states = _experiment_trials(campaign_dir / "ray" / "experiment")
    assert len(states) == 2 and states[0] <= states[-1], states

    # The resumed run printed a line for each new run, as it finished (the first well before
    # the campaign's last line).
    trial_lines = [(t, text) for t, text in lines if text.startswith("trial ")]
    printed = {text.split()[1] for _, text in trial_lines}
    assert printed == set(after_ids) - before_ids, output[-3000:]
    done_at = next(t for t, text in lines if text.startswith("done in "))
    assert trial_lines[0][0] < done_at - 2.0, "trial lines were printed only at the end"


def test_a_node_lost_mid_trial_is_rescheduled_on_a_surviving_node(
    goals_file: Path, tmp_path: Path
) -> None:
    with local_cluster([{"num_cpus": 1}, {"num_cpus": 1}]) as cluster:
        lost: dict[str, str] = {}

        def remove_node(row: dict[str, Any]) -> None:
            lost.update(trial=str(row["trial_id"]), node=str(row[NODE_KEY]))
            cluster.remove_worker(lost["node"])

        watcher = Watcher(cluster.temp_dir, first_epoch, remove_node)
        watcher.start()
        t0 = time.perf_counter()
        try:
            result = run_campaign(
                goal(goals_file, "node_loss"),
                CampaignOptions(storage=tmp_path / "runs", metrics=False),
            )
        finally:
            watcher.stop()
        survivors = set(cluster.worker_ids())
        print(f"node-loss campaign: {time.perf_counter() - t0:.1f}s, lost {lost}")
    assert lost, "no trial reached its first epoch on a node to remove"
    assert len(survivors) == 1 and lost["node"] not in survivors

    store = FeedbackStore(result.history_dir)
    runs = store.runs(campaign=result.campaign)
    assert len(runs) == 3 and {r.status for r in runs} == {"completed"}, runs
    notes = retry_notes(store, result.campaign)
    assert set(notes) == {lost["trial"]} and len(notes[lost["trial"]]) == 1, notes
    # It went on from its first epoch's checkpoint, on the node that is left.
    assert curve_epochs(store, lost["trial"]) == [1, 2]
    final = trial_reports(result.campaign_dir / "ray" / "experiment")[lost["trial"]][-1]
    assert final[NODE_KEY] in survivors and final["agentune_final"] is True
