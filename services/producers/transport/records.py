"""The shapes every sender shares: a record, what was sent, the interface, the errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Target = Literal["kinesis", "kafka"]
TARGETS: tuple[Target, ...] = ("kinesis", "kafka")

Report = Callable[[str], None]


class TransportError(Exception):
    """Records were not taken (or cannot be); the message names the stream or topic."""


class MissingTarget(TransportError):
    """The stream or topic does not exist (`iotlake provision` creates them)."""


class Unreachable(TransportError):
    """The broker or emulator does not answer."""


@dataclass(frozen=True)
class Record:
    """One broker record: the partition key, the bytes, and how many events it carries.

    `key` None sends a Kafka record without a key (Kinesis needs one). `topic` overrides the
    sender's Kafka topic (the bridge writes four). `on_acknowledged` runs once the broker has
    confirmed a record queued with `send` (the bridge acknowledges the MQTT message then).
    """

    key: str | None
    data: bytes
    events: int = 1
    topic: str | None = None
    on_acknowledged: Callable[[], None] | None = field(default=None, compare=False)


@dataclass
class SendStats:
    """What a sender has done: acknowledged records/events, retried failures, unsent leftovers."""

    records: int = 0
    events: int = 0
    failed: int = 0
    errors: int = 0
    unsent: int = 0

    def acknowledge(self, record: Record) -> None:
        self.records += 1
        self.events += record.events
        if record.on_acknowledged is not None:
            record.on_acknowledged()


class Sender(Protocol):
    """Where records go. `send` may buffer; `poll` makes progress; `close` flushes."""

    transport: Target
    stats: SendStats

    @property
    def pending(self) -> int: ...

    def send(self, records: Iterable[Record]) -> None: ...

    def poll(self, now: float, wait: float = 0.0) -> None: ...

    def next_flush(self) -> float | None: ...

    def close(self, timeout: float) -> None: ...

    def check(self) -> None: ...

    def deliver(self, records: Sequence[Record], timeout: float) -> None: ...
