"""Feedback: the campaign history (Parquet), the signals read from it, and the dashboard.

* :class:`RunRecord`, :class:`Event`: what is stored; :meth:`RunRecord.from_run_dir` builds a
  record from the trainer's artifacts.
* :class:`FeedbackStore`: the durable, append-only Parquet store of a campaign directory's
  ``history/``.
* :mod:`feedback.signals`: :func:`drift`, :func:`stagnation`, :func:`recommend` with
  :class:`SignalThresholds`; :func:`estimate_noise` (the run-to-run noise they compare with).
* :func:`write_dashboard`, :func:`write_demo_dashboard`: the standalone HTML dashboard.
* :func:`git_commit`: the project's commit (``-dirty`` with uncommitted changes), recorded
  with each run's seed, dataset hash and simulator version in :class:`RunRecord`.

This package imports no other project package, nor ray, torch or smolagents.
"""

from __future__ import annotations

from ._configs import ConfigResult, config_key, params_key, rank_configs
from ._dashboard import render_dashboard, write_dashboard
from ._demo import DEMO_THRESHOLDS, populate_demo_history, write_demo_dashboard
from ._errors import CorruptFragmentWarning, FeedbackError, FeedbackSchemaError
from ._history import history_text
from ._provenance import git_commit
from ._records import (
    APPROVALS,
    EVENT_KINDS,
    MODES,
    ORIGINS,
    STATUSES,
    TIERS,
    Event,
    RunRecord,
    load_epoch_metrics,
    parse_epoch_metrics,
)
from ._schema import CURVES_SCHEMA, EVENTS_SCHEMA, RUNS_SCHEMA, SCHEMA_VERSION
from ._store import FeedbackStore
from .signals import (
    DriftReading,
    History,
    NoiseEstimate,
    Recommendation,
    SignalThresholds,
    StagnationReading,
    drift,
    estimate_noise,
    recommend,
    stagnation,
)

__all__ = [
    "APPROVALS",
    "CURVES_SCHEMA",
    "DEMO_THRESHOLDS",
    "EVENTS_SCHEMA",
    "EVENT_KINDS",
    "MODES",
    "ORIGINS",
    "RUNS_SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "TIERS",
    "ConfigResult",
    "CorruptFragmentWarning",
    "DriftReading",
    "Event",
    "FeedbackError",
    "FeedbackSchemaError",
    "FeedbackStore",
    "History",
    "NoiseEstimate",
    "Recommendation",
    "RunRecord",
    "SignalThresholds",
    "StagnationReading",
    "config_key",
    "drift",
    "estimate_noise",
    "git_commit",
    "history_text",
    "load_epoch_metrics",
    "params_key",
    "parse_epoch_metrics",
    "populate_demo_history",
    "rank_configs",
    "recommend",
    "render_dashboard",
    "stagnation",
    "write_dashboard",
    "write_demo_dashboard",
]
