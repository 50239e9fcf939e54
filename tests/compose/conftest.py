"""Tests under tests/compose/ that need a stack get the `docker compose` one, not an embedded one.

`make test-compose` sets E2E_STACK=compose once `docker compose up --wait` has the stack
healthy; the tests then reach its published ports on 127.0.0.1 with the `compose` profile of
iotlake.yml and the credentials of `.env`. Without E2E_STACK the tests that need it skip,
since an embedded stack (moto on port 4566) could otherwise pass for the compose one.
"""

from __future__ import annotations

import os

import pytest

from iotlake.config import Settings
from iotlake.preflight import unreachable
from tests.support.compose import STACK_VARIABLE, compose_settings


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The running compose stack, provisioned by its own `provision` service."""
    if os.environ.get(STACK_VARIABLE) != "compose":
        pytest.skip(
            f"needs the compose stack: `docker compose up --wait`, then `make test-compose` "
            f"(which sets {STACK_VARIABLE}=compose)"
        )
    settings = compose_settings(tmp_path_factory.mktemp("compose-state"))
    problem = unreachable(settings, ["kafka", "aws", "mqtt"])
    if problem:
        pytest.fail(f"{STACK_VARIABLE}=compose but {problem}")
    return settings
