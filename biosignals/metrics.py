"""Evaluation metrics for the trainer, as plain NumPy functions.

Definitions follow scikit-learn's so numbers compare with the literature: macro F1 averages
over the classes that occur in `y_true` or `y_pred`; balanced accuracy is the mean recall over
the classes that occur in `y_true`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CLASSIFICATION_METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "balanced_accuracy")
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse")


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
