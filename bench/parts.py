"""The suite's registry: every part, in the order `python -m bench` runs them.

Issue 12's comparisons: 1 `search_quality` (and `workload_quality`, the same on a real
training task), 2 `escalation`, 3 `overhead`, 4 `platform` (the earlier issues' figures), 5
`gpu` (registered, not implemented yet: needs a GPU machine). `escalation` (about an hour
on 2 CPUs in quick mode) and `tpe_settings` (the arm-sampler study behind the campaign goals'
``sampler: gp`` default) run in full mode or when named with ``--only``.
"""

from __future__ import annotations

from bench.suite import Part

PARTS: tuple[Part, ...] = (
    Part(
        "search_quality",
        "Search quality on a fixed space: AgentSearcher vs OptunaSearch TPE/GP, random, "
        "default config",
        "bench.search_quality:run",
    ),
    Part(
        "workload_quality",
        "Search quality on a real training task (cnn1d on the quick ECG set): AgentSearcher "
        "vs OptunaSearch TPE/GP, random, default config",
        "bench.workload_quality:run",
    ),
    Part(
        "escalation",
        "The value of escalation: a full campaign vs TPE alone vs random on the workload",
        "bench.escalation:run",
        # 24 campaigns of 32-36 real trainings each: about an hour on 2 CPUs, more than the
        # whole quick suite may take, so --quick runs it only when named (--only escalation)
        in_quick=False,
    ),
    Part(
        "overhead",
        "Overhead: suggest + on_trial_complete latency, and Tune wall time of trivial trials",
        "bench.overhead:run",
    ),
    Part(
        "platform",
        "The platform's own figures: feedback store, signals, dashboard, safety, trainer, "
        "dataset cache, validation/test agreement",
        "bench.platform_figures:run",
    ),
    Part(
        "tpe_settings",
        "Arm samplers: TPE and GP settings at campaign budgets (Optuna ask/tell)",
        "bench.tpe_settings:run",
        in_quick=False,
    ),
    Part(
        "gpu",
        "On a GPU: trainer throughput and fractional-GPU packing",
        None,
        note="comparison 5 of issue 12 comes in a later change (needs a GPU machine)",
    ),
)
