"""Session-wide fixtures: one embedded stack and one Spark session for the whole run.

The stack runs on free ports with its own state directory, so a developer's running
`iotlake up` and the test run never collide. Everything is torn down by PID at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotlake.config import Settings, load_settings
from services.embedded import stack as embedded
from services.embedded.spec import free_port
from tests.endpoints import (
    Endpoints,
    container_endpoints,
    docker_unavailable_reason,
    embedded_endpoints,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Tests choose their own settings: a developer's IOTLAKE_* variables (a running demo's state
# directory, say) would otherwise override them and mix the test stacks with that demo.
for _name in [name for name in os.environ if name.startswith("IOTLAKE_")]:
    del os.environ[_name]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def settings_for(state_dir: Path) -> Settings:
    """Settings for a private stack: every port free, everything under `state_dir`."""
    return load_settings(
        profile="embedded",
        target="dev",
        state_dir=str(state_dir),
        kafka={"port": free_port(), "controller_port": free_port()},
        aws={"port": free_port()},
        mqtt={"port": free_port()},
        spark={
            "master_port": free_port(),
            "master_ui_port": free_port(),
            "worker_ui_port": free_port(span=4),
            "driver_memory": "3g",
            "shuffle_partitions": 2,
        },
        lake={"root": str(state_dir / "lake")},
        gateway={"port": free_port()},
        dashboard={"port": free_port()},
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The IOTLAKE_* variables that make a CLI subprocess use these settings."""
    return {
        "IOTLAKE_STATE_DIR": str(settings.state_dir),
        "IOTLAKE_KAFKA__PORT": str(settings.kafka.port),
        "IOTLAKE_KAFKA__CONTROLLER_PORT": str(settings.kafka.controller_port),
        "IOTLAKE_AWS__PORT": str(settings.aws.port),
        "IOTLAKE_AWS__EMULATOR": settings.aws.emulator,
        "IOTLAKE_MQTT__PORT": str(settings.mqtt.port),
        "IOTLAKE_SPARK__MASTER_PORT": str(settings.spark.master_port),
        "IOTLAKE_SPARK__MASTER_UI_PORT": str(settings.spark.master_ui_port),
        "IOTLAKE_SPARK__WORKER_UI_PORT": str(settings.spark.worker_ui_port),
        "IOTLAKE_LAKE__ROOT": settings.lake.root,
    }


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
