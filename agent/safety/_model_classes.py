"""Which classes of a generated model file are `nn.Module` models, and which one to build.

Part of `agent.safety.code_policy` (its rule 4 and "The model class"): bases are resolved
statically through the file's imports (trusted library classes are inspected, never called),
and earlier classes of the same file are followed transitively.
"""

from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass

from agent.safety import policy
from agent.safety._static_names import Binding, resolve_chain

__all__ = ["ModelClasses", "find_model_classes"]

_CONTRACT = ", ".join(policy.CONTRACT_KWARGS[:-1]) + " and " + policy.CONTRACT_KWARGS[-1]
_SHAPE_HINT = (
    "define class Net(nn.Module) with __init__(self, *, in_channels: int, input_length: int, "
    "num_classes: int, ...) and forward(self, x) (optionally also num_features: int = 0 in "
    "__init__ and forward(self, x, features) to get the (B, num_features) side features)"
)
_NAMED_PARAMETERS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class ModelClasses:
    """The nn.Module classes found, the one to build, and the rules broken."""

    classes: tuple[str, ...]
    model_class: str | None
    problems: tuple[str, ...]


@dataclass(frozen=True)
class _ClassInfo:
    is_module: bool
    has_forward: bool
    init_accepts: bool | None  # None: no __init__ of its own or inherited (plain nn.Module)


def _accepts(args: ast.arguments) -> bool:
    names = {a.arg for a in [*args.args, *args.kwonlyargs]}
    return args.kwarg is not None or all(k in names for k in policy.CONTRACT_KWARGS)


def _base_object(base: ast.expr, bindings: dict[str, Binding], denied: dict[int, str]) -> object:
    attrs: list[str] = []
    while isinstance(base, ast.Attribute):
        attrs.append(base.attr)
        base = base.value
    if not isinstance(base, ast.Name) or base.id not in bindings:
        return None
    obj, _, problem = resolve_chain(bindings[base.id], attrs[::-1], denied)
    return None if problem else obj


def _library_info(obj: object) -> _ClassInfo | None:
    """What a trusted library base class contributes (None unless it is an nn.Module)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(obj, type) or not issubclass(obj, torch.nn.Module):
        return None
    has_forward = getattr(obj, "forward", None) is not getattr(torch.nn.Module, "forward", None)
    init = getattr(obj, "__init__", None)
    if init is None or init is getattr(torch.nn.Module, "__init__", None):
        return _ClassInfo(True, has_forward, None)
    try:
        parameters = inspect.signature(init).parameters
    except (TypeError, ValueError):
        return _ClassInfo(True, has_forward, False)
    names = {n for n, p in parameters.items() if p.kind in _NAMED_PARAMETERS}
    return _ClassInfo(True, has_forward, all(k in names for k in policy.CONTRACT_KWARGS))


def _class_info(
    node: ast.ClassDef,
    infos: dict[str, _ClassInfo],
    bindings: dict[str, Binding],
    denied: dict[int, str],
) -> _ClassInfo:
    methods = {s.name: s for s in node.body if isinstance(s, ast.FunctionDef)}
    is_module, has_forward, init_accepts = False, "forward" in methods, None
    for base in node.bases:
        if isinstance(base, ast.Subscript):
            base = base.value
        if isinstance(base, ast.Name) and base.id in infos:
            info: _ClassInfo | None = infos[base.id]
        else:
            info = _library_info(_base_object(base, bindings, denied))
        if info is None:
            continue
        is_module = is_module or info.is_module
        has_forward = has_forward or info.has_forward
        init_accepts = info.init_accepts if init_accepts is None else init_accepts
    if "__init__" in methods:
        init_accepts = _accepts(methods["__init__"].args)
    return _ClassInfo(is_module, has_forward, init_accepts)


def find_model_classes(
    tree: ast.Module,
    bindings: dict[str, Binding],
    denied: dict[int, str],
    class_name: str | None,
) -> ModelClasses:
    """The top-level nn.Module subclasses with forward, and the model class to build.

    Args:
        tree: the parsed source.
        bindings: the module-level import bindings.
        denied: `_static_names.denied_objects()`.
        class_name: the class the caller wants built, or None to pick by the contract.
    """
    infos: dict[str, _ClassInfo] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            infos[node.name] = _class_info(node, infos, bindings, denied)
    classes = tuple(name for name, info in infos.items() if info.is_module and info.has_forward)
    listed = ", ".join(classes) or "none"
    if not classes:
        problem = f"no nn.Module subclass with a forward method was found; {_SHAPE_HINT}"
        return ModelClasses(classes, None, (problem,))
    if class_name is not None:
        if class_name in classes:
            return ModelClasses(classes, class_name, ())
        problem = (
            f"class {class_name} not found; classes defined: {listed}; name one of them or "
            f"define {class_name} as an nn.Module subclass with forward"
        )
        return ModelClasses(classes, None, (problem,))
    qualifying = [name for name in classes if infos[name].init_accepts]
    if qualifying:
        return ModelClasses(classes, qualifying[-1], ())
    problem = (
        f"no nn.Module subclass whose __init__ takes {_CONTRACT}; classes defined: {listed}; "
        "add them as keyword-only parameters of the model's __init__"
    )
    return ModelClasses(classes, None, (problem,))
