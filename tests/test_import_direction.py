"""The one-way import rule: feedback <- agent <- search; biosignals stands alone.

biosignals imports none of the others; agent (whose tools write configs and models for the
workload, and check them with its target rules) and search may import it.

Parses every module's imports (no importing) and fails on an arrow that points the wrong way,
so a convenience import cannot quietly couple the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("search", "agent", "feedback", "biosignals", "generated_models")

# package -> top-level modules it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "feedback": frozenset(
        {"search", "agent", "biosignals", "generated_models", "ray", "torch", "smolagents"}
    ),
    "agent": frozenset({"search", "generated_models", "ray"}),
    "search": frozenset({"generated_models"}),
    "biosignals": frozenset({"search", "agent", "feedback", "generated_models"}),
    "bench": frozenset({"generated_models"}),
}


def imported_top_levels(source: str, module: str) -> set[str]:
    """Top-level names a module imports, relative imports resolved against `module`.

    Args:
        source: the module's Python source.
        module: its dotted name (e.g. "feedback._store"), used to resolve relative imports.
    """
    found: set[str] = set()
    package_parts = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level > 0:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
                if target:
                    found.add(target[0])
    return found


def violations(root: Path) -> list[str]:
    """Every wrong-way import under `root`, as 'file imports name' lines."""
    problems: list[str] = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            module = ".".join(rel.with_suffix("").parts)
            bad = imported_top_levels(path.read_text(encoding="utf-8"), module) & forbidden
            problems.extend(f"{rel} imports {name}" for name in sorted(bad))
    return problems


def test_project_imports_flow_one_way() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("package", "line"),
    [
        ("feedback", "import torch"),
        ("feedback", "from search.searcher import AgentSearcher"),
        ("agent", "from search import AgentSearcher"),
        ("biosignals", "from feedback import RunRecord"),
        ("search", "import generated_models.tiny_net"),
        ("biosignals", "from ...agent import x"),
    ],
)
def test_wrong_way_import_is_reported(tmp_path: Path, package: str, line: str) -> None:
    module_dir = tmp_path / package / "sub"
    module_dir.mkdir(parents=True)
    (module_dir / "mod.py").write_text(line + "\n", encoding="utf-8")
    assert len(violations(tmp_path)) == 1


def test_allowed_direction_is_not_reported(tmp_path: Path) -> None:
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "mod.py").write_text(
        "import ray\nfrom agent import Proposer\nfrom feedback import RunRecord\n"
        "from biosignals.trainer import train\nfrom . import space\n",
        encoding="utf-8",
    )
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "mod.py").write_text("from feedback import RunRecord\n", encoding="utf-8")
    assert violations(tmp_path) == []
