"""Positions, offsets and which shards to read: pure functions over plain data.

Offsets, kept in the Spark checkpoint, are plain JSON: the stream name and, per shard, either
the last sequence number read (`{"seq": "..."}`) or where reading will begin
(`{"from": "TRIM_HORIZON"}`, `{"from": "AT_TIMESTAMP", "ms": ...}`), plus `"done": true` once a
closed shard has been read to its end. `latest` is fixed once, when the query is created, as
AT_TIMESTAMP of that moment: Kinesis has no portable way to name "the last record", and a
fixed instant makes a retried first batch read the same records. Spark checkpoints it with
the first batch, so a run that ends before any batch fixes a new instant on its next start.
On real AWS a clock skew between this machine and Kinesis moves that boundary by the skew.

Resharding: every shard the stream lists is read, including shards created after the query
started (they are read from their first record). A child shard (after SplitShard,
MergeShards or UpdateShardCount) is read only once all its parents have been read to their
end, in an earlier micro-batch, so records of one partition key keep their order. A parent
counts as finished when GetRecords returns no next iterator (the AWS semantics) or when the
listing shows it closed and the checkpoint has reached its ending sequence number. moto 5.2.5
does not reshard like AWS: it keeps writing new records to the closed parents and leaves the
children empty (after a merge it even copies the parents' records into the child). This source
keeps reading parents until they end, so on moto nothing is lost after a split; a merge on
moto shows its copied records twice.

Nothing here calls AWS, so the rules are tested without a stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from spark_jobs.io.kinesis.options import EPOCH, StartPosition

TRIM_HORIZON: dict[str, Any] = {"from": "TRIM_HORIZON"}

Position = dict[str, Any]


def position_key(position: Position) -> str:
    """A position's identity as text, ignoring the `done` flag (which moves no records)."""
    return json.dumps({k: v for k, v in position.items() if k != "done"}, sort_keys=True)


def last_sequence(position: Position | None) -> int | None:
    """The last sequence number read, or None while the shard is still at a start marker."""
    if position and "seq" in position:
        return int(position["seq"])
    return None


def start_position(start: StartPosition, now_ms: int) -> Position:
    """The position of every shard of a new query; `latest` becomes the instant it starts."""
    if start.kind == "TRIM_HORIZON":
        return dict(TRIM_HORIZON)
    return {"from": "AT_TIMESTAMP", "ms": start.ms if start.kind == "AT_TIMESTAMP" else now_ms}


def iterator_arguments(position: Position) -> dict[str, Any]:
    """GetShardIterator arguments that resume just after `position`."""
    if "seq" in position:
        return {
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": str(position["seq"]),
        }
    if position.get("from") == "AT_TIMESTAMP":
        moment = EPOCH + timedelta(milliseconds=int(position["ms"]))
        return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": moment}
    return {"ShardIteratorType": "TRIM_HORIZON"}


@dataclass(frozen=True)
class ShardInfo:
    """What the listing says about one shard: its parents and, once closed, its last number."""

    shard_id: str
    parents: tuple[str, ...] = ()
    ending_sequence: int | None = None


def shard_info(description: Mapping[str, Any]) -> ShardInfo:
    """A ShardInfo from one entry of ListShards."""
    parents = tuple(
        description[key]
        for key in ("ParentShardId", "AdjacentParentShardId")
        if description.get(key)
    )
    ending = description.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
    return ShardInfo(description["ShardId"], parents, int(ending) if ending else None)


def finished(position: Position | None, info: ShardInfo | None) -> bool:
    """Whether a parent shard is read to its end, so its children may be read.

    A parent we do not track (expired from the stream, or never ours) holds nothing to wait
    for. Otherwise: GetRecords said the shard ended, or it is closed and we read its last record.
    """
    if position is None or position.get("done"):
        return True
    read = last_sequence(position)
    if info is None or info.ending_sequence is None or read is None:
        return False
    return read >= info.ending_sequence


def plan_shards(
    tracked: Mapping[str, Position],
    listing: Mapping[str, ShardInfo],
    allowed: set[str] | None = None,
) -> tuple[dict[str, Position], list[str]]:
    """Reconcile tracked positions with the stream's shards; return them and the readable ones.

    Shards the stream no longer lists (expired) are dropped; shards it lists for the first time
    start at their first record (they were created after the query began), unless `allowed`
    (the shards listed when Trigger.AvailableNow was prepared) excludes them. A shard is
    readable when it has not ended and every parent has finished.
    """
    positions = {shard: dict(pos) for shard, pos in tracked.items() if shard in listing}
    for shard in listing:
        if shard not in positions and (allowed is None or shard in allowed):
            positions[shard] = dict(TRIM_HORIZON)
    readable = [
        shard
        for shard in sorted(positions)
        if not positions[shard].get("done")
        and all(
            finished(positions.get(parent), listing.get(parent))
            for parent in listing[shard].parents
        )
    ]
    return positions, readable


def split_budget(total: int | None, shards: list[str], turn: int) -> dict[str, int | None]:
    """Share a batch's record limit over the shards; the remainder rotates with `turn`."""
    if total is None:
        return dict.fromkeys(shards)
    if not shards:
        return {}
    share, extra = divmod(total, len(shards))
    order = shards[turn % len(shards) :] + shards[: turn % len(shards)]
    return {shard: share + (1 if index < extra else 0) for index, shard in enumerate(order)}


def make_offset(stream: str, positions: Mapping[str, Position]) -> dict[str, Any]:
    """The checkpointed offset, with a stable key order so equal offsets have equal JSON."""
    shards = {shard: dict(sorted(positions[shard].items())) for shard in sorted(positions)}
    return {"stream": stream, "shards": shards}
