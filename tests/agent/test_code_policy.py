"""The static model-code check (`agent.safety.code_policy`): attacks refused, real models pass.

Every attack is a complete model file with one dangerous construct; the test asserts the
report is not ok and that a reason names the construct on the right line. Most attacks have a
close legitimate counterpart (`np.hanning` for `np.load`, a parameter called `input` for the
builtin `input()`) that must pass. The model zoo (`model_zoo/*.py`) holds realistic benign
architectures: each must pass with the expected model class and train one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent, indent

import pytest
import torch
from model_zoo_helpers import (
    ZOO_MODEL_CLASSES,
    build_zoo_model,
    count_parameters,
    forward_backward,
    zoo_sources,
)

from agent.models.examples import generated_model_source
from agent.safety.code_policy import (
    MAX_SOURCE_BYTES,
    CodeReport,
    require_valid_model_source,
    validate_model_source,
)
from agent.safety.errors import UnsafeModelError


def model_source(
    *, top: str = "", module: str = "", klass: str = "", init: str = "", forward: str = ""
) -> str:
    """A valid model file `Net` with extra code spliced in at each level.

    Args:
        top: extra imports after `import torch` / `from torch import nn`.
        module: module-level code before the class.
        klass: class-body code of Net.
        init: extra lines at the end of Net.__init__.
        forward: lines at the start of Net.forward (x is the input).
    """
    lines = [
        "import torch",
        "from torch import nn",
        dedent(top),
        "",
        dedent(module),
        "",
        "class Net(nn.Module):",
        indent(dedent(klass), "    "),
        "    def __init__(self, *, in_channels: int, input_length: int, num_classes: int):",
        "        super().__init__()",
        "        self.head = nn.Linear(in_channels, num_classes)",
        indent(dedent(init), "        "),
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        indent(dedent(forward), "        "),
        "        return self.head(x.mean(dim=-1))",
        "",
    ]
    return "\n".join(lines)


def line_of(source: str, needle: str) -> int:
    """1-based number of the first line of `source` containing `needle`."""
    for number, line in enumerate(source.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in source")


@dataclass(frozen=True)
class Attack:
    """A refused source: `needle` marks the offending line, `fragment` must be in its reason."""

    id: str
    source: str
    needle: str | None
    fragment: str


def refused(attack: Attack) -> CodeReport:
    report = validate_model_source(attack.source)
    assert report.ok is False
    if attack.needle is None:
        assert any(attack.fragment in r for r in report.reasons), report.reasons
    else:
        prefix = f"line {line_of(attack.source, attack.needle)}:"
        assert any(r.startswith(prefix) and attack.fragment in r for r in report.reasons), (
            prefix,
            attack.fragment,
            report.reasons,
        )
    return report


def accepted(source: str, model_class: str = "Net") -> CodeReport:
    report = validate_model_source(source)
    assert report.reasons == ()
    assert report.ok is True
    assert report.model_class == model_class
    return report


def in_forward(code: str) -> str:
    """A model whose forward starts with `code`."""
    return model_source(forward=code)


def at_module(code: str, top: str = "") -> str:
    """A model with `code` at module level."""
    return model_source(top=top, module=code)


# -- rule 1: imports ------------------------------------------------------------------------

IMPORT_ATTACKS = [
    Attack(
        f"import_{name}", at_module("", top=f"import {name}"), f"import {name}", f"import of {name}"
    )
    for name in (
        "os",
        "subprocess",
        "socket",
        "ctypes",
        "importlib",
        "sys",
        "builtins",
        "pickle",
        "shutil",
        "pathlib",
        "threading",
        "inspect",
        "gc",
        "types",
        "traceback",
    )
] + [
    Attack("from_socket", at_module("", top="from socket import socket"), "from socket", "socket"),
    Attack("from_os_path", at_module("", top="from os import path"), "from os", "import of os"),
    Attack("import_star", at_module("", top="from torch import *"), "import *", "import *"),
    Attack(
        "relative", at_module("", top="from . import sibling"), "from . import", "relative import"
    ),
    Attack(
        "relative_parent",
        at_module("", top="from ..models import cnn1d"),
        "from ..",
        "relative import",
    ),
    Attack(
        "biosignals_data",
        at_module("", top="from biosignals.data import cache"),
        "biosignals.data",
        "biosignals.data",
    ),
    Attack(
        "biosignals_parent_data",
        at_module("", top="from biosignals import data"),
        "from biosignals",
        "biosignals.data",
    ),
    Attack(
        "from_torch_load", at_module("", top="from torch import load"), "import load", "torch.load"
    ),
    Attack("from_torch_hub", at_module("", top="from torch import hub"), "import hub", "torch.hub"),
    Attack("import_torch_hub", at_module("", top="import torch.hub"), "torch.hub", "torch.hub"),
    Attack(
        "from_numpy_fromfile",
        at_module("", top="from numpy import fromfile"),
        "fromfile",
        "numpy.fromfile",
    ),
    Attack(
        "from_operator_attrgetter",
        at_module("", top="from operator import attrgetter"),
        "attrgetter",
        "operator.attrgetter",
    ),
    Attack("private_module", at_module("", top="import torch._dynamo"), "_dynamo", "private"),
    Attack("test_tooling", at_module("", top="import numpy.conftest"), "conftest", "tooling"),
    Attack("from_torch_private", at_module("", top="from torch import _C"), "_C", "private"),
    Attack("torch_os_import", at_module("", top="from torch import os"), "import os", "torch.os"),
    Attack(
        "project_module_traversal_import",
        at_module("", top="from biosignals.models.cnn1d import torch as T"),
        "cnn1d import",
        "biosignals.models.cnn1d.torch",
    ),
    Attack(
        "missing_module", at_module("", top="import numpy.nothere"), "nothere", "cannot be imported"
    ),
    Attack("import_in_function", in_forward("import math"), "import math", "imports go at the top"),
    Attack(
        "import_alias_shadow",
        at_module("", top="import numpy as torch"),
        "numpy as torch",
        "imported twice",
    ),
    Attack("rebind_import", at_module("nn = 3"), "nn = 3", "rebinds or deletes an imported name"),
]

IMPORT_BENIGN = {
    "functional_as_F": model_source(
        top="from torch.nn import functional as F", forward="x = F.gelu(x)"
    ),
    "import_functional_as_F": model_source(
        top="import torch.nn.functional as F", forward="x = F.relu(x)"
    ),
    "project_error": model_source(
        top="from biosignals.models._common import ModelConfigError",
        init="if in_channels < 1:\n    raise ModelConfigError(f'in_channels={in_channels}')",
    ),
    "einops_layer": model_source(
        top="from einops.layers.torch import Rearrange",
        init="self.flip = Rearrange('b c t -> b t c')",
    ),
    "future_and_abc": "from __future__ import annotations\n"
    + model_source(top="from collections.abc import Sequence\nSizes = Sequence[int]"),
    "type_checking_block": model_source(
        top="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from collections import abc"
    ),
    "numpy_scipy": model_source(
        top="import numpy as np\nimport scipy.signal",
        init="self.register_buffer('w', torch.tensor(scipy.signal.get_window('hann', 8)))",
    ),
    "project_parent_import": model_source(
        top="from biosignals import models", init="self.extra = models.CNN1D"
    ),
}


@pytest.mark.parametrize("attack", IMPORT_ATTACKS, ids=[a.id for a in IMPORT_ATTACKS])
def test_imports_outside_the_allowlist_are_refused(attack: Attack) -> None:
    refused(attack)


@pytest.mark.parametrize("source", IMPORT_BENIGN.values(), ids=IMPORT_BENIGN.keys())
def test_allowed_imports_pass(source: str) -> None:
    accepted(source)


# -- rules 2 and 3: builtins, scoping, global, async ------------------------------------------

BUILTIN_ATTACKS = [
    Attack("dunder_import", in_forward("os = __import__('os')"), "__import__", "__import__"),
    Attack("eval_call", in_forward("y = eval('1 + 1')"), "eval(", "eval is not allowed"),
    Attack("exec_call", in_forward("exec('import os')"), "exec(", "exec is not allowed"),
    Attack("compile_call", in_forward("c = compile('1', 'f', 'eval')"), "compile(", "compile"),
    Attack("open_call", in_forward("open('/etc/passwd').read()"), "open(", "open is not allowed"),
    Attack("eval_as_value", in_forward("g = eval"), "g = eval", "eval is not allowed"),
    Attack("open_in_list", at_module("OPENERS = [open]"), "OPENERS", "open is not allowed"),
    Attack(
        "getattr_as_argument",
        in_forward("names = list(map(getattr, [x], ['numpy']))"),
        "map(getattr",
        "getattr is not allowed",
    ),
    Attack(
        "getattr_escape",
        in_forward("cls = getattr(x, '__cl' + 'ass__')"),
        "getattr(x",
        "getattr is not allowed",
    ),
    Attack("setattr_call", in_forward("setattr(self, 'head', None)"), "setattr", "setattr"),
    Attack("builtins_dict", in_forward("e = __builtins__['eval']"), "__builtins__", "__builtins__"),
    Attack("input_builtin", in_forward("s = input()"), "input()", "input is not allowed"),
    Attack("globals_call", in_forward("g = globals()['torch']"), "globals()", "globals"),
    Attack("vars_call", in_forward("d = vars(self)"), "vars(self)", "vars"),
    Attack("memoryview", in_forward("mv = memoryview(b'x')"), "memoryview", "memoryview"),
    Attack("exit_call", in_forward("exit(0)"), "exit(0)", "exit"),
    Attack("breakpoint", in_forward("breakpoint()"), "breakpoint", "breakpoint"),
    Attack("type_three_args", in_forward("X = type('X', (object,), {})"), "type('X'", "type()"),
    Attack(
        "undefined_name", in_forward("y = helper(x)"), "helper(x)", "name helper is not defined"
    ),
    Attack(
        "default_arg_builtin_value",
        at_module("def helper(x, fn=eval):\n    return fn(x)"),
        "fn=eval",
        "eval is not allowed",
    ),
    Attack(
        "global_stmt",
        model_source(module="COUNT = 0", forward="global COUNT\nCOUNT = 1"),
        "global COUNT",
        "global COUNT is not allowed",
    ),
    Attack(
        "nonlocal_stmt",
        in_forward("n = 0\ndef bump() -> None:\n    nonlocal n\n    n += 1"),
        "nonlocal n",
        "nonlocal n is not allowed",
    ),
    Attack(
        "async_def",
        model_source(klass="async def run(self) -> None:\n    pass"),
        "async def",
        "async def run",
    ),
    Attack(
        "await_in_async",
        at_module("async def helper(y):\n    return await y"),
        "await y",
        "await is not allowed",
    ),
]
BUILTIN_BENIGN = {
    "input_parameter": model_source()
    .replace("(self, x: torch.Tensor)", "(self, input)")
    .replace("x.mean(dim=-1)", "input.mean(dim=-1)"),
    "local_named_like_builtin": in_forward("open = x + 1\nx = open"),
    "type_one_argument": in_forward("name = type(self).__name__\nassert name == 'Net'"),
    "isinstance_print_len": in_forward(
        "if not isinstance(x, torch.Tensor):\n    raise TypeError(f'{type(x)}')\nn = len(x)"
    ),
    "generator_with_yield": at_module(
        "def pairs(n: int):\n    for i in range(n):\n        yield i, i + 1"
    ),
    "hasattr_and_super": in_forward("assert hasattr(self, 'head')\nsuper().train(self.training)"),
    "closure_reads_outer": in_forward("scale = 2.0\ndef mul(t):\n    return t * scale\nx = mul(x)"),
}


@pytest.mark.parametrize("attack", BUILTIN_ATTACKS, ids=[a.id for a in BUILTIN_ATTACKS])
def test_dangerous_builtins_scopes_and_async_are_refused(attack: Attack) -> None:
    refused(attack)


@pytest.mark.parametrize("source", BUILTIN_BENIGN.values(), ids=BUILTIN_BENIGN.keys())
def test_safe_builtins_and_shadowing_locals_pass(source: str) -> None:
    accepted(source)


# -- rule 5: dunders --------------------------------------------------------------------------

DUNDER_ATTACKS = [
    Attack(
        "subclasses_walk",
        in_forward("subs = ().__class__.__bases__[0].__subclasses__()"),
        "__subclasses__",
        "__class__",
    ),
    Attack("dict_attr", in_forward("d = self.__dict__"), "__dict__", "__dict__"),
    Attack(
        "func_globals", in_forward("g = self.forward.__globals__"), "__globals__", "__globals__"
    ),
    Attack(
        "traceback_attr",
        in_forward("try:\n    pass\nexcept Exception as e:\n    t = e.__traceback__"),
        "__traceback__",
        "__traceback__",
    ),
    Attack(
        "module_spoof", model_source(klass="__module__ = 'torch.nn'"), "__module__ =", "__module__"
    ),
    Attack("class_swap", in_forward("self.__class__ = nn.Linear"), "self.__class__", "__class__"),
    Attack("class_cell", in_forward("c = __class__"), "c = __class__", "__class__"),
    Attack(
        "module_getattr",
        at_module("def __getattr__(name):\n    return name"),
        "def __getattr__",
        "__getattr__",
    ),
] + [
    Attack(
        f"method_{name.strip('_')}",
        model_source(klass=f"def {name}(self, *args):\n    return None"),
        f"def {name}",
        f"method {name} is not allowed",
    )
    for name in (
        "__getattr__",
        "__setattr__",
        "__reduce__",
        "__new__",
        "__init_subclass__",
        "__del__",
    )
]

DUNDER_BENIGN = {
    "dunder_methods": model_source(
        klass=(
            "def __repr__(self) -> str:\n    return f'Net({type(self).__name__})'\n"
            "def __len__(self) -> int:\n    return 1\n"
            "def __getitem__(self, i: int) -> nn.Module:\n    return self.head\n"
        )
    ),
    "all_and_version": at_module("__all__ = ['Net']\nVERSION = torch.__version__"),
    "name_mangled_private": model_source(init="self.__hidden = 1\nself._cache = {}"),
    "base_init_call": model_source().replace("super().__init__()", "nn.Module.__init__(self)"),
}


@pytest.mark.parametrize("attack", DUNDER_ATTACKS, ids=[a.id for a in DUNDER_ATTACKS])
def test_dunder_access_and_hooks_are_refused(attack: Attack) -> None:
    refused(attack)


@pytest.mark.parametrize("source", DUNDER_BENIGN.values(), ids=DUNDER_BENIGN.keys())
def test_plain_dunder_methods_and_allowed_dunders_pass(source: str) -> None:
    accepted(source)


# -- rules 6 and 7: reaching modules and denied objects, denied attributes --------------------

MODULE_ATTACKS = [
    Attack("torch_os_system", in_forward("torch.os.system('id')"), "torch.os", "torch.os"),
    Attack(
        "alias_t_os",
        model_source(top="import torch as t", forward="t.os.system('id')"),
        "t.os",
        "torch.os",
    ),
    Attack(
        "numpy_sys",
        model_source(top="import numpy as np", forward="s = np.sys"),
        "np.sys",
        "numpy.sys",
    ),
    Attack(
        "torch_hub_load", in_forward("m = torch.hub.load('a/b', 'c')"), "torch.hub", "torch.hub"
    ),
    Attack("torch_load", in_forward("state = torch.load('w.pt')"), "torch.load", "torch.load"),
    Attack(
        "cpp_extension",
        in_forward("ext = torch.utils.cpp_extension.load_inline('e', '')"),
        "cpp_extension",
        "torch.utils.cpp_extension",
    ),
    Attack("torch_ops", in_forward("y = torch.ops.aten.add(x, x)"), "torch.ops", "torch.ops"),
    Attack(
        "torch_distributed",
        in_forward("torch.distributed.init_process_group('gloo')"),
        "distributed",
        "torch.distributed",
    ),
    Attack(
        "torch_multiprocessing",
        in_forward("torch.multiprocessing.spawn(print)"),
        "multiprocessing",
        "torch.multiprocessing",
    ),
    Attack(
        "np_ctypeslib",
        model_source(top="import numpy as np", forward="p = np.ctypeslib.as_ctypes(x.numpy())"),
        "ctypeslib",
        "numpy.ctypeslib",
    ),
    Attack(
        "np_load",
        model_source(top="import numpy as np", init="w = np.load('w.npy')"),
        "np.load",
        "numpy.load",
    ),
    Attack(
        "torch_from_file",
        in_forward("t = torch.from_file('f', size=4)"),
        "from_file",
        "torch.from_file",
    ),
    Attack(
        "untyped_storage_from_file",
        in_forward("s = torch.UntypedStorage.from_file('f', True, 4)"),
        "from_file",
        "from_file",
    ),
    Attack("torch_private_C", in_forward("c = torch._C"), "torch._C", "private"),
    Attack("torch_typo", in_forward("y = torch.relux(x)"), "relux", "torch.relux does not exist"),
    Attack(
        "project_module_traversal",
        model_source(
            top="import biosignals.models.cnn1d",
            forward="biosignals.models.cnn1d.torch.hub.load('a', 'b')",
        ),
        "cnn1d.torch",
        "biosignals.models.cnn1d.torch",
    ),
    Attack(
        "reexported_denied_module",
        in_forward("d = torch.nn.parallel.distributed.dist"),
        "parallel",
        "torch.distributed",
    ),
    Attack(
        "reexported_denied_object",
        in_forward("ops = torch.ao.nn.quantized.modules.conv.ops"),
        "quantized",
        "torch.ops",
    ),
    Attack(
        "reexported_forward_ref",
        in_forward("r = torch.utils.checkpoint.ForwardRef('x')"),
        "ForwardRef",
        "typing.ForwardRef",
    ),
    Attack(
        "module_as_value", in_forward("lib = torch"), "lib = torch", "using module torch as a value"
    ),
    Attack(
        "submodule_as_value",
        at_module("LIBS = [torch.nn.functional]"),
        "LIBS",
        "using module torch.nn.functional as a value",
    ),
    Attack(
        "monkeypatch_library", in_forward("torch.relu = torch.sigmoid"), "torch.relu =", "assigning"
    ),
    Attack(
        "monkeypatch_class",
        model_source(init="nn.Module.forward = None"),
        "nn.Module.forward",
        "assigning",
    ),
    Attack(
        "operator_attrgetter",
        model_source(top="import operator", forward="c = operator.attrgetter('__class__')(x)"),
        "attrgetter",
        "operator.attrgetter",
    ),
    Attack(
        "typing_get_type_hints",
        model_source(top="import typing", forward="h = typing.get_type_hints(Net)"),
        "get_type_hints",
        "typing.get_type_hints",
    ),
    Attack(
        "scipy_load_npz",
        model_source(top="import scipy.sparse", init="w = scipy.sparse.load_npz('w.npz')"),
        "load_npz",
        "scipy.sparse.load_npz",
    ),
    Attack(
        "storage_file_method",
        in_forward("x.untyped_storage()._share_filename_cpu_()"),
        "_share_filename_cpu_",
        "._share_filename_cpu_",
    ),
    Attack(
        "profiler_trace_file",
        in_forward(
            "with torch.autograd.profiler.profile() as p:\n"
            "    y = x * 2\n"
            "p.export_chrome_trace('t')"
        ),
        "export_chrome_trace",
        ".export_chrome_trace",
    ),
    Attack(
        "builtin_class_patch", in_forward("int.bit_length = None"), "int.bit_length", "assigning"
    ),
    Attack("arr_tofile", in_forward("x.numpy().tofile('/tmp/x')"), "tofile", ".tofile is refused"),
    Attack("share_memory", in_forward("x.share_memory_()"), "share_memory_", ".share_memory_"),
    Attack(
        "generator_frame",
        in_forward("g = (i for i in range(2))\nback = g.gi_frame.f_back"),
        "gi_frame",
        ".gi_frame",
    ),
    Attack(
        "traceback_frame",
        in_forward("try:\n    pass\nexcept Exception as e:\n    e2 = e.with_traceback(None)"),
        "with_traceback",
        "with_traceback",
    ),
    Attack("frame_locals", in_forward("loc = self.frame.f_locals"), "f_locals", ".f_locals"),
    Attack("format_map", in_forward("s = '{x}'.format_map({'x': x})"), "format_map", ".format_map"),
    Attack(
        "match_class_dunder",
        in_forward("match x:\n    case object(__class__=c):\n        pass"),
        "case object",
        "__class__",
    ),
]

MODULE_BENIGN = {
    "numpy_window": model_source(
        top="import numpy as np",
        init="self.register_buffer('win', torch.tensor(np.hanning(16), dtype=torch.float32))",
    ),
    "scipy_firwin": model_source(
        top="from scipy import signal",
        init="taps = signal.firwin(31, 0.2)\nself.register_buffer('fir', torch.tensor(taps))",
    ),
    "torch_functions": model_source(
        top="import math\nfrom torch.nn import functional as F",
        forward=(
            "q = torch.softmax(x @ x.transpose(-2, -1) / math.sqrt(x.shape[-1]), dim=-1)\n"
            "x = torch.einsum('bij,bjk->bik', q, x)\nx = F.gelu(torch.fft.irfft(torch.fft.rfft(x)))"
        ),
    ),
    "einops_rearrange": model_source(
        top="from einops import rearrange", forward="x = rearrange(x, 'b c t -> b c t')"
    ),
    "self_private_state": model_source(
        init="self._steps = 0", klass="def _bump(self) -> None:\n    self._steps += 1"
    ),
    "register_buffer_and_modulelist": model_source(
        init=(
            "self.register_buffer('scale', torch.ones(1))\n"
            "self.layers = nn.ModuleList([nn.Identity() for _ in range(2)])\n"
            "self.named = nn.ModuleDict({'a': nn.ReLU()})"
        )
    ),
    "load_state_dict_named_method": in_forward(
        "keys = [k for k in self.state_dict()]\nassert keys"
    ),
    "docstring_mentions_danger": model_source(
        module='"""Do not call os.system or eval here; torch.load is refused."""',
        forward="note = 'never open(), exec or __import__ anything'",
    ),
}


@pytest.mark.parametrize("attack", MODULE_ATTACKS, ids=[a.id for a in MODULE_ATTACKS])
def test_reaching_modules_and_denied_objects_is_refused(attack: Attack) -> None:
    refused(attack)


@pytest.mark.parametrize("source", MODULE_BENIGN.values(), ids=MODULE_BENIGN.keys())
def test_library_computations_pass(source: str) -> None:
    accepted(source)


# -- rule 8: format strings ---------------------------------------------------------------------

FORMAT_ATTACKS = [
    Attack(
        "format_attribute", in_forward("s = '{0.__class__}'.format(x)"), "format(x)", "format field"
    ),
    Attack(
        "format_item", in_forward("s = '{v[0]}'.format(v=[x])"), "format(v=", "format field {v[0]}"
    ),
    Attack(
        "format_nested_spec",
        in_forward("s = '{0:{1.real}}'.format(x, 2)"),
        "format(x, 2)",
        "{1.real}",
    ),
    Attack(
        "format_variable_template",
        in_forward("t = '{}'\ns = t.format(x)"),
        "t.format",
        "not a string constant",
    ),
    Attack("str_format_value", in_forward("fmt = str.format"), "str.format", "format method"),
    Attack("bound_format_value", in_forward("fmt = '{}'.format"), "'{}'.format", "format method"),
]

FORMAT_BENIGN = {
    "plain_fields": in_forward("s = '{} {name} {0:.3f}'.format(1.0, name='x')"),
    "fstring_and_percent": in_forward("s = f'{x.shape[0]:>4} items' + '%d' % 3"),
    "nested_plain_spec": in_forward("s = '{0:{1}}'.format(3.14159, '.2f')"),
}


@pytest.mark.parametrize("attack", FORMAT_ATTACKS, ids=[a.id for a in FORMAT_ATTACKS])
def test_format_string_traversal_is_refused(attack: Attack) -> None:
    refused(attack)


@pytest.mark.parametrize("source", FORMAT_BENIGN.values(), ids=FORMAT_BENIGN.keys())
def test_plain_format_strings_pass(source: str) -> None:
    accepted(source)


# -- rules 10 and 11: import-time code, classes, decorators -------------------------------------

IMPORT_TIME_ATTACKS = [
    Attack("module_print", at_module("print('hello')"), "print(", "at module level is not allowed"),
    Attack(
        "module_manual_seed", at_module("torch.manual_seed(0)"), "manual_seed", "at module level"
    ),
    Attack(
        "module_layer", at_module("LAYER = nn.Linear(2, 2)"), "LAYER", "nn.Linear(2, 2) at module"
    ),
    Attack(
        "module_comprehension",
        at_module("SIZES = [2 ** i for i in range(3)]"),
        "SIZES",
        "at module",
    ),
    Attack("module_while", at_module("while True:\n    pass"), "while True", "while statement"),
    Attack("module_for", at_module("for i in range(3):\n    pass"), "for i", "for statement"),
    Attack(
        "module_if_main",
        at_module(
            "if __name__ == '__main__':\n    print(Net(in_channels=1, input_length=8, "
            "num_classes=2))"
        ),
        "if __name__",
        "remove it",
    ),
    Attack(
        "module_try",
        at_module("try:\n    pass\nexcept Exception:\n    pass"),
        "try:",
        "try statement",
    ),
    Attack(
        "module_with", at_module("with torch.no_grad():\n    pass"), "with torch", "with statement"
    ),
    Attack("module_del", at_module("del nn"), "del nn", "del statement"),
    Attack(
        "module_attribute_assign",
        at_module("nn.Module.dump_patches = True"),
        "dump_patches",
        "assign",
    ),
    Attack(
        "default_arg_call",
        at_module("def helper(x=print('side effect')):\n    return x"),
        "def helper",
        "parameter default",
    ),
    Attack(
        "default_arg_library_call",
        model_source(klass="def scale(self, x, w=torch.zeros(3)):\n    return x * w"),
        "torch.zeros(3)",
        "parameter default",
    ),
    Attack("class_body_call", model_source(klass="TABLE = torch.zeros(3)"), "TABLE", "class body"),
    Attack(
        "class_body_loop",
        model_source(klass="for i in range(3):\n    pass"),
        "for i",
        "in a class body",
    ),
    Attack(
        "annotation_call",
        at_module("def helper(x: print('hi')) -> None:\n    pass"),
        "def helper",
        "in an annotation",
    ),
    Attack(
        "enum_init_runs_at_import",
        model_source(
            top="import enum",
            module="class Mode(enum.Enum):\n    A = 1\n    def __init__(self, v):\n        pass",
        ),
        "def __init__(self, v)",
        "Enum Mode",
    ),
    Attack(
        "metaclass",
        model_source(module="class Meta(type):\n    pass\nclass Other(metaclass=Meta):\n    pass"),
        "class Other",
        "metaclass=",
    ),
    Attack(
        "call_as_base",
        at_module("def make_base():\n    return nn.Module\nclass Other(make_base()):\n    pass"),
        "class Other",
        "class base make_base()",
    ),
    Attack(
        "decorator_not_allowed",
        model_source(top="import functools", klass="@functools.lru_cache\ndef f(self):\n    pass"),
        "lru_cache",
        "decorator @functools.lru_cache",
    ),
    Attack(
        "decorator_defined_here",
        at_module("def deco(fn):\n    return fn\n@deco\ndef helper():\n    pass"),
        "@deco",
        "decorator @deco",
    ),
    Attack(
        "decorator_with_call_argument",
        model_source(
            top="import dataclasses",
            module="@dataclasses.dataclass(repr=print('x'))\nclass C:\n    a: int = 1",
        ),
        "@dataclasses",
        "decorator arguments must be constants",
    ),
    Attack(
        "decorator_jit",
        model_source(klass="@torch.jit.script\ndef f(self, x):\n    return x"),
        "@torch.jit",
        "decorator @torch.jit.script",
    ),
]

IMPORT_TIME_BENIGN = {
    "constants_and_arithmetic": at_module(
        "WIDTH = 16\nHIDDEN = WIDTH * 4 + 1\nEPS = -1e-6\nSCALE = math.pi / 2\nKS = (3, 5, 7)",
        top="import math",
    ),
    "class_tables": at_module("ACTS = {'relu': nn.ReLU, 'gelu': nn.GELU}\nTensor = torch.Tensor"),
    "partial_typevar_namedtuple": at_module(
        "Conv = partial(nn.Conv1d, bias=False)\nT = TypeVar('T')\n"
        "Point = namedtuple('Point', 'x y')\nBox = typing.NamedTuple('Box', [('w', int)])",
        top="import typing\nfrom collections import namedtuple\nfrom functools import partial\n"
        "from typing import TypeVar",
    ),
    "dataclass_config": model_source(
        top="from dataclasses import dataclass, field",
        module=(
            "@dataclass(frozen=True)\nclass Config:\n"
            "    width: int = 16  # channels\n"
            "    kernels: list[int] = field(default_factory=lambda: [3, 5])\n"
        ),
        init="self.config = Config()",
    ),
    "enum_and_property_setter": model_source(
        top="import enum",
        module="class Mode(enum.Enum):\n    A = enum.auto()\n    B = enum.auto()",
        klass=(
            "@property\ndef scale(self) -> float:\n    return 1.0\n"
            "@scale.setter\ndef scale(self, value: float) -> None:\n    pass\n"
            "@staticmethod\ndef helper() -> int:\n    return 1\n"
            "@torch.no_grad()\ndef predict(self, x):\n    return self(x)"
        ),
    ),
    "generic_base_and_lambda": at_module(
        "T = TypeVar('T')\nclass Box(Generic[T]):\n    pass\nSQUARE = lambda v: v * v",
        top="from typing import Generic, TypeVar",
    ),
    "match_walrus_try_assert": in_forward(
        "match x.dim():\n    case 3:\n        pass\n"
        "    case _:\n        raise ValueError(f'{x.dim()}')\n"
        "if (n := x.shape[0]) < 1:\n    raise ValueError('empty')\n"
        "try:\n    assert n > 0\nexcept AssertionError:\n    pass"
    ),
    "string_annotations_under_future": "from __future__ import annotations\n"
    + at_module(
        "def helper(x: Optional[Sequence[int]] = None) -> tuple[int, ...]:\n    return ()",
        top="from typing import Optional, Sequence",
    ),
    "class_attribute_defaults": model_source(
        module="class Defaults:\n    width = 8\n    depth = width // 2",
        klass="def make(self, width: int = Defaults.width) -> int:\n    return width",
    ),
}


@pytest.mark.parametrize("attack", IMPORT_TIME_ATTACKS, ids=[a.id for a in IMPORT_TIME_ATTACKS])
def test_code_running_at_import_is_refused(attack: Attack) -> None:
    refused(attack)


@pytest.mark.parametrize("source", IMPORT_TIME_BENIGN.values(), ids=IMPORT_TIME_BENIGN.keys())
def test_static_definitions_pass(source: str) -> None:
    accepted(source)


# -- rule 12: source limits and fail-closed parsing ---------------------------------------------

LIMIT_ATTACKS = [
    Attack("syntax_error", at_module("def broken(:\n    pass"), "def broken", "syntax error"),
    Attack("null_byte", model_source() + "\x00", None, "null byte"),
    Attack("deep_nesting", at_module("X = " + "[" * 150 + "]" * 150), "X = ", "nested deeper"),
    Attack("unary_recursion", at_module("X = " + "-" * 50_000 + "1"), None, "nested deeper"),
    Attack("parenthesis_bomb", at_module("X = " + "(" * 300 + ")" * 300), "X = ", "syntax error"),
    Attack("too_large", model_source() + "#" * MAX_SOURCE_BYTES, None, "-byte limit"),
    Attack("lone_surrogate", model_source(forward="s = '\udc80'"), None, "not valid UTF-8"),
    Attack(
        "indentation_bomb",
        "def f():\n" + "".join(" " * i + "if 1:\n" for i in range(1, 120)) + " " * 120 + "pass\n",
        None,
        "syntax error",
    ),
]


@pytest.mark.parametrize("attack", LIMIT_ATTACKS, ids=[a.id for a in LIMIT_ATTACKS])
def test_malformed_or_oversized_source_is_refused(attack: Attack) -> None:
    refused(attack)


LIMIT_BENIGN = {
    "just_under_the_size_limit": model_source() + "#" * (MAX_SOURCE_BYTES - 1000) + "\n",
    "moderately_nested": at_module("X = " + "[" * 40 + "]" * 40),
    "unicode_text": model_source(forward="label = 'Herzschlag – ♥, µV'"),
}


@pytest.mark.parametrize("source", LIMIT_BENIGN.values(), ids=LIMIT_BENIGN.keys())
def test_sources_within_the_limits_pass(source: str) -> None:
    accepted(source)


def test_checking_never_runs_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = at_module(f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)")
    report = validate_model_source(source)
    assert report.ok is False
    assert not marker.exists()


def test_non_string_source_is_refused_not_crashing() -> None:
    report = validate_model_source(b"import torch")  # type: ignore[arg-type]
    assert report.ok is False
    assert "must be a str" in report.reasons[0]


# -- model class selection, reports, errors -----------------------------------------------------

HELPERS_AND_MODEL = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class Stack(nn.Sequential):
    pass


class Small(nn.Module):
    def __init__(self, *, in_channels: int, input_length: int, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(Block(x.shape[1])(x).mean(dim=-1))


class Big(Small):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 2


class Config:
    width = 8
"""


def test_model_class_is_the_last_contract_class() -> None:
    report = accepted(HELPERS_AND_MODEL, model_class="Big")
    assert report.classes == ("Block", "Stack", "Small", "Big")


def test_model_class_by_name() -> None:
    report = validate_model_source(HELPERS_AND_MODEL, class_name="Small")
    assert report.ok is True
    assert report.model_class == "Small"


def test_named_model_class_must_exist() -> None:
    report = validate_model_source(HELPERS_AND_MODEL, class_name="Config")
    assert report.ok is False
    assert report.model_class is None
    assert report.reasons == (
        "class Config not found; classes defined: Block, Stack, Small, Big; name one of them "
        "or define Config as an nn.Module subclass with forward",
    )


def test_a_model_needs_the_contract_arguments() -> None:
    source = (
        model_source()
        .replace("*, in_channels: int, input_length: int, num_classes: int", "width: int = 4")
        .replace("nn.Linear(in_channels, num_classes)", "nn.Linear(width, 3)")
    )
    report = validate_model_source(source)
    assert report.ok is False
    assert report.classes == ("Net",)
    assert report.reasons == (
        "no nn.Module subclass whose __init__ takes in_channels, input_length and num_classes; "
        "classes defined: Net; add them as keyword-only parameters of the model's __init__",
    )


@pytest.mark.parametrize(
    "source",
    [
        at_module("def helper(x):\n    return x").replace("class Net(nn.Module)", "class Net"),
        "import torch\nfrom torch import nn\n\nclass Net(nn.Module):\n    pass\n",
    ],
    ids=["no_module_subclass", "module_without_forward"],
)
def test_a_module_subclass_with_forward_is_required(source: str) -> None:
    report = validate_model_source(source)
    assert report.ok is False
    assert report.classes == ()
    assert any("no nn.Module subclass with a forward method" in r for r in report.reasons)


def test_kwargs_and_library_init_count_as_the_contract() -> None:
    kwargs = (
        model_source()
        .replace("*, in_channels: int, input_length: int, num_classes: int", "**kwargs")
        .replace("nn.Linear(in_channels, num_classes)", "nn.Linear(1, 3)")
    )
    assert accepted(kwargs).model_class == "Net"
    subclass = (
        "import torch\nfrom biosignals.models import CNN1D\n\n"
        "class Tuned(CNN1D):\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
        "        return super().forward(x)\n"
    )
    assert accepted(subclass, model_class="Tuned").classes == ("Tuned",)


def test_imports_are_listed_dotted_sorted_unique() -> None:
    source = model_source(
        top=(
            "import torch.nn.functional as F\nfrom einops.layers.torch import Rearrange\n"
            "from torch.nn import functional\nimport numpy as np\nfrom torch import nn"
        )
    )
    report = accepted(source)
    assert report.imports == (
        "einops.layers.torch",
        "numpy",
        "torch",
        "torch.nn",
        "torch.nn.functional",
    )


def test_offline_template_passes() -> None:
    report = accepted(generated_model_source(width=16, stages=3, kernel_size=7), "SEResNet1D")
    assert report.classes == ("SEBlock", "SEResNet1D")


def test_every_problem_is_reported_one_line_each() -> None:
    source = model_source(
        top="import os",
        module="print('x')",
        forward="eval('1')\ny = torch.load('w')\ns = '{0.__class__}'.format(x)",
    )
    report = validate_model_source(source)
    fragments = ["import of os", "print('x')", "eval is not allowed", "torch.load", "format field"]
    assert len(report.reasons) == len(fragments)
    for fragment, reason in zip(fragments, report.reasons, strict=True):
        assert fragment in reason
        assert "\n" not in reason
        assert reason.startswith("line ")


def test_require_valid_model_source_raises_with_every_reason() -> None:
    source = model_source(forward="open('x')\nexec('y')")
    with pytest.raises(UnsafeModelError) as caught:
        require_valid_model_source(source)
    error = caught.value
    assert isinstance(error, ValueError)
    assert len(error.reasons) == 2
    message = str(error)
    assert message == "model code rejected: " + "; ".join(error.reasons)
    assert "\n" not in message


def test_require_valid_model_source_returns_the_report() -> None:
    report = require_valid_model_source(model_source())
    assert report.ok and report.model_class == "Net"


def test_checker_errors_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.safety.code_policy as code_policy

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(code_policy, "find_model_classes", explode)
    report = validate_model_source(model_source())
    assert report.ok is False
    assert "could not analyse" in report.reasons[0]


def test_at_least_45_distinct_attacks() -> None:
    groups = [
        IMPORT_ATTACKS,
        BUILTIN_ATTACKS,
        DUNDER_ATTACKS,
        MODULE_ATTACKS,
        FORMAT_ATTACKS,
        IMPORT_TIME_ATTACKS,
        LIMIT_ATTACKS,
    ]
    ids = [a.id for group in groups for a in group]
    assert len(ids) == len(set(ids)) >= 45


# -- the benign model zoo -----------------------------------------------------------------------

ZOO = zoo_sources()


def test_zoo_has_at_least_16_models_and_a_class_for_each() -> None:
    assert len(ZOO) >= 16
    assert set(ZOO) == set(ZOO_MODEL_CLASSES)


@pytest.mark.parametrize("stem", sorted(ZOO))
def test_zoo_model_is_accepted(stem: str) -> None:
    report = validate_model_source(ZOO[stem], filename=f"{stem}.py")
    assert report.reasons == ()
    assert report.model_class == ZOO_MODEL_CLASSES[stem]
    assert ZOO[stem].lstrip().startswith('"""')  # each file states its architecture


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("stem", sorted(ZOO))
def test_zoo_model_trains_one_step(stem: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = build_zoo_model(stem, in_channels=in_channels, input_length=216, num_classes=3)
    assert count_parameters(model) < 200_000
    out = forward_backward(model, torch.randn(2, in_channels, 216))
    assert out.shape == (2, 3)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
