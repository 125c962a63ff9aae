"""Per-class AAMI-style metrics (`biosignals.metrics`): Se and PPV per class and the
confusion matrix, checked against matrices computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biosignals.metrics import (
    MetricsError,
    class_key,
    classification_metrics,
    flatten_confusion,
    labelled_confusion,
    per_class_from_confusion,
    per_class_metrics,
)

AAMI3 = ["N", "S", "V"]
AAMI5 = ["N", "S", "V", "F", "Q"]


def _arrays(true: list[int], pred: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(true, dtype=np.int64), np.array(pred, dtype=np.int64)


def test_three_classes_by_hand() -> None:
    # true N N N S S V V V V
    # pred N N S S N V V N S
    y_true, y_pred = _arrays([0, 0, 0, 1, 1, 2, 2, 2, 2], [0, 0, 1, 1, 0, 2, 2, 0, 1])
    cm = labelled_confusion(y_true, y_pred, AAMI3)
    assert cm == {"classes": AAMI3, "matrix": [[2, 1, 0], [1, 1, 0], [1, 1, 2]]}
    got = per_class_metrics(y_true, y_pred, AAMI3)
    assert list(got) == ["se_N", "ppv_N", "se_S", "ppv_S", "se_V", "ppv_V"]
    assert got == pytest.approx(
        {
            "se_N": 2 / 3,  # 2 of 3 true N found
            "ppv_N": 2 / 4,  # 4 predicted N, 2 right
            "se_S": 1 / 2,
            "ppv_S": 1 / 3,
            "se_V": 2 / 4,
            "ppv_V": 2 / 2,
        }
    )
    # macro F1 is the mean of the per-class F1 = 2 Se PPV / (Se + PPV)
    f1 = [2 * got[f"se_{c}"] * got[f"ppv_{c}"] / (got[f"se_{c}"] + got[f"ppv_{c}"]) for c in AAMI3]
    macro = classification_metrics(y_true, y_pred, 3)["macro_f1"]
    assert macro == pytest.approx(float(np.mean(f1)))


def test_a_class_never_predicted_and_a_class_never_present() -> None:
    """V occurs but is never predicted (PPV 0/0 -> 0, Se 0/2 = 0); F is predicted but never
    occurs (Se 0/0 -> 0, PPV 0/1 = 0); Q neither occurs nor is predicted (both 0)."""
    # true N N S S V V
    # pred N F S N S N
    y_true, y_pred = _arrays([0, 0, 1, 1, 2, 2], [0, 3, 1, 0, 1, 0])
    cm = labelled_confusion(y_true, y_pred, AAMI5)["matrix"]
    assert cm == [
        [1, 0, 0, 1, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    got = per_class_metrics(y_true, y_pred, AAMI5)
    assert got == pytest.approx(
        {
            "se_N": 1 / 2,
            "ppv_N": 1 / 3,
            "se_S": 1 / 2,
            "ppv_S": 1 / 2,
            "se_V": 0.0,  # 0 of 2
            "ppv_V": 0.0,  # never predicted: zero_division=0
            "se_F": 0.0,  # never present: zero_division=0
            "ppv_F": 0.0,  # predicted once, wrongly
            "se_Q": 0.0,  # neither
            "ppv_Q": 0.0,
        }
    )
    assert all(np.isfinite(v) for v in got.values())


def test_perfect_and_empty_predictions() -> None:
    y = np.array([0, 1, 2, 2], dtype=np.int64)
    assert set(per_class_metrics(y, y, AAMI3).values()) == {1.0}
    empty = np.array([], dtype=np.int64)
    assert per_class_metrics(empty, empty, AAMI3) == dict.fromkeys(
        ["se_N", "ppv_N", "se_S", "ppv_S", "se_V", "ppv_V"], 0.0
    )
    assert labelled_confusion(empty, empty, AAMI3)["matrix"] == [[0] * 3] * 3


def test_the_confusion_matrix_is_plain_json() -> None:
    y_true, y_pred = _arrays([0, 1, 1], [1, 1, 0])
    cm = labelled_confusion(y_true, y_pred, AAMI3)
    assert json.loads(json.dumps(cm)) == cm
    assert all(type(v) is int for row in cm["matrix"] for v in row)


def test_per_class_from_confusion_checks_the_shape() -> None:
    with pytest.raises(MetricsError, match=r"must be \(3, 3\).*got shape \(2, 2\)"):
        per_class_from_confusion(np.eye(2, dtype=np.int64), AAMI3)


def test_flatten_confusion_gives_one_count_per_cell() -> None:
    y_true, y_pred = _arrays([0, 0, 1, 2], [0, 1, 1, 0])
    flat = flatten_confusion(labelled_confusion(y_true, y_pred, AAMI3), "test")
    assert len(flat) == 9
    assert (flat["test/cm_N_N"], flat["test/cm_N_S"], flat["test/cm_V_N"]) == (1.0, 1.0, 1.0)
    assert flat["test/cm_S_S"] == 1.0 and flat["test/cm_S_N"] == 0.0
    assert all(type(v) is float for v in flat.values())
    with pytest.raises(MetricsError, match="must be"):
        flatten_confusion({"classes": AAMI3, "matrix": [[1, 2], [3, 4]]}, "test")


@pytest.mark.parametrize(
    ("name", "key"),
    [("N", "N"), ("a_b", "a-b"), ("AF beat", "AF-beat"), ("x/y", "x-y"), ("_q_", "q")],
)
def test_class_keys_have_no_separators(name: str, key: str) -> None:
    assert class_key(name) == key


def test_class_keys_must_be_distinct_and_non_empty() -> None:
    with pytest.raises(MetricsError, match="letter or a digit"):
        class_key("__")
    y = np.array([0, 1], dtype=np.int64)
    with pytest.raises(MetricsError, match="distinct"):
        per_class_metrics(y, y, ["a_b", "a b"])
