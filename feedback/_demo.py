"""A realistic, generated campaign history (no training, no API key) for demos and tests."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ._dashboard import _write_text, render_dashboard
from ._records import Event, RunRecord
from ._store import FeedbackStore
from .signals import SignalThresholds

__all__ = ["DEMO_THRESHOLDS", "populate_demo_history", "write_demo_dashboard"]

METRIC = "val/macro_f1"
MAX_EPOCHS = 20
DEMO_THRESHOLDS = SignalThresholds(
    window=8, min_delta=0.003, patience=2, target=0.9, budget=150, hopeless_after=60
)

_SUMMARY_T2 = (
    "Tier-0 tuning of cnn1d has plateaued at macro-F1 ≈ {best:.3f} for {n} runs although the "
    "learning rate already spans {lr_lo:.0e}–{lr_hi:.0e}. Errors concentrate on the S "
    "(supraventricular) class: its recall is ~0.55 while N and V exceed 0.9.\n"
    "\n"
    "Proposals (tier 2, config only):\n"
    "1. resnet1d with width 64 / depth 4: residual blocks keep gradients healthy at depth and"
    " widen the receptive field over the P wave.\n"
    "2. cnn1d with squeeze-and-excitation, dropout 0.2: cheap channel attention.\n"
    "3. inception1d (kernels 9/19/39): multi-scale context without more depth.\n"
    "4. A resnet1d with width 512: probably infeasible (parameter cap), listed for "
    "completeness."
)

_SUMMARY_T3 = (
    "Tier-2 configs lifted the best macro-F1 to {best:.3f} (resnet1d-w64) and then stalled "
    "for {n} runs. Config changes no longer help: the remaining errors are S beats whose RR-"
    "interval context lies outside the 2.5 s window the stock models see.\n"
    "\n"
    "Tier 3 (generated code, reviewed before running):\n"
    "- gen_tcn_attention: dilated temporal conv stack + a single attention pooling head, so "
    "every prediction can weigh distant beats (~0.4M params).\n"
    "- gen_rr_fusion: explicit RR-interval features fused with a small CNN (~0.2M params).\n"
    "Both follow the model constructor contract (in_channels, input_length, num_classes)."
)


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def _curve(
    rng: np.random.Generator,
    best: float,
    best_epoch: int,
    epochs: int,
    diverged: bool,
) -> list[dict[str, float]]:
    out = []
    start = max(0.25, best - 0.35)
    for e in range(1, epochs + 1):
        progress = 1 - math.exp(-3.0 * e / max(best_epoch, 1))
        f1 = start + (best - start) * progress / (1 - math.exp(-3.0))
        if e > best_epoch:
            f1 = best - 0.004 * (e - best_epoch) + rng.normal(0, 0.003)
        f1 = min(f1 + rng.normal(0, 0.004), best) if e != best_epoch else best
        train_loss = 1.1 * math.exp(-e / 6) + 0.12 + rng.normal(0, 0.01)
        val_loss = 1.05 * math.exp(-e / 5) + 0.25 + 0.012 * max(0, e - best_epoch)
        row = {
            "epoch": float(e),
            "train/loss": train_loss,
            "val/loss": val_loss + rng.normal(0, 0.01),
            METRIC: f1,
            "val/accuracy": min(0.99, f1 + 0.12),
        }
        if diverged and e == epochs:
            row.update({"train/loss": float("nan"), "val/loss": float("nan")})
            row.pop(METRIC)
        out.append(row)
    return out


def populate_demo_history(
    store: FeedbackStore, *, campaign: str = "demo-ecg-aami3", seed: int = 0
) -> None:
    """Append a generated ~120-run campaign to ``store`` (deterministic for a seed).

    The story: tier-0 Optuna tuning of a 1D CNN improves, then stagnates; the policy
    escalates to tier 2 (agent-proposed configs, with approvals: approved, modified,
    rejected; one infeasible) which improves further and stagnates again; then to tier 3
    (generated model code) which improves again. Along the way some runs fail, diverge
    (high learning rates) or are pruned by the scheduler; the agent writes summaries and
    one agent call fails. Every trained run has an epoch curve.
    """
    rng = np.random.default_rng(seed)
    clock = _Clock(datetime(2025, 3, 3, 8, 30, tzinfo=UTC))
    counter = iter(range(1, 10_000))
    base: dict[str, Any] = {"campaign": campaign, "metric": METRIC, "mode": "max"}
    store.append_event(
        Event(
            campaign=campaign,
            kind="campaign",
            time=clock.now,
            message="ECG beat classification (AAMI 3 classes), maximise validation macro-F1",
            data={"thresholds": DEMO_THRESHOLDS.to_dict(), "metric": METRIC, "mode": "max"},
        )
    )

    def run(
        *,
        arm: str,
        tier: int,
        origin: str,
        model: str,
        params: dict[str, Any],
        quality: float,
        num_params: int,
        status: str = "completed",
        error: str | None = None,
        approval: str | None = None,
        tokens: tuple[int, int] = (0, 0),
        rationale: str | None = None,
    ) -> RunRecord:
        i = next(counter)
        run_id = f"r{i:04d}"
        trained = status not in ("rejected", "infeasible")
        epochs = 0
        best_epoch = None
        value = None
        if trained:
            epochs = MAX_EPOCHS
            if status == "pruned":
                epochs = int(rng.integers(3, 8))
            elif status == "diverged":
                epochs = int(rng.integers(2, 6))
            elif status == "failed":
                epochs = int(rng.integers(0, 3))
            best_epoch = max(1, min(epochs, int(rng.integers(9, 18)))) if epochs else None
            if status in ("completed", "pruned", "diverged") and epochs:
                value = float(np.clip(quality - (0.05 if status == "pruned" else 0), 0.2, 0.99))
                if status == "diverged":
                    value = 0.33
        duration = (
            (epochs * float(rng.uniform(9, 14)) + float(rng.uniform(5, 15))) if trained else 0
        )
        started = clock.advance(float(rng.uniform(2, 20)))
        finished = clock.advance(duration)
        overrides = [
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
        ]
        record = RunRecord(
            run_id=run_id,
            trial_id=f"trial_{i:05d}" if trained else None,
            arm=arm,
            tier=tier,
            origin=origin,
            overrides=overrides,
            params=params,
            status=status,
            value=value if status == "completed" or value is not None else None,
            best_epoch=best_epoch,
            epochs_run=epochs,
            duration_s=duration if trained else None,
            started_at=started if trained else None,
            finished_at=finished if trained else None,
            error=error,
            model=model,
            num_params=num_params,
            approval=approval,
            tokens_in=tokens[0],
            tokens_out=tokens[1],
            dataset="mitbih_synth_aami3",
            test_metrics={"test/macro_f1": value - 0.01} if value and status == "completed" else {},
            rationale=rationale,
            **base,
        )
        if trained and epochs and best_epoch and value is not None:
            store.append_curve(
                run_id,
                _curve(rng, value, best_epoch, epochs, status == "diverged"),
                campaign=campaign,
            )
        store.append(record)
        return record

    def event(kind: str, message: str = "", **kw: Any) -> None:
        store.append_event(
            Event(campaign=campaign, kind=kind, message=message, time=clock.advance(30), **kw)
        )

    # --- tier 0: Optuna tunes the baseline CNN: fast gains, then a plateau ---------------
    for k in range(46):
        lr = float(10 ** rng.uniform(-4.3, -1.8))
        width = int(rng.choice([32, 64, 128]))
        depth = int(rng.integers(2, 6))
        params: dict[str, Any] = {
            "trainer.lr": lr,
            "model.width": width,
            "model.depth": depth,
            "model.dropout": round(float(rng.uniform(0, 0.5)), 2),
            "trainer.batch_size": int(rng.choice([64, 128, 256])),
        }
        ceiling = 0.786 - 0.16 * math.exp(-k / 7)
        lr_penalty = 0.05 * (math.log10(lr) + 3.0) ** 2
        quality = ceiling - lr_penalty * float(rng.uniform(0.3, 1.0)) - float(rng.exponential(0.01))
        status, error = "completed", None
        if lr > 8e-3 and rng.random() < 0.7:
            status, error = "diverged", "loss became NaN at epoch 4 (lr too high?)"
        elif k in (9, 31):
            status = "pruned"
        elif k == 22:
            status, error = (
                "failed",
                "RuntimeError: DataLoader worker (pid 4121) is killed by signal: Killed",
            )
        run(
            arm="cnn1d/optuna",
            tier=0,
            origin="optuna" if k else "warm_start",
            model="cnn1d",
            params=params,
            quality=quality,
            num_params=int(20_000 * width * depth / 64),
            status=status,
            error=error,
        )
    event(
        "recommendation",
        "change_model: stagnant for 12 completed runs; the learning rate was already varied",
        data={"action": "change_model"},
    )
    event("escalation", "stagnation in tier 0 → generated configs", tier=2)
    event(
        "agent_summary",
        _SUMMARY_T2.format(best=0.786, n=12, lr_lo=5e-5, lr_hi=1.6e-2),
        tier=2,
        data={"tokens_in": 14_212, "tokens_out": 1_380},
    )

    # --- tier 2: agent-proposed configs (with approvals), each then tuned -----------------
    proposals = [
        ("resnet1d-w64", "resnet1d", "approved", 0.834, 310_000, None),
        ("cnn1d-se", "cnn1d_se", "modified", 0.806, 95_000, None),
        ("inception1d", "inception1d", "approved", 0.812, 240_000, None),
        ("resnet1d-w512", "resnet1d", "approved", 0.0, 48_000_000, "infeasible"),
        ("cnn1d-huge-lr", "cnn1d", "rejected", 0.0, 80_000, "rejected"),
    ]
    for arm, model, decision, top, nparams, special in proposals:
        message = {
            "approved": f"proposal {arm} (tier 2 config)",
            "modified": f"proposal {arm}: the reviewer lowered dropout 0.3 → 0.2",
            "rejected": f"proposal {arm}: lr 0.3 is outside the allowed range",
        }[decision]
        event("approval", message, arm=arm, tier=2, data={"decision": decision})
        params = {
            "model": model,
            "trainer.lr": 1e-3,
            "model.width": 64,
            "model.depth": 4,
        }
        if special == "rejected":
            run(
                arm=arm,
                tier=2,
                origin="agent",
                model=model,
                params=params,
                quality=0,
                num_params=nparams,
                status="rejected",
                approval="rejected",
                tokens=(3_100, 420),
                rationale="very high lr with warm restarts",
            )
            continue
        if special == "infeasible":
            run(
                arm=arm,
                tier=2,
                origin="agent",
                model=model,
                params={**params, "model.width": 512},
                quality=0,
                num_params=nparams,
                status="infeasible",
                approval="approved",
                error="48.0M parameters exceed the campaign cap of 5M",
                tokens=(3_050, 390),
            )
            continue
        run(
            arm=arm,
            tier=2,
            origin="agent",
            model=model,
            params=params,
            quality=top - 0.02,
            num_params=nparams,
            approval=decision,
            tokens=(3_400, 450),
            rationale=f"proposal {arm}",
        )
        for k in range(9 if arm == "resnet1d-w64" else 5):
            lr = float(10 ** rng.uniform(-3.6, -2.4))
            tuned = {
                **params,
                "trainer.lr": lr,
                "model.dropout": round(float(rng.uniform(0, 0.4)), 2),
            }
            q = top - 0.035 * math.exp(-k / 3) - float(rng.exponential(0.008))
            status = "pruned" if k == 3 else "completed"
            run(
                arm=arm,
                tier=2,
                origin="optuna",
                model=model,
                params=tuned,
                quality=q,
                num_params=nparams,
                status=status,
            )
    event(
        "agent_failure", "LLM call failed: response was not valid JSON (retried, succeeded)", tier=2
    )
    for _ in range(10):  # tier-2 plateau: more tuning of the winning arm
        lr = float(10 ** rng.uniform(-3.5, -2.5))
        params = {
            "model": "resnet1d",
            "trainer.lr": lr,
            "model.width": 64,
            "model.depth": int(rng.integers(3, 6)),
            "model.dropout": round(float(rng.uniform(0, 0.4)), 2),
        }
        run(
            arm="resnet1d-w64",
            tier=2,
            origin="optuna",
            model="resnet1d",
            params=params,
            quality=0.834 - float(rng.exponential(0.012)),
            num_params=310_000,
        )
    event("escalation", "stagnation in tier 2 → generated model code", tier=3)
    event(
        "agent_summary",
        _SUMMARY_T3.format(best=0.834, n=10),
        tier=3,
        data={"tokens_in": 22_804, "tokens_out": 4_950},
    )

    # --- tier 3: generated model code --------------------------------------------------
    generated = [
        ("gen_tcn_attention", "approved", 0.872, 410_000, None),
        ("gen_rr_fusion", "modified", 0.858, 205_000, None),
        ("gen_wavelet_cnn", "approved", 0.0, 150_000, "failed"),
    ]
    for model, decision, top, nparams, special in generated:
        arm = f"{model}"
        event(
            "approval",
            f"generated model {model}, after code review",
            arm=arm,
            tier=3,
            data={"decision": decision},
        )
        params = {
            "model": f"generated_models.{model}",
            "trainer.lr": 1e-3,
            "model.width": 64,
        }
        if special == "failed":
            run(
                arm=arm,
                tier=3,
                origin="agent",
                model=model,
                params=params,
                quality=0,
                num_params=nparams,
                status="failed",
                approval=decision,
                tokens=(6_200, 2_100),
                error="RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x928 and 960x3)",
            )
            continue
        run(
            arm=arm,
            tier=3,
            origin="agent",
            model=model,
            params=params,
            quality=top - 0.025,
            num_params=nparams,
            approval=decision,
            tokens=(6_800, 2_600),
            rationale=f"generated {model}",
        )
        for k in range(8 if model == "gen_tcn_attention" else 5):
            lr = float(10 ** rng.uniform(-3.5, -2.6))
            tuned = {
                **params,
                "trainer.lr": lr,
                "model.dropout": round(float(rng.uniform(0, 0.3)), 2),
            }
            q = top - 0.03 * math.exp(-k / 2.5) - float(rng.exponential(0.006))
            status = "diverged" if k == 4 else "completed"
            run(
                arm=arm,
                tier=3,
                origin="optuna",
                model=model,
                params=tuned,
                quality=q,
                num_params=nparams,
                status=status,
                error="loss became NaN at epoch 3" if status == "diverged" else None,
            )
    event(
        "agent_summary",
        "gen_tcn_attention reached macro-F1 0.87 (S-class recall 0.71, up from 0.55). "
        "Next: tune its attention width and lr schedule (tier 0) before proposing more code.",
        tier=3,
    )


def write_demo_dashboard(out: str | Path, seed: int = 0) -> Path:
    """Write a dashboard drawn from a generated demo history (no training, no API key).

    What ``agentune dashboard --demo OUT.html`` runs. The history lives in a temporary
    store that is removed afterwards.

    Returns:
        ``out``.
    """
    with tempfile.TemporaryDirectory(prefix="agentune-demo-") as tmp:
        store = FeedbackStore(Path(tmp) / "history")
        populate_demo_history(store, seed=seed)
        page = render_dashboard(store, source=f"generated demo history (seed {seed})")
    return _write_text(Path(out), page)
