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

import boto3
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from iotlake.config import Settings
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
    found = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        shard_id = shard["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            if not answer["Records"]:
                break
            found += [
                StreamRecord(shard_id, r["PartitionKey"], r["Data"]) for r in answer["Records"]
            ]
            iterator = answer.get("NextShardIterator")
    return found


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


def terminated_after_first_send(
    settings: Settings, module: str, *args: str
) -> tuple[int, str, re.Match[str] | None]:
    """Start the producer's command line, SIGTERM it once it reports sending; its exit code,
    its output and its final line matched by `FINAL_LINE`."""
    child = start_module(settings, module, *args)
    wait_for_line(child, "sent ")
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=60)
    return child.returncode, output, FINAL_LINE.match(output.strip().splitlines()[-1])
