"""The embedded Apache Kafka broker does real work, keeps acknowledged records through a
kill -9, keeps its data under the state directory, and fails clearly when it cannot start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from iotlake.config import Settings
from services.embedded import kafka_broker
from services.embedded import stack as embedded
from services.embedded.process import read_handle
from tests.support.cli import one_line
from tests.support.settings import settings_env, settings_for


def _create_topic(bootstrap: str, partitions: int = 2) -> str:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    return topic


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 2, first: int = 0) -> None:
    """`count` records acknowledged by the broker (acks=all, as every iotlake producer)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "enable.idempotence": True}
    )
    for i in range(count):
        producer.produce(topic, key=str(i), value=f"reading-{i}", partition=first + i % partitions)
    assert producer.flush(30) == 0


def _group_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )


def _drain(consumer: Consumer, want: int, timeout: float = 60) -> list:
    messages = []
    deadline = time.monotonic() + timeout
    while len(messages) < want and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(500, timeout=1) if m.error() is None]
    return messages


# What a broker answers while its group coordinator is still loading after a restart.
_COORDINATOR_NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
}


def _committed(consumer: Consumer, tps: list[TopicPartition], timeout: float = 60) -> list:
    """The group's committed offsets, asked again while the coordinator is not ready yet, as
    Kafka's own clients do."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.committed(tps, 10)
        except KafkaException as error:
            if error.args[0].code() not in _COORDINATOR_NOT_READY or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _read_all(bootstrap: str, topic: str, partitions: int, want: int) -> list:
    """Every record of the topic from offset 0, without a consumer group."""
    consumer = _group_consumer(bootstrap, f"reader-{uuid.uuid4().hex[:6]}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = _drain(consumer, want)
    consumer.close()
    return messages


def _cli_up(settings: Settings, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), **extra_env}
    command = [sys.executable, "-m", "iotlake", "up"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_consumer_group_reads_everything_and_commits_offsets(endpoints):
    bootstrap = endpoints.settings.kafka.bootstrap_servers
    topic = _create_topic(bootstrap)
    _produce(bootstrap, topic, 200)
    consumer = _group_consumer(bootstrap, "readers")
    consumer.subscribe([topic])
    messages = _drain(consumer, 200)
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)
    consumer.close()

    assert sorted(m.value().decode() for m in messages) == sorted(
        f"reading-{i}" for i in range(200)
    )
    assert sum(tp.offset for tp in committed) == 200


def test_broker_listens_on_its_client_and_controller_ports_on_loopback_only(stack):
    java = psutil.Process(read_handle(stack.run_dir, "kafka").pid)
    listening = {
        (conn.laddr.ip, conn.laddr.port)
        for conn in java.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }

    kafka = stack.kafka
    assert listening == {("127.0.0.1", kafka.port), ("127.0.0.1", kafka.controller_port)}
    metadata = AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).list_topics(timeout=10)
    assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", kafka.port)]


def test_partitions_added_to_a_topic_take_records(stack):
    bootstrap = stack.kafka.bootstrap_servers
    topic = _create_topic(bootstrap, partitions=2)
    admin = AdminClient({"bootstrap.servers": bootstrap})

    admin.create_partitions([NewPartitions(topic, 5)])[topic].result(timeout=30)
    _produce(bootstrap, topic, 30, partitions=3, first=2)

    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 5
    read = _read_all(bootstrap, topic, 5, 30)
    assert sorted({m.partition() for m in read}) == [2, 3, 4]
    assert len(read) == 30


def test_log_directory_is_under_the_state_directory(stack):
    topic = _create_topic(stack.kafka.bootstrap_servers, partitions=2)
    _produce(stack.kafka.bootstrap_servers, topic, 10)

    logs = (stack.state_dir / "data" / "kafka" / "logs").resolve()
    assert kafka_broker.log_dir(stack) == logs
    assert (logs / "meta.properties").exists()
    assert {path.name for path in logs.glob(f"{topic}-*")} == {f"{topic}-0", f"{topic}-1"}


def test_acknowledged_records_and_committed_offsets_survive_kill_9(stack):
    bootstrap = stack.kafka.bootstrap_servers
    topic = _create_topic(bootstrap)
    _produce(bootstrap, topic, 1000)
    consumer = _group_consumer(bootstrap, "survivors")
    consumer.commit(
        offsets=[TopicPartition(topic, 0, 300), TopicPartition(topic, 1, 200)], asynchronous=False
    )
    consumer.close()

    embedded.restart(stack, "kafka", hard=True)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 2
    after = _group_consumer(bootstrap, "survivors")
    committed = _committed(after, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    after.close()
    assert [tp.offset for tp in committed] == [300, 200]
    read = _read_all(bootstrap, topic, 2, 1000)
    assert sorted(m.value().decode() for m in read) == sorted(f"reading-{i}" for i in range(1000))
    assert sorted((m.partition(), m.offset()) for m in read) == [
        (p, o) for p in (0, 1) for o in range(500)
    ]
    # The restarted broker takes new records after the old ones.
    _produce(bootstrap, topic, 10)
    assert len(_read_all(bootstrap, topic, 2, 1010)) == 1010


def test_down_forgets_the_topics_so_the_next_broker_starts_empty(tmp_path):
    settings = settings_for(tmp_path)
    embedded.up(settings, report=lambda line: None)
    try:
        topic = _create_topic(settings.kafka.bootstrap_servers)
    finally:
        embedded.down(settings, report=lambda line: None)
    assert not (tmp_path / "data" / "kafka").exists()

    embedded.up(settings, report=lambda line: None)
    try:
        admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        assert topic not in admin.list_topics(timeout=10).topics
    finally:
        embedded.down(settings, report=lambda line: None)


@pytest.mark.parametrize(
    ("variable", "start", "fix"),
    [
        pytest.param("IOTLAKE_JARS_DIR", "iotlake: kafka: ", "`make jars`", id="kafka-jars"),
        pytest.param(
            "JAVA_HOME", "iotlake: kafka: {missing}/bin/java not found", "JAVA_HOME", id="java"
        ),
    ],
)
def test_a_missing_prerequisite_stops_up_in_one_line_naming_the_fix(tmp_path, variable, start, fix):
    missing = tmp_path / "missing"

    result = _cli_up(settings_for(tmp_path), **{variable: str(missing)})

    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(start.format(missing=missing)) and fix in line
    assert not list((tmp_path / "run").glob("*.pid"))
