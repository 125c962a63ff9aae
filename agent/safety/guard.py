"""`RuntimeGuard`: a PEP 578 audit hook that refuses what agent-written model code may not do.

`install_guard()` adds one audit hook per process (an audit hook cannot be removed). The hook
judges a fixed set of events and raises `GuardViolation` (a PermissionError) into the audited
call it refuses; every refusal is also recorded in `violations()`, so generated code that
catches the exception is still caught. Generated code is recognised by its filename
(`policy.is_generated_filename`: `agent.safety.sandbox` compiles it under
`<generated_models/NAME.py>`).

Policy:

* **Armed** (a thread inside `armed()`, or every thread after `arm_process()`): refused are
  file writes (`open` with a write, append, create or update mode or flags, `os.remove`,
  `os.rename`/`os.replace` (both paths), `os.rmdir`, `os.mkdir`, `os.symlink`, `os.link`,
  `os.truncate`, `os.chmod`, `os.chown`, `os.utime`, `os.setxattr`, `shutil.*`,
  `tempfile.mkstemp`/`mkdtemp`, writable file-backed `mmap`) unless every path resolves
  (`os.path.realpath`) inside one of `write_roots` (of every nested `armed()`; file
  descriptors and fd-relative paths are refused); sockets; processes (`subprocess.Popen`,
  `os.system`, `os.exec*`, `os.posix_spawn`, `os.spawn*`, `os.fork`, `os.forkpty`, `os.kill`,
  `os.killpg`, `pty.spawn`, `signal.pthread_kill`); `ctypes.*`; `sys.addaudithook`,
  `sys.settrace`, `sys.setprofile`, `sys._current_frames`/`_current_exceptions`;
  `resource.setrlimit`/`prlimit`; `os.putenv`/`os.unsetenv`; `os.chdir`; network clients
  (`urllib.Request`, `http.client`, `ftplib`, `smtplib`, `poplib`, `imaplib`, `nntplib`,
  `telnetlib`, `webbrowser`); `winreg`, `syslog`, `sqlite3`, `fcntl`; `gc.get_objects`/
  `get_referrers`/`get_referents`; `code.__new__` and `function.__new__`. `suspended()` turns
  a thread's arming off (the trusted trainer reports to Ray inside it); `arm_process()` is
  permanent.
* **Generated frames** (always, armed or not): while any frame on the calling thread's stack
  is generated code, every event of the list above is refused whatever the write roots, and
  so are `pickle.find_class`, starting threads and leaving callbacks for later
  (`atexit.register`, `weakref.finalize`, `signal.signal`: they would run with no generated
  frame on the stack), and reads (`open` read-only) of files outside the Python installation
  and the packages generated code may import. When the *immediate* caller is generated code,
  `exec`, `compile`, `sys._getframe`, `builtins.input`, `builtins.breakpoint`,
  `object.__getattr__`/`__setattr__`/`__delattr__` (`__code__`, `tb_frame`,
  `__defaults__`...), `marshal.load(s)`, `code.__new__` and `function.__new__` are refused
  (`@dataclass` exec'ing from dataclasses.py is fine).
* **Imports**: when the importing frame (the first frame that is not import machinery or the
  sandbox's `__import__`) is generated code, the module must pass `policy.is_allowed_module`;
  imports that trusted libraries make lazily (torch importing its own submodules) are fine.

The hook returns at once for events outside this list, and for the events it raises itself
while walking a stack (`sys._getframe`, `object.__getattr__`); an error inside its own logic
refuses only an event it was judging. CPython 3.11 audits neither thread starts nor deferred
callbacks, and torch's C++ file writers raise no event: `install_guard` also installs
`agent.safety.sandbox.install_audit_shims`, which makes them raise the events judged here.

Limitations: a hook inside the interpreter is a tripwire, not a boundary (PEP 578 says so).
Code that reaches `sys.modules` through a module attribute (`torch.sys`) can rebind the
guard's Python state, call C functions that raise no event (`os.write` on an open fd,
`torch._C._VariableFunctions.from_file`, torch.distributed's C++ sockets), or leave a C
callable (`functools.partial(os.system, ...)` as a module hook) for trusted code to call
later with no generated frame on the stack. The static check refuses such code; the smoke
test's child process adds rlimits and, where the kernel allows, namespaces with no network
and a read-only filesystem.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import mmap
import os
import pathlib
import sys
import sysconfig
import threading
import types
from collections.abc import Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any, cast

from agent.safety.policy import (
    ALLOWED_IMPORT_ROOTS,
    GENERATED_FILENAME_PREFIX,
    is_allowed_module,
)

logger = logging.getLogger(__name__)

__all__ = ["GuardViolation", "RuntimeGuard", "install_guard"]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MAX_VIOLATIONS = 1000  # a loop of refused attempts must not grow memory without bound

# Event -> kind. Kinds "write" and "open" carry paths; the rest are judged by kind alone.
_EVENT_KINDS = types.MappingProxyType(
    {
        "open": "open",
        "mmap.__new__": "mmap",
        **dict.fromkeys(
            ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
             "os.truncate", "os.chmod", "os.chown", "os.utime", "os.setxattr",
             "os.removexattr", "tempfile.mkstemp", "tempfile.mkdtemp", "os.lockf"),
            "write",
        ),
        **dict.fromkeys(
            ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
             "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.spawn", "os.startfile",
             "signal.pthread_kill"),
            "process",
        ),
        **dict.fromkeys(
            ("sys.addaudithook", "sys.settrace", "sys.setprofile", "sys._current_frames",
             "sys._current_exceptions", "sys.set_asyncgen_hook_firstiter",
             "sys.set_asyncgen_hook_finalizer"),
            "hooks",
        ),
        **dict.fromkeys(("gc.get_objects", "gc.get_referrers", "gc.get_referents"), "gc"),
        **dict.fromkeys(("os.putenv", "os.unsetenv"), "env"),
        "os.chdir": "chdir",
        **dict.fromkeys(("resource.setrlimit", "resource.prlimit"), "rlimit"),
        **dict.fromkeys(("urllib.Request", "webbrowser.open", "ensurepip.bootstrap"), "network"),
        "pdb.Pdb": "system",
        **dict.fromkeys(("code.__new__", "function.__new__"), "code"),
        **dict.fromkeys(
            ("exec", "compile", "sys._getframe", "builtins.input", "builtins.breakpoint",
             "object.__getattr__", "object.__setattr__", "object.__delattr__",
             "marshal.loads", "marshal.load"),
            "introspect",
        ),
        "pickle.find_class": "pickle",
        # raised by agent.safety.sandbox's shims (CPython 3.11 audits none of them)
        **dict.fromkeys(
            ("_thread.start_new_thread", "atexit.register", "signal.signal", "weakref.finalize"),
            "deferred",
        ),
        "import": "import",
    }
)  # fmt: skip
_PREFIX_KINDS = (
    ("shutil.", "write"),
    ("socket.", "socket"),
    ("ctypes.", "native"),
    ("http.client.", "network"),
    ("ftplib.", "network"),
    ("smtplib.", "network"),
    ("poplib.", "network"),
    ("imaplib.", "network"),
    ("nntplib.", "network"),
    ("telnetlib.", "network"),
    ("winreg.", "system"),
    ("syslog.", "system"),
    ("sqlite3.", "system"),
    ("fcntl.", "system"),
)
_PREFIXES = tuple(prefix for prefix, _ in _PREFIX_KINDS)
_WHAT = types.MappingProxyType(
    {
        "write": "write files",
        "open": "write files",
        "mmap": "map files writable",
        "process": "start or signal processes",
        "socket": "open sockets",
        "native": "use ctypes (native code)",
        "hooks": "set trace, profile or audit hooks",
        "gc": "walk the garbage collector's objects",
        "env": "change environment variables",
        "chdir": "change the working directory",
        "rlimit": "change resource limits",
        "network": "use network clients",
        "system": "use system services (fcntl, syslog, sqlite3, pdb, winreg)",
        "code": "build code or function objects",
        "pickle": "unpickle",
        "deferred": "start threads or leave callbacks for later (atexit, finalizers, signals)",
    }
)
_ARMED_KINDS = frozenset(_WHAT) - {"pickle", "deferred"}
# Events the hook raises itself while it walks a stack: ignored when re-entered.
_SELF_EVENTS = frozenset({"sys._getframe", "object.__getattr__"})
# Path arguments (indices) and fd-relative directory arguments of the "write" events.
_PATH_ARGS = types.MappingProxyType(
    {
        "os.rename": (0, 1), "os.symlink": (0, 1), "os.link": (0, 1),
        "shutil.copyfile": (0, 1), "shutil.copymode": (0, 1), "shutil.copystat": (0, 1),
        "shutil.copytree": (0, 1), "shutil.move": (0, 1), "shutil.unpack_archive": (0, 1),
    }
)  # fmt: skip
_DIR_FD_ARGS = types.MappingProxyType(
    {
        "os.remove": (1,), "os.rmdir": (1,), "os.mkdir": (2,), "os.rename": (2, 3),
        "os.link": (2, 3), "os.symlink": (2,), "os.chmod": (2,), "os.chown": (3,),
        "os.utime": (3,), "shutil.rmtree": (1,),
    }
)  # fmt: skip
_PATHLIB_TYPES = frozenset(
    {pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.Path,
     pathlib.PosixPath, pathlib.WindowsPath}
)  # fmt: skip
_IMPORTLIB_DIR = os.path.dirname(os.path.realpath(importlib.__file__ or "")) + os.sep
_SANDBOX_FILE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "sandbox.py")
_getframe = sys._getframe  # bound at import: a later `sys._getframe = ...` cannot blind the hook
_realpath = os.path.realpath


class GuardViolation(PermissionError):  # noqa: N818 - the name the safety layer exports
    """An audited operation the runtime guard refused (see the module docstring)."""


def _caller() -> types.FrameType | None:
    """The frame that raised the event being judged (None for an event raised from C alone)."""
    try:
        return _getframe(2)  # 0: here, 1: RuntimeGuard._hook, 2: the audited code
    except ValueError:
        return None


def _is_generated(frame: types.FrameType | None) -> bool:
    return frame is not None and frame.f_code.co_filename.startswith(GENERATED_FILENAME_PREFIX)


def _stack_has_generated(frame: types.FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith(GENERATED_FILENAME_PREFIX):
            return True
        frame = frame.f_back
    return False


def _importer(frame: types.FrameType | None) -> types.FrameType | None:
    """The first frame that is neither import machinery nor the sandbox's `__import__`."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (
            filename.startswith("<frozen importlib")
            or filename.startswith(_IMPORTLIB_DIR)
            or filename == _SANDBOX_FILE
        ):
            return frame
        frame = frame.f_back
    return None


def _as_path(value: object) -> str | None:
    """`value` as a resolved path, or None when it is not a plain path (an fd, an object).

    Never calls a method the value's class could override: the hook must not run code that
    generated code supplied.
    """
    cls = type(value)
    if issubclass(cls, str):
        text = str.__getitem__(cast(str, value), slice(None))  # the characters, not __str__
    elif issubclass(cls, bytes):
        text = os.fsdecode(bytes.__getitem__(cast(bytes, value), slice(None)))
    elif cls in _PATHLIB_TYPES:
        text = os.fspath(cast(pathlib.PurePath, value))
    else:
        return None
    return _realpath(text)


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _short(event: str, args: tuple[Any, ...]) -> str:
    """A short, safe rendering of an event's arguments (no `repr` of arbitrary objects)."""
    if event == "import":
        args = args[:1]
    elif event == "compile":
        args = args[1:2]  # the filename; the source may be long
    parts = [_short_value(a) for a in args]
    text = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    return text if len(text) <= 160 else text[:157] + "..."


def _short_value(value: object) -> str:
    cls = type(value)
    if cls in (str, bytes, int, float, bool, type(None)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    if cls is types.CodeType:
        return f"<code {value.co_name} from {value.co_filename}>"  # type: ignore[attr-defined]
    return object.__repr__(value)


def _default_read_roots() -> tuple[str, ...]:
    """Where generated code may read files: the Python installation and its allowed packages."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    for name in sorted(ALLOWED_IMPORT_ROOTS):
        try:
            spec = find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            roots.update(spec.submodule_search_locations)
    return tuple(sorted(_realpath(r) for r in roots))


class RuntimeGuard:
    """The process's audit-hook policy (see the module docstring); get it from `install_guard`.

    Thread safe: arming is per thread (`armed`, `suspended`) or per process (`arm_process`);
    `violations()` lists the refusals of every thread.
    """

    def __init__(self) -> None:
        self._tls = threading.local()
        self._lock = threading.Lock()
        self._violations: list[str] = []
        self._dropped = 0
        self._process_armed = False
        self._read_roots = _default_read_roots()

    @contextlib.contextmanager
    def armed(self, *, write_roots: Sequence[str | Path] = ()) -> Iterator[None]:
        """Arm the current thread inside the block (re-entrant; nested blocks only narrow).

        Args:
            write_roots: directories file writes may go to; a write must lie inside a root of
                every enclosing `armed()` block. Empty: no writes at all.
        """
        roots = tuple(_realpath(os.fspath(r)) for r in write_roots)
        levels: list[tuple[str, ...]] | None = getattr(self._tls, "levels", None)
        if levels is None:
            levels = self._tls.levels = []
        levels.append(roots)
        try:
            yield
        finally:
            levels.pop()

    def arm_process(self) -> None:
        """Arm every thread of the process, for good (the smoke-test child); no write roots."""
        self._process_armed = True

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Turn the current thread's `armed()` checks off inside the block.

        The generated-frame rule and `arm_process()` still apply.

        Raises:
            GuardViolation: called with generated code on the stack.
        """
        self._refuse_from_generated("RuntimeGuard.suspended")
        self._tls.suspended = getattr(self._tls, "suspended", 0) + 1
        try:
            yield
        finally:
            self._tls.suspended -= 1

    def violations(self) -> list[str]:
        """Every refusal so far, oldest first, one line each: "os.system refused: ('id',): ..."."""
        with self._lock:
            extra = [f"... and {self._dropped} more refusals"] if self._dropped else []
            return [*self._violations, *extra]

    def clear_violations(self) -> None:
        """Forget the refusals recorded so far (refused from generated code)."""
        self._refuse_from_generated("RuntimeGuard.clear_violations")
        with self._lock:
            self._violations.clear()
            self._dropped = 0

    # -- the hook ----------------------------------------------------------------------------

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        kind = _EVENT_KINDS.get(event)
        if kind is None:
            if not event.startswith(_PREFIXES):
                return
            kind = next(k for prefix, k in _PREFIX_KINDS if event.startswith(prefix))
        tls = self._tls
        busy = getattr(tls, "busy", False)
        if busy and event in _SELF_EVENTS:
            return
        tls.busy = True
        try:
            why = self._judge(kind, event, args, _caller())
        except Exception as exc:  # fail closed, but only for an event being judged
            why = f"the guard failed to judge it ({type(exc).__name__}: {exc})"
        finally:
            tls.busy = busy
        if why is not None:
            self._refuse(event, args, why)

    def _judge(
        self, kind: str, event: str, args: tuple[Any, ...], frame: types.FrameType | None
    ) -> str | None:
        """Why `event` is refused, or None. `frame` is the frame that raised it."""
        if kind in ("introspect", "code"):
            if _is_generated(frame):
                return f"generated code may not use {event} directly"
            if kind == "code" and self._armed_levels() is not None:
                return f"armed threads may not {_WHAT[kind]}"
            return None
        if kind == "import":
            return self._judge_import(args, frame)
        if kind == "open":
            if _open_writes(args):
                kind = "write"
            else:
                return self._judge_read(args, frame)
        if kind == "mmap" and not _mmap_writes(args):
            return None
        levels = self._armed_levels()
        if _stack_has_generated(frame):
            return f"generated code may not {_WHAT[kind]}"
        if levels is None or kind not in _ARMED_KINDS:
            return None
        if kind in ("write", "mmap"):
            return _judge_write(event, args, levels)
        return f"armed threads may not {_WHAT[kind]}"

    def _judge_import(self, args: tuple[Any, ...], frame: types.FrameType | None) -> str | None:
        name = args[0] if args and type(args[0]) is str else ""
        if _is_generated(_importer(frame)) and not is_allowed_module(name):
            return f"generated code may not import {name!r}; allowed: {_allowed_roots()}"
        return None

    def _judge_read(self, args: tuple[Any, ...], frame: types.FrameType | None) -> str | None:
        if not _stack_has_generated(frame):
            return None
        path = _as_path(args[0]) if args else None
        if path is not None and _inside(path, self._read_roots):
            return None
        return "generated code may read only the Python installation and allowed packages"

    def _armed_levels(self) -> list[tuple[str, ...]] | None:
        """The write roots of every arming level of this thread, or None when unarmed."""
        tls = self._tls
        levels = [] if getattr(tls, "suspended", 0) else list(getattr(tls, "levels", ()))
        if self._process_armed:
            levels.append(())
        return levels or None

    def _refuse(self, event: str, args: tuple[Any, ...], why: str) -> None:
        try:
            short = _short(event, args)
        except Exception:  # an argument that cannot even be rendered safely
            short = "(...)"
        with self._lock:
            if len(self._violations) < _MAX_VIOLATIONS:
                self._violations.append(f"{event} refused: {short}: {why}")
            else:
                self._dropped += 1
        self._log(f"{event} refused {short}: {why}")
        raise GuardViolation(f"agentune runtime guard: {event} refused ({short}): {why}")

    def _log(self, message: str) -> None:
        tls = self._tls
        if getattr(tls, "logging", False):  # a handler's own refused event must not recurse
            return
        tls.logging = True
        try:
            logger.warning("runtime guard: %s", message)
        finally:
            tls.logging = False

    def _refuse_from_generated(self, what: str) -> None:
        if _stack_has_generated(_getframe(1)):
            self._refuse(what, (), "generated code may not change the guard")


def _open_writes(args: tuple[Any, ...]) -> bool:
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if type(mode) is str and any(c in mode for c in "wax+"):
        return True
    return type(flags) is int and bool(flags & _WRITE_FLAGS)


def _mmap_writes(args: tuple[Any, ...]) -> bool:
    fileno = args[0] if args else -1
    access = args[2] if len(args) > 2 else mmap.ACCESS_DEFAULT
    return fileno != -1 and access in (mmap.ACCESS_DEFAULT, mmap.ACCESS_WRITE)


def _judge_write(event: str, args: tuple[Any, ...], levels: list[tuple[str, ...]]) -> str | None:
    """Why an armed write is refused: a path outside a level's write roots, or an fd."""
    for index in _DIR_FD_ARGS.get(event, ()):
        if index < len(args) and args[index] not in (None, -1):
            return "armed threads may not write through fd-relative paths"
    if event == "mmap.__new__":
        return "armed threads may not map files writable"
    for index in _PATH_ARGS.get(event, (0,)):
        value = args[index] if index < len(args) else None
        if value is None and index > 0:
            continue
        path = _as_path(value)
        if path is None:
            return "armed threads may write only to plain paths (not file descriptors)"
        for roots in levels:
            if not _inside(path, roots):
                where = ", ".join(roots) if roots else "nowhere"
                return f"{path} is outside the write roots ({where})"
    return None


def _allowed_roots() -> str:
    return ", ".join(sorted(ALLOWED_IMPORT_ROOTS - {"__future__"}))


_GUARD: RuntimeGuard | None = None
_INSTALL_LOCK = threading.Lock()


def install_guard() -> RuntimeGuard:
    """Add the audit hook (once per process) and return the process's `RuntimeGuard`.

    Also installs `agent.safety.sandbox.install_audit_shims` (thread starts, deferred
    callbacks and, once torch is imported, torch's C++ file writers raise audit events); each
    call re-checks, so call it again after importing torch.
    """
    from agent.safety.sandbox import install_audit_shims  # sandbox imports this module

    global _GUARD
    with _INSTALL_LOCK:
        if _GUARD is None:
            guard = RuntimeGuard()
            sys.addaudithook(guard._hook)
            _GUARD = guard
            logger.debug("runtime guard installed")
        install_audit_shims()
        return _GUARD
