"""The `docker compose` stack as the tests on the host reach it."""

from __future__ import annotations

from pathlib import Path

from iotlake.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
STACK_VARIABLE = "E2E_STACK"


def compose_settings(state_dir: Path) -> Settings:
    """Host-side settings for the compose stack: its published ports, a private state dir."""
    return load_settings(
        profile="compose", target="dev", path=REPO / "iotlake.yml", state_dir=str(state_dir)
    )
