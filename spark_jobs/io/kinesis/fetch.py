"""Every call to Kinesis: the client, shard listing, and reading records from a shard.

The same calls serve moto, LocalStack and AWS. Records leave this module as plain tuples
(`Row`), cheap to keep on the driver and to pickle into a partition. Errors a user can fix
(no region, an endpoint that does not answer, a stream that does not exist) become one line
naming the option; records a checkpoint needs but Kinesis no longer holds become
`KinesisReadError` rather than a batch with a hole in it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from typing import Any

from spark_jobs.io.kinesis.options import EPOCH, KinesisOptions
from spark_jobs.io.kinesis.shards import Position, ShardInfo, iterator_arguments, shard_info

# A replayed range must be read back within this time, or the replay fails clearly.
REPLAY_TIMEOUT_SECONDS = 300.0
FETCH_THREADS = 8
MAX_CALLS_PER_SHARD = 1_000
MAX_LIST_PAGES = 100

# One record as it travels from a fetch to a partition: plain values, cheap to pickle.
Row = tuple[str, bytes, str, int]  # partitionKey, data, sequenceNumber, arrival (us, UTC)


class KinesisReadError(RuntimeError):
    """Kinesis no longer holds records a checkpoint refers to; one line naming shard and range."""


def connect(options: KinesisOptions) -> Any:
    """A Kinesis client for these options; retries throttling with backoff, as AWS asks."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(
        retries={"mode": "standard", "max_attempts": 6},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=FETCH_THREADS + 2,
    )
    try:
        return boto3.client(
            "kinesis",
            region_name=options.region,
            endpoint_url=options.endpoint_url,
            aws_access_key_id=options.access_key,
            aws_secret_access_key=options.secret_key,
            config=config,
        )
    except NoRegionError:
        raise KinesisOptions.missing(
            "region", 'no AWS region is configured; .option("region", "<region>")'
        ) from None


def list_shards(client: Any, stream: str) -> dict[str, ShardInfo]:
    """Every shard the stream lists, open or closed, following pagination (bounded)."""
    found: dict[str, ShardInfo] = {}
    request: dict[str, Any] = {"StreamName": stream}
    for _ in range(MAX_LIST_PAGES):
        response = _list_page(client, stream, request)
        for description in response.get("Shards", []):
            info = shard_info(description)
            found[info.shard_id] = info
        token = response.get("NextToken")
        if not token:
            return found
        request = {"NextToken": token}
    raise KinesisReadError(f"kinesis: stream {stream!r} lists more than {MAX_LIST_PAGES} pages")


def _list_page(client: Any, stream: str, request: dict[str, Any]) -> dict[str, Any]:
    """One ListShards page; a missing stream or endpoint becomes one line naming the option."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    try:
        page: dict[str, Any] = client.list_shards(**request)
        return page
    except EndpointConnectionError:
        endpoint = client.meta.endpoint_url
        raise KinesisOptions.error(
            "endpointUrl", f"{endpoint} does not answer; start the emulator or fix the option"
        ) from None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        where = f"{client.meta.endpoint_url} ({client.meta.region_name})"
        problem = f"names {stream!r}, which {where} does not have"
        raise KinesisOptions.error("streamName", problem) from None


def every_record(client: Any, stream: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(shard id, GetRecords record) for each record the stream holds, shard by shard from
    TRIM_HORIZON, read with nothing but plain client calls.

    The source's reads are measured and checked against this: `iotlake bench io` times it as
    the bare-client baseline, and a pipeline's tables are compared with what it returns. A
    shard is read until it ends or an empty answer is caught up (MillisBehindLatest 0): an
    empty answer behind the tip is a gap, not the end.
    """
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        shard_id = shard["ShardId"]
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = client.get_records(ShardIterator=iterator, Limit=10_000)
            yield from ((shard_id, record) for record in answer["Records"])
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")


def micros(moment: datetime) -> int:
    """An instant as microseconds since the epoch (a naive one is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def to_row(record: Mapping[str, Any]) -> Row:
    """A GetRecords record as the plain tuple partitions carry."""
    return (
        record["PartitionKey"],
        bytes(record["Data"]),
        record["SequenceNumber"],
        micros(record["ApproximateArrivalTimestamp"]),
    )


@dataclass
class FetchPlan:
    """Bounds of one shard's fetch in one batch."""

    budget: int | None
    per_call: int
    deadline: float
    cutoff_us: int | None = None


@dataclass
class Fetched:
    """What one shard's fetch produced: records, the new position, and an iterator to resume."""

    shard_id: str
    start: Position
    position: Position
    rows: list[Row] = field(default_factory=list)
    iterator: str | None = None
    ended: bool = False


def _is_expired_iterator(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ExpiredIteratorException")


def fetch_shard(
    client: Any,
    stream: str,
    shard_id: str,
    start: Position,
    plan: FetchPlan,
    iterator: str | None = None,
) -> Fetched:
    """Read one shard from `start` until caught up, ended, at budget, cut-off or deadline.

    Empty answers with MillisBehindLatest > 0 are gaps in the shard, not its end, so reading
    goes on (bounded by the deadline and MAX_CALLS_PER_SHARD). The returned iterator is kept
    only when every record of the last answer was taken, so resuming from it skips nothing.
    """
    result = Fetched(shard_id, start, dict(start))
    if iterator is None:
        iterator = _new_iterator(client, stream, shard_id, start)
    cutoff_us = plan.cutoff_us
    for _ in range(MAX_CALLS_PER_SHARD):
        remaining = None if plan.budget is None else plan.budget - len(result.rows)
        if remaining is not None and remaining <= 0:
            break
        limit = plan.per_call if remaining is None else min(plan.per_call, remaining)
        try:
            response = client.get_records(ShardIterator=iterator, Limit=limit)
        except Exception as error:
            if not _is_expired_iterator(error):
                raise
            iterator = _new_iterator(client, stream, shard_id, result.position)
            continue
        records = response.get("Records", [])
        rows = [to_row(record) for record in records]
        if cutoff_us is not None:
            # Only the records before the first one past the cut-off, so nothing is skipped.
            rows = list(takewhile(lambda row: row[3] <= cutoff_us, rows))
        if rows:
            result.rows.extend(rows)
            result.position = {"seq": rows[-1][2]}
        if len(rows) < len(records):  # reached the AvailableNow cut-off
            iterator = None
            break
        iterator = response.get("NextShardIterator")
        if iterator is None:
            result.ended = True
            result.position["done"] = True
            break
        if response.get("MillisBehindLatest", 0) == 0 or time.monotonic() >= plan.deadline:
            break
    result.iterator = iterator
    return result


def _new_iterator(client: Any, stream: str, shard_id: str, position: Position) -> str:
    response = client.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, **iterator_arguments(position)
    )
    iterator: str = response["ShardIterator"]
    return iterator


def read_range(options: KinesisOptions, shard_id: str, start: Position, end_seq: str) -> list[Row]:
    """Read a shard's records after `start` up to and including `end_seq` again.

    Used when a partition arrives without records: a batch replayed after a restart. Fails
    with one line when the shard no longer holds the range (retention trimmed it, or the
    stream was recreated), rather than returning a batch with a hole in it.
    """
    client = connect(options)
    stream = options.stream_name
    end = int(end_seq)
    iterator: str | None = _new_iterator(client, stream, shard_id, start)
    rows: list[Row] = []
    deadline = time.monotonic() + REPLAY_TIMEOUT_SECONDS
    idle_answers = 0
    while iterator is not None and time.monotonic() < deadline and idle_answers < 3:
        response = client.get_records(ShardIterator=iterator, Limit=options.max_records_per_fetch)
        for record in response.get("Records", []):
            number = int(record["SequenceNumber"])
            if number <= end:
                rows.append(to_row(record))
            if number >= end:
                return rows
        caught_up = response.get("MillisBehindLatest", 0) == 0
        idle_answers = idle_answers + 1 if caught_up and not response.get("Records") else 0
        iterator = response.get("NextShardIterator")
    reached = rows[-1][2] if rows else "nothing"
    raise KinesisReadError(
        f"kinesis: shard {shard_id} of stream {stream!r} no longer holds records up to sequence "
        f"number {end_seq} (read up to {reached}); the checkpoint refers to trimmed or lost data"
    )
