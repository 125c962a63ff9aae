"""The runtime guard (`agent.safety.guard`) and the sandbox loader (`agent.safety.sandbox`).

An audit hook cannot be removed, so every test that installs the guard runs a small script in
its own interpreter (`run_script`) and reads the one `RESULT {json}` line it prints. Code
"generated" by these scripts is compiled under a generated filename and given the REAL
builtins, as if it had escaped the sandbox: the guard must hold on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.safety.policy import SAFE_BUILTINS
from agent.safety.sandbox import module_imports, preimport, restricted_builtins

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = '''
import atexit, ctypes, json, os, pathlib, pickle, shutil, signal, socket, subprocess, sys
import tempfile, textwrap, threading, weakref
from agent.safety.guard import GuardViolation, install_guard

guard = install_guard()
INSIDE, OUTSIDE = os.path.abspath("inside"), os.path.abspath("outside")
os.makedirs(INSIDE + "/sub")
os.makedirs(OUTSIDE)
INSIDE_FILE, OUTSIDE_FILE = INSIDE + "/file", OUTSIDE + "/file"
for _path in (INSIDE_FILE, OUTSIDE_FILE):
    with open(_path, "w") as _f:
        _f.write("x")
os.symlink(OUTSIDE, INSIDE + "/outlink")


def attempt(fn):
    """'ok', 'refused' (a GuardViolation) or the name of another exception."""
    try:
        fn()
    except GuardViolation:
        return "refused"
    except Exception as exc:
        return type(exc).__name__
    return "ok"


TRUSTED_CODE = compile("x = 1", "<trusted>", "exec")


class PathLike:
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path


def generated(source, name="evil"):
    """Run `source` as generated code (generated filename, real builtins); its namespace."""
    namespace = {"guard": guard, "INSIDE": INSIDE, "OUTSIDE": OUTSIDE, "CODE": TRUSTED_CODE}
    code = compile(textwrap.dedent(source), f"<generated_models/{name}.py>", "exec")
    exec(code, namespace)
    return namespace


def report(**values):
    print("RESULT " + json.dumps(values))
'''


def run_script(body: str, cwd: Path, timeout: float = 120) -> dict[str, Any]:
    """Run PRELUDE + `body` in a fresh interpreter in `cwd`; the values it `report`ed."""
    script = PRELUDE + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no RESULT line; stdout={proc.stdout[-2000:]!r} stderr={proc.stderr[-2000:]!r}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


# -- armed threads ---------------------------------------------------------------------------

ARMED_CASES = {
    "open-w-inside": ("open(INSIDE + '/new', 'w').close()", "ok"),
    "open-w-outside": ("open(OUTSIDE + '/new', 'w').close()", "refused"),
    "open-a-outside": ("open(OUTSIDE_FILE, 'a').close()", "refused"),
    "open-r+-outside": ("open(OUTSIDE_FILE, 'r+').close()", "refused"),
    "os.open-flags-outside": (
        "os.close(os.open(OUTSIDE + '/new', os.O_WRONLY | os.O_CREAT))",
        "refused",
    ),
    "read-outside": ("open(OUTSIDE_FILE).read()", "ok"),
    "dotdot-escape": ("open(INSIDE + '/../outside/new', 'w').close()", "refused"),
    "symlink-escape": ("open(INSIDE + '/outlink/new', 'w').close()", "refused"),
    "fd-number": ("open(1, 'w', closefd=False)", "refused"),
    "pathlib-inside": ("pathlib.Path(INSIDE, 'new').write_text('x')", "ok"),
    "pathlike-open-inside": ("open(PathLike(INSIDE + '/new'), 'w').close()", "ok"),
    "pathlike-open-outside": ("open(PathLike(OUTSIDE + '/new'), 'w').close()", "refused"),
    "pathlike-os.remove-outside": ("os.remove(PathLike(OUTSIDE_FILE))", "refused"),
    "mkdir-outside": ("os.mkdir(OUTSIDE + '/d')", "refused"),
    "remove-outside": ("os.remove(OUTSIDE_FILE)", "refused"),
    "rename-inside": ("os.rename(INSIDE_FILE, INSIDE + '/moved')", "ok"),
    "rename-out-of-roots": ("os.rename(INSIDE_FILE, OUTSIDE + '/moved')", "refused"),
    "symlink-to-outside": ("os.symlink(OUTSIDE_FILE, INSIDE + '/link')", "refused"),
    "chmod-outside": ("os.chmod(OUTSIDE_FILE, 0o600)", "refused"),
    "mkstemp-outside": ("tempfile.mkstemp(dir=OUTSIDE)", "refused"),
    "copyfile-outside": ("shutil.copyfile(INSIDE_FILE, OUTSIDE + '/copy')", "refused"),
    "nested-arming-narrows": (
        "with guard.armed(write_roots=[INSIDE + '/sub']): open(INSIDE + '/new', 'w')",
        "refused",
    ),
    "socket": ("socket.socket()", "refused"),
    "os.system": ("os.system('true')", "refused"),
    "subprocess": ("subprocess.run(['true'])", "refused"),
    "putenv": ("os.environ['AGENTUNE_X'] = '1'", "refused"),
    "chdir": ("os.chdir(INSIDE)", "refused"),
    "settrace": ("sys.settrace(None)", "refused"),
    "ctypes": ("ctypes.CDLL(None)", "refused"),
    "exec-by-trusted-code": ("exec('x = 1')", "ok"),
}


@pytest.mark.parametrize(("snippet", "expected"), ARMED_CASES.values(), ids=ARMED_CASES.keys())
def test_armed_thread_refuses_outside_write_roots(
    snippet: str, expected: str, tmp_path: Path
) -> None:
    result = run_script(
        f"""
        with guard.armed(write_roots=[INSIDE]):
            outcome = attempt(lambda: exec({snippet!r}, globals()))
        report(outcome=outcome, violations=guard.violations(), outside=sorted(os.listdir(OUTSIDE)))
        """,
        tmp_path,
    )
    assert result["outcome"] == expected, result
    assert bool(result["violations"]) == (expected == "refused"), result
    if expected == "refused":
        assert result["outside"] == ["file"]  # nothing was created, moved or removed
        assert " refused: " in result["violations"][0]


def test_other_threads_are_not_armed(tmp_path: Path) -> None:
    result = run_script(
        """
        outcomes = {}
        def write(name):
            outcomes[name] = attempt(lambda: open(OUTSIDE + "/" + name, "w").close())
        with guard.armed(write_roots=[INSIDE]):
            worker = threading.Thread(target=write, args=("from-thread",))
            worker.start()
            worker.join()
            write("armed-main")
        report(outcomes=outcomes, violations=len(guard.violations()))
        """,
        tmp_path,
    )
    assert result["outcomes"] == {"from-thread": "ok", "armed-main": "refused"}
    assert result["violations"] == 1


def test_suspended_lifts_thread_arming_only(tmp_path: Path) -> None:
    result = run_script(
        """
        new = lambda name: (lambda: open(OUTSIDE + "/" + name, "w").close())
        with guard.armed():
            with guard.suspended():
                suspended = attempt(new("a"))
            after = attempt(new("b"))
        guard.arm_process()
        with guard.suspended():
            process_armed = attempt(new("c"))
        report(suspended=suspended, after=after, process_armed=process_armed)
        """,
        tmp_path,
    )
    assert result == {"suspended": "ok", "after": "refused", "process_armed": "refused"}


def test_arm_process_arms_every_thread(tmp_path: Path) -> None:
    result = run_script(
        """
        guard.arm_process()
        outcomes = {}
        def work():
            outcomes["write"] = attempt(lambda: open(INSIDE + "/new", "w").close())
            outcomes["socket"] = attempt(socket.socket)
            outcomes["read"] = attempt(lambda: open(INSIDE_FILE).read())
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        report(**outcomes)
        """,
        tmp_path,
    )
    assert result == {"write": "refused", "socket": "refused", "read": "ok"}


# -- generated frames ------------------------------------------------------------------------

# (snippet, the event refused, what `attack()` returns: "caught" unless CPython swallows it)
GENERATED_CASES: dict[str, tuple[str, ...]] = {
    "open-w-inside-roots": ("open(INSIDE + '/pwned', 'w').write('x')", "open"),
    "write-via-trusted-pathlib": ("pathlib.Path(INSIDE, 'pwned').write_text('x')", "open"),
    "read-outside-python": ("open(INSIDE_FILE).read()", "open"),
    "socket": ("socket.socket()", "socket.__new__"),
    "os.system": ("os.system('touch ' + INSIDE + '/pwned')", "os.system"),
    "subprocess.run": ("subprocess.run(['touch', INSIDE + '/pwned'])", "subprocess.Popen"),
    "ctypes.CDLL": ("ctypes.CDLL(None)", "ctypes.dlopen"),
    "os.fork": ("os.fork() or os._exit(0)", "os.fork"),
    "os.putenv": ("os.putenv('AGENTUNE_X', '1')", "os.putenv"),
    "sys.settrace": ("sys.settrace(lambda *a: None)", "sys.settrace"),
    # CPython drops the new hook and swallows the hook's exception for sys.addaudithook
    "sys.addaudithook": ("sys.addaudithook(lambda *a: None)", "sys.addaudithook", "not refused"),
    "exec-source": ("exec('import os')", "compile"),
    "exec-code-object": ("exec(CODE)", "exec"),
    "sys._getframe": ("sys._getframe(0)", "sys._getframe"),
    "code-attribute": ("attack.__code__", "object.__getattr__"),
    "pickle": ("pickle.loads(pickle.dumps(os.getcwd))", "pickle.find_class"),
    "thread-start": (
        "threading.Thread(target=os.system, args=('touch ' + INSIDE + '/pwned',)).start()",
        "_thread.start_new_thread",
    ),
    "atexit": ("atexit.register(os.system, 'touch ' + INSIDE + '/pwned')", "atexit.register"),
    "weakref.finalize": ("weakref.finalize(guard, os.system, 'true')", "weakref.finalize"),
    "signal-handler": ("signal.signal(signal.SIGUSR1, print)", "signal.signal"),
    "guard-suspend": ("guard.suspended().__enter__()", "RuntimeGuard.suspended"),
    "guard-clear": ("guard.clear_violations()", "RuntimeGuard.clear_violations"),
    "forged-busy-flag": ("guard._tls.busy = True; os.system('true')", "os.system"),
}


@pytest.mark.parametrize("case", GENERATED_CASES.values(), ids=GENERATED_CASES.keys())
def test_generated_frames_are_refused_even_when_caught(
    case: tuple[str, ...], tmp_path: Path
) -> None:
    snippet, event, expected = (*case, "caught")[:3]
    result = run_script(
        f"""
        namespace = generated('''
        import atexit, ctypes, os, pathlib, pickle, signal, socket, subprocess, sys, threading
        import weakref
        INSIDE_FILE = INSIDE + "/file"
        def attack():
            try:
                {snippet}
            except Exception:
                return "caught"
            return "not refused"
        ''')
        with guard.armed(write_roots=[INSIDE]):  # write roots do not help generated code
            outcome = namespace["attack"]()
        report(outcome=outcome, violations=guard.violations(),
               pwned=os.path.exists(INSIDE + "/pwned"), env=os.environ.get("AGENTUNE_X"))
        """,
        tmp_path,
    )
    assert result["outcome"] == expected, result
    assert [v.split(" refused")[0] for v in result["violations"]] == [event], result
    assert not result["pwned"]
    assert result["env"] is None


def test_trusted_code_is_not_judged_by_the_generated_rule(tmp_path: Path) -> None:
    result = run_script(
        """
        generated("x = 1")  # generated code exists in the process
        os.putenv("AGENTUNE_X", "1")
        with open(OUTSIDE + "/trusted", "w") as f:
            f.write("x")
        exec("y = 2")
        sys.audit("agentune.unrelated.event", object())
        report(violations=guard.violations(), written=os.path.exists(OUTSIDE + "/trusted"))
        """,
        tmp_path,
    )
    assert result == {"violations": [], "written": True}


def test_imports_by_generated_code_follow_the_allowlist(tmp_path: Path) -> None:
    result = run_script(
        """
        import numpy
        namespace = generated('''
        def imports(name):
            __import__(name)
        def lazy_by_numpy():
            return numpy.f2py  # numpy imports its own (denied) submodule lazily
        ''')
        namespace["numpy"] = numpy
        outcomes = {name: attempt(lambda: namespace["imports"](name))
                    for name in ("wave", "numpy.f2py", "numpy.polynomial")}
        outcomes["lazy"] = attempt(namespace["lazy_by_numpy"])
        report(outcomes=outcomes, violations=guard.violations())
        """,
        tmp_path,
    )
    assert result["outcomes"] == {
        "wave": "refused",
        "numpy.f2py": "refused",
        "numpy.polynomial": "ok",
        "lazy": "ok",
    }
    assert [v.split(":")[0] for v in result["violations"]] == ["import refused"] * 2


def test_dataclass_exec_from_dataclasses_is_allowed(tmp_path: Path) -> None:
    result = run_script(
        """
        namespace = generated('''
        import dataclasses
        @dataclasses.dataclass(frozen=True)
        class Config:
            width: int = 8
            depth: int = 2
        ''')
        config = namespace["Config"](width=4)
        report(width=config.width, violations=guard.violations())
        """,
        tmp_path,
    )
    assert result == {"width": 4, "violations": []}


def test_reentrant_hook_events_do_not_recurse(tmp_path: Path) -> None:
    result = run_script(
        """
        import logging
        logging.basicConfig(level=logging.INFO)  # the refusal is logged from inside the hook
        namespace = generated('''
        import sys
        def deep(n):
            return sys._getframe(0) if n == 0 else deep(n - 1)
        ''')
        outcome = attempt(lambda: namespace["deep"](200))
        frames = [sys._getframe(0) for _ in range(1000)]  # trusted: allowed, and fast
        report(outcome=outcome, violations=len(guard.violations()))
        """,
        tmp_path,
    )
    assert result == {"outcome": "refused", "violations": 1}


def test_torch_writers_raise_audit_events(tmp_path: Path) -> None:
    result = run_script(
        """
        import torch
        guard = install_guard()  # again, now that torch is imported: wraps its C++ writers
        with guard.armed(write_roots=[INSIDE]):
            inside = attempt(lambda: torch.save({}, INSIDE + "/ok.pt"))
            outside = attempt(lambda: torch.save({}, OUTSIDE + "/no.pt"))
        namespace = generated('''
        import torch
        def save():
            torch.save({}, INSIDE + "/pwned.pt")
        def from_file():
            torch.from_file(INSIDE + "/pwned.bin", shared=True, size=8)
        ''')
        outcomes = {"inside": inside, "outside": outside,
                    "generated_save": attempt(namespace["save"]),
                    "generated_from_file": attempt(namespace["from_file"])}
        report(outcomes=outcomes, files=sorted(os.listdir(INSIDE)) + sorted(os.listdir(OUTSIDE)))
        """,
        tmp_path,
    )
    assert result["outcomes"] == {
        "inside": "ok",
        "outside": "refused",
        "generated_save": "refused",
        "generated_from_file": "refused",
    }
    assert result["files"] == ["file", "ok.pt", "outlink", "sub", "file"]


# -- the sandbox loader ----------------------------------------------------------------------


def test_restricted_builtins_are_the_safe_set() -> None:
    names = restricted_builtins()
    assert set(names) == SAFE_BUILTINS | {"__build_class__", "__import__"}
    assert names["len"] is len
    assert restricted_builtins() is not names  # one module cannot change another's


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import torch\nfrom torch import nn", ["torch", "torch.nn"]),
        (
            "from einops.layers.torch import Rearrange",
            ["einops.layers.torch", "einops.layers.torch.Rearrange"],
        ),
        ("import os.path as p\nfrom . import sibling\nfrom x import *", ["os.path", "x"]),
        ("def broken(:", []),
    ],
    ids=["plain", "from-import", "relative-and-star", "syntax-error"],
)
def test_module_imports_lists_candidates(source: str, expected: list[str]) -> None:
    assert module_imports(source) == expected


def test_preimport_imports_only_allowed_modules() -> None:
    assert preimport(["math", "os", "collections.abc", "math.nonexistent", "torch.hub"]) == [
        "math",
        "collections.abc",
    ]


def test_load_generated_module(tmp_path: Path) -> None:
    result = run_script(
        """
        from agent.safety.errors import UnsafeModelError
        from agent.safety.sandbox import load_generated_module
        source = '''
        import dataclasses
        import math
        @dataclasses.dataclass
        class Config:
            width: int = 8
        def area(r):
            return math.pi * r * r
        def opens():
            return open("x", "w")
        '''
        module = load_generated_module("generated_models.demo", textwrap.dedent(source))
        import generated_models
        outcomes = {
            "registered": sys.modules["generated_models.demo"] is module,
            "package_attr": generated_models.demo is module,
            "filename": module.area.__code__.co_filename,
            "dataclass": module.Config().width,
            "open": attempt(module.opens),
        }
        for name, src in {"os": "import os", "hub": "from torch import hub",
                          "relative": "from . import x", "error": "raise ValueError('boom')",
                          "syntax": "def f(:"}.items():
            try:
                load_generated_module("generated_models.bad_" + name, src)
            except Exception as exc:
                outcomes[name] = f"{type(exc).__name__}: {exc}"
            outcomes[name + "_left"] = "generated_models.bad_" + name in sys.modules
        outcomes["bad_name"] = attempt(lambda: load_generated_module("os.path", "x = 1"))
        report(**outcomes)
        """,
        tmp_path,
    )
    assert result["registered"] and result["package_attr"]
    assert result["filename"] == "<generated_models/demo.py>"
    assert result["dataclass"] == 8
    assert result["open"] == "NameError"  # no `open` among the builtins
    assert result["os"].startswith("ImportError: generated code may not import os; allowed")
    assert "torch.hub" in result["hub"]
    assert "relative imports" in result["relative"]
    assert result["error"] == "ValueError: boom"
    assert result["syntax"].startswith("SyntaxError")
    assert not any(result[f"{name}_left"] for name in ("os", "hub", "relative", "error", "syntax"))
    assert result["bad_name"] == "UnsafeModelError"
