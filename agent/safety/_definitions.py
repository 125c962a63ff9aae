"""Rules on definitions and import-time code (rules 5, 10 and 11 of `agent.safety.code_policy`).

`DefinitionChecker` checks what runs when the module is imported: module-level and class-body
statements, parameter defaults, annotations, class bases and keywords, decorators and the
names of defined methods.
"""

from __future__ import annotations

import ast

from agent.safety import policy
from agent.safety._scopes import DUNDER_NAME, IMPORT_TIME, ScopeTracker, short
from agent.safety._static_names import is_dunder

__all__ = ["ASYNC", "DENIED_DUNDER_METHODS", "STATEMENT_NAMES", "DefinitionChecker"]

DENIED_DUNDER_METHODS = frozenset(
    {
        "__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__dir__",
        "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__getnewargs__",
        "__getnewargs_ex__", "__copy__", "__deepcopy__", "__new__", "__init_subclass__",
        "__class_getitem__", "__del__", "__set_name__", "__get__", "__set__", "__delete__",
        "__instancecheck__", "__subclasscheck__", "__prepare__", "__mro_entries__",
        "__torch_function__", "__torch_dispatch__",
    }
)  # fmt: skip
"""Methods a generated class may not define: attribute hooks, pickling and copying hooks (run
by Ray in other processes), class-creation hooks, descriptors and torch dispatch hooks."""

ASYNC = "models run synchronously in the trainer; write plain def and for/with"
STATEMENT_NAMES: dict[type, str] = {
    ast.For: "for",
    ast.While: "while",
    ast.If: "if",
    ast.With: "with",
    ast.Try: "try",
    ast.Delete: "del",
    ast.Raise: "raise",
    ast.Assert: "assert",
    ast.Match: "match",
    ast.AsyncFor: "async for",
    ast.AsyncWith: "async with",
    ast.Await: "await",
    ast.Return: "return",
}
_ENUM_IMPORT_TIME_METHODS = frozenset({"__init__", "_generate_next_value_"})
_MODULE_FACTORIES = frozenset(
    {
        "functools.partial",
        "typing.TypeVar",
        "typing.NewType",
        "typing.NamedTuple",
        "collections.namedtuple",
    }
)
_CLASS_FACTORIES = _MODULE_FACTORIES | {"dataclasses.field", "enum.auto"}
_NO_FACTORIES: frozenset[str] = frozenset()
_SETTERS = ("setter", "getter", "deleter")
_ALWAYS_OK = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.ClassDef,
    ast.Pass,
    ast.AsyncFunctionDef,
    ast.Global,
    ast.Nonlocal,
)


def _is_main_guard(stmt: ast.stmt) -> bool:
    """Whether `stmt` is `if __name__ == "__main__":`."""
    test = stmt.test if isinstance(stmt, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


class DefinitionChecker(ScopeTracker, ast.NodeVisitor):  # NodeVisitor named for linters
    """Visits statements, classes, functions and lambdas (see the module docstring)."""

    # -- statements at module level and in class bodies (rule 10) -----------------------

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in node.body:
            if _is_main_guard(stmt):  # LLMs like to append a demo; say so in one reason
                self.report(
                    stmt,
                    'an `if __name__ == "__main__":` block is not allowed: nothing may run '
                    "at import or as a script; remove it (the smoke test builds and runs "
                    "the model)",
                )
                continue
            self._module_statement(stmt)
            self.visit(stmt)

    def _module_statement(self, stmt: ast.stmt) -> None:
        where = "at module level"
        if isinstance(stmt, ast.Expr):
            if not isinstance(stmt.value, ast.Constant):
                self.report(stmt, f"expression {short(stmt)} {where} is not allowed: {IMPORT_TIME}")
        elif isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign):
            self._static_assignment(stmt, where, _MODULE_FACTORIES)
        elif isinstance(stmt, ast.If) and self._is_type_checking_block(stmt):
            return
        elif not isinstance(stmt, _ALWAYS_OK):
            kind = STATEMENT_NAMES.get(type(stmt), type(stmt).__name__)
            self.report(stmt, f"{kind} statement {where} is not allowed: {IMPORT_TIME}")

    def _class_statement(self, stmt: ast.stmt) -> None:
        where = "in a class body"
        if isinstance(stmt, ast.Expr):
            if not isinstance(stmt.value, ast.Constant):
                self.report(stmt, f"expression {short(stmt)} {where} is not allowed: {IMPORT_TIME}")
        elif isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign):
            self._static_assignment(stmt, where, _CLASS_FACTORIES)
        elif not isinstance(stmt, _ALWAYS_OK):
            kind = STATEMENT_NAMES.get(type(stmt), type(stmt).__name__)
            self.report(stmt, f"{kind} statement {where} is not allowed: {IMPORT_TIME}")

    def _static_assignment(
        self,
        stmt: ast.Assign | ast.AugAssign | ast.AnnAssign,
        where: str,
        factories: frozenset[str],
    ) -> None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            self._plain_targets(target, where)
        if stmt.value is not None:
            self._require_static(stmt.value, where, factories)
        if isinstance(stmt, ast.AnnAssign) and not self._future:
            self._require_static(stmt.annotation, f"as an annotation {where}", _NO_FACTORIES)

    # -- definitions (rules 5, 10, 11) --------------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_def_name(node)
        for keyword in node.keywords:
            self.report(
                keyword,
                f"class keyword {keyword.arg or '**'}= is not allowed: metaclasses and class "
                "keywords run code when the class is created; use a plain class",
            )
        for base in node.bases:
            if not self._is_static_base(base):
                self.report(
                    base,
                    f"class base {short(base)} is not allowed: bases must be names or "
                    "attribute chains (nn.Module, Generic[T]); import the base or define it "
                    "in this file",
                )
        self._check_decorators(node.decorator_list)
        for expr in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expr)
        if any(self._is_enum_base(base) for base in node.bases):
            self._enums.add(node.name)
        self._check_type_params(node)
        self._enter(node.name, node.lineno, "class")
        self._props.append(set())
        for stmt in node.body:
            self._class_statement(stmt)
            self.visit(stmt)
        self._props.pop()
        self._leave()

    def _is_enum_base(self, base: ast.expr) -> bool:
        qualname = self._qualname(base) or ""
        return qualname.startswith("enum.") or (
            isinstance(base, ast.Name) and base.id in self._enums
        )

    def _is_static_base(self, base: ast.expr) -> bool:
        if isinstance(base, ast.Subscript):
            return (
                self._is_static_base(base.value)
                and self._first_dynamic(base.slice, _NO_FACTORIES) is None
            )
        while isinstance(base, ast.Attribute):
            base = base.value
        return isinstance(base, ast.Name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._check_def_name(node)
        self._check_decorators(node.decorator_list)
        if self._where[-1] == "class" and self._is_property(node):
            self._props[-1].add(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_arguments(node.args)
        if node.returns is not None:
            self._visit_annotation(node.returns)
        self._check_type_params(node)
        self._enter(node.name, node.lineno, "function")
        for stmt in node.body:
            self.visit(stmt)
        self._leave()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.report(node, f"async def {node.name} is not allowed: {ASYNC}")
        self.visit_FunctionDef(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_arguments(node.args)
        self._enter("lambda", node.lineno, "function")
        self.visit(node.body)
        self._leave()

    def _check_def_name(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        where = self._where[-1]
        if where == "module" and node.name in self.bindings:
            self.report(
                node, f"{node.name} rebinds an imported name; give the definition another name"
            )
        if isinstance(node, ast.ClassDef) or where != "class":
            if is_dunder(node.name):
                self.report(node, f"defining {node.name} here is not allowed: {DUNDER_NAME}")
            return
        if node.name in DENIED_DUNDER_METHODS:
            self.report(
                node,
                f"method {node.name} is not allowed: it hooks attribute access, pickling, copying "
                "or class creation, which runs code outside forward; use plain methods",
            )
        owner = self._tables[-1].get_name()
        if owner in self._enums and node.name in _ENUM_IMPORT_TIME_METHODS:
            self.report(
                node,
                f"{node.name} in Enum {owner} is not allowed: Enum runs it at import for every "
                "member; use plain member values and methods",
            )

    def _visit_arguments(self, args: ast.arguments) -> None:
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self._require_static(
                default, "as a parameter default (defaults run when the def runs)", _NO_FACTORIES
            )
            self.visit(default)
        for arg in every:
            if is_dunder(arg.arg):
                self.report(arg, f"parameter {arg.arg} is not allowed: {DUNDER_NAME}")
            if arg.annotation is not None:
                self._visit_annotation(arg.annotation)

    def _visit_annotation(self, node: ast.expr) -> None:
        if not self._future:
            self._require_static(node, "in an annotation", _NO_FACTORIES)
        self._annotation = True
        self.visit(node)
        self._annotation = False

    def _check_type_params(self, node: ast.AST) -> None:
        if getattr(node, "type_params", None):
            self.report(node, "type parameters (PEP 695) are not supported; use typing.TypeVar")

    def _is_property(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        names = {
            self._qualname(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list
        }
        return bool(names & {"property", "functools.cached_property"})

    def _check_decorators(self, decorators: list[ast.expr]) -> None:
        for decorator in decorators:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(decorator, ast.Call) and not all(
                isinstance(v, ast.Constant)
                for v in [*decorator.args, *(k.value for k in decorator.keywords)]
            ):
                self.report(
                    decorator,
                    f"decorator @{short(decorator)} is not allowed: decorator arguments must "
                    "be constants (@dataclass(frozen=True)); compute values inside the function",
                )
            elif not self._is_allowed_decorator(target):
                allowed = ", ".join(sorted(policy.ALLOWED_DECORATORS))
                self.report(
                    decorator,
                    f"decorator @{short(decorator)} is not allowed: decorators run code at "
                    f"import; use one of {allowed} or @<property>.setter",
                )

    def _is_allowed_decorator(self, target: ast.expr) -> bool:
        if (
            isinstance(target, ast.Attribute)
            and target.attr in _SETTERS
            and isinstance(target.value, ast.Name)
            and self._props
            and target.value.id in self._props[-1]
        ):
            return True
        return self._qualname(target) in policy.ALLOWED_DECORATORS
