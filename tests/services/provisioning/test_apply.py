"""Provisioning creates what the systems need, and a second run changes nothing."""

from __future__ import annotations

import uuid

import boto3
from confluent_kafka.admin import AdminClient

from services.provisioning.apply import provision
from services.provisioning.resources import SYSTEMS, KafkaTopic, SystemResources, for_systems


def test_every_declared_topic_and_stream_exists(stack):
    topics = (
        AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
        .list_topics(timeout=10)
        .topics
    )
    kinesis = boto3.client("kinesis", **stack.aws.boto3_kwargs())
    for system in SYSTEMS:
        for topic in system.topics:
            assert len(topics[topic.name].partitions) == topic.partitions
        for stream in system.streams:
            shards = kinesis.list_shards(StreamName=stream.name)["Shards"]
            assert len(shards) == stream.shards


def test_second_provision_changes_nothing(stack):
    assert provision(stack, SYSTEMS) == []


def test_a_topic_declared_with_more_partitions_grows(stack):
    name = f"grow-{uuid.uuid4().hex[:8]}"
    provision(stack, (SystemResources("test", topics=(KafkaTopic(name, 1),)),))

    changes = provision(stack, (SystemResources("test", topics=(KafkaTopic(name, 3),)),))

    assert changes == [f"grew Kafka topic {name} to 3 partitions"]
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    assert len(admin.list_topics(name, timeout=10).topics[name].partitions) == 3


def test_unknown_system_is_refused_with_the_known_names():
    try:
        for_systems(["seismo"])
    except ValueError as error:
        assert "unknown system 'seismo'" in str(error) and "seismograph" in str(error)
    else:
        raise AssertionError("an unknown system was accepted")
