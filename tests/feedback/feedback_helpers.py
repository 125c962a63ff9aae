"""Record builders shared by the feedback tests (imported as ``feedback_helpers``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback import RunRecord

_ids = itertools.count()
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_record(**overrides: Any) -> RunRecord:
    """A valid completed record; keyword arguments replace fields."""
    i = next(_ids)
    fields: dict[str, Any] = {
        "run_id": f"run-{i:06d}",
        "campaign": "camp",
        "trial_id": f"trial-{i}",
        "arm": "cnn1d",
        "tier": 0,
        "origin": "optuna",
        "overrides": [f"trainer.lr={1e-3 * (1 + i % 7):.4g}", f"model.width={32 + i % 3 * 32}"],
        "params": {"trainer.lr": 1e-3 * (1 + i % 7), "model.width": 32 + i % 3 * 32},
        "status": "completed",
        "metric": "val/macro_f1",
        "mode": "max",
        "value": 0.5,
        "best_epoch": 3,
        "epochs_run": 5,
        "duration_s": 12.5,
        "started_at": T0 + timedelta(minutes=i),
        "finished_at": T0 + timedelta(minutes=i, seconds=12),
        "model": "cnn1d",
        "num_params": 12345,
    }
    fields.update(overrides)
    if fields["status"] != "completed" and "value" not in overrides:
        fields["value"] = None
    return RunRecord(**fields)


def history(
    values: Sequence[float | None],
    *,
    mode: str = "max",
    lr: Callable[[int], float] | float | None = None,
    statuses: Sequence[str] | None = None,
    **fields: Any,
) -> list[RunRecord]:
    """Records with the given values in order (None -> a failed run).

    Each run gets a distinct config (``model.width`` = index); ``lr`` sets ``trainer.lr``
    (a constant or a function of the index; default: the same lr for every run).
    """
    out = []
    for i, v in enumerate(values):
        lr_value = 1e-3 if lr is None else lr(i) if callable(lr) else lr
        status = statuses[i] if statuses is not None else "completed" if v is not None else "failed"
        out.append(
            make_record(
                value=v,
                mode=mode,
                status=status,
                params={"trainer.lr": lr_value, "model.width": i},
                overrides=[f"trainer.lr={lr_value}", f"model.width={i}"],
                **fields,
            )
        )
    return out
