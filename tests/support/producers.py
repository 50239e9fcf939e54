"""Helpers for the producer tests: private streams and topics, reading them back, a clock.

Each test writes to a stream or topic of its own, named uniquely, with the shard or partition
count the provisioned one has, so the shared `dais2023` and `iot-sensor-data-stream` stay
untouched for the pipeline tests.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from click.testing import Result
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from iotlake.config import Settings
from spark_jobs.io.kinesis.fetch import every_record
from tests.support.cli import run_cli
from tests.support.processes import start_module, wait_for_line

FINAL_LINE = re.compile(r"^stopped after .*: sent (\d+) (?:events in (\d+) )?records")


@dataclass
class StreamRecord:
    shard_id: str
    partition_key: str
    data: bytes


def fresh_stream(settings: Settings, shards: int) -> str:
    """A new, empty Kinesis stream with `shards` shards, ACTIVE."""
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    name = f"test-{uuid.uuid4().hex[:10]}"
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    return name


def read_stream(settings: Settings, stream: str) -> list[StreamRecord]:
    """Every record of every shard, from the start, in shard order."""
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    return [
        StreamRecord(shard_id, record["PartitionKey"], record["Data"])
        for shard_id, record in every_record(kinesis, stream)
    ]


def fresh_topic(settings: Settings, partitions: int) -> str:
    """A new Kafka topic with `partitions` partitions."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)
    return name


def read_topic(
    settings: Settings, topic: str, partitions: int, expected: int, timeout: float = 30.0
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of the topic's first `expected` messages, or all within timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            found.append((message.partition(), message.key(), message.value()))
    finally:
        consumer.close()
    return found


class FakeClock:
    """A clock that moves only when the producer sleeps: runs become exactly repeatable."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_before_the_stream_exists(
    settings: Settings, run: Callable, options_for: Callable[[str], object], shards: int
) -> tuple[object, list[str], str]:
    """`run(settings, options_for(stream), report=...)` in a thread, its stream created only a
    second after it started; the run's result, its lines and the stream's name."""
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    stream = f"late-{time.time_ns()}"
    lines: list[str] = []
    outcome: dict[str, object] = {}
    options = options_for(stream)
    producer = threading.Thread(
        target=lambda: outcome.update(result=run(settings, options, report=lines.append))
    )
    producer.start()
    time.sleep(1.0)
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    producer.join(timeout=60)
    return outcome["result"], lines, stream


def sent_before_sigterm(
    settings: Settings, module: str, shards: int, *args: str
) -> tuple[re.Match[str], int]:
    """Start the producer's command line on a fresh stream of `shards` shards and SIGTERM it
    once it reports sending; check it exits 0 with a final count. That final line matched by
    `FINAL_LINE`, and how many records the stream holds."""
    stream = fresh_stream(settings, shards)
    child = start_module(settings, module, "--stream", stream, *args)
    wait_for_line(child, "sent ")
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=60)
    final = FINAL_LINE.match(output.strip().splitlines()[-1])

    assert child.returncode == 0, output
    assert final, output
    return final, len(read_stream(settings, stream))


def options_from_command_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, producer: ModuleType, *args: str
) -> tuple[Result, Any]:
    """Run `iotlake ARGS` with the producer's `main` replaced by one that only keeps the
    options it was given, resolved against `settings`; the CLI's result and those options
    (None when `main` was never reached)."""
    seen = {}

    def main(settings: Settings, options: Any, stop: threading.Event) -> int:
        seen["options"] = producer.resolved(options, settings)
        return 0

    monkeypatch.setattr(producer, "main", main)
    result = run_cli(settings, *args)
    return result, seen.get("options")


def open_shards(settings: Settings, stream: str) -> int:
    """How many open shards the Kinesis stream has."""
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    summary = kinesis.describe_stream_summary(StreamName=stream)
    return summary["StreamDescriptionSummary"]["OpenShardCount"]
