"""Start, find and stop the embedded stack's processes by PID file.

A PID file records the PID and the process's start time, so `down` only ever signals the
process `up` started, never an unrelated process that later reused the PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Handle:
    """A running service process as recorded in its PID file."""

    name: str
    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The live process, or None if it ended or its PID now belongs to another process."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.NoSuchProcess:
            return None

    def rss_mb(self) -> float:
        """Resident memory of the process and its children (spark-class forks a JVM)."""
        proc = self.process()
        if proc is None:
            return 0.0
        total = 0
        for member in [proc, *proc.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return round(total / 2**20, 1)


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def spawn(
    name: str, command: list[str], env: dict[str, str], run_dir: Path, log_file: Path
) -> tuple[Handle, subprocess.Popen[bytes]]:
    """Start `command` in its own session, log to `log_file`, record it in a PID file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        popen = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    handle = Handle(name, popen.pid, psutil.Process(popen.pid).create_time())
    pid_file(run_dir, name).write_text(json.dumps(handle.__dict__))
    return handle, popen


def read_handle(run_dir: Path, name: str) -> Handle | None:
    path = pid_file(run_dir, name)
    if not path.exists():
        return None
    try:
        return Handle(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def recorded_names(run_dir: Path) -> list[str]:
    return sorted(path.stem for path in run_dir.glob("*.pid")) if run_dir.exists() else []


def terminate(run_dir: Path, name: str, grace_seconds: float = 10.0) -> bool:
    """Stop the recorded process and its process group; return True if one was running."""
    handle = read_handle(run_dir, name)
    proc = handle.process() if handle else None
    if proc is not None:
        members = [proc, *proc.children(recursive=True)]
        _signal_group(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=grace_seconds)
        if alive:
            _signal_group(proc.pid, signal.SIGKILL)
            for member in alive:
                _kill(member)
            psutil.wait_procs(alive, timeout=5)
    pid_file(run_dir, name).unlink(missing_ok=True)
    return proc is not None


def kill_hard(handle: Handle) -> None:
    """SIGKILL a recorded service (fault injection): no chance to flush or clean up."""
    proc = handle.process()
    if proc is not None:
        _signal_group(proc.pid, signal.SIGKILL)
        psutil.wait_procs([proc], timeout=5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # Each service runs in a session of its own (start_new_session), so its PID is its
    # process group: this reaches the JVM spark-class forks and nothing of anyone else's.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()


def wait_until(check, timeout: float, interval: float = 0.25) -> bool:
    """Poll `check()` until it returns True or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False
