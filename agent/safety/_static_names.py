"""Static resolution of the names generated model code imports (nothing of that code runs).

`agent.safety.code_policy` uses this to check imports (its rule 1) and attribute chains rooted
at imported names (its rule 6): it imports the trusted allowlisted module itself (torch,
numpy, ...) and follows `getattr` step by step, never calling anything, so `torch.os`,
`np.load` or `biosignals.models.cnn1d.torch.hub` are seen for what they are.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agent.safety import policy

__all__ = [
    "Binding",
    "ImportResult",
    "attribute_name_why",
    "denied_objects",
    "is_dunder",
    "module_problem",
    "preload",
    "resolve_chain",
    "resolve_import",
]

_ALLOWED_ROOTS = ", ".join(sorted(r for r in policy.ALLOWED_IMPORT_ROOTS if r != "biosignals"))
_TOOLING_MODULES = frozenset({"conftest", "setup", "tests", "testing", "benchmarks"})
_MISSING = "it is not installed or does not exist; check the name"
_FRAME_PREFIXES = ("f_", "tb_", "gi_", "cr_", "ag_")
_DENIED_HINT = (
    "it reads or writes files, loads pickles or native code, or evaluates strings as code or "
    "attribute paths; write the computation out in torch/numpy code (weights are built in "
    "__init__, data comes through forward)"
)


@dataclass(frozen=True)
class Binding:
    """A module-level name bound by an import.

    Attributes:
        name: the bound name (`F`, `torch`).
        qualname: dotted path of what it refers to (`torch.nn.functional`).
        obj: the trusted object itself, or None when the import was refused (nothing to follow).
    """

    name: str
    qualname: str
    obj: object | None

    @property
    def is_module(self) -> bool:
        """Whether the name refers to a module object."""
        return isinstance(self.obj, types.ModuleType)


@dataclass(frozen=True)
class ImportResult:
    """What one import statement binds, the modules it imports and the rules it breaks."""

    bindings: tuple[Binding, ...]
    modules: tuple[str, ...]
    problems: tuple[str, ...]


def is_dunder(name: str) -> bool:
    """Whether `name` has the `__x__` form."""
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_project(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in policy.ALLOWED_PROJECT_MODULES)


def _is_denied_name(qualname: str) -> bool:
    if qualname in policy.DENIED_QUALIFIED_NAMES:
        return True
    return any(qualname == d or qualname.startswith(d + ".") for d in policy.DENIED_MODULES)


def module_problem(name: str) -> str | None:
    """Why generated code may not import or reach module `name`, or None when it may."""
    if _is_denied_name(name):
        return (
            f"{name} is not allowed: the module gives file, network, process, compiler or "
            "native-code access; compute with torch, numpy, scipy or einops instead"
        )
    if not policy.is_allowed_module(name):
        return (
            f"import of {name} is not allowed: generated models may import only {_ALLOWED_ROOTS} "
            "and biosignals.models; build the model from those"
        )
    tooling = [p for p in name.split(".")[1:] if p in _TOOLING_MODULES]
    if tooling:
        return (
            f"{name} is not allowed: {tooling[0]} modules are test or packaging tooling, not "
            "for models; use the library's public API"
        )
    private = [p for p in name.split(".")[1:] if p.startswith("_")]
    if private and not _is_project(name):
        return (
            f"{name} is not allowed: {private[0]} is a private module (library internals); "
            "use the public API (torch.nn, torch.nn.functional, numpy.fft, scipy.signal)"
        )
    return None


def _is_project_parent(name: str) -> bool:
    return any(m.startswith(name + ".") for m in policy.ALLOWED_PROJECT_MODULES)


def _import(name: str) -> types.ModuleType | None:
    """Import a trusted module (allowed or a parent package of the project's allowed ones)."""
    if module_problem(name) is not None and not _is_project_parent(name):
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # an allowed name that does not exist or fails: refused by the caller
        return None


def denied_objects() -> dict[int, str]:
    """id -> qualified name of every denied object already loaded (to catch re-exports).

    Reads module dictionaries only (`vars`), so nothing is imported or triggered lazily.
    """
    found: dict[int, str] = {}
    for qualname in (*policy.DENIED_QUALIFIED_NAMES, *policy.DENIED_MODULES):
        obj = sys.modules.get(qualname)
        parent_name, _, attr = qualname.rpartition(".")
        parent = sys.modules.get(parent_name)
        if obj is None and parent is not None:
            obj = vars(parent).get(attr)
        if obj is not None and not isinstance(obj, int | float | str | bytes):
            found[id(obj)] = qualname
    return found


def attribute_name_why(attr: str) -> str | None:
    """Why attribute `attr` is refused on any object (dunder or denied names), or None."""
    if is_dunder(attr) and attr not in policy.ALLOWED_DUNDER_ATTRIBUTES:
        return (
            f"dunder attributes such as {attr} reach interpreter internals (classes, globals, "
            "code objects); use the public API (isinstance(x, C), type(x).__name__, "
            "super().__init__())"
        )
    if attr in policy.DENIED_ATTRIBUTES:
        if attr.startswith(_FRAME_PREFIXES) or attr == "with_traceback":
            why = "it reaches frames, code objects or tracebacks, which models never need"
        else:
            why = (
                "it does file I/O, shared memory, native code or process control, or evaluates "
                "strings as code or attribute paths; keep data in tensors and write the code out"
            )
        return f".{attr} is refused on any object: {why}"
    return None


def preload(nodes: Iterable[ast.Import | ast.ImportFrom]) -> None:
    """Import the trusted modules these statements name, so `getattr` sees what code will."""
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                _import(alias.name)
        elif not node.level and node.module:
            _import(node.module)


@dataclass(frozen=True)
class _Problem:
    """Why a step of an attribute chain is refused."""

    text: str


def _step_problem(path: str, attr: str, *, of_module: bool) -> str | None:
    """String-level checks of one step `path.attr` (from a module or another library object)."""
    new = f"{path}.{attr}"
    if new in policy.DENIED_QUALIFIED_NAMES:
        return f"{new} is not allowed: {_DENIED_HINT}"
    if _is_denied_name(new):
        return module_problem(new)
    if attr.startswith("_") and not is_dunder(attr) and not _is_project(path):
        kind = "module" if of_module else "library object"
        return (
            f"{new} is not allowed: private (underscore) attributes of a {kind} are library "
            "internals; use the public API"
        )
    return None


def _follow(cur: types.ModuleType, path: str, attr: str, denied: dict[int, str]) -> object:
    """`getattr(cur, attr)` under the module rules: the object reached, or a `_Problem`."""
    new = f"{path}.{attr}"
    try:
        nxt = getattr(cur, attr)
    except Exception:
        return _Problem(
            f"{new} does not exist: module {path} has no attribute {attr} (unknown names are "
            "refused); check the spelling or import the submodule explicitly"
        )
    if id(nxt) in denied:
        return _Problem(f"{new} is {denied[id(nxt)]}, which is not allowed: {_DENIED_HINT}")
    if isinstance(nxt, types.ModuleType):
        if nxt.__name__ != new:
            return _Problem(
                f"{new} is not allowed: it is the module {nxt.__name__} reached through {path}, "
                "not a submodule of it; import allowed modules directly at the top of the file"
            )
        problem = module_problem(new)
        if problem is not None:
            return _Problem(problem)
    return nxt


def resolve_chain(
    binding: Binding, attrs: list[str], denied: dict[int, str]
) -> tuple[object | None, int, str | None]:
    """Follow `binding.attr1.attr2...` statically.

    Args:
        binding: the imported name the chain starts at.
        attrs: the attribute names, innermost first.
        denied: `denied_objects()`.

    Returns:
        (object reached or None when not followed to the end, index of the offending attribute,
        problem or None). Non-module objects are not followed further (their attributes are
        only checked by name).
    """
    cur: object | None = binding.obj
    path = binding.qualname
    for index, attr in enumerate(attrs):
        if cur is None or is_dunder(attr):
            return None, index, None
        problem = _step_problem(path, attr, of_module=isinstance(cur, types.ModuleType))
        if problem is not None:
            return None, index, problem
        if not isinstance(cur, types.ModuleType):
            return None, index, None
        nxt = _follow(cur, path, attr, denied)
        if isinstance(nxt, _Problem):
            return None, index, nxt.text
        cur, path = nxt, f"{path}.{attr}"
    return cur, len(attrs), None


def _import_names(node: ast.Import) -> Iterator[tuple[Binding, str, str | None]]:
    for alias in node.names:
        problem = module_problem(alias.name)
        module = _import(alias.name) if problem is None else None
        if problem is None and module is None:
            problem = f"module {alias.name} cannot be imported: {_MISSING}"
        if alias.asname:
            yield Binding(alias.asname, alias.name, module), alias.name, problem
        else:
            root = alias.name.split(".", 1)[0]
            yield Binding(root, root, _import(root)), alias.name, problem


def _from_import_name(
    module_name: str, name: str, denied: dict[int, str]
) -> tuple[object | None, bool, str | None]:
    """(object, whether it is a submodule, problem) for `from module_name import name`."""
    if name == "*":
        return (
            None,
            False,
            (
                f"from {module_name} import * is not allowed: it hides which names the code uses; "
                "import the names you need (from torch import nn)"
            ),
        )
    parent_problem = module_problem(module_name)
    if parent_problem is not None and not _is_project_parent(module_name):
        return None, False, parent_problem
    problem = _step_problem(module_name, name, of_module=True)
    why = attribute_name_why(name)
    if problem is None and why is not None:
        problem = f"from {module_name} import {name} is not allowed: {why}"
    if problem is not None:
        return None, False, problem
    parent = _import(module_name)
    if parent is None:
        return None, False, f"module {module_name} cannot be imported: {_MISSING}"
    sub = f"{module_name}.{name}"
    if name not in vars(parent) and _import(sub) is None and not hasattr(parent, name):
        return (
            None,
            False,
            module_problem(sub)
            or (f"cannot import {name} from {module_name}: no such name; check the spelling"),
        )
    result = _follow(parent, module_name, name, denied)
    if isinstance(result, _Problem):
        return None, False, result.text
    if isinstance(result, types.ModuleType):
        return result, True, None
    return (None, False, parent_problem) if parent_problem else (result, False, None)


def resolve_import(node: ast.Import | ast.ImportFrom, denied: dict[int, str]) -> ImportResult:
    """Check one import statement and say what it binds (see the module docstring)."""
    if isinstance(node, ast.Import):
        rows = list(_import_names(node))
        return ImportResult(
            bindings=tuple(b for b, _, _ in rows),
            modules=tuple(m for _, m, _ in rows),
            problems=tuple(p for _, _, p in rows if p),
        )
    if node.level:
        dots = "." * node.level + (node.module or "")
        return ImportResult(
            bindings=tuple(Binding(a.asname or a.name, a.name, None) for a in node.names),
            modules=(dots,),
            problems=(
                f"relative import from {dots} is not allowed: generated models are single "
                "files; import from torch, numpy, scipy, einops or biosignals.models by full name",
            ),
        )
    module_name = node.module or ""
    bindings: list[Binding] = []
    modules = [module_name]
    problems: list[str] = []
    for alias in node.names:
        obj, is_module, problem = _from_import_name(module_name, alias.name, denied)
        if is_module:
            modules.append(f"{module_name}.{alias.name}")
        if problem:
            problems.append(problem)
        bindings.append(Binding(alias.asname or alias.name, f"{module_name}.{alias.name}", obj))
    return ImportResult(tuple(bindings), tuple(modules), tuple(problems))
