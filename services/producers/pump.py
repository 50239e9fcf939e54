"""The paced send loop every producer shares: events leave when they fall due, not before.

A producer is a `Source` (what to send, and when) pumped into a sender of
`services.producers.transport` (where to send it). The loop wakes when the next event, a
linger flush or the end is due, sends what fell due, reports progress every few seconds and,
when it stops (duration, limit or a stop signal), drains the source and closes the sender.
`final_line` is the summary every producer prints last; tests and the benchmark read it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol, TypedDict, TypeVar, Unpack

from iotlake.config import Settings
from services.producers.transport import Record, Report, Sender, SendStats, Target, make_sender
from services.runtime import say


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


@dataclass(frozen=True)
class StreamOptions:
    """What a producer sending to a Kinesis stream or Kafka topic takes besides its fleet."""

    # None: the system's `transport` and `stream` in the settings (what its pipeline reads).
    target: Target | None = None
    stream: str | None = None
    duration: float | None = None
    progress_every: float = 5.0
    retry_sleep: float = 1.0
    linger_ms: float = 50.0
    stop_timeout: float = 30.0


class Destination(Protocol):
    """A system's settings section: where its pipeline reads."""

    @property
    def transport(self) -> Target: ...

    @property
    def stream(self) -> str: ...


Options = TypeVar("Options", bound=StreamOptions)
Item = TypeVar("Item")


def resolved(options: Options, section: Destination) -> Options:
    """Fill the target and stream the command line left open from the system's settings."""
    return replace(
        options,
        target=options.target or section.transport,
        stream=options.stream or section.stream,
    )


class Hooks(TypedDict, total=False):
    """What a test injects into a producer's run: a stop event, a clock, a sleep, a report."""

    stop: threading.Event | None
    clock: Callable[[], float]
    sleep: Callable[[float], None] | None
    report: Report


@dataclass
class PumpResult:
    stats: SendStats
    generated: int
    elapsed: float
    stopped_by_signal: bool = False


def unpaced(
    next_due_ms: Callable[[], int],
    items_due: Callable[[int, int | None], list[Item]],
    start_ms: int,
    *,
    count: int | None,
    duration: float | None = None,
) -> Iterator[Item]:
    """A fleet's schedule from `start_ms` on without waiting for it: `count` items, or those
    due before `start_ms + duration` seconds. The same fleet (seeded) gives the same items, so
    a test can compute the tables a pipeline should build from them.

    `items_due(now_ms, limit)` is the fleet's: every item due by `now_ms`, at most `limit`.
    """
    if count is None and duration is None:
        raise ValueError("give a count or a duration, or the schedule never ends")
    end_ms = None if duration is None else start_ms + round(duration * 1000)
    produced = 0
    while count is None or produced < count:
        now = next_due_ms()
        if end_ms is not None and now >= end_ms:
            return
        items = items_due(now, None if count is None else count - produced)
        produced += len(items)
        yield from items


def pump(
    source: Source,
    sender: Sender,
    options: PumpOptions,
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] | None = None,
    report: Report = say,
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


def pump_stream(
    settings: Settings,
    options: StreamOptions,
    start: Callable[[int, str], tuple[Source, str]],
    *,
    limit: int | None,
    unit: str = "events",
    **hooks: Unpack[Hooks],
) -> PumpResult:
    """Open the sender to the (resolved) target, then pump the source `start` makes.

    `start(start_ms, destination)` gives the source whose schedule begins at `start_ms` and
    the plan line to report; the schedule starts once the client is ready.
    """
    stop = hooks.get("stop") or threading.Event()
    clock, report = hooks.get("clock", time.time), hooks.get("report", say)
    sender = make_sender(
        settings,
        options.target,
        options.stream,
        linger=options.linger_ms / 1000,
        retry_sleep=options.retry_sleep,
        report=report,
        interrupt=stop,
        clock=clock,
    )
    start_ms = round(clock() * 1000)
    target = "Kinesis stream" if options.target == "kinesis" else "Kafka topic"
    source, plan = start(start_ms, f"{target} {options.stream}")
    report(plan)
    return pump(
        source,
        sender,
        PumpOptions(
            duration=options.duration,
            limit=limit,
            progress_every=options.progress_every,
            stop_timeout=options.stop_timeout,
            unit=unit,
        ),
        stop=stop,
        clock=clock,
        sleep=hooks.get("sleep"),
        report=report,
        started=start_ms / 1000,
    )


def send_all(
    settings: Settings,
    section: Destination,
    records: Iterable[Record],
    *,
    timeout: float = 60.0,
) -> SendStats:
    """Send records to the system's target and stream in the settings as fast as the target
    takes them (for pipeline tests)."""
    sender = make_sender(
        settings,
        section.transport,
        section.stream,
        linger=0.0,
        retry_sleep=1.0,
        report=lambda line: None,
    )
    sender.send(records)
    sender.close(timeout)
    return sender.stats


def finish(result: PumpResult, unit: str = "events") -> int:
    """Print the final line; 0 when everything generated was sent, 1 when some stayed unsent."""
    say(final_line(result, unit))
    return 0 if result.stats.unsent == 0 else 1


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
