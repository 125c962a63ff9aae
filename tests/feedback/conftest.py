"""Fixtures of the feedback tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback import FeedbackStore


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "history")
