"""Loading agent-written model source as a module of `generated_models`, with restricted builtins.

A generated module sees only `policy.SAFE_BUILTINS` (no `open`, `eval`, `exec`, `getattr`,
`__import__`...), plus `__build_class__` (class statements need it) and an `__import__` that
refuses modules outside `policy.is_allowed_module`. Its code is compiled under
`policy.generated_filename(name)`, the filename by which the runtime guard
(`agent.safety.guard`) recognises generated frames; loading installs that guard.

Restricted builtins stop the obvious (`open(...)`, `__import__("os")`); everything reachable
through attributes of allowed modules (`torch.os.system`) is the runtime guard's business, and
`install_audit_shims` (installed with the guard) makes the reachable things CPython and torch
do silently (thread starts, deferred callbacks, torch's C++ file writers) raise audit events.

Typical use (the smoke-test child and the trainable)::

    preimport(module_imports(source))          # heavy libraries load before arming
    guard = install_guard()
    with guard.armed(write_roots=[run_dir]):
        module = load_generated_module("generated_models.se_resnet", source)
"""

from __future__ import annotations

import ast
import builtins
import importlib
import logging
import os
import sys
import threading
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agent.safety.errors import UnsafeModelError
from agent.safety.guard import install_guard
from agent.safety.policy import (
    ALLOWED_IMPORT_ROOTS,
    GENERATED_PACKAGE,
    SAFE_BUILTINS,
    generated_filename,
    is_allowed_module,
)

logger = logging.getLogger(__name__)

__all__ = ["load_generated_module", "module_imports", "preimport", "restricted_builtins"]

_real_import = builtins.__import__  # the C import: it raises the `import` audit event


def _guarded_import(
    name: str,
    globals: Mapping[str, object] | None = None,  # the signature of __import__
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> types.ModuleType:
    """`__import__` for generated modules: absolute imports of allowed modules only.

    `from a import b` also needs `a.b` allowed (`from torch import hub` is refused).
    """
    if level != 0:
        raise ImportError(
            f"generated code may not use relative imports (from . import ...); got level {level}"
        )
    refused = [name] if not is_allowed_module(name) else []
    refused += [
        f"{name}.{item}"
        for item in fromlist or ()
        if item != "*" and not is_allowed_module(f"{name}.{item}")
    ]
    if refused:
        roots = ", ".join(sorted(ALLOWED_IMPORT_ROOTS - {"__future__"}))
        raise ImportError(
            f"generated code may not import {refused[0]}; allowed are modules under {roots} "
            "(not torch.hub, torch.utils.data, numpy.ctypeslib..., see agent.safety.policy)"
        )
    return _real_import(name, globals, locals, fromlist or (), 0)


def restricted_builtins() -> dict[str, Any]:
    """The builtins a generated module runs with: `SAFE_BUILTINS`, `__build_class__`, `__import__`.

    A fresh dict each call, so one module cannot change another's builtins.
    """
    names = {name: getattr(builtins, name) for name in sorted(SAFE_BUILTINS)}
    names["__build_class__"] = builtins.__build_class__
    names["__import__"] = _guarded_import
    return names


def check_module_name(module_name: str) -> str:
    """The stem of `generated_models.<identifier>`; raises UnsafeModelError otherwise."""
    package, _, stem = module_name.partition(".")
    if package != GENERATED_PACKAGE or not stem.isidentifier() or "." in stem:
        raise UnsafeModelError(
            f"generated module names are {GENERATED_PACKAGE}.<identifier>, got "
            f"{module_name!r}; pick a name like {GENERATED_PACKAGE}.se_resnet"
        )
    return stem


def load_generated_module(module_name: str, source: str) -> types.ModuleType:
    """Compile and execute `source` as module `module_name` with restricted builtins.

    The module is registered in `sys.modules` before its code runs (`@dataclass` looks its
    module up there) and set as an attribute of the `generated_models` package afterwards; on
    any exception it is taken out of `sys.modules` again (a module it replaced is put back).
    The caller arms the guard around this call; import the libraries the source uses first
    (`preimport`).

    Args:
        module_name: `generated_models.<identifier>`.
        source: the model's Python source.

    Raises:
        UnsafeModelError: `module_name` is not `generated_models.<identifier>`.
        SyntaxError, ImportError, GuardViolation, ...: whatever compiling or running the
            module's top level raised.
    """
    stem = check_module_name(module_name)
    install_guard()
    code = compile(source, generated_filename(module_name), "exec", dont_inherit=True)
    module = types.ModuleType(module_name)
    module.__dict__["__builtins__"] = restricted_builtins()
    module.__package__ = GENERATED_PACKAGE
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)  # restricted builtins, under the runtime guard
        package = importlib.import_module(GENERATED_PACKAGE)
        setattr(package, stem, module)
    except BaseException:
        if previous is not None:
            sys.modules[module_name] = previous
        else:
            sys.modules.pop(module_name, None)
        raise
    logger.debug("loaded generated module %s", module_name)
    return module


def module_imports(source: str) -> list[str]:
    """The module names `source` imports, in order, for `preimport` (nothing is executed).

    `from a import b` lists `a` and the candidate `a.b` (b may be a submodule); relative
    imports are skipped. Unparsable source gives [].
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(dict.fromkeys(alias.name for alias in node.names))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names[node.module] = None
            names.update(
                dict.fromkeys(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
            )
    return list(names)


# Allowed libraries that import something heavy (and file-writing) lazily on first use.
_WARM_UP = {"einops": ("einops.layers.torch", "einops._torch_specific")}


def preimport(modules: Iterable[str]) -> list[str]:
    """Import the allowed ones of `modules` now, before the guard is armed.

    Heavy libraries import more on first use (einops' torch backend imports `torch._dynamo`,
    which creates directories); arming first would refuse that. Names `is_allowed_module`
    refuses are skipped; import failures are ignored (candidates `a.b` of `from a import b`
    are often not modules; a real failure shows again when the source runs).

    Returns:
        The modules imported (or already imported), in order.
    """
    done: list[str] = []
    wanted = list(modules)
    roots = {name.split(".", 1)[0] for name in wanted}
    for root, extra in _WARM_UP.items():
        if root in roots:
            wanted += extra
    for name in dict.fromkeys(wanted):
        if not is_allowed_module(name):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # candidates may not be modules
            logger.debug("preimport %s failed: %s", name, exc)
            continue
        done.append(name)
    return done


# -- audit shims: what CPython 3.11 and torch do without raising an audit event ----------------

_SHIMMED: set[str] = set()
_SHIM_LOCK = threading.Lock()


def install_audit_shims() -> None:
    """Wrap callables that act without an audit event so that they raise one first (idempotent).

    * Thread starts (`_thread.start_new_thread`, which `threading.Thread.start` uses),
      `atexit.register`, `signal.signal` and `weakref.finalize` raise events of those names:
      a thread or callback set up by generated code would later run with no generated frame
      on its stack, so the guard refuses them while generated code is on the stack.
    * Once torch is imported: its C++ file writers raise `open` with a write mode (see
      `_audit_torch_writers`).

    The originals stay reachable through the wrappers' closures; the static check refuses
    dunder attributes such as `__closure__`.
    """
    with _SHIM_LOCK:
        if "deferred" not in _SHIMMED:
            _audit_deferred_calls()
            _SHIMMED.add("deferred")
        torch = sys.modules.get("torch")
        if torch is not None and "torch" not in _SHIMMED:
            _audit_torch_writers(torch)
            _SHIMMED.add("torch")


def _announcing(event: str, func: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sys.audit(event, *args[:1])
        return func(*args, **kwargs)

    wrapper.__doc__ = func.__doc__
    wrapper.__name__ = getattr(func, "__name__", event)
    return wrapper


def _audit_deferred_calls() -> None:
    import _thread
    import atexit
    import signal
    import threading
    import weakref

    start = _announcing("_thread.start_new_thread", _thread.start_new_thread)
    _thread.start_new_thread = _thread.start_new = start
    threading._start_new_thread = start  # type: ignore[attr-defined]
    atexit.register = _announcing("atexit.register", atexit.register)
    signal.signal = _announcing("signal.signal", signal.signal)
    original = weakref.finalize

    class finalize(original):  # type: ignore[valid-type, misc]  # noqa: N801 - replaces weakref's
        def __init__(self, obj: Any, func: Any, /, *args: Any, **kwargs: Any) -> None:
            sys.audit("weakref.finalize", func)
            super().__init__(obj, func, *args, **kwargs)

    weakref.finalize = finalize  # type: ignore[misc]


def _audit_write(path: object) -> None:
    """Raise the `open` event a C++ writer skips (file-like objects are Python's business)."""
    if isinstance(path, (str, bytes, os.PathLike)):
        sys.audit("open", path, "w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)


def _audited(func: Any, *, path_arg: int, shared_arg: tuple[str, int] | None = None) -> Any:
    """`func` raising an `open` write event for its path first (when `shared`, if named)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        writes = True
        if shared_arg is not None:
            name, index = shared_arg
            writes = bool(kwargs.get(name, args[index] if len(args) > index else False))
        path = kwargs.get("filename", args[path_arg] if len(args) > path_arg else None)
        if writes:
            _audit_write(path)
        elif isinstance(path, (str, bytes, os.PathLike)):
            sys.audit("open", path, "r", os.O_RDONLY)
        return func(*args, **kwargs)

    wrapper.__doc__ = func.__doc__
    return wrapper


def _audit_torch_writers(torch: Any) -> None:
    """Make torch's C++ file writers raise `open` audit events first (once per process).

    Covered: the zip writer of `torch.save` (`torch._C.PyTorchFileWriter`), `torch.from_file`
    and `UntypedStorage.from_file` (a shared mapping writes the file), `ScriptModule.save` and
    `_save_for_mobile`, and the profiler's trace `save`. Aliases inside torch._C that cannot
    be rebound (`torch._C._VariableFunctions.from_file`) are not covered.
    """
    base = torch._C.PyTorchFileWriter

    class _AuditedFileWriter(base):  # type: ignore[misc, valid-type]
        def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
            _audit_write(file)
            super().__init__(file, *args, **kwargs)

    _AuditedFileWriter.__name__ = _AuditedFileWriter.__qualname__ = "PyTorchFileWriter"
    torch._C.PyTorchFileWriter = _AuditedFileWriter
    torch.from_file = _audited(torch.from_file, path_arg=0, shared_arg=("shared", 1))
    storage = torch.UntypedStorage
    # `storage.from_file` is already bound to the class: keep it a plain callable.
    storage.from_file = staticmethod(
        _audited(storage.from_file, path_arg=0, shared_arg=("shared", 1))
    )
    script = torch._C.ScriptModule
    for name in ("save", "_save_for_mobile"):
        setattr(script, name, _audited(getattr(script, name), path_arg=1))
    result = getattr(torch._C._autograd, "_ProfilerResult", None)
    if result is not None:
        result.save = _audited(result.save, path_arg=1)
