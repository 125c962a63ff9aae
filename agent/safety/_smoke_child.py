"""The smoke test's child process: `python -m agent.safety._smoke_child` (see `agent.safety.smoke`).

Protocol: the parent writes one JSON request to stdin (`source`, `module_name`, `class_name`,
`kwargs`, `dims`, `limits`, `isolate`, `nonce`); the child answers with ONE JSON line on its
real stdout at the very end (`nonce`, `accepted`, `reasons`, `class_name`, `num_params`,
`output_shape`, `isolation`, `uses_features`) and exits with `os._exit(0)`, so no finaliser
or `atexit` handler of the model runs after the answer.

Order matters: rlimits first; kernel isolation while still single-threaded (user namespaces
need that); fd 1 moved to stderr so the model's prints cannot forge the answer; the allowed
libraries imported; RLIMIT_FSIZE 0 (not earlier: importing torch._dynamo writes a file);
only then the guard armed for every thread and the model loaded.

The model is built and called as the trainer does: the contract's three dimensions always,
`num_features` only when the constructor declares it (then `forward(x, features)` with
`features` of shape (2, num_features)), else `forward(x)`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any

from agent.safety.guard import GuardViolation
from agent.safety.policy import (
    CONTRACT_KWARGS,
    DEFAULT_SMOKE_DIMS,
    FEATURES_KWARG,
    is_generated_filename,
)

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_MOVE = 1, 32, 4096, 8192
_MS_REC, _MS_PRIVATE = 16384, 1 << 18
_MNT_DETACH = 2
_DEVICES = (b"null", b"zero", b"full", b"random", b"urandom")  # torch's import reads urandom
_MOUNT_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048}
_MOUNT_FLAGS["relatime"] = 1 << 21
_MAX_VIOLATION_REASONS = 20  # the reasons go to an LLM: the first refusals say enough
_MEMORY_MESSAGES = ("can't allocate memory", "not enough memory", "out of memory")


def _lower(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _set_limits(limits: Mapping[str, int]) -> None:
    """CPU seconds, address space, no core dumps, few file descriptors."""
    cpu = int(limits["cpu_seconds"])
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    cpu_hard = cpu + 2 if hard == resource.RLIM_INFINITY else min(cpu + 2, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (min(cpu, cpu_hard), cpu_hard))  # SIGXCPU, then KILL
    _lower(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    _lower(resource.RLIMIT_CORE, 0)
    _lower(resource.RLIMIT_NOFILE, 64)


def _forbid_file_growth() -> None:
    """RLIMIT_FSIZE 0, after the imports: importing torch._dynamo writes a temporary file."""
    _lower(resource.RLIMIT_FSIZE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write then fails with EFBIG, and says so


def _isolate() -> str:
    """Best effort: new network and mount namespaces, every mount read-only, /dev emptied.

    The working directory (a fresh temporary one) stays writable: importing torch._dynamo
    writes there (TMPDIR) before the guard is armed. Returns a one-line description for the
    answer. Needs Linux and either root or unprivileged user namespaces; otherwise the
    guard and the rlimits are all there is.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET) != 0:
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWNET) != 0:
            return f"none (unshare: {os.strerror(ctypes.get_errno())})"
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):  # fmt: skip
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return "network only (mounts stay shared, so they were left writable)"
    cwd = os.getcwd().encode()
    libc.mount(cwd, cwd, None, _MS_BIND, None)  # its own mount, so it can stay writable
    failed = 0
    with open("/proc/self/mountinfo", "rb") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        point = fields[4].decode("unicode_escape").encode()
        if point == cwd:
            continue
        flags = sum(_MOUNT_FLAGS.get(o, 0) for o in fields[5].decode().split(","))
        remount = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | flags
        failed += libc.mount(None, point, None, remount, None) != 0
    suffix = f", {failed} of {len(mounts)} mounts not remounted" if failed else ""
    if not _minimal_dev(libc):
        suffix += ", /dev not replaced"
    return f"network and filesystem (read-only){suffix}"


def _minimal_dev(libc: ctypes.CDLL) -> bool:
    """Replace /dev by a read-only tmpfs with only `_DEVICES` bound in.

    Device nodes stay writable on a read-only mount, and /dev may hold block devices.
    The tmpfs is staged on the (empty) working directory, then moved onto /dev.
    """
    stage = os.getcwd().encode()
    if libc.mount(b"tmpfs", stage, b"tmpfs", 0, b"size=64k,mode=755") != 0:
        return False
    for name in _DEVICES:
        node = stage + b"/" + name
        os.close(os.open(node, os.O_CREAT | os.O_WRONLY, 0o666))
        libc.mount(b"/dev/" + name, node, None, _MS_BIND, None)
    if libc.mount(stage, b"/dev", None, _MS_MOVE, None) != 0:
        libc.umount2(stage, _MNT_DETACH)
        return False
    return bool(libc.mount(None, b"/dev", None, _MS_REMOUNT | _MS_RDONLY, None) == 0)


def _redirect_stdout() -> int:
    """Point fd 1 and `sys.stdout` at stderr; return a private fd of the real stdout."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answer_fd


class _Reject(Exception):  # noqa: N818 - a verdict, not an error of the harness
    """A smoke-test check that failed; the message is the reason."""


def _where(exc: BaseException, source: str) -> str:
    """' (line N in forward: `code`)' for the innermost generated frame of the traceback."""
    lines = source.splitlines()
    for entry in reversed(traceback.extract_tb(exc.__traceback__)):
        if is_generated_filename(entry.filename) and entry.lineno:
            code = lines[entry.lineno - 1].strip() if entry.lineno <= len(lines) else ""
            return f" (line {entry.lineno} in {entry.name}: `{code[:100]}`)"
    return ""


def _describe(step: str, exc: BaseException, source: str, memory_bytes: int) -> str:
    if isinstance(exc, _Reject):
        return f"{step}: {exc}"
    if isinstance(exc, GuardViolation):  # its details are in the guard's violations
        return f"{step} was stopped by the runtime guard{_where(exc, source)}"
    try:
        message = " ".join(str(exc).split())
    except Exception:  # a model's exception whose __str__ fails
        message = "<unprintable>"
    message = message if len(message) <= 300 else message[:297] + "..."
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or any(m in message.lower() for m in _MEMORY_MESSAGES):
        limit = f"memory limit of {memory_bytes / 2**30:.1f} GiB exceeded"
        return f"{step}: {limit} ({name}{': ' + message[:120] if message else ''})"
    return f"{step} raised {name}{': ' if message else ''}{message}{_where(exc, source)}"


def _features_hint(step: str, exc: BaseException, answer: Mapping[str, Any]) -> str:
    """A hint for a forward that does not take the features its constructor opted in to."""
    if step.startswith("forward") and isinstance(exc, TypeError) and answer.get("uses_features"):
        return (
            "; the constructor declares num_features, so forward is called as "
            "forward(x, features) with features of shape (B, num_features)"
        )
    return ""


def _accepts_contract(cls: type) -> bool:
    """Whether the constructor names the contract's arguments (nn.Module's own **kwargs do not
    count: it refuses them)."""
    import inspect

    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return all(name in params and params[name].kind in kinds for name in CONTRACT_KWARGS)


def _declares_features(cls: type) -> bool:
    """Whether the constructor names `num_features` as a regular or keyword-only parameter
    (the model contract's opt-in to the side features; `**kwargs` does not count). The same
    test the trainer makes (`biosignals.models._common.takes_side_features`)."""
    import inspect

    try:
        param = inspect.signature(cls).parameters.get(FEATURES_KWARG)
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return param is not None and param.kind in kinds


def _pick_class(module: Any, class_name: str | None) -> type:
    import torch

    if class_name:
        cls = vars(module).get(class_name)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise _Reject(f"{class_name} is not an nn.Module subclass defined by the module")
        return cls
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, torch.nn.Module)
        if v.__module__ == module.__name__
    ]
    fitting = [c for c in classes if _accepts_contract(c)]
    if not fitting:
        names = ", ".join(c.__name__ for c in classes) or "none"
        raise _Reject(
            "no nn.Module subclass takes the keyword arguments "
            f"{', '.join(CONTRACT_KWARGS)} (nn.Module classes defined: {names})"
        )
    return fitting[-1]


def _check_output(out: Any, num_classes: int) -> tuple[int, ...]:
    import torch

    want = f"a float tensor of shape (2, {num_classes})"
    if type(out) is not torch.Tensor:
        raise _Reject(f"forward must return {want}, got {type(out).__name__}")
    shape = tuple(int(n) for n in out.shape)
    if not out.is_floating_point() or shape != (2, num_classes):
        raise _Reject(f"forward must return {want}, got {out.dtype} of shape {shape}")
    if not bool(torch.isfinite(out).all()):
        raise _Reject("the output has NaN or infinite values")
    return shape


def _check_gradients(model: Any) -> int:
    import torch

    named = list(torch.nn.Module.named_parameters(model))
    if not named:
        raise _Reject("the model has no parameters to train")
    with_grad = [(n, p.grad) for n, p in named if p.grad is not None]
    if not with_grad:
        raise _Reject("no parameter received a gradient (does the output depend on them?)")
    bad = [n for n, g in with_grad if not bool(torch.isfinite(g).all())]
    if bad:
        raise _Reject(f"non-finite gradients for {', '.join(bad[:5])}")
    return sum(p.numel() for _, p in named)


# Modules whose functions the guard and this harness rely on, besides the allowed libraries.
_WATCHED_MODULES = ("builtins", "sys", "os", "os.path", "_thread", "threading", "atexit",
                    "signal", "weakref", "inspect", "traceback", "json", "agent.safety.guard",
                    "agent.safety.sandbox", "agent.safety.policy")  # fmt: skip


class _LibrarySnapshot:
    """The functions, classes and modules bound in library namespaces, to spot monkeypatching.

    A model that rebinds `torch.isfinite` or `torch.Tensor.backward` could fool the checks
    here and break other trials in a shared worker; one that rebinds the guard's helpers
    could blind it. Only callables, classes and modules are watched (counters and caches
    change legitimately); new names are fine (lazy imports add them).
    """

    def __init__(self) -> None:
        import torch

        from agent.safety.policy import is_allowed_module

        watched = [(n, m) for n, m in list(sys.modules.items()) if is_allowed_module(n)]
        watched += [(n, sys.modules[n]) for n in _WATCHED_MODULES if n in sys.modules]
        spaces: list[tuple[str, Mapping[str, Any]]]
        spaces = [(n, vars(m)) for n, m in watched if isinstance(m, types.ModuleType)]
        spaces += [(c.__qualname__, c.__dict__) for c in (torch.Tensor, torch.nn.Module)]
        self.modules = dict(watched)
        self.bindings = [
            (f"{space}.{name}", namespace, name, value)
            for space, namespace in spaces
            for name, value in list(namespace.items())
            if isinstance(value, (type, types.ModuleType, types.FunctionType))
            or type(value) in (types.BuiltinFunctionType, types.MethodDescriptorType)
        ]

    def changes(self) -> list[str]:
        """The watched names now bound to something else (or no module at all)."""
        changed = [n for n, m in self.modules.items() if sys.modules.get(n) is not m]
        missing = object()
        changed += [q for q, ns, name, v in self.bindings if ns.get(name, missing) is not v]
        return changed


def _run(request: Mapping[str, Any], answer: dict[str, Any]) -> list[str]:
    """Every step of the smoke test; returns the reasons for rejecting (empty: accepted)."""
    from agent.safety.guard import install_guard
    from agent.safety.sandbox import load_generated_module, module_imports, preimport

    source: str = request["source"]
    dims: Mapping[str, int] = request["dims"]
    preimport([*module_imports(source), "torch", "numpy"])
    _forbid_file_growth()
    import torch

    torch.manual_seed(0)
    guard = install_guard()
    guard.arm_process()
    snapshot = _LibrarySnapshot()
    state: dict[str, Any] = {}
    num_features = int(dims.get(FEATURES_KWARG, DEFAULT_SMOKE_DIMS[FEATURES_KWARG]))
    x = torch.randn(2, dims["in_channels"], dims["input_length"])  # (2, C, T)
    features = torch.randn(2, num_features)  # (2, F): given only to models that declare F
    inputs: list[Any] = [x]

    def load() -> None:
        state["module"] = load_generated_module(request["module_name"], source)

    def pick() -> None:
        state["cls"] = _pick_class(state["module"], request.get("class_name"))
        answer["class_name"] = state["cls"].__name__
        answer["uses_features"] = _declares_features(state["cls"])
        if answer["uses_features"]:
            inputs.append(features)

    def instantiate() -> None:
        contract = {key: dims[key] for key in CONTRACT_KWARGS}
        if answer["uses_features"]:
            contract[FEATURES_KWARG] = num_features
        state["model"] = state["cls"](**contract, **request.get("kwargs", {}))
        if not isinstance(state["model"], torch.nn.Module):
            raise _Reject("the class did not build an nn.Module")

    def forward_train() -> None:
        state["model"].train()
        state["out"] = state["model"](*inputs)
        answer["output_shape"] = list(_check_output(state["out"], dims["num_classes"]))

    def backward() -> None:
        out = state["out"]
        if not out.requires_grad:
            raise _Reject("the output does not depend on any parameter (no gradient)")
        out.float().square().mean().backward()
        answer["num_params"] = _check_gradients(state["model"])

    def forward_eval() -> None:
        state["model"].eval()
        with torch.no_grad():
            _check_output(state["model"](*inputs), dims["num_classes"])

    reasons: list[str] = []
    steps: list[tuple[str, Callable[[], None]]] = [
        ("loading the module", load), ("picking the class", pick),
        ("instantiating", instantiate),
        ("forward (train mode)", forward_train), ("backward", backward),
        ("forward (eval mode, no_grad)", forward_eval),
    ]  # fmt: skip
    memory = int(request["limits"]["memory_bytes"])
    for step, run in steps:
        try:
            run()
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from the model too
            reasons.append(_describe(step, exc, source, memory) + _features_hint(step, exc, answer))
            break
    violations = guard.violations()
    reasons += [f"runtime guard: {v}" for v in violations[:_MAX_VIOLATION_REASONS]]
    if len(violations) > _MAX_VIOLATION_REASONS:
        reasons.append(f"runtime guard: ... {len(violations) - _MAX_VIOLATION_REASONS} more")
    changed = snapshot.changes()
    if changed:
        names = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        reasons.append(f"the model rebound library names ({names}); models must not monkeypatch")
    return reasons


def main() -> None:
    """Run one smoke test as the request on stdin says; answer on stdout; `os._exit(0)`."""
    request = json.loads(sys.stdin.buffer.read())
    _set_limits(request["limits"])
    try:
        isolation = _isolate() if request.get("isolate", True) else "off"
    except OSError as exc:
        isolation = f"none ({exc})"
    answer_fd = _redirect_stdout()
    answer: dict[str, Any] = {"nonce": request["nonce"], "class_name": None}
    answer.update(num_params=None, output_shape=None, isolation=isolation)
    try:
        reasons = _run(request, answer)
    except BaseException as exc:  # the harness itself failed: still answer
        reasons = [f"smoke-test harness failed: {type(exc).__name__}: {exc}"]
    answer.update(accepted=not reasons, reasons=reasons)
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    _emit(answer_fd, answer)


def _emit(
    fd: int,
    answer: Mapping[str, Any],
    _dumps: Callable[..., str] = json.dumps,
    _write: Callable[[int, bytes], int] = os.write,
    _exit: Callable[[int], Any] = os._exit,
) -> None:
    """Write the answer line and leave at once (no finaliser or atexit handler runs after).

    The functions are bound when this module loads: a model may have rebound `os.write`.
    """
    data = (_dumps(dict(answer)) + "\n").encode()
    while data:
        data = data[_write(fd, data) :]
    _exit(0)


if __name__ == "__main__":
    main()
