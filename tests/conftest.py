"""Fixtures shared by every test package (one conftest: tests/ has no __init__.py, and mypy
needs module names to be unique)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from feedback import FeedbackStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def writable_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(configs, generated_models): a copy of the project's `configs/` and an empty folder
    for generated models, made the defaults through $AGENTUNE_CONFIG_DIR and
    $AGENTUNE_GENERATED_DIR, so the agent's tools never write into the checkout."""
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    generated = tmp_path / "generated_models"
    generated.mkdir()
    monkeypatch.setenv("AGENTUNE_CONFIG_DIR", str(configs))
    monkeypatch.setenv("AGENTUNE_GENERATED_DIR", str(generated))
    return configs, generated


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    """An empty feedback store in the test's folder."""
    return FeedbackStore(tmp_path / "history")
