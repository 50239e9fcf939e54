"""Settings for private stacks and lakes, and the environment that hands them to a child."""

from __future__ import annotations

from pathlib import Path

from iotlake.config import Settings, load_settings
from services.embedded.spec import free_port


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
