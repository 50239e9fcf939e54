"""What the stack runner needs to know to start, check and describe one service."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServiceSpec:
    """One embedded service: how to start it and how to tell it is healthy."""

    name: str
    command: list[str]
    endpoint: str
    host: str
    ports: tuple[int, ...]
    healthy: Callable[[], bool]
    install_hint: str
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None
    start_timeout: float = 60.0

    @property
    def binary(self) -> Path:
        return Path(self.command[0])


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port, tested by binding it as the service would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def accepts_tcp(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
