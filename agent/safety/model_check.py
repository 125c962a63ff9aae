"""`check_model_file`: the static check and the sandboxed smoke test on a file, as one verdict.

What `agentune check-model FILE [--class NAME]` runs. The file is read as text and never
imported in this process: the static check parses it, and only code that passes is run, in a
separate guarded process with CPU-time and memory limits (`agent.safety.smoke`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.safety.policy import DEFAULT_SMOKE_DIMS

__all__ = ["MAX_SOURCE_BYTES", "ModelCheck", "check_model_file", "check_model_source_text"]

MAX_SOURCE_BYTES = 200_000


@dataclass(frozen=True)
class ModelCheck:
    """The verdict on one model file.

    Attributes:
        accepted: both checks passed.
        reasons: every reason for a rejection (static ones, else the smoke test's).
        class_name: the class that was (or would be) built.
        num_params: parameters at the smoke test's dimensions (accepted models).
        output_shape: the smoke test's output shape (accepted models).
        dims: the smoke test's in_channels, input_length, num_classes and num_features.
        stage: "static" when the static check rejected the code (it was never run), else
            "smoke".
        uses_features: the class declares `num_features`, so the smoke test called
            `forward(x, features)` with features of shape (2, num_features); None when the
            smoke test did not get to pick a class.
    """

    accepted: bool
    reasons: tuple[str, ...]
    class_name: str | None
    num_params: int | None = None
    output_shape: tuple[int, ...] | None = None
    dims: Mapping[str, int] = field(default_factory=dict)
    stage: str = "smoke"
    uses_features: bool | None = None


def check_model_source_text(
    source: str, *, class_name: str | None = None, dims: Mapping[str, int] | None = None
) -> ModelCheck:
    """Run the static check, then (only if it passed) the sandboxed smoke test, on `source`.

    Args:
        source: the model module's text (never executed in this process).
        class_name: the class to build; default the last contract-following class.
        dims: smoke-test dimensions (`in_channels`, `input_length`, `num_classes`, optional
            `num_features`); missing keys take `DEFAULT_SMOKE_DIMS`.

    Raises:
        ValueError: a dimension that is not a positive int (`num_features`: an int >= 0).
    """
    from agent.safety.code_policy import validate_model_source
    from agent.safety.smoke import smoke_test

    smoke_dims = {**DEFAULT_SMOKE_DIMS, **(dims or {})}
    report = validate_model_source(source, class_name=class_name)
    if not report.ok or report.model_class is None:
        return ModelCheck(
            accepted=False,
            reasons=report.reasons or ("no model class found",),
            class_name=report.model_class,
            dims=smoke_dims,
            stage="static",
        )
    result = smoke_test(
        source,
        class_name=report.model_class,
        in_channels=smoke_dims["in_channels"],
        input_length=smoke_dims["input_length"],
        num_classes=smoke_dims["num_classes"],
        num_features=smoke_dims["num_features"],
    )
    return ModelCheck(
        accepted=result.accepted,
        reasons=tuple(result.reasons),
        class_name=result.class_name or report.model_class,
        num_params=result.num_params,
        output_shape=result.output_shape,
        dims=smoke_dims,
        uses_features=result.uses_features,
    )


def check_model_file(
    path: str | Path, *, class_name: str | None = None, dims: Mapping[str, int] | None = None
) -> ModelCheck:
    """Check the model code in `path` (see the module docstring and
    `check_model_source_text` for `class_name` and `dims`).

    Raises:
        FileNotFoundError: `path` does not exist.
        IsADirectoryError: `path` is a folder.
        OSError: it cannot be read.
        ValueError: a bad dimension in `dims`.
    """
    file = Path(path)
    if file.is_dir():
        raise IsADirectoryError(f"{file} is a folder, not a Python file")
    data = file.read_bytes()
    if len(data) > MAX_SOURCE_BYTES:
        return ModelCheck(
            accepted=False,
            reasons=(f"the file is {len(data):,} bytes; model code is limited to "
                     f"{MAX_SOURCE_BYTES:,} bytes",),
            class_name=None,
            stage="static",
        )  # fmt: skip
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return ModelCheck(
            accepted=False,
            reasons=(f"the file is not UTF-8 text ({e.reason} at byte {e.start})",),
            class_name=None,
            stage="static",
        )
    return check_model_source_text(source, class_name=class_name, dims=dims)
