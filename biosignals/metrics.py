"""Evaluation metrics for the trainer, as plain NumPy functions.

Definitions follow scikit-learn's so numbers compare with the literature: macro F1 averages
over the classes that occur in `y_true` or `y_pred`; balanced accuracy is the mean recall over
the classes that occur in `y_true`.

Per-class results are read the way AAMI EC57 reports are: each class's sensitivity (Se,
recall: TP / true count) and positive predictive value (PPV, precision: TP / predicted
count), under the keys ``se_<class>`` and ``ppv_<class>``, and the confusion matrix (rows
true, columns predicted). A ratio with a zero denominator (a class absent from `y_true` has
no Se, a class never predicted has no PPV) is 0.0, scikit-learn's ``zero_division=0``; the
confusion matrix tells such a 0 from a real one.

Class names become key tokens through `class_key` (letters, digits and "-" only), so a
flattened confusion-matrix key ``<prefix>/cm_<true>_<pred>`` splits at its one "_".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

CLASSIFICATION_METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "balanced_accuracy")
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


class MetricsError(ValueError):
    """Inputs a metric cannot use; the message says which and what to pass."""


def confusion_matrix(
    y_true: npt.NDArray[np.integer], y_pred: npt.NDArray[np.integer], num_classes: int
) -> npt.NDArray[np.int64]:
    """Counts[i, j] of windows with true class i predicted as j, shape (K, K)."""
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def classification_metrics(
    y_true: npt.NDArray[np.integer], y_pred: npt.NDArray[np.integer], num_classes: int
) -> dict[str, float]:
    """Macro F1, accuracy and balanced accuracy of class predictions.

    Args:
        y_true: true class indices, shape (N,).
        y_pred: predicted class indices, shape (N,).
        num_classes: K; indices lie in [0, K).

    Returns:
        {"macro_f1", "accuracy", "balanced_accuracy"} as floats; 0.0 for empty input.
    """
    if len(y_true) == 0:
        return dict.fromkeys(CLASSIFICATION_METRICS, 0.0)
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)  # true count per class
    predicted = cm.sum(axis=0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    return {
        "macro_f1": float(f1[present].mean()),
        "accuracy": float(tp.sum() / cm.sum()),
        "balanced_accuracy": float(recall[support > 0].mean()),
    }


def regression_metrics(
    y_true: npt.NDArray[np.floating], y_pred: npt.NDArray[np.floating]
) -> dict[str, float]:
    """Mean absolute error and root mean squared error, in the targets' units.

    Args:
        y_true: targets, shape (N,).
        y_pred: predictions, shape (N,).

    Returns:
        {"mae", "rmse"} as floats; NaN for empty input.
    """
    if len(y_true) == 0:
        return dict.fromkeys(REGRESSION_METRICS, float("nan"))
    err = y_pred.astype(np.float64) - y_true.astype(np.float64)
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}


def class_key(name: str) -> str:
    """The token of class `name` in metric keys: runs of other characters than letters,
    digits and "-" become one "-" (``"N"`` stays ``"N"``, ``"a_b"`` becomes ``"a-b"``).

    Raises:
        MetricsError: nothing is left of `name` (empty, or only separators).
    """
    token = _KEY_UNSAFE.sub("-", str(name)).strip("-")
    if not token:
        raise MetricsError(
            f"a class name must contain a letter or a digit to name metric keys, got {name!r}; "
            "rename the class in the dataset"
        )
    return token


def _class_keys(class_names: Sequence[str]) -> list[str]:
    keys = [class_key(n) for n in class_names]
    if len(set(keys)) != len(keys):
        raise MetricsError(
            f"class names must stay distinct as metric keys, but {list(class_names)!r} give "
            f"{keys!r}; rename the classes so they differ in letters or digits"
        )
    return keys


def per_class_from_confusion(
    cm: npt.NDArray[np.integer], class_names: Sequence[str]
) -> dict[str, float]:
    """Sensitivity and PPV per class of a confusion matrix (see the module docstring).

    Args:
        cm: counts, rows true class, columns predicted, shape (K, K).
        class_names: the K class names in index order.

    Returns:
        ``{"se_<class>": ..., "ppv_<class>": ...}`` for every class, in class order; 0.0
        where a denominator is 0.

    Raises:
        MetricsError: `cm` is not (K, K) for the K names, or two names give one key.
    """
    keys = _class_keys(class_names)
    k = len(keys)
    if cm.shape != (k, k):
        raise MetricsError(
            f"the confusion matrix must be ({k}, {k}) for classes {list(class_names)!r}, "
            f"got shape {cm.shape}; pass one name per class index"
        )
    counts = cm.astype(np.float64)
    tp = np.diag(counts)
    support, predicted = counts.sum(axis=1), counts.sum(axis=0)
    se = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    ppv = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    out: dict[str, float] = {}
    for key, se_k, ppv_k in zip(keys, se, ppv, strict=True):
        out[f"se_{key}"], out[f"ppv_{key}"] = float(se_k), float(ppv_k)
    return out


def per_class_metrics(
    y_true: npt.NDArray[np.integer],
    y_pred: npt.NDArray[np.integer],
    class_names: Sequence[str],
) -> dict[str, float]:
    """Sensitivity (recall) and positive predictive value (precision) of every class.

    Args:
        y_true: true class indices, shape (N,).
        y_pred: predicted class indices, shape (N,).
        class_names: the class names in index order (indices lie in [0, K)).

    Returns:
        ``{"se_N": ..., "ppv_N": ..., "se_S": ..., ...}`` (one Se and one PPV per class, also
        for a class absent from both arrays); 0.0 where undefined, as scikit-learn's
        ``precision_score``/``recall_score`` with ``zero_division=0`` and ``average=None``.

    Raises:
        MetricsError: two class names give the same key token.
    """
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    return per_class_from_confusion(cm, class_names)


def labelled_confusion(
    y_true: npt.NDArray[np.integer],
    y_pred: npt.NDArray[np.integer],
    class_names: Sequence[str],
) -> dict[str, Any]:
    """The confusion matrix with its class names, JSON-ready.

    Returns:
        ``{"classes": [names...], "matrix": [[count, ...], ...]}``: ``matrix[i][j]`` counts
        windows of true class i predicted as j (rows true, columns predicted), plain ints.
    """
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    return {"classes": [str(n) for n in class_names], "matrix": cm.tolist()}


def flatten_confusion(confusion: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """A `labelled_confusion` dict as flat float counts ``<prefix>/cm_<true>_<pred>``.

    Flat floats travel where only scalar metrics do (a Tune report, the feedback store's
    ``test_metrics``); the class tokens come from `class_key`.

    Raises:
        MetricsError: the matrix is not square over the classes, or two names give one key.
    """
    keys = _class_keys(list(confusion["classes"]))
    matrix = np.asarray(confusion["matrix"], dtype=np.float64)
    if matrix.shape != (len(keys), len(keys)):
        raise MetricsError(
            f"the confusion matrix must be ({len(keys)}, {len(keys)}) for classes "
            f"{list(confusion['classes'])!r}, got shape {matrix.shape}"
        )
    return {
        f"{prefix}/cm_{t}_{p}": float(matrix[i, j])
        for i, t in enumerate(keys)
        for j, p in enumerate(keys)
    }
