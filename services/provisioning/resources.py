"""The declarative list of what each system needs: topics, streams, buckets, table roots.

This replaces the CDK stack of the AWS original: `iotlake provision` applies it to
whichever shape is running (embedded, compose or real AWS) and changes nothing on a
second run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KafkaTopic:
    name: str
    partitions: int


@dataclass(frozen=True)
class KinesisStream:
    name: str
    shards: int


@dataclass(frozen=True)
class SystemResources:
    """Everything one system's producers and pipelines expect to exist."""

    system: str
    topics: tuple[KafkaTopic, ...] = ()
    streams: tuple[KinesisStream, ...] = ()
    landing_paths: tuple[str, ...] = ()


SYSTEMS: tuple[SystemResources, ...] = (
    SystemResources(
        "seismograph",
        # The DAIS page wrote to Kinesis `dais2023`; the Kafka path uses the same name.
        topics=(KafkaTopic("dais2023", 4),),
        streams=(KinesisStream("dais2023", 4),),
    ),
    SystemResources(
        "arduino",
        # One partition per sensor topic keeps each sensor's readings in order.
        topics=(
            KafkaTopic("dht_temp", 1),
            KafkaTopic("dht_hum", 1),
            KafkaTopic("sr04_distance", 1),
            KafkaTopic("pir_test", 1),
        ),
    ),
    SystemResources(
        "manufacturing",
        landing_paths=(
            "/Volumes/default/iot_anomaly_detection/sensor_bronze",
            "/Volumes/default/iot_anomaly_detection/inspection_bronze",
        ),
    ),
    SystemResources(
        "aws-iot",
        # The CDK stack created a single-shard stream.
        streams=(KinesisStream("iot-sensor-data-stream", 1),),
    ),
    SystemResources("text-sentiment", landing_paths=("/Volumes/main/tweets/landing/posts",)),
)


def for_systems(names: list[str] | None = None) -> tuple[SystemResources, ...]:
    """The resources of the named systems (all when None); unknown names fail clearly."""
    if not names or names == ["all"]:
        return SYSTEMS
    known = {resources.system: resources for resources in SYSTEMS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown system {unknown[0]!r}; known: {', '.join(known)}")
    return tuple(known[name] for name in names)
