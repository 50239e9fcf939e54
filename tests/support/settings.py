"""Settings for private stacks and lakes, and the environment that hands them to a child
(`settings_env`, the one the benchmark hands its own children)."""

from __future__ import annotations

from pathlib import Path

from iotlake.bench.processes import settings_env
from iotlake.config import Settings, load_settings
from services.embedded.spec import free_port

__all__ = ["settings_env", "settings_for"]


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
