"""Sending records to Kinesis or Kafka: the one place where iotlake's services produce.

The producers, the Arduino bridge and the phone-page gateway all send through these two
senders. Both are built from the typed settings and have the same small interface (`Sender`),
used in one of two ways:

- streaming (producers, bridge): `send` queues records, `poll` makes progress, `close`
  flushes. Nothing is dropped silently: a Kinesis entry that PutRecords rejects, a call that
  raises, a Kafka message whose delivery fails, all go back to the queue and are sent again.
  Only when `close` runs out of time does anything stay unsent, and then it is counted in
  `SendStats.unsent`.
- request/reply (gateway): `deliver` sends a batch and returns once the broker acknowledged
  every record, or raises `TransportError` within a bounded time, so the client can be told
  to send again; it may be called from several threads at once. `check` fails fast when the
  stream or topic is missing or the broker does not answer.

`records` holds what both share (the record, the counts, the interface, the errors);
`kinesis` and `kafka` hold one sender each; `make_sender` picks one by the target's name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from iotlake.config import Settings
from services.producers.transport.kafka import KafkaSender
from services.producers.transport.kinesis import KinesisSender
from services.producers.transport.records import (
    TARGETS,
    MissingTarget,
    Record,
    Report,
    Sender,
    SendStats,
    Target,
    TransportError,
    Unreachable,
)
from services.runtime import say

__all__ = [
    "TARGETS",
    "KafkaSender",
    "KinesisSender",
    "MissingTarget",
    "Record",
    "Report",
    "SendStats",
    "Sender",
    "Target",
    "TransportError",
    "Unreachable",
    "make_sender",
]


def make_sender(
    settings: Settings,
    target: Target,
    name: str,
    *,
    linger: float,
    retry_sleep: float,
    report: Report = say,
    interrupt: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> KinesisSender | KafkaSender:
    """The sender for `target`: Kinesis stream or Kafka topic `name`.

    `retry_sleep` is the wait after a failed Kinesis call; librdkafka retries by itself.
    """
    if target == "kinesis":
        return KinesisSender(
            settings,
            name,
            linger=linger,
            retry_sleep=retry_sleep,
            report=report,
            interrupt=interrupt,
            clock=clock,
        )
    if target == "kafka":
        return KafkaSender(settings, name, linger=linger, report=report, interrupt=interrupt)
    raise ValueError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
