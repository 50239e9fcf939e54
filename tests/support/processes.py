"""Child processes the tests start: a module of the repository, its output read, stopped
by its PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from iotlake.config import Settings
from tests.support.settings import settings_env

REPO = Path(__file__).resolve().parents[2]


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate the child, kill it if it outlives `timeout`, and reap it."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def start_module(
    settings: Settings, module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`python -m MODULE ARGS` as a child process reaching `settings`' stack (plus `env`),
    from the repository, its output merged and read as text."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, **settings_env(settings), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(child: subprocess.Popen[str], prefix: str, timeout: float = 30.0) -> list[str]:
    """Read the child's output until a line starts with `prefix`; return the lines so far."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting with {prefix!r} within {timeout}s: {lines}")
