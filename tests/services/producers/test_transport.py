"""Both senders store every record, keyed as given, in the real Kinesis emulator and Kafka broker.

Each test writes to a stream or topic of its own on the shared test stack and reads back
what arrived, through the same interface for both transports (`send`/`close` as producers
use it, `deliver` as the gateway does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from services.embedded.spec import free_port
from services.producers.transport import (
    TARGETS,
    KafkaSender,
    KinesisSender,
    MissingTarget,
    Record,
    TransportError,
    Unreachable,
    make_sender,
)
from services.producers.transport.records import Sender
from tests.support.producers import fresh_stream, fresh_topic, read_stream, read_topic

PARTITIONS = 2
QUIET = {"report": lambda line: None}


@pytest.fixture(params=TARGETS)
def destination(request, stack) -> tuple[str, str]:
    """A transport and a new stream or topic of it, with two shards or partitions."""
    if request.param == "kinesis":
        return "kinesis", fresh_stream(stack, PARTITIONS)
    return "kafka", fresh_topic(stack, PARTITIONS)


def arrived(stack, transport: str, name: str, expected: int) -> list[tuple[str | None, bytes]]:
    """(key, data) of what the stream or topic holds, oldest first per shard or partition."""
    if transport == "kinesis":
        return [(record.partition_key, record.data) for record in read_stream(stack, name)]
    messages = read_topic(stack, name, PARTITIONS, expected)
    return [(None if key is None else key.decode(), value) for _, key, value in messages]


@contextmanager
def closed_after(sender: Sender, timeout: float) -> Iterator[Sender]:
    """The sender, closed with `timeout` when the block ends, however it ends."""
    try:
        yield sender
    finally:
        sender.close(timeout)


def records(count: int, prefix: str = "device") -> list[Record]:
    return [Record(f"{prefix}-{i % 7}", f'{{"n":{i}}}'.encode()) for i in range(count)]


def test_sent_records_all_arrive_with_their_keys_and_are_counted(stack, destination):
    transport, name = destination
    sent = records(1200)  # more than one PutRecords call holds
    sender = make_sender(stack, transport, name, linger=0.01, retry_sleep=0.2, **QUIET)

    sender.send(sent)
    sender.close(60)
    found = arrived(stack, transport, name, len(sent))

    assert sorted(found) == sorted((record.key, record.data) for record in sent)
    assert (sender.stats.records, sender.stats.events, sender.stats.unsent) == (1200, 1200, 0)
    assert sender.pending == 0


def test_records_of_one_key_keep_their_order(stack, destination):
    transport, name = destination
    sent = [Record("one-device", f"{i}".encode()) for i in range(300)]
    sender = make_sender(stack, transport, name, linger=0.0, retry_sleep=0.2, **QUIET)

    sender.send(sent)
    sender.close(60)
    found = [data for key, data in arrived(stack, transport, name, len(sent))]

    assert found == [record.data for record in sent]


def test_deliver_returns_once_the_broker_holds_every_record(stack, destination):
    transport, name = destination
    sender = make_sender(stack, transport, name, linger=0.0, retry_sleep=0.2, **QUIET)
    sent = records(40, "delivered")

    with closed_after(sender, 10):
        sender.deliver(sent, timeout=15)
        found = arrived(stack, transport, name, len(sent))

    assert sorted(found) == sorted((record.key, record.data) for record in sent)


def test_deliver_from_many_threads_waits_for_each_callers_own_records(stack, destination):
    transport, name = destination
    sender = make_sender(stack, transport, name, linger=0.0, retry_sleep=0.2, **QUIET)
    batches = [records(25, f"thread{t}") for t in range(8)]
    failures: list[Exception] = []

    def deliver(batch: list[Record]) -> None:
        try:
            sender.deliver(batch, timeout=15)
        except TransportError as error:
            failures.append(error)

    threads = [threading.Thread(target=deliver, args=(batch,)) for batch in batches]
    with closed_after(sender, 10):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        found = arrived(stack, transport, name, 200)

    assert failures == []
    assert sorted(found) == sorted((r.key, r.data) for batch in batches for r in batch)


def test_check_passes_for_an_existing_stream_or_topic(stack, destination):
    transport, name = destination
    sender = make_sender(stack, transport, name, linger=0.0, retry_sleep=0.2, **QUIET)

    with closed_after(sender, 5):
        sender.check()


@pytest.mark.parametrize("transport", TARGETS)
def test_check_names_a_stream_or_topic_that_does_not_exist(stack, transport):
    sender = make_sender(stack, transport, "no-such-name", linger=0.0, retry_sleep=0.2, **QUIET)

    with (
        closed_after(sender, 5),
        pytest.raises(MissingTarget, match="'no-such-name' does not exist"),
    ):
        sender.check()


def test_deliver_to_a_missing_stream_fails_naming_it(stack):
    sender = KinesisSender(stack, "no-such-stream", **QUIET)

    with (
        closed_after(sender, 5),
        pytest.raises(TransportError, match="Kinesis stream 'no-such-stream'"),
    ):
        sender.deliver(records(3), timeout=5)


def test_a_stopped_kinesis_answers_unreachable(stack):
    closed = stack.model_copy(update={"aws": stack.aws.model_copy(update={"port": free_port()})})
    sender = KinesisSender(closed, "any", **QUIET)

    with closed_after(sender, 0), pytest.raises(Unreachable, match="cannot reach Kinesis"):
        sender.check()


def test_a_stopped_kafka_answers_unreachable_and_deliver_gives_up_in_time(stack):
    closed = stack.model_copy(
        update={"kafka": stack.kafka.model_copy(update={"port": free_port()})}
    )
    sender = KafkaSender(closed, "any", delivery_timeout=2.0, **QUIET)

    with closed_after(sender, 0):
        with pytest.raises(Unreachable, match="cannot reach Kafka"):
            sender.check()
        with pytest.raises(TransportError, match="Kafka topic 'any'"):
            sender.deliver(records(2), timeout=1.0)


def test_kafka_records_go_to_their_own_topics_without_a_key_and_are_confirmed(stack):
    first, second = fresh_topic(stack, 1), fresh_topic(stack, 1)
    confirmed: list[str] = []
    sender = KafkaSender(stack, client_id="test-bridge", **QUIET)
    sent = [
        Record(
            None,
            f"{topic}-{i}".encode(),
            topic=topic,
            on_acknowledged=lambda t=topic: confirmed.append(t),
        )
        for i in range(10)
        for topic in (first, second)
    ]

    sender.send(sent)
    sender.close(30)
    found = {topic: read_topic(stack, topic, 1, expected=10) for topic in (first, second)}

    assert sorted(confirmed) == sorted([first] * 10 + [second] * 10)
    for topic, messages in found.items():
        assert [key for _, key, _ in messages] == [None] * 10
        assert [value for _, _, value in messages] == [f"{topic}-{i}".encode() for i in range(10)]


def test_kinesis_refuses_a_record_it_could_never_store(stack):
    sender = KinesisSender(stack, "any", **QUIET)

    with closed_after(sender, 0):
        with pytest.raises(ValueError, match="1 MiB"):
            sender.send([Record("key", b"x" * (1024 * 1024 + 1))])
        with pytest.raises(ValueError, match="partition key"):
            sender.send([Record(None, b"{}")])
