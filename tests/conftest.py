"""Session-wide fixtures: one embedded stack and one Spark session for the whole run.

The stack runs on free ports with its own state directory, so a developer's running
`iotlake up` and the test run never collide. Everything is torn down by PID at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotlake.config import Settings
from services.embedded import stack as embedded
from tests.support.endpoints import (
    Endpoints,
    container_endpoints,
    docker_unavailable_reason,
    embedded_endpoints,
)
from tests.support.settings import settings_for

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Tests choose their own settings: a developer's IOTLAKE_* variables (a running demo's state
# directory, say) would otherwise override them and mix the test stacks with that demo.
for _name in [name for name in os.environ if name.startswith("IOTLAKE_")]:
    del os.environ[_name]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings_for(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Settings]:
    """The embedded stack (AWS emulator, Kafka broker, MQTT), up and provisioned."""
    from services.provisioning.apply import provision
    from services.provisioning.resources import SYSTEMS

    embedded.up(stack_settings, report=lambda line: None)
    try:
        provision(stack_settings, SYSTEMS)
        yield stack_settings
    finally:
        embedded.down(stack_settings, report=lambda line: None)


@pytest.fixture(scope="session", params=["embedded", "containers"])
def endpoints(request: pytest.FixtureRequest, stack_settings: Settings) -> Iterator[Endpoints]:
    """Integration endpoints: the embedded stack, and containers where Docker answers."""
    if request.param == "embedded":
        yield embedded_endpoints(request.getfixturevalue("stack"))
        return
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with container_endpoints(stack_settings) as found:
        yield found


@pytest.fixture(scope="session")
def spark(stack_settings: Settings):
    """One local-mode SparkSession for every test that needs Spark."""
    from spark_jobs.session import spark_session

    session = spark_session(stack_settings, "iotlake-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests leave files for people to look at (screenshots, plots)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
