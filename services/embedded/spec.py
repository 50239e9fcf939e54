"""What the stack runner needs to know to start, check and describe one service."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class PrepareError(Exception):
    """A service's prepare step failed; the message is one line saying what and where."""


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
    # Runs before each start (config files, storage); raises PrepareError with one line.
    prepare: Callable[[], None] | None = None
    start_timeout: float = 60.0
    # What the service lacks besides its binary (jars, say): one line naming the fix, or
    # None. Asked before anything starts, so a missing piece starts nothing.
    lacking: Callable[[], str | None] | None = None

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


# Below Linux's ephemeral range (32768-60999): a port chosen there can be taken by any
# outgoing connection between the check and the service binding it.
PRIVATE_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1", span: int = 1) -> int:
    """A port (and the `span - 1` after it) free on `host`, outside the ephemeral range.

    Never the same port twice in one process, so several private stacks of one test run or
    benchmark do not pick each other's ports before either binds them.
    """
    for _ in range(1000):
        port = random.randrange(PRIVATE_PORTS.start, PRIVATE_PORTS.stop - span)
        block = range(port, port + span)
        if _handed_out.isdisjoint(block) and all(port_is_free(host, p) for p in block):
            _handed_out.update(block)
            return port
    raise RuntimeError(f"no free port between {PRIVATE_PORTS.start} and {PRIVATE_PORTS.stop}")


def accepts_tcp(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
