"""Fixtures of the cloudFiles source's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.landing import Landing


@pytest.fixture
def landing(tmp_path: Path, stack_settings) -> Landing:
    """An empty landing directory with its own schema location and checkpoint."""
    return Landing(tmp_path, stack_settings)
