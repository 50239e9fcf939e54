"""The Kinesis sender: PutRecords in batches, rejected entries sent again."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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

# Kinesis PutRecords limits: 500 entries and 5 MiB per call, 1 MiB per record.
KINESIS_MAX_ENTRIES = 500
KINESIS_MAX_CALL_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD_BYTES = 1024 * 1024
# Backoff after entries were throttled (ProvisionedThroughputExceeded): short, growing.
_THROTTLE_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)
# `deliver` tries a throttled entry this often before telling its caller to send it again.
DELIVER_ATTEMPTS = 5
# A call that hangs is a call that failed: the caller retries (or answers 503) instead.
_KINESIS_CLIENT = Config(
    connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3}
)


def _size(record: Record) -> int:
    """What a record counts towards PutRecords' 5 MiB per call."""
    return len(record.data) + len((record.key or "").encode())


class KinesisSender:
    """Batches records into PutRecords calls; rejected entries are put back and sent again.

    Records wait at most `linger` seconds (or until 500 are buffered), so one call carries
    many events: moto answers about 5,500 records/s in calls of 100+ records but only about
    2,000 records/s in calls of 10.
    """

    transport: Target = "kinesis"

    def __init__(
        self,
        settings: Settings,
        stream: str,
        *,
        linger: float = 0.05,
        retry_sleep: float = 1.0,
        report: Report = say,
        interrupt: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stats = SendStats()
        self.stream = stream
        self._client = boto3.client(
            "kinesis", config=_KINESIS_CLIENT, **settings.aws.boto3_kwargs()
        )
        self._endpoint = settings.aws.endpoint_url or f"AWS {settings.aws.region}"
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
            self._buffer.append(_checked(record))
        if self._buffer and self._oldest is None:
            self._oldest = self._clock()
        # After a failed call, stop for now: the caller's loop goes on and comes back.
        while len(self._buffer) >= KINESIS_MAX_ENTRIES and self._put_batch():
            pass

    def poll(self, now: float, wait: float = 0.0) -> None:
        """Send what has waited `linger` seconds; then wait up to `wait` s for the next flush."""
        while self._buffer and self._oldest is not None and now - self._oldest >= self._linger:
            if not self._put_batch():
                return
        if wait > 0:
            due = self.next_flush()
            self._pause(wait if due is None else max(0.0, min(wait, due - now)))

    def next_flush(self) -> float | None:
        """When the oldest buffered record is due to go out (epoch seconds)."""
        return None if self._oldest is None else self._oldest + self._linger

    def close(self, timeout: float) -> None:
        """Send everything buffered, retrying until `timeout` seconds have passed."""
        self._deadline = time.monotonic() + timeout
        while self._buffer and time.monotonic() < self._deadline:
            self._put_batch()
        self.stats.unsent += len(self._buffer)
        self._buffer.clear()
        self._client.close()

    def check(self) -> None:
        """Raise MissingTarget or Unreachable unless the stream exists and answers."""
        try:
            self._client.describe_stream_summary(StreamName=self.stream)
        except ClientError as error:
            if not _missing(error):
                raise TransportError(f"Kinesis at {self._endpoint}: {error}") from None
            raise MissingTarget(
                f"Kinesis stream '{self.stream}' does not exist at {self._endpoint}"
            ) from None
        except BotoCoreError as error:
            raise Unreachable(f"cannot reach Kinesis at {self._endpoint} ({error})") from None

    def deliver(self, records: Sequence[Record], timeout: float) -> None:
        """Put these records now; throttled entries are tried again, a failed call is not.

        Safe from several threads (they share the client and the counts only). Raises
        TransportError when a call fails or entries are still refused after DELIVER_ATTEMPTS
        tries or `timeout` seconds; records of earlier calls may have been stored by then.
        """
        deadline = time.monotonic() + timeout
        for batch in _batches([_checked(record) for record in records]):
            self._deliver_batch(batch, deadline)

    def _deliver_batch(self, batch: list[Record], deadline: float) -> None:
        pending, failure, attempt = batch, {}, 0
        for attempt in range(1, DELIVER_ATTEMPTS + 1):
            try:
                pending, results = self._put(pending)
            except (BotoCoreError, ClientError) as error:
                raise TransportError(f"Kinesis stream '{self.stream}': {error}") from error
            if not pending:
                return
            failure = results[0]
            left = deadline - time.monotonic()
            if attempt == DELIVER_ATTEMPTS or left <= 0:
                break
            time.sleep(min(0.05 * 2**attempt, left))
        raise TransportError(
            f"Kinesis stream '{self.stream}': {len(pending)} record(s) still refused after "
            f"{attempt} attempts ({failure.get('ErrorCode')}: {failure.get('ErrorMessage')})"
        )

    def _put(self, batch: list[Record]) -> tuple[list[Record], list[dict[str, Any]]]:
        """One PutRecords call; acknowledges what got in, returns the refused records and why."""
        entries = [{"Data": record.data, "PartitionKey": record.key} for record in batch]
        answer = self._client.put_records(StreamName=self.stream, Records=entries)
        refused, reasons = [], []
        for record, result in zip(batch, answer["Records"], strict=True):
            if "ErrorCode" in result:
                refused.append(record)
                reasons.append(result)
            else:
                self.stats.acknowledge(record)
        return refused, reasons

    def _take_batch(self) -> list[Record]:
        batch, size = [], 0
        while self._buffer and len(batch) < KINESIS_MAX_ENTRIES:
            record_size = _size(self._buffer[0])
            if batch and size + record_size > KINESIS_MAX_CALL_BYTES:
                break
            batch.append(self._buffer.popleft())
            size += record_size
        return batch

    def _put_batch(self) -> bool:
        """One call from the buffer; whatever does not get in goes back to the front, in order."""
        batch = self._take_batch()
        try:
            rejected, _ = self._put(batch)
        except Exception as error:  # connection refused, timeouts, throttling of the call...
            self.stats.errors += 1
            self._requeue(batch)
            hint = " (does it exist? `iotlake provision` creates it)" if _missing(error) else ""
            self._report(
                f"kinesis put_records to {self.stream} failed ({type(error).__name__}: "
                f"{error}){hint}; retrying {len(batch)} records in {self._retry_sleep:g}s"
            )
            self._pause(self._retry_sleep)
            return False
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


def _checked(record: Record) -> Record:
    """A record Kinesis can take, or ValueError saying why not."""
    if record.key is None:
        raise ValueError("a Kinesis record needs a partition key")
    if len(record.data) > KINESIS_MAX_RECORD_BYTES:
        raise ValueError(
            f"a record of {len(record.data)} bytes exceeds Kinesis' 1 MiB limit; "
            "pack fewer events per record"
        )
    return record


def _batches(records: Sequence[Record]) -> Iterator[list[Record]]:
    """The records in order, cut into PutRecords calls within the entry and byte limits."""
    batch: list[Record] = []
    size = 0
    for record in records:
        if batch and (
            len(batch) == KINESIS_MAX_ENTRIES or size + _size(record) > KINESIS_MAX_CALL_BYTES
        ):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += _size(record)
    if batch:
        yield batch


def _missing(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ResourceNotFoundException"
