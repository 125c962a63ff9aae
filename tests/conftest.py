"""Fixtures shared by every test package (one conftest: tests/ has no __init__.py, and mypy
needs module names to be unique)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads; on a shared 2-core machine, spinning OpenMP
    workers make them many times slower. Use per module:
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
