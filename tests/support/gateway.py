"""A gateway served from a thread, and what reaches its Kinesis stream or Kafka topic."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
from confluent_kafka import Consumer, TopicPartition

from iotlake.config import Settings
from services.gateway.ingest import build_gateway
from services.gateway.server import GatewayServer, make_server


@contextlib.contextmanager
def running_gateway(
    settings: Settings, target: str = "kinesis", **tls: Any
) -> Iterator[GatewayServer]:
    """A gateway on a free loopback port, served from a thread, stopped afterwards."""
    gateway = build_gateway(settings, target)
    server = make_server(gateway, "127.0.0.1", 0, **tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        gateway.close()


class KinesisTail:
    """What arrives on every shard of a stream from the moment this object is made."""

    def __init__(self, settings: Settings, stream: str | None = None) -> None:
        stream = stream or settings.seismograph.stream  # where the gateway forwards
        self.client = boto3.client("kinesis", **settings.aws.boto3_kwargs())
        shards = self.client.list_shards(StreamName=stream)["Shards"]
        self.iterators = {
            shard["ShardId"]: self.client.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for shard in shards
        }

    def _read(self) -> list[dict[str, Any]]:
        records = []
        for shard_id, iterator in self.iterators.items():
            answer = self.client.get_records(ShardIterator=iterator, Limit=10_000)
            self.iterators[shard_id] = answer["NextShardIterator"]
            records += answer["Records"]
        return records

    def collect(
        self, partition_key: str, count: int, timeout: float = 20.0, settle: float = 0.5
    ) -> list[dict[str, Any]]:
        """Records with this key: wait for `count`, then `settle` more seconds for extras."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        settled_at = None
        while time.monotonic() < (settled_at or deadline):
            found += [r for r in self._read() if r["PartitionKey"] == partition_key]
            if len(found) >= count and settled_at is None:
                settled_at = time.monotonic() + settle
            time.sleep(0.1)
        return found


class KafkaTail:
    """What arrives on every partition of a topic from the moment this object is made."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        topic = topic or settings.seismograph.stream
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": f"gateway-test-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        starts = []
        for partition in partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            starts.append(TopicPartition(topic, partition, high))
        self.consumer.assign(starts)

    def collect(self, key: bytes, count: int, timeout: float = 20.0) -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            message = self.consumer.poll(0.2)
            if message is not None and not message.error() and message.key() == key:
                found.append((message.key(), message.value()))
        return found

    def close(self) -> None:
        self.consumer.close()
