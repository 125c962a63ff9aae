from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from feedback_helpers import make_record

from feedback import Event, FeedbackError, RunRecord, load_epoch_metrics


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("tier", 1, "tier 1 is read-only"),
        ("tier", True, "tier must be"),
        ("status", "running", "status must be one of"),
        ("origin", "llm", "origin must be one of"),
        ("mode", "maximize", "mode must be one of"),
        ("approval", "yes", "approval must be one of"),
        ("run_id", "", "run_id must be a non-empty string"),
        ("started_at", datetime(2025, 1, 1), "naive datetime"),
        ("params", {"model": {"width": 3}}, "flatten nested values"),
        ("overrides", "trainer.lr=1", "list of Hydra override strings"),
        ("epochs_run", -1, "epochs_run must be an integer >= 0"),
        ("value", None, "completed run needs a finite value"),
        ("value", float("nan"), "completed run needs a finite value"),
    ],
)
def test_record_validation_names_rule_and_value(field: str, value: object, match: str) -> None:
    with pytest.raises(FeedbackError, match=match):
        make_record(**{field: value})


def test_non_finite_value_of_unfinished_run_becomes_none() -> None:
    rec = make_record(status="diverged", value=float("inf"))
    assert rec.value is None


def test_times_are_converted_to_utc() -> None:
    from datetime import timedelta, timezone

    local = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    rec = make_record(started_at=local)
    assert rec.started_at == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert rec.started_at is not None and rec.started_at.tzinfo == UTC


def _write_run_dir(
    path: Path,
    *,
    status: str = "completed",
    best_value: float | None = 0.81,
    epochs: int = 3,
    summary: bool = True,
    broken_last_line: bool = False,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "epoch": e,
                "train/loss": 1.0 / e,
                "val/loss": 1.2 / e,
                "val/macro_f1": 0.5 + 0.1 * e,
                "val/accuracy": 0.6 + 0.1 * e,
                "lr": 1e-3,
                "time": 2.0 * e,
                "epoch_time": 2.0,
            }
        )
        for e in range(1, epochs + 1)
    ]
    if broken_last_line:
        lines.append('{"epoch": 4, "train/lo')
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (path / "config.yaml").write_text(
        "model:\n  _target_: biosignals.models.resnet1d.ResNet1D\n  width: 64\n"
        "trainer:\n  lr: 0.001\n"
    )
    if summary:
        (path / "summary.json").write_text(
            json.dumps(
                {
                    "status": status,
                    "metric": "val/macro_f1",
                    "mode": "max",
                    "best_value": best_value,
                    "best_epoch": epochs if best_value is not None else None,
                    "epochs_run": epochs,
                    "num_params": 4242,
                    "duration_s": 6.5,
                    "started_at": "2025-02-01T10:00:00+00:00",
                    "finished_at": "2025-02-01T10:00:06.500000Z",
                    "model": "cnn1d",
                    "model_target": "biosignals.models.cnn1d.CNN1D",
                    "dataset": "mitbih_synth_quick",
                    "task": "classification",
                    "test": {"test/macro_f1": 0.79, "test/accuracy": 0.9},
                    "error": None,
                    "seed": 0,
                }
            )
        )
    return path


IDENTITY: dict[str, Any] = {
    "run_id": "r1",
    "campaign": "c",
    "arm": "a",
    "tier": 0,
    "origin": "optuna",
    "trial_id": "t1",
    "overrides": ["trainer.lr=0.001"],
    "params": {"trainer.lr": 0.001},
}


def test_from_run_dir_reads_trainer_artifacts(tmp_path: Path) -> None:
    rec = RunRecord.from_run_dir(_write_run_dir(tmp_path / "run"), **IDENTITY)
    assert rec.status == "completed"
    assert rec.value == pytest.approx(0.81)
    assert (rec.metric, rec.mode, rec.best_epoch, rec.epochs_run) == ("val/macro_f1", "max", 3, 3)
    assert rec.num_params == 4242 and rec.model == "cnn1d" and rec.dataset == "mitbih_synth_quick"
    assert rec.started_at == datetime(2025, 2, 1, 10, tzinfo=UTC)
    assert rec.finished_at is not None and rec.finished_at.tzinfo == UTC
    assert rec.test_metrics == {"test/macro_f1": 0.79, "test/accuracy": 0.9}
    assert rec.params == {"trainer.lr": 0.001} and rec.trial_id == "t1"


@pytest.mark.parametrize(
    ("trainer_status", "expected"),
    [("stopped", "pruned"), ("diverged", "diverged"), ("failed", "failed")],
)
def test_from_run_dir_maps_trainer_status(
    tmp_path: Path, trainer_status: str, expected: str
) -> None:
    run = _write_run_dir(tmp_path / "run", status=trainer_status)
    assert RunRecord.from_run_dir(run, **IDENTITY).status == expected


def test_from_run_dir_without_summary_is_failed(tmp_path: Path) -> None:
    run = _write_run_dir(tmp_path / "run", summary=False, broken_last_line=True)
    rec = RunRecord.from_run_dir(run, metric="val/macro_f1", mode="max", **IDENTITY)
    assert rec.status == "failed" and rec.value is None
    assert rec.epochs_run == 3  # the cut-off last line is skipped
    assert "summary.json" in (rec.error or "")
    assert rec.model == "resnet1d"  # from config.yaml
    with pytest.raises(FeedbackError, match="pass metric= and mode="):
        RunRecord.from_run_dir(run, **IDENTITY)


def test_completed_summary_without_value_becomes_failed(tmp_path: Path) -> None:
    run = _write_run_dir(tmp_path / "run", best_value=None)
    rec = RunRecord.from_run_dir(run, **IDENTITY)
    assert rec.status == "failed" and "without a finite" in (rec.error or "")


def test_from_run_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match="does not exist"):
        RunRecord.from_run_dir(tmp_path / "missing", **IDENTITY)
    run = _write_run_dir(tmp_path / "run", status="paused")
    with pytest.raises(FeedbackError, match="status must be one of"):
        RunRecord.from_run_dir(run, **IDENTITY)


def test_load_epoch_metrics_skips_broken_lines(tmp_path: Path) -> None:
    run = _write_run_dir(tmp_path / "run", broken_last_line=True)
    epochs = load_epoch_metrics(run)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[0]["val/macro_f1"] == pytest.approx(0.6)
    assert load_epoch_metrics(tmp_path / "nothing") == []


def test_from_tune_result() -> None:
    result = {
        "trial_id": "abc123",
        "val/macro_f1": 0.7,
        "training_iteration": 4,
        "time_total_s": 20.0,
        "timestamp": 1_700_000_000,
        "config": {"trainer": {"lr": 0.01}, "model": {"width": 32}},
    }
    rec = RunRecord.from_tune_result(
        result, campaign="c", arm="a", tier=0, origin="optuna", metric="val/macro_f1", mode="max"
    )
    assert rec.run_id == "abc123" and rec.value == 0.7 and rec.epochs_run == 4
    assert rec.params == {"trainer.lr": 0.01, "model.width": 32}
    assert rec.finished_at is not None and rec.started_at is not None
    assert (rec.finished_at - rec.started_at).total_seconds() == pytest.approx(20.0)
    missing = RunRecord.from_tune_result(
        {"trial_id": "x"}, campaign="c", arm="a", tier=0, origin="optuna", metric="m", mode="min"
    )
    assert missing.status == "failed"


def test_event_validation() -> None:
    ev = Event(campaign="c", kind="approval", data={"decision": "approved"})
    assert ev.time.tzinfo == UTC and len(ev.event_id) == 32
    with pytest.raises(FeedbackError, match="kind must be one of"):
        Event(campaign="c", kind="party")
    with pytest.raises(FeedbackError, match="JSON-serializable"):
        Event(campaign="c", kind="note", data={"x": object()})


def test_to_dict_is_json_friendly() -> None:
    json.dumps(make_record().to_dict())


# --- provenance (issue 10) ----------------------------------------------------------------


PROVENANCE = {
    "seed": 7,
    "dataset_hash": "0123456789abcdef",
    "simulator_version": "ecg_synth/2",
}


def test_provenance_fields_default_to_none_and_round_trip() -> None:
    bare = make_record()
    assert (bare.seed, bare.git_commit, bare.dataset_hash, bare.simulator_version) == (
        None, None, None, None,
    )  # fmt: skip
    rec = make_record(**PROVENANCE, git_commit="a" * 40 + "-dirty")
    assert rec.to_dict() | PROVENANCE == rec.to_dict()
    assert RunRecord._from_row(rec._to_row(1, 2)) == rec
    assert make_record(simulator_version=2).simulator_version == "2"  # an int becomes text


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("seed", True, "seed must be an integer"),
        ("seed", "7", "seed must be an integer"),
        ("seed", 1.5, "seed must be an integer"),
        ("seed", 2**63, "fits in 64 bits"),
        ("git_commit", 123, "git_commit must be a string or None"),
        ("dataset_hash", b"ab", "dataset_hash must be a string or None"),
        ("simulator_version", 2.0, "simulator_version must be a string or None"),
    ],
)
def test_provenance_validation(field: str, value: object, match: str) -> None:
    with pytest.raises(FeedbackError, match=match):
        make_record(**{field: value})


def test_from_run_dir_reads_provenance_from_the_summary(tmp_path: Path) -> None:
    run_dir = _write_run_dir(tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, **PROVENANCE}))
    rec = RunRecord.from_run_dir(run_dir, **IDENTITY, git_commit="b" * 40)
    assert (rec.seed, rec.dataset_hash, rec.simulator_version) == (7, "0123456789abcdef",
                                                                  "ecg_synth/2")  # fmt: skip
    assert rec.git_commit == "b" * 40
    old = RunRecord.from_run_dir(_write_run_dir(tmp_path / "old"), **IDENTITY)
    # a summary written before the trainer reported its data: seed only
    assert (old.seed, old.git_commit, old.dataset_hash, old.simulator_version) == (
        0, None, None, None,
    )  # fmt: skip


def test_from_tune_result_copies_reported_provenance() -> None:
    result = {"trial_id": "abc", "val/macro_f1": 0.7, "training_iteration": 2, **PROVENANCE}
    rec = RunRecord.from_tune_result(
        result, campaign="c", arm="a", tier=0, origin="optuna", metric="val/macro_f1",
        mode="max", git_commit="c" * 40,
    )  # fmt: skip
    assert (rec.seed, rec.dataset_hash, rec.simulator_version, rec.git_commit) == (
        7, "0123456789abcdef", "ecg_synth/2", "c" * 40,
    )  # fmt: skip
    bare = RunRecord.from_tune_result(
        {"trial_id": "x", "m": 1.0}, campaign="c", arm="a", tier=0, origin="optuna", metric="m",
        mode="min",
    )  # fmt: skip
    assert (bare.seed, bare.git_commit, bare.dataset_hash) == (None, None, None)


# --- git_commit ---------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    import subprocess

    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git repository (in tmp_path, not the project's) with one commit."""
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q")
    (path / "train.py").write_text("print('v1')\n")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "v1")
    return path


def test_git_commit_is_head_and_marks_tracked_changes(repo: Path) -> None:
    from feedback import git_commit

    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head and len(head) == 40
    assert git_commit(repo / "train.py") == head  # a file in the checkout works too
    (repo / "sub").mkdir()
    assert git_commit(repo / "sub") == head  # any directory inside it
    (repo / "generated.py").write_text("x = 1\n")
    assert git_commit(repo) == head  # untracked files do not make it dirty
    (repo / "train.py").write_text("print('v2')\n")
    assert git_commit(repo) == f"{head}-dirty"
    _git(repo, "add", "train.py")
    assert git_commit(repo) == f"{head}-dirty"  # staged but not committed
    _git(repo, "commit", "-q", "-m", "v2")
    assert git_commit(repo) == _git(repo, "rev-parse", "HEAD") != head


def test_git_commit_is_none_outside_a_checkout_or_without_git(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedback import git_commit

    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above it
    assert git_commit(outside) is None
    assert git_commit(tmp_path / "missing") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert git_commit(empty) is None  # a repository without a commit
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # git cannot be found
    assert git_commit(repo) is None


def test_git_commit_defaults_to_the_current_directory(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedback import git_commit

    monkeypatch.chdir(repo)
    assert git_commit() == _git(repo, "rev-parse", "HEAD")


def test_git_commit_gives_up_on_a_hung_git(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from feedback import _provenance, git_commit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text("#!/bin/sh\nsleep 10\n")
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(_provenance, "GIT_TIMEOUT_S", 0.3)
    started = time.perf_counter()
    assert git_commit(repo) is None
    assert time.perf_counter() - started < 5.0
