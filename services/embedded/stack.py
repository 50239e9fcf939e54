"""The embedded stack: every service as a local process on 127.0.0.1, no Docker.

`up` checks every port and binary before starting anything, starts services in dependency
order, waits for each to be healthy, and on any failure stops what it started, so no
half-started stack is left behind. `down` stops exactly the processes named in PID files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from iotlake.config import Settings
from services.embedded import aws_emulator, kafka_broker, mqtt_broker, spark_cluster
from services.embedded.jobs import demo_specs
from services.embedded.process import (
    Handle,
    kill_hard,
    read_handle,
    recorded_names,
    spawn,
    terminate,
    wait_until,
)
from services.embedded.spec import PrepareError, ServiceSpec, port_is_free

# Start order, stopped in reverse: services before the jobs that use them, a worker after
# its master.
START_ORDER = [
    "aws",
    "kafka",
    "mqtt",
    "spark-master",
    "spark-worker",
    "pipelines",
    "producer-seismograph",
    "producer-aws-iot",
    "bridge-arduino",
    "producer-arduino",
    "gateway",
    "dashboard",
]


class StackError(Exception):
    """A service could not start; the message is one line naming it and the fix."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    endpoint: str
    pid: int | None
    healthy: bool
    rss_mb: float
    startup_seconds: float | None


def planned_services(settings: Settings, cluster: bool) -> list[ServiceSpec]:
    specs = [
        aws_emulator.spec(settings),
        kafka_broker.spec(settings),
        mqtt_broker.spec(settings),
    ]
    if cluster:
        specs += [spark_cluster.master_spec(settings), *spark_cluster.worker_specs(settings)]
    return specs


def _startup_file(settings: Settings) -> Path:
    return settings.run_dir / "startup.json"


def _record_startup(settings: Settings, name: str, seconds: float, stack_config: dict) -> None:
    path = _startup_file(settings)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {"startup_seconds": round(seconds, 2), **stack_config}
    path.write_text(json.dumps(data, indent=2))


def _startup_record(settings: Settings) -> dict:
    path = _startup_file(settings)
    return json.loads(path.read_text()) if path.exists() else {}


def _running(settings: Settings, name: str) -> Handle | None:
    handle = read_handle(settings.run_dir, name)
    return handle if handle and handle.process() else None


def is_running(settings: Settings, name: str) -> bool:
    """Whether the service or job `name` that `iotlake up`/`demo` started is alive."""
    return _running(settings, name) is not None


def _preflight(specs: list[ServiceSpec]) -> None:
    """Fail before starting anything if a binary is missing or a port is taken."""
    for spec in specs:
        if not spec.binary.exists():
            raise StackError(f"{spec.name}: {spec.binary} not found; {spec.install_hint}")
        problem = spec.lacking() if spec.lacking else None
        if problem:
            raise StackError(f"{spec.name}: {problem}")
        for port in spec.ports:
            if not port_is_free(spec.host, port):
                raise StackError(
                    f"{spec.name}: port {port} on {spec.host} is already in use; stop what "
                    f"holds it or choose another port in iotlake.yml / IOTLAKE_* variables"
                )


def _last_log_line(log_file: Path) -> str:
    if not log_file.exists():
        return ""
    lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else ""


def _start_one(settings: Settings, spec: ServiceSpec) -> float:
    """Start one service and wait until it is healthy; return its start-up seconds."""
    log_file = settings.log_dir / f"{spec.name}.log"
    began = time.monotonic()
    if spec.prepare:
        try:
            spec.prepare()
        except PrepareError as error:
            raise StackError(f"{spec.name}: {error}") from None
    _, popen = spawn(spec.name, spec.command, spec.env, settings.run_dir, log_file)

    def ready() -> bool:
        if popen.poll() is not None:
            return True
        return spec.healthy()

    wait_until(ready, spec.start_timeout)
    if popen.poll() is not None:
        raise StackError(
            f"{spec.name}: exited with code {popen.returncode} while starting "
            f"({_last_log_line(log_file)}); see {log_file}"
        )
    if not spec.healthy():
        raise StackError(
            f"{spec.name}: not healthy after {spec.start_timeout:.0f}s; see {log_file}"
        )
    return time.monotonic() - began


def up(
    settings: Settings,
    cluster: bool = False,
    report: Callable[[str], None] = print,
    jobs: list[ServiceSpec] | None = None,
) -> list[ServiceStatus]:
    """Start the stack (and `jobs` after it); already-running services are left as they are."""
    specs = planned_services(settings, cluster) + list(jobs or [])
    to_start = [spec for spec in specs if not _running(settings, spec.name)]
    for spec in specs:
        if spec not in to_start:
            report(f"{spec.name}: already running at {spec.endpoint}")
    _preflight(to_start)
    started: list[str] = []
    try:
        for spec in to_start:
            seconds = _start_one(settings, spec)
            started.append(spec.name)
            _record_startup(settings, spec.name, seconds, {"endpoint": spec.endpoint})
            report(f"{spec.name}: healthy at {spec.endpoint} in {seconds:.1f}s")
    except BaseException:
        for name in reversed([*started, spec.name]):
            terminate(settings.run_dir, name)
        raise
    return status(settings)


def down(settings: Settings, report: Callable[[str], None] = print) -> list[str]:
    """Stop every service recorded in a PID file, in reverse start order."""
    names = recorded_names(settings.run_dir)
    ordered = sorted(names, key=lambda n: START_ORDER.index(n) if n in START_ORDER else -1)
    stopped = []
    for name in reversed(ordered):
        if terminate(settings.run_dir, name):
            stopped.append(name)
            report(f"{name}: stopped")
    _startup_file(settings).unlink(missing_ok=True)
    # The emulator's journal and the broker's log outlive a crash, not a `down`: the next
    # stack starts empty.
    aws_emulator.forget(settings)
    kafka_broker.forget(settings)
    return stopped


def restart(settings: Settings, name: str, hard: bool = False) -> float:
    """Stop one running service (SIGKILL when `hard`) and start it again; for fault tests."""
    cluster = name.startswith("spark-")
    specs = planned_services(settings, cluster) + demo_specs(settings)
    spec = next(s for s in specs if s.name == name)
    handle = read_handle(settings.run_dir, name)
    if hard and handle:
        kill_hard(handle)
    terminate(settings.run_dir, name)
    wait_until(lambda: all(port_is_free(spec.host, port) for port in spec.ports), 15)
    seconds = _start_one(settings, spec)
    _record_startup(settings, name, seconds, {"endpoint": spec.endpoint})
    return seconds


def status(settings: Settings) -> list[ServiceStatus]:
    """Each service of the stack, recorded or expected, with pid, health and memory."""
    recorded = set(recorded_names(settings.run_dir))
    cluster = bool(recorded & {"spark-master", "spark-worker"})
    startup = _startup_record(settings)
    rows = []
    specs = planned_services(settings, cluster)
    specs += [spec for spec in demo_specs(settings) if spec.name in recorded]
    for spec in specs:
        handle = _running(settings, spec.name)
        rows.append(
            ServiceStatus(
                name=spec.name,
                endpoint=spec.endpoint,
                pid=handle.pid if handle else None,
                healthy=bool(handle) and spec.healthy(),
                rss_mb=handle.rss_mb() if handle else 0.0,
                startup_seconds=startup.get(spec.name, {}).get("startup_seconds"),
            )
        )
    return rows


def status_json(settings: Settings) -> str:
    return json.dumps([asdict(row) for row in status(settings)], indent=2)
