"""Sending producer records to Kinesis or Kafka, and the paced loop both producers share.

A producer is a `Source` (what to send, and when) pumped into a `Sender` (where to send it).
Senders never drop a record silently: a Kinesis entry that put_records rejects, a call that
raises, a Kafka message whose delivery fails, all go back to the front of the queue and are
sent again. Only when the producer is stopping and `stop_timeout` runs out does anything stay
unsent, and then it is counted in `SendStats.unsent` and printed.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal, Protocol

import boto3
from confluent_kafka import KafkaError, Message, Producer

from iotlake.config import Settings

Target = Literal["kinesis", "kafka"]
TARGETS: tuple[Target, ...] = ("kinesis", "kafka")

# Kinesis PutRecords limits: 500 entries and 5 MiB per call, 1 MiB per record.
KINESIS_MAX_ENTRIES = 500
KINESIS_MAX_CALL_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD_BYTES = 1024 * 1024
# Backoff after entries were throttled (ProvisionedThroughputExceeded): short, growing.
_THROTTLE_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class Record:
    """One broker record: the partition key, the bytes, and how many events it carries."""

    key: str
    data: bytes
    events: int = 1


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


class Sender(Protocol):
    """Where records go. `send` may buffer; `poll` makes progress; `close` flushes."""

    stats: SendStats

    @property
    def pending(self) -> int: ...

    def send(self, records: Iterable[Record]) -> None: ...

    def poll(self, now: float) -> None: ...

    def close(self, timeout: float) -> None: ...

    def next_flush(self) -> float | None: ...


Report = Callable[[str], None]


class KinesisSender:
    """Batches records into put_records calls; rejected entries are put back and sent again.

    Records wait at most `linger` seconds (or until 500 are buffered), so one call carries
    many events: moto answers about 5,500 records/s in calls of 100+ records but only about
    2,000 records/s in calls of 10.
    """

    def __init__(
        self,
        settings: Settings,
        stream: str,
        *,
        linger: float = 0.05,
        retry_sleep: float = 1.0,
        report: Report = print,
        interrupt: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stats = SendStats()
        self._client = boto3.client("kinesis", **settings.aws.boto3_kwargs())
        self._stream = stream
        self._linger = linger
        self._retry_sleep = retry_sleep
        self._report = report
        self._interrupt = interrupt
        self._clock = clock
        self._deadline: float | None = None
        self._buffer: deque[Record] = deque()
        self._oldest: float | None = None
        self._throttled = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def send(self, records: Iterable[Record]) -> None:
        """Queue records; full batches go out at once."""
        for record in records:
            if len(record.data) > KINESIS_MAX_RECORD_BYTES:
                raise ValueError(
                    f"a record of {len(record.data)} bytes exceeds Kinesis' 1 MiB limit; "
                    "pack fewer events per record"
                )
            self._buffer.append(record)
        if self._buffer and self._oldest is None:
            self._oldest = self._clock()
        # After a failed call, stop for now: the caller's loop goes on and comes back.
        while len(self._buffer) >= KINESIS_MAX_ENTRIES and self._put_batch():
            pass

    def poll(self, now: float) -> None:
        """Send what has waited `linger` seconds."""
        while self._buffer and self._oldest is not None and now - self._oldest >= self._linger:
            if not self._put_batch():
                return

    def close(self, timeout: float) -> None:
        """Send everything buffered, retrying until `timeout` seconds have passed."""
        self._deadline = time.monotonic() + timeout
        while self._buffer and time.monotonic() < self._deadline:
            self._put_batch()
        self.stats.unsent += len(self._buffer)
        self._buffer.clear()

    def next_flush(self) -> float | None:
        """When the oldest buffered record is due to go out (epoch seconds)."""
        return None if self._oldest is None else self._oldest + self._linger

    def _take_batch(self) -> list[Record]:
        batch, size = [], 0
        while self._buffer and len(batch) < KINESIS_MAX_ENTRIES:
            record = self._buffer[0]
            record_size = len(record.data) + len(record.key.encode())
            if batch and size + record_size > KINESIS_MAX_CALL_BYTES:
                break
            batch.append(self._buffer.popleft())
            size += record_size
        return batch

    def _put_batch(self) -> bool:
        """One put_records call; whatever does not get in goes back to the front, in order."""
        batch = self._take_batch()
        entries = [{"Data": r.data, "PartitionKey": r.key} for r in batch]
        try:
            answer = self._client.put_records(StreamName=self._stream, Records=entries)
        except Exception as error:  # connection refused, timeouts, throttling of the call...
            self.stats.errors += 1
            self._requeue(batch)
            hint = " (does it exist? `iotlake provision` creates it)" if _missing(error) else ""
            self._report(
                f"kinesis put_records to {self._stream} failed ({type(error).__name__}: "
                f"{error}){hint}; retrying {len(batch)} records in {self._retry_sleep:g}s"
            )
            self._pause(self._retry_sleep)
            return False
        rejected = []
        for record, result in zip(batch, answer["Records"], strict=True):
            if "ErrorCode" in result:
                rejected.append(record)
            else:
                self.stats.acknowledge(record)
        if rejected:
            self.stats.failed += len(rejected)
            self._requeue(rejected)
            self._pause(_THROTTLE_BACKOFF[min(self._throttled, len(_THROTTLE_BACKOFF) - 1)])
            self._throttled += 1
        else:
            self._throttled = 0
        self._oldest = self._clock() if self._buffer else None
        return not rejected

    def _pause(self, seconds: float) -> None:
        """Wait before retrying: cut short by a stop, but never past the closing deadline."""
        if self._deadline is not None:
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
        elif self._interrupt is not None:
            self._interrupt.wait(seconds)
        else:
            time.sleep(seconds)

    def _requeue(self, records: Sequence[Record]) -> None:
        self._buffer.extendleft(reversed(records))
        if self._oldest is None:
            self._oldest = self._clock()


def _missing(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ResourceNotFoundException"


class KafkaSender:
    """confluent-kafka producer; a message whose delivery fails is produced again."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        linger: float = 0.005,
        report: Report = print,
        interrupt: threading.Event | None = None,
    ) -> None:
        self.stats = SendStats()
        self._topic = topic
        self._report = report
        self._interrupt = interrupt
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "linger.ms": max(0, int(linger * 1000)),
                "client.id": f"iotlake-producer-{topic}",
                # The broker drops a batch librdkafka resends after a lost answer, as the
                # bridge does; without it a broker restart can store a batch twice.
                "acks": "all",
                "enable.idempotence": True,
                # Surface a dead broker within a minute so the message is produced again.
                "message.timeout.ms": 60_000,
            }
        )
        self._retry: deque[Record] = deque()
        self._in_flight = 0
        self._closed = False

    @property
    def pending(self) -> int:
        return self._in_flight + len(self._retry)

    def send(self, records: Iterable[Record]) -> None:
        for record in records:
            self._produce(record)

    def poll(self, now: float) -> None:
        """Serve delivery reports and produce again what failed."""
        self._producer.poll(0)
        if self._retry:
            retry, self._retry = self._retry, deque()
            self.send(retry)

    def close(self, timeout: float) -> None:
        """Wait for every delivery, producing failures again, until `timeout` runs out."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            self.poll(time.time())
        self.stats.unsent += self.pending
        self._retry.clear()
        self._closed = True  # reports of purged messages are not failures to retry
        if self._in_flight:
            self._producer.purge()
            self._producer.poll(0)
        self._producer.close()

    def next_flush(self) -> float | None:
        """librdkafka lingers by itself; nothing to wake up for."""
        return None

    def _produce(self, record: Record) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    value=record.data,
                    key=record.key.encode(),
                    on_delivery=partial(self._delivered, record),
                )
            except BufferError:  # the local queue is full: let deliveries drain it
                if self._interrupt is not None and self._interrupt.is_set():
                    self._retry.append(record)  # `close` produces it or counts it unsent
                    return
                self._producer.poll(0.05)
                continue
            self._in_flight += 1
            return

    def _delivered(self, record: Record, error: KafkaError | None, message: Message) -> None:
        self._in_flight -= 1
        if self._closed:
            return
        if error is None:
            self.stats.acknowledge(record)
            return
        self.stats.failed += 1
        self._retry.append(record)
        self._report(f"kafka delivery to {self._topic} failed ({error}); producing it again")


def make_sender(
    settings: Settings,
    target: Target,
    name: str,
    *,
    linger: float,
    retry_sleep: float,
    report: Report = print,
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


class Source(Protocol):
    """Something that produces records on a schedule (a fleet of phones or sensors)."""

    def next_due_ms(self) -> int:
        """Epoch milliseconds of the next event."""
        ...

    def emit_due(self, now_ms: int, limit: int | None) -> tuple[list[Record], int]:
        """Records for every event due at `now_ms` (at most `limit` events), and that count."""
        ...

    def drain(self) -> list[Record]:
        """Records still held back (partly filled packs) when the producer stops."""
        ...


@dataclass
class PumpOptions:
    """How long to run and how to report: shared by every producer."""

    duration: float | None = None
    limit: int | None = None
    progress_every: float = 5.0
    stop_timeout: float = 30.0
    unit: str = "events"
    # The loop wakes at most this often: events keep their scheduled times, and grouping a
    # tick's events keeps calls (and the broker's per-request work) few.
    tick: float = 0.02


@dataclass
class PumpResult:
    stats: SendStats
    generated: int
    elapsed: float
    stopped_by_signal: bool = False


def pump(
    source: Source,
    sender: Sender,
    options: PumpOptions,
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] | None = None,
    report: Report = print,
    started: float | None = None,
) -> PumpResult:
    """Send the source's events as they fall due until the duration, limit or a stop.

    When sending is slower than the schedule, the source catches up by emitting at the
    current time instead of queueing a backlog (as a phone fires its next event whenever
    it can), so the achieved rate shows what the target sustains. `started` is when the
    source's schedule began (default: now); `duration` counts from there.
    """
    stop = stop or threading.Event()
    wait = sleep or stop.wait
    started = clock() if started is None else started
    end = None if options.duration is None else started + options.duration
    generated = 0
    last_report, last_events = started, 0
    while not stop.is_set():
        now = clock()
        if end is not None and now >= end:
            break
        remaining = None if options.limit is None else options.limit - generated
        if remaining is not None and remaining <= 0:
            break
        due_ms = round(now * 1000)
        if end is not None:  # `duration` covers events scheduled before the end, not at it
            due_ms = min(due_ms, round(end * 1000) - 1)
        records, count = source.emit_due(due_ms, remaining)
        generated += count
        sender.send(records)
        sender.poll(clock())
        now = clock()
        if now - last_report >= options.progress_every:
            sent = sender.stats.events
            rate = (sent - last_events) / (now - last_report)
            report(_progress_line(sender, rate, options.unit))
            last_report, last_events = now, sent
        if options.limit is not None and generated >= options.limit:
            break
        wait(max(options.tick, _pause(source, sender, now, end)))
    sender.send(source.drain())
    sender.close(options.stop_timeout)
    elapsed = clock() - started
    return PumpResult(sender.stats, generated, elapsed, stopped_by_signal=stop.is_set())


def _pause(source: Source, sender: Sender, now: float, end: float | None) -> float:
    """Seconds until something is due: the next event, a linger flush, or the end."""
    due = [source.next_due_ms() / 1000, now + 0.1]
    flush = sender.next_flush()
    if flush is not None:
        due.append(flush)
    if end is not None:
        due.append(end)
    return max(0.0, min(due) - now)


def _progress_line(sender: Sender, rate: float, unit: str) -> str:
    stats = sender.stats
    return (
        f"sent {_counts(stats, unit)}, {rate:.0f} {unit}/s, "
        f"{stats.failed} failed (retried), {stats.errors} errors, {sender.pending} pending"
    )


def _counts(stats: SendStats, unit: str) -> str:
    """`12 events in 3 records` when records pack events, else `12 records`."""
    if unit == "records":
        return f"{stats.records} records"
    return f"{stats.events} {unit} in {stats.records} records"


def final_line(result: PumpResult, unit: str = "events") -> str:
    """The last line a producer prints; tests read the counts from it."""
    stats = result.stats
    rate = stats.events / result.elapsed if result.elapsed > 0 else 0.0
    return (
        f"stopped after {result.elapsed:.1f}s: sent {_counts(stats, unit)} "
        f"({rate:.0f} {unit}/s), {stats.failed} failed (retried), "
        f"{stats.errors} errors, {stats.unsent} unsent"
    )


def say(line: str) -> None:
    """Print a progress line at once, even when stdout is a pipe."""
    print(line, flush=True)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the loop ends and flushes instead of dying."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
