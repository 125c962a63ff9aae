"""The keys `AgentSearcher` and a campaign trainable share: one config entry, a few result keys.

Plain constants with no imports, so the trainable (and anything else on a Ray worker) reads
them without loading Ray's `Searcher` or Optuna.

The reserved config entry ``config["agentune"]`` (campaign mode, or ``annotate=True``)::

    {"arm": "resnet1d-w64",          # arm name
     "tier": 2,                      # 0 base, 2 config variant, 3 generated model
     "origin": "agent",              # optuna | agent | human | warm_start | repeat
     "overrides": ["model=resnet1d", "model.width=64"],  # fixed by the arm (plus keys an
                                     # approval hook's modify fixed for this trial)
     "model": "resnet1d",            # or None
     "model_source": None,           # generated model code (tier 3)
     "model_config": None,           # its registered config (tier 3)
     "proposal_id": "3f2a...",       # or None
     "seed": None}                   # a repeat's training seed (`search.repeats`), or None

A trainable turns it into Hydra overrides: ``overrides + [f"{k}={v}" for k, v in params]``,
plus ``seed=<seed>`` when the entry names one.

What a campaign trainable reports: the metric (its final report carries the run's best value
under the metric name); ``agentune_final`` (`FINAL_KEY`) True in the report made when training
ended by itself and False in the earlier ones (a trial whose last report says False was
stopped by the scheduler and is recorded as pruned; a trainable that never reports the flag
has its finished trials counted as completed); optionally ``status`` (a trainer status, see
`TRAINER_STATUS`), ``error``, ``num_params``, ``model``, ``best_epoch``, ``dataset``,
``test/...`` metrics, ``seed``, ``dataset_hash``, ``simulator_version`` (what reproduces the
run, copied into the `RunRecord`), ``epoch`` (`EPOCH_KEY`, per-epoch reports), ``agentune_run_id``
(`RUN_ID_KEY`) and every key the campaign's constraints name.
"""

from __future__ import annotations

__all__ = [
    "EPOCH_KEY",
    "FINAL_KEY",
    "GIT_COMMIT_ENV",
    "RESERVED_KEY",
    "RUN_ID_KEY",
    "TRAINER_STATUS",
]

RESERVED_KEY = "agentune"
"""Config entry carrying the arm (see the module docstring); never a search-space key."""

FINAL_KEY = "agentune_final"
"""Result key a campaign trainable sets to True in the report made when training ended by
itself (False or absent in earlier reports): a finished trial without it was pruned."""

EPOCH_KEY = "epoch"
"""Result key of a per-epoch report; such results become the run's stored epoch curve."""

GIT_COMMIT_ENV = "AGENTUNE_GIT_COMMIT"
"""Environment variable naming the project's commit for a driver whose working copy has no
``.git`` (a job submitted to a cluster runs in an upload; `agentune submit` sets it)."""

RUN_ID_KEY = "agentune_run_id"
"""Optional result key: the run id to store the trial under (default: the Tune trial id)."""

TRAINER_STATUS: dict[str, str] = {
    "completed": "completed",
    "diverged": "diverged",
    "stopped": "pruned",
    "failed": "failed",
}
"""A result's ``status`` (the trainer's word) -> the run status the searcher records."""
