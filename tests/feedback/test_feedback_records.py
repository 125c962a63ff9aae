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
