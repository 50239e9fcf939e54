"""The benchmark's own processes: a private stack's settings, child commands, and memory.

Everything the benchmark starts runs on free ports under a private state directory and is
recorded in that directory's PID files (`services.embedded.process.spawn`), so a user's own
`iotlake up` is never touched and `iotlake down` with the same settings stops whatever a
crashed benchmark left behind.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil
from pydantic import BaseModel

from iotlake.config import Settings
from services.embedded.process import (
    Handle,
    read_handle,
    recorded_names,
    spawn,
    terminate,
)
from services.embedded.spec import free_port

_Section = TypeVar("_Section", bound=BaseModel)  # a section of Settings
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}


class BenchError(Exception):
    """The benchmark cannot go on; the message is one line saying what failed and where."""


def private_settings(base: Settings, state_dir: Path) -> Settings:
    """`base` with every port free and every file under `state_dir`.

    Copies the settings instead of reloading them, so a user's IOTLAKE_* variables cannot
    move the private stack back onto the ports of their own.
    """
    if base.aws.emulator == "aws":
        raise BenchError(
            "the benchmark runs its own emulator; set aws.emulator to moto or localstack"
        )

    def ports(section: _Section, **names: int) -> _Section:
        return section.model_copy(update=names)

    return base.model_copy(
        update={
            "state_dir": state_dir,
            "kafka": ports(base.kafka, port=free_port(), controller_port=free_port()),
            "aws": ports(base.aws, port=free_port()),
            "mqtt": ports(base.mqtt, port=free_port()),
            "spark": ports(
                base.spark,
                master_port=free_port(),
                master_ui_port=free_port(),
                worker_ui_port=free_port(span=4),
            ),
            "lake": base.lake.model_copy(update={"root": str(state_dir / "lake")}),
            "gateway": ports(base.gateway, port=free_port()),
            "dashboard": ports(base.dashboard, port=free_port()),
        }
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The IOTLAKE_* variables that make an `iotlake` child process use these settings."""
    return {
        "IOTLAKE_PROFILE": settings.profile,
        "IOTLAKE_TARGET": settings.target,
        "IOTLAKE_STATE_DIR": str(settings.state_dir),
        "IOTLAKE_KAFKA__PORT": str(settings.kafka.port),
        "IOTLAKE_KAFKA__CONTROLLER_PORT": str(settings.kafka.controller_port),
        "IOTLAKE_AWS__PORT": str(settings.aws.port),
        "IOTLAKE_AWS__EMULATOR": settings.aws.emulator,
        "IOTLAKE_MQTT__PORT": str(settings.mqtt.port),
        "IOTLAKE_SPARK__MASTER_PORT": str(settings.spark.master_port),
        "IOTLAKE_SPARK__MASTER_UI_PORT": str(settings.spark.master_ui_port),
        "IOTLAKE_SPARK__WORKER_UI_PORT": str(settings.spark.worker_ui_port),
        "IOTLAKE_SPARK__MASTER": settings.spark.master,
        "IOTLAKE_SPARK__DRIVER_MEMORY": settings.spark.driver_memory,
        "IOTLAKE_SPARK__SHUFFLE_PARTITIONS": str(settings.spark.shuffle_partitions),
        "IOTLAKE_LAKE__ROOT": settings.lake.root,
        "IOTLAKE_GATEWAY__PORT": str(settings.gateway.port),
        "IOTLAKE_DASHBOARD__PORT": str(settings.dashboard.port),
        "IOTLAKE_SEISMOGRAPH__TRANSPORT": settings.seismograph.transport,
        "IOTLAKE_SEISMOGRAPH__STREAM": settings.seismograph.stream,
        "IOTLAKE_PIPELINES__TRIGGER_SECONDS": str(settings.pipelines.trigger_seconds),
    }


@dataclass
class Child:
    """A process the benchmark started, its log, and how far the log has been read."""

    name: str
    handle: Handle
    popen: subprocess.Popen[bytes]
    log: Path
    settings: Settings
    _offset: int = 0
    _partial: bytes = b""
    lines: list[str] = field(default_factory=list)

    def running(self) -> bool:
        return self.popen.poll() is None and self.handle.process() is not None

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def new_lines(self) -> list[str]:
        """Lines the child wrote since the last call (its output goes to its log file)."""
        try:
            with self.log.open("rb") as stream:
                stream.seek(self._offset)
                chunk = stream.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        fresh = [line.decode(errors="replace").rstrip() for line in complete]
        self.lines += fresh
        return fresh

    def last_line(self) -> str:
        self.new_lines()
        shown = [line for line in self.lines if line.strip()]
        return shown[-1][:200] if shown else "(no output)"

    def stop(self, grace_seconds: float = 20.0) -> None:
        """SIGTERM to the child's process group, SIGKILL after the grace period."""
        terminate(self.settings.run_dir, self.name, grace_seconds=grace_seconds)


def start_child(
    settings: Settings, name: str, args: list[str], env: dict[str, str] | None = None
) -> Child:
    """Run `python <args>` in its own session with `settings` in its environment."""
    log = settings.log_dir / f"{name}.log"
    log.unlink(missing_ok=True)
    variables = {**settings_env(settings), **UNBUFFERED, **(env or {})}
    handle, popen = spawn(name, [sys.executable, *args], variables, settings.run_dir, log)
    return Child(name, handle, popen, log, settings)


def wait_for_line(child: Child, wanted: Callable[[str], bool], timeout: float, what: str) -> str:
    """The first line of the child's output that satisfies `wanted`; fail clearly if the
    child exits or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in child.new_lines():
            if wanted(line):
                return line
        if not child.running():
            raise BenchError(f"{child.name} exited before {what}: {child.last_line()}")
        time.sleep(0.5)
    raise BenchError(f"{child.name}: no {what} after {timeout:.0f}s; see {child.log}")


def _classify(proc: psutil.Process) -> str:
    """Which part of a pipeline driver a process is: the JVM, a Python worker, or Python."""
    try:
        command = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if proc.name() == "java" or "/java " in command:
        return "jvm"
    if "-m pyspark." in command or "pyspark/daemon" in command or "pyspark/worker" in command:
        return "python workers"
    return "driver"


def _rss(proc: psutil.Process) -> int:
    """Resident bytes, or 0 for a JVM's child caught before it became another program: the
    JVM starts Python workers with `posix_spawn`, whose child shares the JVM's memory and
    command line until its exec, and would count the JVM twice."""
    try:
        if _classify(proc) == "jvm" and proc.cmdline() == proc.parent().cmdline():
            return 0
        rss: int = proc.memory_info().rss
        return rss
    except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
        return 0


def rss_by_process(settings: Settings) -> dict[str, float]:
    """Resident MB of every process recorded under the settings' run directory.

    Each recorded process counts with its children (spark-class and the pipeline's driver
    fork a JVM, which forks Python workers); a pipeline driver is also split into its parts,
    as `<name>: driver|jvm|python workers`, which the totals do not count twice.
    """
    rows: dict[str, float] = {}
    for name, members in _recorded_trees(settings):
        # One reading per process, so the parts add up to the whole while workers come and go.
        sizes = [(member, _rss(member)) for member in members]
        rows[name] = round(sum(size for _, size in sizes) / 2**20, 1)
        if len(members) > 1 and "pipeline" in name:
            parts: dict[str, int] = {}
            for member, size in sizes:
                part = _classify(member)
                parts[part] = parts.get(part, 0) + size
            for part, size in sorted(parts.items()):
                if part != "gone":
                    rows[f"{name}: {part}"] = round(size / 2**20, 1)
    return rows


def pss_total(settings: Settings) -> float:
    """Proportional MB of every process recorded under the run directory and its children:
    a page several processes share (a library, a forked worker's inherited memory) counts
    once, split among them, so this is what the stack holds, where the RSS sum is more."""
    total = 0
    for member in descendants(settings):
        try:
            if _rss(member):
                total += member.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return round(total / 2**20, 1)


def rss_total(rows: dict[str, float]) -> float:
    """The sum over recorded processes, without the per-part split of pipeline drivers."""
    return round(sum(size for name, size in rows.items() if ": " not in name), 1)


def descendants(settings: Settings) -> list[psutil.Process]:
    """Every live process recorded under the run directory, with all its descendants."""
    return [member for _, members in _recorded_trees(settings) for member in members]


def _recorded_trees(settings: Settings) -> Iterator[tuple[str, list[psutil.Process]]]:
    """Each live process recorded under the run directory, by name, with its descendants."""
    for name in recorded_names(settings.run_dir):
        handle = read_handle(settings.run_dir, name)
        proc = handle.process() if handle else None
        if proc is None:
            continue
        try:
            members = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        yield name, members


def survivors(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` still alive (the same process, not a reused PID)."""
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def kill_survivors(processes: list[psutil.Process]) -> list[str]:
    """SIGKILL each process left alive, by PID; return what had to be killed."""
    killed = []
    for proc in survivors(processes):
        try:
            killed.append(f"{proc.pid} {proc.name()}")
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(processes, timeout=5)
    return killed
