"""Is a service a command needs answering? Asked before the command starts its real work.

Without this check a pipeline started while the broker is down spends a minute starting
Spark and then fails with hundreds of lines of JVM and Python traces, and a producer
retries for half a minute before giving up. A TCP connect to each endpoint the command
needs takes milliseconds and allows one line naming the service, its address and the fix.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from iotlake.config import Settings

CONNECT_TIMEOUT_SECONDS = 3.0
SERVICE_NAMES = {
    "kafka": "the Kafka broker",
    "aws": "the S3/Kinesis emulator",
    "mqtt": "the MQTT broker",
}
# Which setting picks the transport of a system whose records can come either way.
TRANSPORT_SECTIONS = {"seismograph": "seismograph", "aws-iot": "aws_iot"}


def endpoint(settings: Settings, service: str) -> tuple[str, int] | None:
    """The host and port of `service`; None when it is real AWS (not ours to check)."""
    if service == "kafka":
        return settings.kafka.host, settings.kafka.port
    if service == "mqtt":
        return settings.mqtt.host, settings.mqtt.port
    if service == "aws":
        if settings.aws.emulator == "aws":
            return None
        return settings.aws.host, settings.aws.port
    raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICE_NAMES)}")


def transport_service(transport: str) -> str:
    """The service a transport setting (`kinesis` or `kafka`) depends on."""
    return "kafka" if transport == "kafka" else "aws"


def pipeline_services(settings: Settings, system: str) -> list[str]:
    """The services `iotlake run <system>` reads from or writes to.

    Systems with a transport setting read from whichever it names; the others read the
    Kafka topics or Kinesis streams their provisioning declares (file-fed systems none).
    An S3 lake needs the S3 endpoint whatever the system.
    """
    from services.provisioning.resources import for_systems
    from spark_jobs.io.storage import is_local

    needed: list[str] = []
    section = TRANSPORT_SECTIONS.get(system)
    if section is not None:
        needed.append(transport_service(getattr(settings, section).transport))
    else:
        known = {resources.system: resources for resources in for_systems(None)}
        resources = known.get(system)
        if resources is not None and resources.topics:
            needed.append("kafka")
        if resources is not None and resources.streams:
            needed.append("aws")
    if not is_local(settings.lake_root) and "aws" not in needed:
        needed.append("aws")
    return needed


def _fix(settings: Settings) -> str:
    if settings.profile == "compose":
        return "start the stack with `docker compose up --wait`"
    return "start it with `iotlake up` (`iotlake status` shows what runs)"


def _refusal(host: str, port: int) -> str | None:
    """Why a TCP connection to host:port fails, or None when something accepts it."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
            return None
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT_SECONDS:.0f}s"
    except OSError as error:
        return error.strerror or type(error).__name__


def unreachable(settings: Settings, services: Iterable[str]) -> str | None:
    """One line naming the first needed service that does not answer, and the fix; else None."""
    for service in dict.fromkeys(services):
        address = endpoint(settings, service)
        if address is None:
            continue
        reason = _refusal(*address)
        if reason is not None:
            host, port = address
            return (
                f"{SERVICE_NAMES[service]} does not answer at {host}:{port} ({reason.lower()}); "
                f"{_fix(settings)}"
            )
    return None
