"""Generated model code on a worker: checked again, then imported, built and trained guarded.

A tier-3 trial carries its model's source and config in the suggested config (a worker may
never have seen the driver's files), and the config could have been altered on the way. So
the worker trusts nothing it received:

1. `check_generated_trial(name, source, config)`: the name is a plain model name, the source
   passes the static check (`agent.safety.code_policy`) again, and the config's `_target_` is
   `generated_models.<name>.<Class>` for a model class the source defines, with scalar
   hyperparameters only.
2. `guarded_generated_model(name, source, write_roots)`: the allowed libraries the source
   imports are loaded first (so their own start-up file activity is not the model's), then
   the runtime guard (`agent.safety.guard`) is armed for this thread, the module is loaded
   with restricted builtins (`agent.safety.sandbox`), and the caller builds and trains it
   inside the block, where writes are allowed only under `write_roots` (the trial's run
   directory). A refusal recorded while the block ran fails the trial even when the model's
   code caught the exception.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.safety.errors import UnsafeModelError
from agent.safety.policy import GENERATED_PACKAGE, NAME_PATTERN

if TYPE_CHECKING:
    from agent.safety.code_policy import CodeReport
    from agent.safety.guard import RuntimeGuard

__all__ = [
    "check_generated_trial",
    "guarded_generated_model",
    "model_target",
    "model_targets",
]

logger = logging.getLogger(__name__)

# Imported by the trainer on first use (building an optimizer imports torch._dynamo, which
# creates a cache folder under the temporary directory): loaded before the guard is armed.
_TRAINER_IMPORTS = ("torch._dynamo", "torch.optim", "torch.optim.lr_scheduler")


def model_target(name: str, class_name: str) -> str:
    """The `_target_` of class `class_name` of generated model `name`."""
    return f"{GENERATED_PACKAGE}.{name}.{class_name}"


def model_targets(name: str, report: CodeReport) -> set[str]:
    """The targets a generated model's trials may carry: one per model class its source
    defines (`report` is the static check of that source)."""
    return {model_target(name, c) for c in report.classes}


def check_generated_trial(
    name: object, source: object, config: Mapping[str, Any] | None = None
) -> CodeReport:
    """Check what a tier-3 trial brought with it (see the module docstring, step 1).

    Args:
        name: the generated model's name (`model=<name>` in the arm's overrides).
        source: its module source.
        config: its registered config (`_target_` plus hyperparameters), when it travelled.

    Returns:
        The static check's report (its `imports` are pre-imported before arming the guard).

    Raises:
        UnsafeModelError: naming what does not hold.
    """
    from agent.safety.code_policy import validate_model_source

    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UnsafeModelError(
            f"a generated model's trial needs model=<name> with a plain name, got {name!r}"
        )
    if not isinstance(source, str) or not source.strip():
        raise UnsafeModelError(f"generated model {name!r}: the trial carries no model source")
    report = validate_model_source(source)
    if not report.ok:
        raise UnsafeModelError(
            f"generated model {name!r}: the source that travelled with the trial fails the "
            f"static check (altered on the way?): " + "; ".join(report.reasons),
            report.reasons,
        )
    if config is not None:
        _check_config(name, config, report)
    return report


def _check_config(name: str, config: Mapping[str, Any], report: CodeReport) -> None:
    target = config.get("_target_")
    allowed = model_targets(name, report)
    if target not in allowed:
        raise UnsafeModelError(
            f"generated model {name!r}: the config's _target_ {target!r} is not one of the "
            f"classes its source defines ({sorted(allowed)}); the config was altered"
        )
    for key, value in config.items():
        if key == "_target_":
            continue
        scalar = isinstance(value, bool | int | str) or (
            isinstance(value, float) and math.isfinite(value)
        )
        if not (isinstance(key, str) and key.isidentifier() and not key.startswith("_")):
            raise UnsafeModelError(f"generated model {name!r}: config key {key!r} is not allowed")
        if not scalar or (isinstance(value, str) and "${" in value):
            raise UnsafeModelError(
                f"generated model {name!r}: config value {key}={value!r} is not a plain scalar"
            )


@contextlib.contextmanager
def guarded_generated_model(
    name: str,
    source: str,
    *,
    write_roots: Sequence[str | Path],
    report: CodeReport | None = None,
) -> Iterator[RuntimeGuard]:
    """Load generated model `name` and keep this thread under the runtime guard in the block.

    Args:
        name: the model name; the module becomes `generated_models.<name>`.
        source: the module source (checked again unless `report` is given).
        write_roots: folders this thread may write into while guarded (the run directory).
        report: the result of `check_generated_trial` for this source, if already run.

    Yields:
        The runtime guard (`guard.suspended()` lets trusted code, e.g. a checkpoint report,
        run unguarded between epochs).

    Raises:
        UnsafeModelError: the source fails the checks, or the guard refused something while
            the block ran (even if the model's code caught the refusal).
    """
    from agent.safety.guard import install_guard
    from agent.safety.sandbox import load_generated_module, preimport

    if report is None:
        report = check_generated_trial(name, source)
    for module in _TRAINER_IMPORTS:  # trusted code's lazy imports, before anything is refused
        importlib.import_module(module)
    preimport(report.imports)
    guard = install_guard()
    before = len(guard.violations())
    module_name = f"{GENERATED_PACKAGE}.{name}"
    with guard.armed(write_roots=write_roots):
        load_generated_module(module_name, source)
        yield guard
    refused = guard.violations()[before:]
    if refused:
        raise UnsafeModelError(
            f"generated model {name!r} was stopped by the runtime guard: " + "; ".join(refused),
            refused,
        )
