"""Hydra entry point: train one model from the command line.

    python -m biosignals.train experiment=mitbih_aami3_quick trainer.epochs=2
    agentune train experiment=mitbih_aami3 model=resnet1d trainer.lr=1e-3

Each run writes into a fresh directory (`runs/<timestamp>` under the current directory, or
`run_dir=...`) and prints where, with the best metric. A bad override (`trainer.lrr=1`,
`model=nope`) prints Hydra's error and exits non-zero; so does a failed or diverged run.
Code that wants the same thing without a command line calls `run(cfg)` with a config from
`compose` (see `config_dir`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

from biosignals.trainer import MODEL_FILE, TrainSummary, train

CONFIG_DIR_ENV = "AGENTUNE_CONFIG_DIR"
COMPOSE_LOCK = threading.RLock()
"""Held while Hydra's global state is in use (see `compose_config`)."""


def config_dir() -> Path:
    """Absolute path of the Hydra config directory (env AGENTUNE_CONFIG_DIR overrides).

    For `hydra.initialize_config_dir(config_dir=str(config_dir()), version_base="1.3")`, or
    use `compose_config`.
    `main` reads the same directory, fixed when this module is imported.
    """
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return (Path(__file__).resolve().parent.parent / "configs").resolve()


def compose_config(
    overrides: Sequence[str] = (), config_directory: str | Path | None = None
) -> DictConfig:
    """Compose `config.yaml` with Hydra overrides outside a Hydra app.

    For code that needs the config without a command line: Ray trials, the campaign driver,
    the CLI's override check, benchmarks. Hydra's global state is cleared before and after,
    under a process-wide lock: the campaign driver composes on the searcher's background
    thread (proposal checks) while other code may compose on the main thread.

    Args:
        overrides: Hydra override strings (`experiment=mitbih_aami3_quick`, `trainer.lr=1e-3`).
        config_directory: the config folder; default `config_dir()`.

    Raises:
        hydra.errors.HydraException, omegaconf.errors.OmegaConfBaseException: the overrides do
            not compose (unknown key, missing group option), with Hydra's message.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    directory = str(config_directory or config_dir())
    with COMPOSE_LOCK:
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=directory, version_base="1.3"):
                return compose("config", overrides=list(overrides))
        finally:
            GlobalHydra.instance().clear()


def _per_class_key(key: str) -> bool:
    return "/se_" in key or "/ppv_" in key


def format_summary(summary: TrainSummary) -> str:
    """Human-readable lines: where the artifacts are, the status and the best metric."""
    lines = [f"run_dir: {summary.run_dir}"]
    artifacts = ["config.yaml", "metrics.jsonl", "summary.json"]
    if (Path(summary.run_dir) / MODEL_FILE).exists():
        artifacts.append(MODEL_FILE)
    lines.append(f"artifacts: {', '.join(artifacts)}")
    lines.append(
        f"model: {summary.model} ({summary.num_params:,} params)  dataset: {summary.dataset}  "
        f"status: {summary.status}  epochs: {summary.epochs_run}  time: {summary.duration_s:.1f}s"
    )
    if summary.best_value is not None:
        lines.append(
            f"best {summary.metric} = {summary.best_value:.4f} (epoch {summary.best_epoch}, "
            f"mode {summary.mode})"
        )
    else:
        lines.append(f"best {summary.metric}: none (no epoch completed)")
    if summary.test:
        overall = {k: v for k, v in summary.test.items() if not _per_class_key(k)}
        lines.append("test: " + "  ".join(f"{k}={v:.4f}" for k, v in overall.items()))
        classes = [k.split("/se_", 1)[1] for k in summary.test if "/se_" in k]
        if classes:
            lines.append(
                "test per class (Se/PPV): "
                + "  ".join(
                    f"{c} {summary.test[f'test/se_{c}']:.3f}/"
                    f"{summary.test.get(f'test/ppv_{c}', float('nan')):.3f}"
                    for c in classes
                )
            )
    if summary.error:
        lines.append(f"error: {summary.error}")
    return "\n".join(lines)


def run(cfg: DictConfig) -> TrainSummary:
    """Train with `cfg`, print the outcome (CLI output) and return the summary."""
    summary = train(cfg)
    print(format_summary(summary))
    return summary


# An absolute path: a relative one ("../configs") only works when this file is run as
# __main__; imported (as `agentune train` does), Hydra would look for a `configs` package.
@hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """`python -m biosignals.train [overrides]`; exits 1 unless the run completed or stopped."""
    summary = run(cfg)
    if summary.status not in ("completed", "stopped"):
        raise SystemExit(1)


def main_from_argv(argv: Sequence[str]) -> int:
    """Run `main` with `argv` as the Hydra command line (for `agentune train ...`).

    Returns:
        The exit status: 0 on success, non-zero on a config error or a failed/diverged run.
    """
    saved = sys.argv
    sys.argv = [saved[0] if saved else "biosignals.train", *argv]
    try:
        main()
    except SystemExit as e:
        if e.code is None:
            return 0
        return e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    main()
