"""The dashboard's held-out test reading: the test column of the experiment log and the
best-by-validation run's test confusion matrix with Se/PPV, drawn from the store alone."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from feedback_helpers import make_record

from feedback import FeedbackStore, RunRecord, render_dashboard
from feedback._dashboard import confusion_from_metrics

# rows true N, S, V, F, Q; columns predicted (F never occurs, Q never occurs nor is predicted)
MATRIX = [
    [90, 5, 3, 2, 0],
    [4, 6, 0, 0, 0],
    [1, 0, 9, 0, 0],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
]
CLASSES = ["N", "S", "V", "F", "Q"]


def _flat(matrix: list[list[int]], classes: list[str]) -> dict[str, float]:
    return {
        f"test/cm_{t}_{p}": float(matrix[i][j])
        for i, t in enumerate(classes)
        for j, p in enumerate(classes)
    }


def _section(page: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', page, flags=re.S)
    assert match is not None, name
    return match.group(1)


def _cells(table_html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", table_html, flags=re.S)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in rows]


@pytest.fixture
def campaign(store: FeedbackStore) -> FeedbackStore:
    """Three runs: the best by validation (with a test matrix), one better on test, one
    failed; the JSON column keeps the keys sorted, so the order must be restored."""
    store.append(
        make_record(
            campaign="c",
            run_id="best-val",
            value=0.80,
            test_metrics={"test/macro_f1": 0.61, "test/se_S": 0.6, **_flat(MATRIX, CLASSES)},
        )
    )
    store.append(
        make_record(
            campaign="c", run_id="best-test", value=0.70, test_metrics={"test/macro_f1": 0.66}
        )
    )
    store.append(make_record(campaign="c", run_id="broke", status="failed", error="boom"))
    return store


def test_the_log_shows_each_runs_test_value_beside_its_validation_value(
    campaign: FeedbackStore,
) -> None:
    log = _section(render_dashboard(campaign, "c"), "log")
    assert "<th>val/macro_f1</th><th class=test" in log
    assert "test/macro_f1 (held-out test)" in log and "never used by the search" in log
    rows = {r[1]: r for r in _cells(log)[1:]}
    assert (rows["best-val"][3], rows["best-val"][4]) == ("0.8", "0.61")
    assert (rows["best-test"][3], rows["best-test"][4]) == ("0.7", "0.66")
    assert rows["broke"][4] == "–"
    assert [r[1] for r in _cells(log)[1:]] == ["best-val", "best-test", "broke"]  # by val


def test_the_best_runs_test_confusion_matrix_with_se_and_ppv(campaign: FeedbackStore) -> None:
    section = _section(render_dashboard(campaign, "c"), "holdout")
    assert "Best run by validation: <b>best-val</b>" in section
    assert "test/macro_f1 0.61" in section
    assert "Best test/macro_f1 of any completed run: 0.66 (best-test)" in section
    table = re.search(r'<table class="cm">.*?</table>', section, flags=re.S)
    assert table is not None
    cells = _cells(table.group(0))
    assert cells[0][1:] == [*CLASSES, "total", "Se"]  # EC57 order, not the stored (sorted) one
    by_class = {row[0]: row[1:] for row in cells[1:]}
    assert by_class["N"] == ["90", "5", "3", "2", "0", "100", "0.900"]
    assert by_class["S"] == ["4", "6", "0", "0", "0", "10", "0.600"]
    assert by_class["V"][-1] == "0.900"
    assert by_class["F"][-2:] == ["0", "–"]  # never occurs: no Se
    assert by_class["total"] == ["95", "11", "12", "2", "0", "120", ""]
    # PPV: 90/95, 6/11, 9/12; F predicted twice, never right; Q never predicted
    assert by_class["PPV"][:5] == ["0.947", "0.545", "0.750", "0.000", "–"]


def test_runs_without_a_stored_matrix_say_so(store: FeedbackStore) -> None:
    store.append(make_record(campaign="c", run_id="plain", value=0.9))
    page = render_dashboard(store, "c")
    section = _section(page, "holdout")
    assert "No test confusion matrix stored for this run" in section
    assert "<table" not in section
    empty = FeedbackStore(store.root.parent / "empty")
    assert "No completed run yet" in _section(render_dashboard(empty), "holdout")


def test_a_regression_campaign_compares_test_values_in_its_direction(
    store: FeedbackStore,
) -> None:
    for run_id, value, test in (("a", 5.0, 6.0), ("b", 7.0, 5.5)):
        store.append(
            make_record(
                campaign="p",
                run_id=run_id,
                metric="val/mae",
                mode="min",
                value=value,
                test_metrics={"test/mae": test},
            )
        )
    page = render_dashboard(store, "p")
    assert "test/mae (held-out test)" in _section(page, "log")
    section = _section(page, "holdout")
    assert "<b>a</b>" in section and "Best test/mae of any completed run: 5.5 (b)" in section


def test_class_names_from_the_store_are_escaped(store: FeedbackStore) -> None:
    evil = "<img src=x onerror=alert(1)>"
    metrics = {f"test/cm_{evil}_{evil}": 3.0, f"test/cm_{evil}_N": 1.0, "test/cm_N_N": 2.0}
    store.append(make_record(campaign="c", run_id="r", value=0.5, test_metrics=metrics))
    page = render_dashboard(store, "c")
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_confusion_from_metrics_restores_the_matrix() -> None:
    found = confusion_from_metrics({"test/macro_f1": 0.5, **_flat(MATRIX, CLASSES)})
    assert found is not None
    classes, matrix = found
    assert classes == CLASSES and matrix.tolist() == MATRIX
    other = confusion_from_metrics({"test/cm_lo_lo": 1.0, "test/cm_lo_hi": 2.0})
    assert other is not None
    assert other[0] == ["hi", "lo"]  # names outside EC57: in name order
    assert np.array_equal(other[1], [[0.0, 0.0], [2.0, 1.0]])  # a missing cell is 0
    assert confusion_from_metrics({"test/macro_f1": 0.5, "test/cm_bad": 1.0}) is None


def _run_dir(tmp_path: Path, confusion: object) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    summary = {
        "status": "completed",
        "metric": "val/macro_f1",
        "mode": "max",
        "best_value": 0.8,
        "best_epoch": 2,
        "epochs_run": 3,
        "test": {"test/macro_f1": 0.7, "test/se_N": 0.9},
        "val_confusion": {"classes": ["N", "S"], "matrix": [[1, 0], [0, 1]]},
        "test_confusion": confusion,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_a_run_dirs_test_confusion_becomes_flat_counts(tmp_path: Path) -> None:
    confusion = {"classes": ["N", "S_x"], "matrix": [[5, 1], [2, 3]]}
    rec = RunRecord.from_run_dir(
        _run_dir(tmp_path, confusion), run_id="r", campaign="c", arm="a", tier=0, origin="optuna"
    )
    assert rec.test_metrics == {
        "test/macro_f1": 0.7,
        "test/se_N": 0.9,
        "test/cm_N_N": 5.0,
        "test/cm_N_S-x": 1.0,  # the class token of biosignals.metrics.class_key
        "test/cm_S-x_N": 2.0,
        "test/cm_S-x_S-x": 3.0,
    }


@pytest.mark.parametrize(
    "confusion",
    [
        {"classes": ["N", "S"], "matrix": [[1, 2]]},
        {"classes": ["N", "S"], "matrix": [[1, 2], [3, None]]},
        {"classes": ["a b", "a_b"], "matrix": [[1, 2], [3, 4]]},
        {"classes": "NS", "matrix": []},
        [1, 2],
    ],
)
def test_a_malformed_test_confusion_is_ignored(
    tmp_path: Path, confusion: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="feedback._records"):
        rec = RunRecord.from_run_dir(
            _run_dir(tmp_path, confusion),
            run_id="r",
            campaign="c",
            arm="a",
            tier=0,
            origin="optuna",
        )
    assert rec.test_metrics == {"test/macro_f1": 0.7, "test/se_N": 0.9}
    assert "malformed confusion matrix" in caplog.text
