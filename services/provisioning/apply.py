"""Apply the declared resources idempotently: create what is missing, report what changed."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from iotlake.config import Settings
from services.provisioning.resources import SystemResources
from spark_jobs.io.storage import landing_uri


def _apply_topics(settings: Settings, resources: tuple[SystemResources, ...]) -> list[str]:
    wanted = {topic.name: topic for system in resources for topic in system.topics}
    if not wanted:
        return []
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    existing = admin.list_topics(timeout=10).topics
    changes = []
    missing = [NewTopic(t.name, t.partitions, 1) for n, t in wanted.items() if n not in existing]
    for name, future in admin.create_topics(missing).items() if missing else []:
        future.result(timeout=30)
        changes.append(f"created Kafka topic {name} ({wanted[name].partitions} partitions)")
    grow = [
        NewPartitions(name, topic.partitions)
        for name, topic in wanted.items()
        if name in existing and len(existing[name].partitions) < topic.partitions
    ]
    for name, future in admin.create_partitions(grow).items() if grow else []:
        future.result(timeout=30)
        changes.append(f"grew Kafka topic {name} to {wanted[name].partitions} partitions")
    return changes


def _apply_streams(settings: Settings, resources: tuple[SystemResources, ...]) -> list[str]:
    wanted = {stream.name: stream for system in resources for stream in system.streams}
    if not wanted:
        return []
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    existing = set(kinesis.list_streams().get("StreamNames", []))
    changes = []
    for name, stream in wanted.items():
        if name in existing:
            continue
        kinesis.create_stream(StreamName=name, ShardCount=stream.shards)
        _wait_active(kinesis, name)
        changes.append(f"created Kinesis stream {name} ({stream.shards} shards)")
    return changes


def _wait_active(kinesis, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.2)
    raise TimeoutError(f"Kinesis stream {name} not ACTIVE after {timeout:.0f}s")


def _apply_storage(settings: Settings, resources: tuple[SystemResources, ...]) -> list[str]:
    """Buckets on the S3 endpoint and, for a local lake, the table and landing roots."""
    changes = []
    if settings.aws.emulator != "aws":
        s3 = boto3.client("s3", **settings.aws.boto3_kwargs())
        existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
        for bucket in (settings.lake.bucket, settings.lake.landing_bucket):
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
                changes.append(f"created bucket {bucket}")
    if not settings.lake_root.startswith("s3://"):
        roots = [Path(settings.lake_root)]
        roots += [Path(landing_uri(settings, p)) for s in resources for p in s.landing_paths]
        for root in roots:
            if not root.exists():
                root.mkdir(parents=True)
                changes.append(f"created directory {root}")
    return changes


def provision(settings: Settings, resources: tuple[SystemResources, ...]) -> list[str]:
    """Create whatever of `resources` is missing; return one line per change made."""
    return (
        _apply_storage(settings, resources)
        + _apply_topics(settings, resources)
        + _apply_streams(settings, resources)
    )
