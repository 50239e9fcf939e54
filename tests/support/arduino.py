"""Helpers for the Arduino tests: private topics on the shared stack, a bridge in a thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from iotlake.config import Settings
from services.arduino.bridge import Bridge, BridgeOptions

SENSOR_TOPICS = ("temperature_topic", "humidity_topic", "distance_topic", "pir_topic")


def private_arduino(stack: Settings, **updates: object) -> Settings:
    """Settings whose MQTT prefix, bridge client id and four Kafka topics belong to one test."""
    tag = uuid.uuid4().hex[:8]
    topics = {field: f"arduino-{field.split('_')[0]}-{tag}" for field in SENSOR_TOPICS}
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    futures = admin.create_topics([NewTopic(name, 1, 1) for name in topics.values()])
    for future in futures.values():
        future.result(timeout=30)
    config = stack.arduino.model_copy(
        update={**topics, "mqtt_prefix": f"test-{tag}/", "bridge_client_id": f"bridge-{tag}"}
    )
    return stack.model_copy(update={"arduino": config, **updates})


def read_values(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list:
    """The values of a one-partition topic from offset 0, until `expected` arrived or timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    values.append(message.value())
    finally:
        consumer.close()
    return values


@contextmanager
def running_bridge(settings: Settings, lines: list[str] | None = None) -> Iterator[Bridge]:
    """A bridge polling in a background thread, connected when entered, stopped on exit."""
    report = lines.append if lines is not None else lambda line: None
    bridge = Bridge(settings, BridgeOptions(), report)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            bridge.poll(0.05)

    bridge.start()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        assert bridge.wait_connected(30), "the bridge did not connect to Mosquitto"
        yield bridge
    finally:
        stop.set()
        thread.join(10)
        bridge.stop(30)
