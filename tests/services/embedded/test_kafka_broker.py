"""The embedded Kafka-API broker does real work and keeps its data across a restart."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from services.embedded import stack as embedded
from tests.conftest import settings_for


def _create_topic(bootstrap: str, partitions: int = 2) -> str:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    return topic


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 2) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, key=str(i), value=f"reading-{i}", partition=i % partitions)
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


def test_broker_restart_keeps_topics_records_and_committed_offsets(stack):
    bootstrap = stack.kafka.bootstrap_servers
    topic = _create_topic(bootstrap)
    _produce(bootstrap, topic, 100)
    consumer = _group_consumer(bootstrap, "survivors")
    consumer.commit(
        offsets=[TopicPartition(topic, 0, 30), TopicPartition(topic, 1, 20)], asynchronous=False
    )
    consumer.close()

    embedded.restart(stack, "kafka", hard=True)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 2
    after = _group_consumer(bootstrap, "survivors")
    committed = after.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)
    assert [tp.offset for tp in committed] == [30, 20]
    after.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    assert len(_drain(after, 100)) == 100
    after.close()


def test_emulator_killed_under_the_broker_keeps_topics_records_and_offsets(tmp_path):
    # The broker's log lives in the emulator's S3: the emulator's journal must bring it back.
    settings = settings_for(tmp_path)
    embedded.up(settings, report=lambda line: None)
    try:
        bootstrap = settings.kafka.bootstrap_servers
        topic = _create_topic(bootstrap)
        _produce(bootstrap, topic, 100)
        consumer = _group_consumer(bootstrap, "survivors")
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 30), TopicPartition(topic, 1, 20)],
            asynchronous=False,
        )
        consumer.close()

        embedded.restart(settings, "aws", hard=True)
        _produce(bootstrap, topic, 100)

        after = _group_consumer(bootstrap, "survivors")
        committed = after.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)
        assert [tp.offset for tp in committed] == [30, 20]
        after.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
        values = [m.value().decode() for m in _drain(after, 200)]
        after.close()
        assert sorted(values) == sorted([f"reading-{i}" for i in range(100)] * 2)
    finally:
        embedded.down(settings, report=lambda line: None)
