"""`smoke_test`: build and run agent-written model source once, in a sandboxed child process.

The parent never imports or executes the source. It starts `python -m
agent.safety._smoke_child` in a fresh empty directory with a minimal environment (no API keys:
only PATH, locale, HOME and TMPDIR pointing at that directory, one BLAS/OpenMP thread, no
CUDA device, PYTHONPATH for the project), sends the request as JSON on stdin and reads one
JSON answer line from the child's stdout. The child limits itself (CPU seconds, address
space, no file growth, no core dumps, 64 file descriptors), enters new network and mount
namespaces with every mount read-only where the kernel lets it, imports the allowed
libraries, arms the runtime guard for the whole process (`agent.safety.guard`), then loads
the module with restricted builtins, builds the model with the contract's keyword arguments
and runs forward (train), backward and forward (eval, no_grad) on `torch.randn(2, C, T)`.
A class whose constructor declares the optional `num_features` is built with it too and
called as `forward(x, features)` with `features = torch.randn(2, num_features)`, as the
trainer calls it; any other class gets `forward(x)` only.

A model is accepted when every step passed, the output is a finite float tensor of shape
exactly (2, num_classes), some parameter got a finite gradient, the guard refused nothing
(even refusals the model caught) and the model rebound no library name (`torch.isfinite = ...`
would fool these checks and break other trials sharing a worker). Anything else, including a
child that died, timed out or answered garbage, rejects it, with one reason per line.

Measured on the project's 2-core machine (torch 2.13 CPU, warm file cache): the offline
template (`agent.models.examples.generated_model_source(16, 3, 7)`) takes 0.85 s end to end (median
of 3), mostly importing torch; the child needs 0.6-0.75 GiB of address space (RLIMIT_AS) for
the template, an einops transformer and a scipy filter bank, so the 4 GiB default leaves
room for a model's own tensors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from agent.safety.policy import (
    CONTRACT_KWARGS,
    DEFAULT_SMOKE_DIMS,
    FEATURES_KWARG,
    smoke_dim_problem,
)
from agent.safety.sandbox import check_module_name

logger = logging.getLogger(__name__)

__all__ = ["SmokeLimits", "SmokeResult", "smoke_test"]

_PROJECT_ROOT = Path(__file__).resolve().parents[2]  # holds the `agent` package
_CHILD_MODULE = "agent.safety._smoke_child"
_POLL_S = 0.02


@dataclass(frozen=True)
class SmokeLimits:
    """Resource limits of one smoke test.

    Attributes:
        cpu_seconds: RLIMIT_CPU of the child (SIGXCPU, then SIGKILL 2 s later).
        memory_bytes: RLIMIT_AS of the child; importing torch, numpy, scipy and einops and
            testing a small model needs 0.6-0.75 GiB of address space here.
        wall_seconds: the parent kills the child's process group after this.
        max_output_bytes: what the parent keeps of each of stdout and stderr; a model that
            prints more is rejected.
        kernel_isolation: enter network and read-only mount namespaces where possible (tests
            switch it off to check the runtime guard alone).
    """

    cpu_seconds: int = 60
    memory_bytes: int = 4 * 2**30
    wall_seconds: float = 120.0
    max_output_bytes: int = 1_000_000
    kernel_isolation: bool = True


@dataclass(frozen=True)
class SmokeResult:
    """The verdict of `smoke_test`.

    Attributes:
        accepted: every check passed and the runtime guard refused nothing.
        reasons: why not, one line each (guard refusals, exceptions with the generated line,
            time-outs, signals, bad output); empty when accepted.
        class_name: the model class that was tested, if one was found.
        num_params: its number of parameters, if it got that far.
        output_shape: the shape of its training-mode output, if it returned a tensor.
        duration_s: wall-clock seconds of the whole test.
        isolation: what kernel isolation the child got ("off", "none (...)", "network and
            filesystem (read-only)").
        uses_features: whether the class declares `num_features` and so was called as
            `forward(x, features)`; None when no class was picked.
    """

    accepted: bool
    reasons: tuple[str, ...]
    class_name: str | None
    num_params: int | None
    output_shape: tuple[int, ...] | None
    duration_s: float
    isolation: str = ""
    uses_features: bool | None = None


def smoke_test(
    source: str,
    *,
    class_name: str | None = None,
    kwargs: Mapping[str, bool | int | float | str] | None = None,
    in_channels: int = DEFAULT_SMOKE_DIMS["in_channels"],
    input_length: int = DEFAULT_SMOKE_DIMS["input_length"],
    num_classes: int = DEFAULT_SMOKE_DIMS["num_classes"],
    num_features: int = DEFAULT_SMOKE_DIMS["num_features"],
    module_name: str = "generated_models.smoke_candidate",
    limits: SmokeLimits | None = None,
) -> SmokeResult:
    """Build and run `source`'s model once in a sandboxed child (see the module docstring).

    Args:
        source: the generated module's Python source (never executed in this process).
        class_name: the model class; default: the last nn.Module subclass the module defines
            whose constructor takes the contract's keyword arguments.
        kwargs: scalar hyperparameters passed besides the contract's arguments.
        in_channels, input_length, num_classes: the dimensions to test with.
        num_features: side features per window (>= 0), passed (with a `(2, num_features)`
            features tensor in forward) only to a class whose constructor declares it.
        module_name: `generated_models.<identifier>` to load the source as.
        limits: resource limits; default `SmokeLimits()`.

    Raises:
        UnsafeModelError: `module_name` is not `generated_models.<identifier>`.
        TypeError, ValueError: a hyperparameter that is not a scalar or shadows a contract
            argument, or a dimension that is not a positive int (`num_features`: an int >= 0)
            (caller errors, not model errors).
    """
    limits = limits or SmokeLimits()
    check_module_name(module_name)
    dims = {"in_channels": in_channels, "input_length": input_length, "num_classes": num_classes}
    dims[FEATURES_KWARG] = num_features
    nonce = secrets.token_hex(16)
    request = {
        "source": source,
        "module_name": module_name,
        "class_name": class_name,
        "kwargs": _checked_kwargs(kwargs or {}),
        "dims": _checked_dims(dims),
        "limits": asdict(limits),
        "isolate": limits.kernel_isolation,
        "nonce": nonce,
    }
    start = time.monotonic()
    with tempfile.TemporaryDirectory(
        prefix="agentune-smoke-", ignore_cleanup_errors=True
    ) as workdir:
        run = _run_child(request, workdir, limits)
    result = _verdict(run, nonce, limits, time.monotonic() - start)
    logger.info(
        "smoke test of %s: %s in %.1f s%s",
        module_name,
        "accepted" if result.accepted else "rejected",
        result.duration_s,
        "" if result.accepted else ": " + "; ".join(result.reasons),
    )
    return result


def _checked_kwargs(kwargs: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    reserved = (*CONTRACT_KWARGS, FEATURES_KWARG)
    for key, value in kwargs.items():
        if not (isinstance(key, str) and key.isidentifier()) or key in reserved:
            raise ValueError(
                f"smoke-test kwargs are hyperparameter names other than "
                f"{', '.join(reserved)}, got {key!r}"
            )
        if not isinstance(value, (bool, int, float, str)):
            raise TypeError(
                f"smoke-test hyperparameters are scalars (bool, int, float, str), got "
                f"{key}={value!r}"
            )
    return dict(kwargs)


def _checked_dims(dims: dict[str, int]) -> dict[str, int]:
    for key, value in dims.items():
        problem = smoke_dim_problem(key, value)
        if problem is not None:
            raise ValueError(f"{key} must be {problem}, got {value!r}")
    return dims


def _child_env(workdir: str) -> dict[str, str]:
    """A minimal environment: nothing of the parent's besides PATH (no API keys)."""
    paths = [str(_PROJECT_ROOT)]
    paths += [p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p)]
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,  # torch._dynamo's import-time cache dir lands here, not in /tmp
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


@dataclass
class _ChildRun:
    returncode: int
    stdout: bytes
    stderr: bytes
    stdout_overflow: bool
    stderr_overflow: bool
    timed_out: bool


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping the first (or last) `limit` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int, *, keep_tail: bool) -> None:
        super().__init__(daemon=True)
        self.pipe, self.limit, self.keep_tail = pipe, limit, keep_tail
        self.chunks: deque[bytes] = deque()
        self.kept = 0
        self.overflow = False

    def run(self) -> None:
        with self.pipe:
            while chunk := self.pipe.read1(65536):  # type: ignore[attr-defined]
                self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        if self.kept + len(chunk) > self.limit:
            self.overflow = True
            if not self.keep_tail:
                chunk = chunk[: self.limit - self.kept]
        self.chunks.append(chunk)
        self.kept += len(chunk)
        while self.keep_tail and self.kept > self.limit:
            excess = self.kept - self.limit
            head = self.chunks.popleft()
            if len(head) > excess:
                self.chunks.appendleft(head[excess:])
            self.kept -= min(len(head), excess)

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _run_child(request: Mapping[str, Any], workdir: str, limits: SmokeLimits) -> _ChildRun:
    """Start the child, feed it the request, drain its output, enforce the wall clock."""
    import json

    proc = subprocess.Popen(
        [sys.executable, "-m", _CHILD_MODULE],
        cwd=workdir,
        env=_child_env(workdir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # one process group to kill, whatever the child started
        close_fds=True,
    )
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    if stdin is None or stdout is None or stderr is None:  # Popen gives pipes when asked
        raise RuntimeError("the smoke-test child has no pipes")
    out = _Drain(stdout, limits.max_output_bytes, keep_tail=False)
    err = _Drain(stderr, limits.max_output_bytes, keep_tail=True)
    out.start()
    err.start()
    feeder = threading.Thread(target=_feed, args=(stdin, json.dumps(request)), daemon=True)
    feeder.start()
    timed_out = not _wait_unreaped(proc.pid, limits.wall_seconds)
    _kill_group(proc.pid)  # the child is not reaped yet, so its group id is still ours
    returncode = proc.wait()
    for thread in (feeder, out, err):
        thread.join(timeout=5.0)
    return _ChildRun(returncode, out.data(), err.data(), out.overflow, err.overflow, timed_out)


def _feed(pipe: IO[bytes], text: str) -> None:
    try:
        with pipe:
            pipe.write(text.encode())
    except BrokenPipeError:  # the child died before reading: its exit status says why
        pass


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for `pid` to exit without reaping it; False on time-out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            return True
        time.sleep(_POLL_S)
    return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _verdict(run: _ChildRun, nonce: str, limits: SmokeLimits, duration: float) -> SmokeResult:
    """Combine the child's answer with what the parent saw (exit status, time-out, output)."""
    answer = _parse_answer(run.stdout, nonce)
    reasons = list(answer.get("reasons", ())) if answer else []
    reasons += _exit_reasons(run, limits, answered=answer is not None)
    if run.stderr_overflow:
        reasons.append(
            f"the model printed more than {limits.max_output_bytes} bytes (models must not "
            "print in forward)"
        )
    accepted = bool(answer and answer.get("accepted") is True) and not reasons
    shape = answer.get("output_shape") if answer else None
    return SmokeResult(
        accepted=accepted,
        reasons=tuple(reasons),
        class_name=answer.get("class_name") if answer else None,
        num_params=answer.get("num_params") if answer else None,
        output_shape=tuple(shape) if shape is not None else None,
        duration_s=round(duration, 3),
        isolation=str(answer.get("isolation", "")) if answer else "",
        uses_features=answer.get("uses_features") if answer else None,
    )


def _parse_answer(stdout: bytes, nonce: str) -> dict[str, Any] | None:
    """The child's answer (its last stdout line), or None when it is missing or malformed."""
    import json

    lines = stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    fields = {"accepted": bool, "reasons": list, "nonce": str}
    if not isinstance(answer, dict) or any(
        not isinstance(answer.get(k), t) for k, t in fields.items()
    ):
        return None
    if answer["nonce"] != nonce or not all(isinstance(r, str) for r in answer["reasons"]):
        return None
    shape, params = answer.get("output_shape"), answer.get("num_params")
    if shape is not None and not (isinstance(shape, list) and all(type(n) is int for n in shape)):
        return None
    if params is not None and type(params) is not int:
        return None
    uses = answer.get("uses_features")
    if uses is not None and type(uses) is not bool:
        return None
    return answer


def _exit_reasons(run: _ChildRun, limits: SmokeLimits, *, answered: bool) -> list[str]:
    """Reasons that come from how the child ended rather than from its answer."""
    if run.timed_out:
        return [f"killed after the {limits.wall_seconds:g} s wall-clock limit"]
    code = run.returncode
    tail = _stderr_tail(run.stderr)
    if code < 0:
        return [_signal_reason(-code, limits) + tail]
    if code != 0:
        return [f"the smoke-test child exited with status {code}{tail}"]
    if not answered:
        return ["the smoke-test child gave no valid answer (did the model exit the process?)"]
    return []


def _signal_reason(signum: int, limits: SmokeLimits) -> str:
    if signum == signal.SIGXCPU:
        return f"CPU time limit of {limits.cpu_seconds} s exceeded"
    if signum == signal.SIGKILL:
        return (
            f"killed by SIGKILL (the CPU hard limit of {limits.cpu_seconds + 2} s, or the "
            "kernel's out-of-memory killer)"
        )
    if signum == signal.SIGXFSZ:
        return "tried to write a file (file size limit 0)"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    gib = limits.memory_bytes / 2**30
    return f"the smoke-test child died of {name} (memory limit of {gib:.1f} GiB?)"


def _stderr_tail(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1] if len(lines[-1]) <= 200 else lines[-1][:197] + "..."
    return f"; last output: {last}"
