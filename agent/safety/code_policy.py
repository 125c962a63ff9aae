"""Static (AST) validation of agent-generated model code: the rules, checked without running it.

`validate_model_source` parses the source with `ast.parse` and `symtable.symtable` and walks
the tree; it never executes, imports or compiles the checked code to run. It imports only the
trusted allowlisted libraries the code names (torch, numpy, ...) to resolve attribute paths
with `getattr` (no calls). Every broken rule becomes one reason line
(`"line 12: os.system is not allowed: <why>; <what to do instead>"`); all are reported, not
just the first. It fails closed: any error while checking refuses the code with a reason.
The tables come from `agent.safety.policy`.

Rules:

1. Imports: only modules `policy.is_allowed_module` accepts (torch, numpy, scipy, einops,
   typing, math, functools, itertools, collections, dataclasses, enum, abc, copy, numbers,
   operator, `__future__`, `biosignals.models...`), no private library modules
   (`torch._C`) or test tooling (`numpy.conftest`, `*.tests`), no relative imports, no
   `import *`, imports at the top of the file only
   (or in an `if TYPE_CHECKING:` block). Imported names obey rule 6 (`from torch import
   load` and `from torch import hub` are refused), and a name may not be imported twice
   with different targets or rebound later.
2. Builtins: names that refer to builtins (scoping by `symtable`, so a parameter called
   `input` is fine) must be in `policy.SAFE_BUILTINS`; `policy.FORBIDDEN_BUILTINS` (`eval`,
   `exec`, `open`, `getattr`, `__import__`, ...) are refused as calls and as values, and
   unknown names are refused. `type(...)` takes one argument only.
3. No `global`, `nonlocal`, `async def`, `await`, `async for`, `async with` (`yield` is fine).
4. At least one `nn.Module` subclass with a `forward` method (own or inherited); see
   "The model class" below.
5. Dunders: no dunder attribute except `policy.ALLOWED_DUNDER_ATTRIBUTES`
   (`super().__init__()`, `type(self).__name__`), no dunder names (`__class__`,
   `__builtins__`) read or assigned (except `__all__ = [...]` at module level). Dunder methods
   may be defined in classes, except `DENIED_DUNDER_METHODS` (`__getattr__`, `__reduce__`,
   `__new__`, `__init_subclass__`, `__del__`, pickle and copy hooks, ...).
6. Modules: an attribute chain rooted at an imported name is resolved statically and
   refused when a step reaches a module that is not a genuine submodule (`torch.os`,
   `biosignals.models.cnn1d.torch`), a module or object of `policy.DENIED_MODULES` or
   `policy.DENIED_QUALIFIED_NAMES` (`torch.hub`, `torch.ops`, `torch.load`, `np.load`),
   also under another name, a private attribute of a library module or object
   (`torch._C`), or a name that does not exist (`torch.foo`). Module objects may only be
   used as `module.name` (not `x = torch`, not passed around), and attributes or items of
   imported, module-level or builtin names may not be assigned or deleted
   (`torch.relu = f`, `nn.Module.forward = f`, `int.x = 1`).
7. `policy.DENIED_ATTRIBUTES` are refused on any object (`arr.tofile`, `x.share_memory_`,
   `gen.gi_frame`, `tb.tb_frame`, `e.with_traceback`, `s.format_map`), also as `match`
   class-pattern attributes.
8. Format strings: `.format(...)` needs a constant template whose replacement fields hold
   no `.` or `[` (`"{0.__class__}".format(x)` is refused); `.format` on anything else, or
   referenced without a call (`str.format`, `f = "{}".format`), is refused. `%` formatting
   and f-strings are fine (their expressions are checked as code).
9. No frame, code or traceback objects: rules 5 and 7, and `sys`, `inspect`, `traceback`,
   `gc`, `types` cannot be imported (rule 1).
10. Import time runs nothing but definitions: module level holds docstrings, imports,
    `def`, `class`, and assignments to plain names of static values (constants, arithmetic,
    containers, names and attribute chains, lambdas, and `functools.partial`,
    `typing.TypeVar`/`NewType`/`NamedTuple`, `collections.namedtuple` of static values).
    Class bodies hold docstrings, methods, nested classes and static assignments (plus
    `dataclasses.field(...)` and `enum.auto()`); an Enum may not define `__init__` or
    `_generate_next_value_` (they run at import). Parameter defaults must be static, and
    annotations too unless `from __future__ import annotations` makes them strings.
11. Classes and decorators: no class keywords (metaclass=...), bases are names, attribute
    chains or static subscripts (`Generic[T]`); decorators are `policy.ALLOWED_DECORATORS`
    (bare, or called with constant arguments: `@dataclass(frozen=True)`), or
    `@<prop>.setter/.getter/.deleter` of a property of the same class. No PEP 695 type
    parameters.
12. Source limits: a `str` of valid UTF-8 without null bytes, at most `MAX_SOURCE_BYTES`,
    syntax nested at most `MAX_NESTING` levels, valid Python syntax.

The model class: `CodeReport.classes` lists the top-level `nn.Module` subclasses (base
`nn.Module`, any torch.nn module class, a `biosignals.models` model, or an earlier such class
of the file) that define or inherit `forward`. With `class_name`, it must be one of them;
otherwise the model is the last one whose `__init__` takes `in_channels`, `input_length` and
`num_classes` (keyword-only, regular, or `**kwargs`). An `__init__` that also names the
optional `num_features` opts in to the per-window side features: the trainer and the smoke
test then call `forward(x, features)` with `features` of shape (B, num_features); this is
checked when the model runs, not here.

Example:
    >>> report = validate_model_source("import os\\nos.system('id')\\n")
    >>> report.ok, report.reasons[0][:44]
    (False, 'line 1: import of os is not allowed: generat')
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass

from agent.safety._checker import SourceChecker
from agent.safety._definitions import DENIED_DUNDER_METHODS
from agent.safety._model_classes import find_model_classes
from agent.safety.errors import UnsafeModelError

__all__ = [
    "DENIED_DUNDER_METHODS",
    "MAX_NESTING",
    "MAX_REASONS",
    "MAX_SOURCE_BYTES",
    "CodeReport",
    "require_valid_model_source",
    "validate_model_source",
]

MAX_SOURCE_BYTES = 200_000
"""Largest source accepted (UTF-8 bytes); generated models are a few kilobytes."""

MAX_NESTING = 100
"""Deepest syntax tree accepted (AST levels); real models stay below 30."""

MAX_REASONS = 100
"""Reasons listed at most; a last line counts the rest."""


@dataclass(frozen=True)
class CodeReport:
    """The verdict on one model source.

    Attributes:
        ok: True iff `reasons` is empty.
        reasons: every broken rule, one line each (`"line 12: ... is not allowed: ...; ..."`).
        classes: top-level nn.Module subclasses that define or inherit forward(), in order.
        model_class: the class a trainer should build, None if none qualifies.
        imports: every module the source imports, dotted, sorted, unique.
    """

    ok: bool
    reasons: tuple[str, ...]
    classes: tuple[str, ...] = ()
    model_class: str | None = None
    imports: tuple[str, ...] = ()


def validate_model_source(
    source: str, *, class_name: str | None = None, filename: str = "<model>"
) -> CodeReport:
    """Check generated model code against every rule of the module docstring (never runs it).

    Args:
        source: the Python source of one generated model file.
        class_name: the class the trainer will build; None picks the model class by rule.
        filename: name used in syntax errors.

    Returns:
        The report; `ok` is False with reasons on any broken rule or internal error.
    """
    try:
        return _validate(source, class_name, filename)
    except (Exception, RecursionError, MemoryError) as e:  # fail closed, never crash
        reason = (
            f"the checker could not analyse this code ({type(e).__name__}), so it is refused; "
            "simplify the code (plain classes, functions and constants)"
        )
        return CodeReport(ok=False, reasons=(reason,))


def require_valid_model_source(source: str, *, class_name: str | None = None) -> CodeReport:
    """Like `validate_model_source` but raise when the code is refused.

    Raises:
        UnsafeModelError: with message "model code rejected: " + the reasons joined by "; ".
    """
    report = validate_model_source(source, class_name=class_name)
    if not report.ok:
        message = "model code rejected: " + "; ".join(report.reasons)
        raise UnsafeModelError(message, report.reasons)
    return report


def _source_problem(source: object) -> str | None:
    if not isinstance(source, str):
        return f"model source must be a str, got {type(source).__name__}; pass the file's text"
    if "\x00" in source:
        return "source contains a null byte (\\x00): not Python source; write plain text"
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError as e:
        return f"source is not valid UTF-8 (at character {e.start}); write plain UTF-8 text"
    if size > MAX_SOURCE_BYTES:
        return (
            f"source is {size} bytes, over the {MAX_SOURCE_BYTES}-byte limit; a model file "
            "should be a few kilobytes, simplify it"
        )
    return None


def _parse(source: str, filename: str) -> tuple[ast.Module | None, str | None]:
    nesting = f"syntax is nested deeper than {MAX_NESTING} levels; flatten the code"
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        return None, f"line {e.lineno or 0}: syntax error: {e.msg}; fix the Python syntax"
    except (RecursionError, MemoryError):
        return None, nesting
    except ValueError as e:
        return None, f"source cannot be parsed ({e}); write plain Python text"
    stack: list[tuple[ast.AST, int, int]] = [(tree, 1, 1)]
    while stack:
        node, depth, line = stack.pop()
        line = getattr(node, "lineno", line)
        if depth > MAX_NESTING:
            return None, f"line {line}: {nesting}"
        stack.extend((child, depth + 1, line) for child in ast.iter_child_nodes(node))
    return tree, None


def _validate(source: str, class_name: str | None, filename: str) -> CodeReport:
    problem = _source_problem(source)
    if problem is not None:
        return CodeReport(ok=False, reasons=(problem,))
    tree, problem = _parse(source, filename)
    if tree is None:
        return CodeReport(ok=False, reasons=(problem or "source could not be parsed",))
    try:
        top = symtable.symtable(source, filename, "exec")
    except SyntaxError as e:
        reason = f"line {e.lineno or 0}: syntax error: {e.msg}; fix the Python syntax"
        return CodeReport(ok=False, reasons=(reason,))
    checker = SourceChecker(tree, top)
    checker.visit(tree)
    found = find_model_classes(tree, checker.bindings, checker.denied, class_name)
    lines = sorted(dict.fromkeys(checker.problems), key=lambda p: p[0])
    reasons = [f"line {line}: {text}" for line, text in lines] + list(found.problems)
    if len(reasons) > MAX_REASONS:
        more = len(reasons) - MAX_REASONS
        reasons = [*reasons[:MAX_REASONS], f"... and {more} more problems; fix these first"]
    return CodeReport(
        ok=not reasons,
        reasons=tuple(reasons),
        classes=found.classes,
        model_class=found.model_class,
        imports=tuple(sorted(checker.imports)),
    )
