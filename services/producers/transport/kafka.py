"""The Kafka sender: one confluent-kafka producer, every record acknowledged by the log."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from iotlake.config import Settings
from services.producers.transport.records import (
    MissingTarget,
    Record,
    Report,
    SendStats,
    Target,
    TransportError,
    Unreachable,
)
from services.runtime import say


def producer_config(
    settings: Settings, client_id: str, linger: float, delivery_timeout: float
) -> dict[str, Any]:
    """The one Kafka producer configuration: every record acknowledged by the broker's log."""
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "client.id": client_id,
        "linger.ms": max(0, int(linger * 1000)),
        # The broker drops a batch librdkafka resends after a lost answer; without it a
        # broker restart can store a batch twice.
        "acks": "all",
        "enable.idempotence": True,
        # A dead broker surfaces within this time, so the message is produced again.
        "message.timeout.ms": int(delivery_timeout * 1000),
        "logger": logging.getLogger("iotlake.kafka"),
    }


class _Acknowledgements:
    """One `deliver` call's delivery reports; `finished` is set when every record has one."""

    def __init__(self, expected: int) -> None:
        self.remaining = expected
        self.errors: list[str] = []
        self.finished = threading.Event()
        self._lock = threading.Lock()
        if expected == 0:
            self.finished.set()

    def report(self, error: KafkaError | None, _message: Message) -> None:
        with self._lock:
            if error is not None:
                self.errors.append(str(error))
            self.remaining -= 1
            if self.remaining <= 0:
                self.finished.set()


class KafkaSender:
    """A confluent-kafka producer; a message whose delivery fails is produced again.

    `topic` is where records go unless a record names its own. Records are produced from
    any thread (the bridge produces from paho's); delivery reports are served by `poll`.
    """

    transport: Target = "kafka"

    def __init__(
        self,
        settings: Settings,
        topic: str | None = None,
        *,
        linger: float = 0.005,
        report: Report = say,
        interrupt: threading.Event | None = None,
        client_id: str | None = None,
        delivery_timeout: float = 60.0,
    ) -> None:
        self.stats = SendStats()
        self.topic = topic
        self._bootstrap = settings.kafka.bootstrap_servers
        self._report = report
        self._interrupt = interrupt
        client_id = client_id or f"iotlake-producer-{topic}"
        self._producer = Producer(producer_config(settings, client_id, linger, delivery_timeout))
        self._retry: deque[Record] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closed = False

    @property
    def pending(self) -> int:
        return self._in_flight + len(self._retry)

    def send(self, records: Iterable[Record]) -> None:
        for record in records:
            self._produce(record)

    def poll(self, now: float, wait: float = 0.0) -> None:
        """Serve delivery reports (waiting up to `wait` s for one); produce failures again."""
        self._producer.poll(wait)
        for _ in range(len(self._retry)):
            self._produce(self._retry.popleft())

    def next_flush(self) -> float | None:
        """librdkafka lingers by itself; nothing to wake up for."""
        return None

    def close(self, timeout: float) -> None:
        """Wait for every delivery, producing failures again, until `timeout` runs out."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            self.poll(time.time())
        self.stats.unsent += self.pending
        self._retry.clear()
        self._closed = True  # reports of purged messages are not failures to retry
        # What `deliver` gave up waiting for may still get in, in the time that is left.
        self._producer.flush(max(0.0, deadline - time.monotonic()))
        self._producer.purge()
        self._producer.poll(0)
        self._producer.close()

    def check(self) -> None:
        """Raise MissingTarget or Unreachable unless the broker answers and has the topic."""
        try:
            topics = self._producer.list_topics(timeout=5).topics
        except KafkaException as error:
            raise Unreachable(f"cannot reach Kafka at {self._bootstrap} ({error})") from None
        if self.topic not in topics:
            raise MissingTarget(f"Kafka topic '{self.topic}' does not exist at {self._bootstrap}")

    def deliver(self, records: Sequence[Record], timeout: float) -> None:
        """Produce these records and wait for the broker's acknowledgement of each.

        Safe from several threads: each call waits for its own reports, whichever thread
        serves them. Raises TransportError when one failed or `timeout` passed first.
        """
        deadline = time.monotonic() + timeout
        acknowledgements = _Acknowledgements(len(records))
        for record in records:
            while True:
                try:
                    self._producer.produce(
                        **self._message(record), on_delivery=acknowledgements.report
                    )
                    break
                except BufferError:  # the local queue is full: serve reports to drain it
                    if time.monotonic() >= deadline:
                        raise TransportError(
                            f"Kafka topic '{self._topic_of(record)}': producer queue stays full"
                        ) from None
                    self._producer.poll(0.1)
        while not acknowledgements.finished.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(
                    f"Kafka topic '{self.topic}': not acknowledged within {timeout:g}s"
                )
            self._producer.poll(min(0.02, left))
        if acknowledgements.errors:
            raise TransportError(f"Kafka topic '{self.topic}': {acknowledgements.errors[0]}")

    def _topic_of(self, record: Record) -> str:
        topic = record.topic or self.topic
        if topic is None:
            raise ValueError("a record needs a topic when its sender has none")
        return topic

    def _message(self, record: Record) -> dict[str, Any]:
        key = None if record.key is None else record.key.encode()
        return {"topic": self._topic_of(record), "value": record.data, "key": key}

    def _produce(self, record: Record) -> None:
        message = self._message(record)
        while True:
            with self._lock:  # before producing: another thread may serve its report at once
                self._in_flight += 1
            try:
                self._producer.produce(**message, on_delivery=partial(self._delivered, record))
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                with self._lock:
                    self._in_flight -= 1
                if self._interrupt is not None and self._interrupt.is_set():
                    self._retry.append(record)  # `close` produces it or counts it unsent
                    return
                self._producer.poll(0.05)

    def _delivered(self, record: Record, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            self._in_flight -= 1
        if self._closed:
            return
        if error is None:
            self.stats.acknowledge(record)
            return
        self.stats.failed += 1
        self._retry.append(record)
        self._report(
            f"kafka delivery to {self._topic_of(record)} failed ({error}); producing it again"
        )
