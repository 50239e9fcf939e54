"""Kafka broker: Apache Kafka 4.1.1 in KRaft mode, one node that is broker and controller.

The JVM runs the jars `make jars` resolved into `.jars/kafka/` (`java -cp .jars/kafka/*
kafka.Kafka server.properties`), so starting it needs no network. Its log directory is
`<state>/data/kafka/logs` on local disk, formatted once (a new cluster id, the node as the
only voter of the metadata quorum) before the first start.

Kafka appends a record to its log file before it answers the producer (with `acks=all`,
every producer here), and the kernel keeps what was written when the process is killed, so
a broker restarted after `kill -9` still holds every acknowledged record, topic and
committed offset; only a lost machine could lose the last writes, which are not fsynced.
`iotlake down` deletes the directory, so the next stack starts with no topics.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from iotlake.config import Settings
from iotlake.jars import MissingJarsError, jars
from services.embedded.spec import PrepareError, ServiceSpec

LOG4J_CONFIG = Path(__file__).resolve().parent / "kafka-log4j2.properties"
_SILENT = logging.getLogger("iotlake.kafka.health")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False
FORMAT_TIMEOUT_SECONDS = 120


def java_binary() -> Path:
    """The `java` of JAVA_HOME, else the one on PATH; a bare name when there is none,
    which the stack's preflight reports as not found."""
    home = os.environ.get("JAVA_HOME")
    if home:
        return Path(home) / "bin" / "java"
    found = shutil.which("java")
    return Path(found) if found else Path("java")


def kafka_dir(settings: Settings) -> Path:
    """Everything the broker keeps: its properties and its log directory."""
    return (settings.data_dir / "kafka").resolve()


def log_dir(settings: Settings) -> Path:
    """Kafka's `log.dirs`: partitions, the metadata log and meta.properties."""
    return kafka_dir(settings) / "logs"


def properties_file(settings: Settings) -> Path:
    """Next to the logs, so `iotlake down` forgets it with them."""
    return kafka_dir(settings) / "server.properties"


def server_properties(settings: Settings) -> dict[str, str]:
    """One combined node on the configured host; sized for a laptop, not a cluster."""
    kafka = settings.kafka
    client = f"{kafka.host}:{kafka.port}"
    controller = f"{kafka.host}:{kafka.controller_port}"
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": controller,
        "listeners": f"PLAINTEXT://{client},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{client},CONTROLLER://{controller}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir(settings)),
        # One node holds one replica of everything, internal topics included.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A handful of consumer groups, not thousands: 4 offset partitions, not 50.
        "offsets.topic.num.partitions": "4",
        # The log cleaner (for the compacted offsets topic) takes 128 MB of heap by default,
        # half the heap given here; the offsets topic stays small, so 16 MB is enough.
        "log.cleaner.dedupe.buffer.size": str(16 * 2**20),
        # A consumer group starts at once rather than waiting 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # A node restarted after a kill registers anew only once the controller (itself)
        # has seen the old registration's session expire: 4 s instead of 9 s of downtime.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "1000",
    }


def write_properties(settings: Settings) -> Path:
    """Write server.properties from the current settings (ports may differ between starts)."""
    path = properties_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in server_properties(settings).items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def new_cluster_id() -> str:
    """A cluster id as Kafka writes them: a random UUID in URL-safe base64, 22 characters.

    Kafka's own tool never hands out an id starting with '-' (it would read as an option).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def is_formatted(settings: Settings) -> bool:
    """The storage tool writes meta.properties last, once the directory is complete."""
    return (log_dir(settings) / "meta.properties").exists()


def _java(settings: Settings, main_class: str, *args: str) -> list[str]:
    """A JVM command line over the Kafka jars, logging through the committed Log4j config."""
    return [
        str(java_binary()),
        f"-Xmx{settings.kafka.heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        # IPv4 sockets: listeners bound to exactly 127.0.0.1, not an IPv4-mapped IPv6 address.
        "-Djava.net.preferIPv4Stack=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        str((settings.jars_dir / "kafka").resolve() / "*"),
        main_class,
        *args,
    ]


def format_storage(settings: Settings) -> None:
    """Format the log directory once: a new cluster whose only controller is this node.

    A partly written directory (a start killed mid-format) has no meta.properties yet; it
    is cleared and formatted again.
    """
    if is_formatted(settings):
        return
    shutil.rmtree(log_dir(settings), ignore_errors=True)
    command = _java(
        settings,
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "--cluster-id",
        new_cluster_id(),
        "--config",
        str(properties_file(settings)),
    )
    log_file = settings.log_dir / "kafka.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        try:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, timeout=FORMAT_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            raise PrepareError(
                f"formatting {log_dir(settings)} took over {FORMAT_TIMEOUT_SECONDS}s; "
                f"see {log_file}"
            ) from None
    if done.returncode != 0 or not is_formatted(settings):
        raise PrepareError(
            f"formatting {log_dir(settings)} failed (exit code {done.returncode}); see {log_file}"
        )


def prepare(settings: Settings) -> None:
    """Properties for this start, and storage formatted if it never was."""
    write_properties(settings)
    format_storage(settings)


def missing_jars(settings: Settings) -> str | None:
    """One line naming `make jars` when the broker's jars are not resolved, else None."""
    try:
        jars(settings.jars_dir, "kafka")
    except MissingJarsError as error:
        return str(error)
    return None


def forget(settings: Settings) -> None:
    """Delete the broker's topics and offsets, so the next broker starts empty."""
    shutil.rmtree(kafka_dir(settings), ignore_errors=True)


def metadata_answers(bootstrap: str) -> bool:
    """Healthy means a metadata answer that lists a live broker.

    A KRaft broker lists itself only once the controller has unfenced it; before that it
    answers, but topics cannot be created.
    """
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000, "logger": _SILENT}
    )
    try:
        metadata = admin.list_topics(timeout=1.5)
    except Exception:
        return False
    return bool(metadata.brokers)


def spec(settings: Settings) -> ServiceSpec:
    """The broker as the stack runs it: both listeners' ports checked free before the start,
    missing jars reported before anything starts, healthy once it serves metadata."""
    kafka = settings.kafka
    return ServiceSpec(
        name="kafka",
        command=_java(settings, "kafka.Kafka", str(properties_file(settings))),
        endpoint=kafka.bootstrap_servers,
        host=kafka.host,
        ports=(kafka.port, kafka.controller_port),
        healthy=lambda: metadata_answers(kafka.bootstrap_servers),
        install_hint=(
            "the Kafka broker runs on Java 17 or newer: install a JDK or JRE "
            "(Debian: openjdk-17-jre-headless) or set JAVA_HOME"
        ),
        prepare=lambda: prepare(settings),
        start_timeout=120.0,
        lacking=lambda: missing_jars(settings),
    )
