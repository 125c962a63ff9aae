"""Rules on names, attributes, calls and format strings (rules 2, 3, 5-8 of `code_policy`).

`SourceChecker` is the complete visitor `agent.safety.code_policy` runs: it adds to
`DefinitionChecker` the checks of every name (builtins by scope), attribute chain (resolved
statically from imports), call and format template, and the comprehension scopes.
"""

from __future__ import annotations

import ast
import string
import types

from agent.safety import policy
from agent.safety._definitions import ASYNC, STATEMENT_NAMES, DefinitionChecker
from agent.safety._scopes import DUNDER_NAME, short
from agent.safety._static_names import attribute_name_why, is_dunder, resolve_chain

__all__ = ["SourceChecker"]

_BUILTIN_HINTS = {
    "getattr": "read attributes by name in code (x.weight), not by string",
    "setattr": "assign attributes in code (self.weight = ...), not by string",
    "delattr": "delete attributes in code, not by string",
    "open": "models get their data through forward; no file I/O",
    "input": "models get their data through forward; no console I/O",
    "globals": "reference names directly",
    "locals": "reference names directly",
    "vars": "reference attributes directly",
}
_MODULE_VALUE = (
    "modules may only be used as module.name; import what you need by name "
    "(import torch.nn.functional as F)"
)
_FORMAT_HINT = "use an f-string or a constant template with plain fields ('{}', '{name}')"


def _format_fields(template: str) -> list[str]:
    """Field names of a format template, nested format specs included (ValueError if bad)."""
    fields: list[str] = []
    pending = [template]
    while pending:
        for _, field, spec, _ in string.Formatter().parse(pending.pop()):
            if field is not None:
                fields.append(field)
            if spec:
                pending.append(spec)
    return fields


class SourceChecker(DefinitionChecker, ast.NodeVisitor):  # NodeVisitor named for linters
    """The whole rule set as one visitor: `SourceChecker(tree, top).visit(tree)`."""

    # -- names, attributes, calls (rules 2, 5, 6, 7, 8) ---------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        self._check_name(node, attribute_base=False)

    def _check_name(self, node: ast.Name, *, attribute_base: bool) -> None:
        name = node.id
        if isinstance(node.ctx, ast.Store | ast.Del):
            if is_dunder(name) and not (self._where == ["module"] and name == "__all__"):
                self.report(node, f"assigning {name} is not allowed: {DUNDER_NAME}")
            elif self._where == ["module"] and name in self.bindings:
                self.report(
                    node, f"{name} rebinds or deletes an imported name; use another variable name"
                )
            return
        kind = self._name_kind(name)
        if kind == "builtin" and name in policy.FORBIDDEN_BUILTINS:
            hint = _BUILTIN_HINTS.get(name, "write the code out directly")
            self.report(
                node,
                f"{name} is not allowed: the builtin {name} evaluates code, does I/O or reaches "
                f"interpreter internals; {hint}",
            )
        elif is_dunder(name):
            self.report(node, f"{name} is not allowed: {DUNDER_NAME}")
        elif kind == "builtin" and name not in policy.SAFE_BUILTINS:
            if not (self._annotation and self._future):
                self.report(
                    node,
                    f"name {name} is not defined or not an allowed builtin: import it from an "
                    "allowed module or define it in this file",
                )
        elif kind == "module" and not attribute_base:
            binding = self.bindings.get(name)
            if binding is not None and binding.is_module:
                self.report(node, f"using module {name} as a value is not allowed: {_MODULE_VALUE}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[ast.Attribute] = []  # innermost first: torch.nn.Linear -> [nn, Linear]
        root: ast.expr = node
        while isinstance(root, ast.Attribute):
            chain.insert(0, root)
            root = root.value
        problem = self._chain_problem(chain, root, node)
        if problem is not None:
            self.report(*problem)
        self._check_store(node)
        if isinstance(root, ast.Name):
            self._check_name(root, attribute_base=True)
        else:
            self.visit(root)

    def _chain_problem(
        self, chain: list[ast.Attribute], root: ast.expr, node: ast.Attribute
    ) -> tuple[ast.AST, str] | None:
        """The first broken rule along `root.a.b.c` (static resolution wins ties), or None."""
        binding = self._binding(root)
        final, static_index, static_problem = None, len(chain), None
        if binding is not None:
            attrs = [a.attr for a in chain]
            final, static_index, static_problem = resolve_chain(binding, attrs, self.denied)
        generic_index, generic_problem = self._generic_attribute_problem(chain)
        if static_problem is not None and static_index <= generic_index:
            return chain[static_index], static_problem
        if generic_problem is not None:
            bad = chain[generic_index]
            return bad, f"{short(bad)} is not allowed: {generic_problem}"
        if isinstance(final, types.ModuleType):
            return node, f"using module {short(node)} as a value is not allowed: {_MODULE_VALUE}"
        return None

    def _generic_attribute_problem(self, chain: list[ast.Attribute]) -> tuple[int, str | None]:
        """Index and reason of the first attribute refused by name alone (any object)."""
        for index, attribute in enumerate(chain):
            why = attribute_name_why(attribute.attr)
            if why is None and attribute.attr == "format" and id(attribute) not in self._ok_format:
                why = f"a format method used without a call can read attributes; {_FORMAT_HINT}"
            if why is not None:
                return index, why
        return len(chain), None

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self._check_store(node)
        self.generic_visit(node)

    def _check_store(self, node: ast.Attribute | ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Store | ast.Del):
            return
        root: ast.expr = node
        while isinstance(root, ast.Attribute | ast.Subscript):
            root = root.value
        if isinstance(root, ast.Name) and self._name_kind(root.id) != "local":
            self.report(
                node,
                f"assigning or deleting {short(node)} is not allowed: it changes a library or "
                "module-level object shared by every model; keep state on self",
            )

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id == "type"
            and self._name_kind("type") == "builtin"
            and (len(node.args) != 1 or node.keywords)
        ):
            self.report(
                node,
                "type() with more than one argument is not allowed: it creates classes "
                "dynamically; write a class statement (type(x) with one argument is fine)",
            )
        if isinstance(func, ast.Attribute) and func.attr == "format":
            self._ok_format.add(id(func))
            self._check_format_call(func)
        self.generic_visit(node)

    def _check_format_call(self, func: ast.Attribute) -> None:
        template = func.value
        if not (isinstance(template, ast.Constant) and isinstance(template.value, str)):
            self.report(
                func,
                f"{short(func)}() is not allowed: the template is not a string constant; "
                + _FORMAT_HINT,
            )
            return
        try:
            fields = _format_fields(template.value)
        except ValueError as e:
            self.report(
                func, f"format template {template.value!r} is malformed ({e}); {_FORMAT_HINT}"
            )
            return
        for field in fields:
            if "." in field or "[" in field:
                self.report(
                    func,
                    f"format field {{{field}}} is not allowed: fields with . or [ read "
                    f"attributes or items of the arguments; {_FORMAT_HINT}",
                )

    # -- scopes of comprehensions ---------------------------------------------------------

    def _visit_comprehension(
        self,
        node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
        name: str,
        parts: list[ast.expr],
    ) -> None:
        """Visit a comprehension in its own symtable scope (`name` is the table's name)."""
        self.visit(node.generators[0].iter)  # evaluated in the enclosing scope
        self._enter(name, node.lineno, "function")
        for index, generator in enumerate(node.generators):
            if generator.is_async:
                self.report(node, f"async comprehension is not allowed: {ASYNC}")
            self.visit(generator.target)
            if index:
                self.visit(generator.iter)
            for condition in generator.ifs:
                self.visit(condition)
        for part in parts:
            self.visit(part)
        self._leave()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node, "listcomp", [node.elt])

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._visit_comprehension(node, "setcomp", [node.elt])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._visit_comprehension(node, "genexpr", [node.elt])

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node, "dictcomp", [node.key, node.value])

    # -- the rest ---------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        if id(node) not in self._top_imports:
            self.report(
                node,
                f"{short(node)} is not allowed here: imports go at the top of the file",
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.visit_Import(node)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        keyword = "global" if isinstance(node, ast.Global) else "nonlocal"
        self.report(
            node,
            f"{keyword} {', '.join(node.names)} is not allowed: it rebinds names outside the "
            "function; return values or keep state on self",
        )

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.visit_Global(node)

    def visit_Await(self, node: ast.Await | ast.AsyncFor | ast.AsyncWith) -> None:
        self.report(node, f"{STATEMENT_NAMES.get(type(node), 'await')} is not allowed: {ASYNC}")
        self.generic_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self.visit_Await(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self.visit_Await(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name and is_dunder(node.name):
            self.report(node, f"except ... as {node.name} is not allowed: {DUNDER_NAME}")
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:
            why = attribute_name_why(attr)
            if why is not None:
                self.report(node, f"pattern attribute {attr}= is not allowed: {why}")
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if node.name and is_dunder(node.name):
            self.report(node, f"capturing into {node.name} is not allowed: {DUNDER_NAME}")
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        self.visit_MatchAs(node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest and is_dunder(node.rest):
            self.report(node, f"capturing into {node.rest} is not allowed: {DUNDER_NAME}")
        self.generic_visit(node)
