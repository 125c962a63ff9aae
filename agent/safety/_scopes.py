"""Scopes, imports and static expressions: the shared base of the model-code checker.

`ScopeTracker` walks with the checked source's `symtable` tables (a name is local, module-level
or a builtin exactly as Python would see it), holds the import bindings
(`agent.safety._static_names`) and tells static expressions from code that runs. The rules
themselves live in `_definitions` and `_checker`; `agent.safety.code_policy` lists them.
"""

from __future__ import annotations

import ast
import symtable

from agent.safety._static_names import (
    Binding,
    denied_objects,
    is_dunder,
    preload,
    resolve_import,
)

__all__ = ["DUNDER_NAME", "IMPORT_TIME", "ScopeTracker", "short"]

DYNAMIC = (
    ast.Call,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.NamedExpr,
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
)
IMPORT_TIME = (
    "code at import may only define classes, functions and constants (functools.partial, "
    "TypeVar and namedtuple of constants are fine); move it into __init__ or forward"
)
DUNDER_NAME = "dunder names reach interpreter internals; use a regular name"


def short(node: ast.AST) -> str:
    """`node` as source text on one line, cut to 60 characters."""
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


class ScopeTracker(ast.NodeVisitor):
    """Shared state of the checker: import bindings, symtable scopes, static expressions.

    Attributes:
        problems: (line, reason) pairs found so far.
        imports: every module the source imports.
        bindings: module-level name -> what it was imported as.
        denied: `denied_objects()` after the source's modules were loaded.
    """

    def __init__(self, tree: ast.Module, top: symtable.SymbolTable) -> None:
        self.problems: list[tuple[int, str]] = []
        self.imports: set[str] = set()
        self.bindings: dict[str, Binding] = {}
        self._tables = [top]
        self._pending: dict[int, list[symtable.SymbolTable]] = {}
        self._where = ["module"]
        self._props: list[set[str]] = []
        self._enums: set[str] = set()
        self._annotation = False
        self._ok_format: set[int] = set()
        self._future = any(
            isinstance(s, ast.ImportFrom)
            and s.module == "__future__"
            and any(a.name == "annotations" for a in s.names)
            for s in tree.body
        )
        self._module_names = {
            s.get_name()
            for s in top.get_symbols()
            if s.is_assigned() or s.is_imported() or s.is_namespace()
        }
        self._top_imports = self._collect_imports(tree)
        self.denied = denied_objects()

    # -- helpers -------------------------------------------------------------------------

    def report(self, node: ast.AST, message: str) -> None:
        self.problems.append((getattr(node, "lineno", 0), message))

    def _collect_imports(self, tree: ast.Module) -> set[int]:
        top = [s for s in tree.body if isinstance(s, ast.Import | ast.ImportFrom)]
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and self._is_type_checking_block(stmt):
                top.extend(s for s in stmt.body if isinstance(s, ast.Import | ast.ImportFrom))
        every = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        preload(every)
        denied = denied_objects()
        for node in every:
            result = resolve_import(node, denied)
            self.imports.update(result.modules)
            if node not in top:
                continue
            for text in result.problems:
                self.report(node, text)
            for binding in result.bindings:
                self._bind_import(node, binding)
        return {id(n) for n in top}

    def _bind_import(self, node: ast.AST, binding: Binding) -> None:
        if is_dunder(binding.name):
            self.report(node, f"import as {binding.name} is not allowed: {DUNDER_NAME}")
        previous = self.bindings.get(binding.name)
        if previous is not None and previous.qualname == binding.qualname:
            return  # `import torch` then `import torch.nn`: the same name, keep the first
        if previous is not None:
            self.report(
                node,
                f"name {binding.name} is imported twice ({previous.qualname}, "
                f"{binding.qualname}); give each import its own name",
            )
        self.bindings[binding.name] = binding

    def _is_type_checking_block(self, node: ast.If) -> bool:
        test = ast.unparse(node.test)
        return (
            test in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            and not node.orelse
            and all(isinstance(s, ast.Import | ast.ImportFrom) for s in node.body)
        )

    def _enter(self, name: str, lineno: int, where: str) -> None:
        parent = self._tables[-1]
        pending = self._pending.setdefault(id(parent), list(parent.get_children()))
        matches = [i for i, t in enumerate(pending) if t.get_name() == name]
        exact = [i for i in matches if pending[i].get_lineno() == lineno]
        candidates = exact or matches
        # No table: an inlined comprehension (Python 3.12+) whose names live in the parent.
        self._tables.append(pending.pop(candidates[0]) if candidates else parent)
        self._where.append(where)

    def _leave(self) -> None:
        self._tables.pop()
        self._where.pop()

    def _name_kind(self, name: str) -> str:
        """'local' (of a function or class), 'module' (bound at module level) or 'builtin'."""
        table = self._tables[-1]
        try:
            symbol = table.lookup(name)
        except KeyError:  # annotations under `from __future__ import annotations`
            symbol = None
        local = symbol is not None and table.get_type() != "module" and not symbol.is_global()
        if local:
            return "local"
        return "module" if name in self._module_names else "builtin"

    def _binding(self, node: ast.expr) -> Binding | None:
        if isinstance(node, ast.Name) and self._name_kind(node.id) == "module":
            return self.bindings.get(node.id)
        return None

    def _qualname(self, node: ast.expr) -> str | None:
        """Dotted name of an import-rooted or builtin chain (`functools.partial`), else None."""
        attrs: list[str] = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        kind = self._name_kind(node.id)
        binding = self.bindings.get(node.id) if kind == "module" else None
        if binding is None and kind != "builtin":
            return None
        return ".".join([binding.qualname if binding else node.id, *reversed(attrs)])

    def _first_dynamic(self, node: ast.expr, factories: frozenset[str]) -> ast.expr | None:
        """The first sub-expression that runs code (a call, comprehension...), else None."""
        stack: list[ast.AST] = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, ast.Lambda):
                continue  # the body runs later; defaults are checked as defaults
            if isinstance(current, ast.Call) and self._qualname(current.func) in factories:
                stack.extend(ast.iter_child_nodes(current))
                continue
            if isinstance(current, DYNAMIC):
                return current
            stack.extend(ast.iter_child_nodes(current))
        return None

    def _require_static(self, node: ast.expr, what: str, factories: frozenset[str]) -> None:
        bad = self._first_dynamic(node, factories)
        if bad is not None:
            self.report(bad, f"{short(bad)} {what} is not allowed: {IMPORT_TIME}")

    def _plain_targets(self, target: ast.expr, where: str) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._plain_targets(element, where)
        elif isinstance(target, ast.Starred):
            self._plain_targets(target.value, where)
        elif not isinstance(target, ast.Name) and not _is_name_rooted(target):
            self.report(
                target,
                f"assignment to {short(target)} {where} is not allowed: only plain names may "
                "be assigned at import; set attributes inside __init__",
            )


def _is_name_rooted(target: ast.expr) -> bool:
    """An attribute or item chain on a name (its store is refused by the store rule)."""
    while isinstance(target, ast.Attribute | ast.Subscript):
        target = target.value
        if isinstance(target, ast.Name):
            return True
    return False
