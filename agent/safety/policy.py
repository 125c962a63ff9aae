"""What agent-written model code may use: the shared allowlists of the safety layer.

One table for the static check (`agent.safety.code_policy`), the runtime guard
(`agent.safety.guard`) and the restricted builtins generated modules run with
(`agent.safety.sandbox`), so the three can never disagree about what is allowed.

Module rules: a module `m` may be imported by generated code iff its top-level package is in
`ALLOWED_IMPORT_ROOTS`, it is not `DENIED_MODULES` or below one of them, and, for the
project's own package, it lies under `ALLOWED_PROJECT_MODULES` (`biosignals.models`: the model
contract and its helpers; `biosignals.data` writes files and is not for models).
"""

from __future__ import annotations

import re

__all__ = [
    "ALLOWED_DECORATORS",
    "ALLOWED_DUNDER_ATTRIBUTES",
    "ALLOWED_IMPORT_ROOTS",
    "ALLOWED_PROJECT_MODULES",
    "CONTRACT_KWARGS",
    "DEFAULT_SMOKE_DIMS",
    "DENIED_ATTRIBUTES",
    "DENIED_MODULES",
    "DENIED_QUALIFIED_NAMES",
    "FEATURES_KWARG",
    "FORBIDDEN_BUILTINS",
    "GENERATED_FILENAME_PREFIX",
    "GENERATED_PACKAGE",
    "NAME_PATTERN",
    "SAFE_BUILTINS",
    "generated_filename",
    "is_allowed_module",
    "is_generated_filename",
]

GENERATED_PACKAGE = "generated_models"
"""The package generated models live in (`generated_models.<name>`); never imported by name."""

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")  # use fullmatch: `$` admits a trailing "\n"
"""Names of agent-written configs and generated models (file stems)."""

GENERATED_FILENAME_PREFIX = "<generated_models/"
"""Code compiled from generated source carries the filename `<generated_models/NAME.py>`; the
runtime guard recognises generated frames on the stack by this prefix."""

CONTRACT_KWARGS = ("in_channels", "input_length", "num_classes")
"""Keyword arguments every model constructor takes (see `biosignals.models`)."""

FEATURES_KWARG = "num_features"
"""The contract's optional constructor keyword: a model whose constructor names it explicitly
(`**kwargs` does not count) is built with `num_features=F` and called as `forward(x, features)`
with per-window side features of shape (B, F) (ECG: F = 9 RR-interval features; may be 0);
any other model is built without it and called as `forward(x)`."""


def smoke_dim_problem(key: str, value: object) -> str | None:
    """What smoke-test dimension `key` must be when `value` is not that, else None: a
    positive int for the contract's three, an int >= 0 for `num_features` (bools refused)."""
    lowest = 0 if key == FEATURES_KWARG else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        return "an int >= 0" if lowest == 0 else "a positive int"
    return None


DEFAULT_SMOKE_DIMS = {"in_channels": 1, "input_length": 216, "num_classes": 3, "num_features": 9}
"""Dimensions of the smoke test when the caller names none: one MIT-BIH lead, a 0.6 s window
at 360 Hz, the three AAMI classes N/S/V, and the 9 RR-interval features of an ECG beat (given
only to models that declare `num_features`; a caller's dims without the key get this default)."""

ALLOWED_IMPORT_ROOTS = frozenset(
    {
        "__future__",
        "abc",
        "biosignals",
        "collections",
        "copy",
        "dataclasses",
        "einops",
        "enum",
        "functools",
        "itertools",
        "math",
        "numbers",
        "numpy",
        "operator",
        "scipy",
        "torch",
        "typing",
    }
)

ALLOWED_PROJECT_MODULES = ("biosignals.models",)

DENIED_MODULES = (
    # torch: code download, pickles, native extensions, processes, compilers that write caches
    "torch.hub",
    "torch.serialization",
    "torch.package",
    "torch.utils.cpp_extension",
    "torch.utils.model_zoo",
    "torch.utils.data",
    "torch.utils.tensorboard",
    "torch.utils.benchmark",
    "torch.utils.bottleneck",
    "torch.utils.collect_env",
    "torch.utils.file_baton",
    "torch.distributed",
    "torch.multiprocessing",
    "torch.ops",
    "torch.classes",
    "torch.library",
    "torch.jit",
    "torch.onnx",
    "torch.export",
    "torch.compiler",
    "torch.fx",
    "torch.profiler",
    "torch.testing",
    "torch.cuda.memory",
    "torch.backends",
    # numpy / scipy: file I/O and native code
    "numpy.ctypeslib",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "numpy.lib.format",
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.lib._datasource",
    "scipy.io",
    "scipy.misc",
    "scipy.datasets",
    "scipy.weave",
)

DENIED_QUALIFIED_NAMES = frozenset(
    {
        "torch.load",
        "torch.save",
        "torch.from_file",
        "torch.compile",
        "torch.set_default_device",
        "numpy.load",
        "numpy.save",
        "numpy.savez",
        "numpy.savez_compressed",
        "numpy.savetxt",
        "numpy.loadtxt",
        "numpy.genfromtxt",
        "numpy.fromfile",
        "numpy.fromregex",
        "numpy.memmap",
        "numpy.DataSource",
        "numpy.lib",
        "scipy.LowLevelCallable",
        "scipy.sparse.load_npz",
        "scipy.sparse.save_npz",
        "operator.attrgetter",
        "operator.methodcaller",
        "typing.get_type_hints",
        "typing.ForwardRef",
        "functools.singledispatch",
        "functools.singledispatchmethod",
    }
)
"""Objects of allowed modules that generated code may not reach (file I/O, eval of strings)."""

DENIED_ATTRIBUTES = frozenset(
    {
        # file I/O methods of arrays, tensors, storages
        "tofile",
        "fromfile",
        "from_file",
        "save",
        "load",
        "loads",
        "dump",
        "dumps",
        "savez",
        "savetxt",
        "loadtxt",
        "memmap",
        "open_memmap",
        "share_memory_",
        # private storage methods that read or write files and file descriptors
        "_write_file",
        "_set_from_file",
        "_new_with_file",
        "_new_shared",
        "_new_shared_fd_cpu",
        "_new_shared_filename_cpu",
        "_new_using_fd_cpu",
        "_new_using_filename_cpu",
        "_share_fd_cpu_",
        "_share_filename_cpu_",
        "_get_shared_fd",
        # profiler traces written to files
        "export_chrome_trace",
        "export_stacks",
        "export_memory_timeline",
        # native code and processes
        "ctypes",
        "ctypeslib",
        "system",
        "popen",
        "spawn",
        "fork",
        # strings evaluated as code or attribute paths
        "get_type_hints",
        "attrgetter",
        "methodcaller",
        "format_map",
        # frames, code and tracebacks
        "f_back",
        "f_builtins",
        "f_code",
        "f_globals",
        "f_locals",
        "f_trace",
        "tb_frame",
        "tb_next",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "with_traceback",
    }
)
"""Attribute names refused on any object (the static check cannot know every object's type)."""

ALLOWED_DUNDER_ATTRIBUTES = frozenset(
    {"__init__", "__post_init__", "__name__", "__qualname__", "__doc__", "__version__"}
)
"""Dunder attributes generated code may read (`super().__init__()`, `type(self).__name__`)."""

ALLOWED_DECORATORS = frozenset(
    {
        "dataclass",
        "dataclasses.dataclass",
        "staticmethod",
        "classmethod",
        "property",
        "torch.no_grad",
        "torch.inference_mode",
        "abc.abstractmethod",
        "abstractmethod",
        "functools.cached_property",
        "cached_property",
    }
)
"""Decorators allowed on generated classes and functions (a `@<prop>.setter` is allowed too)."""

FORBIDDEN_BUILTINS = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "open",
        "input",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "help",
        "exit",
        "quit",
        "memoryview",
        "__build_class__",
        "__builtins__",
        "__loader__",
        "__spec__",
    }
)
"""Builtins generated code may not use, as calls or as values."""

SAFE_BUILTINS = frozenset(
    {
        # constants and types
        "True", "False", "None", "NotImplemented", "Ellipsis",
        "bool", "int", "float", "complex", "str", "bytes", "list", "tuple", "dict", "set",
        "frozenset", "slice", "range", "object", "type", "super", "property", "staticmethod",
        "classmethod",
        # pure functions
        "abs", "all", "any", "ascii", "bin", "callable", "chr", "divmod", "enumerate",
        "filter", "format", "hash", "hasattr", "hex", "id", "isinstance", "issubclass", "iter",
        "len", "map", "max", "min", "next", "oct", "ord", "pow", "print", "repr", "reversed",
        "round", "sorted", "sum", "zip",
        # exceptions
        "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "Exception",
        "IndexError", "KeyError", "LookupError", "NotImplementedError", "OverflowError",
        "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
        "Warning", "UserWarning", "DeprecationWarning", "RuntimeWarning",
    }
)  # fmt: skip
"""Builtins generated modules run with (and the only builtin names the static check accepts).
`type` is allowed with one argument only (the static check refuses three-argument `type`)."""


def is_allowed_module(name: str) -> bool:
    """Whether generated code may import module `name` (see the module docstring).

    Example:
        >>> is_allowed_module("torch.nn.functional"), is_allowed_module("torch.hub")
        (True, False)
    """
    if not name or name.startswith(".") or any(not part for part in name.split(".")):
        return False
    root = name.split(".", 1)[0]
    if root not in ALLOWED_IMPORT_ROOTS:
        return False
    if any(name == d or name.startswith(d + ".") for d in DENIED_MODULES):
        return False
    if root == "biosignals":
        return any(name == m or name.startswith(m + ".") for m in ALLOWED_PROJECT_MODULES)
    return True


def generated_filename(module_name: str) -> str:
    """The filename generated code is compiled under: `<generated_models/NAME.py>`.

    Args:
        module_name: `generated_models.NAME` or just `NAME`.
    """
    stem = module_name.removeprefix(GENERATED_PACKAGE + ".")
    return f"{GENERATED_FILENAME_PREFIX}{stem}.py>"


def is_generated_filename(filename: str) -> bool:
    """Whether a code object's `co_filename` marks generated code."""
    return filename.startswith(GENERATED_FILENAME_PREFIX)
