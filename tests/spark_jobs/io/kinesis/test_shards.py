"""Which shards the Kinesis source reads, and the offsets it checkpoints: plain data, no AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from spark_jobs.io.kinesis.options import StartPosition
from spark_jobs.io.kinesis.shards import (
    ShardInfo,
    iterator_arguments,
    make_offset,
    plan_shards,
    position_key,
    shard_info,
    split_budget,
    start_position,
)


def test_children_are_read_only_after_their_parents_end():
    listing = {
        "p0": ShardInfo("p0", ending_sequence=10),
        "p1": ShardInfo("p1", ending_sequence=20),
        "c-split-a": ShardInfo("c-split-a", parents=("p0",)),
        "c-split-b": ShardInfo("c-split-b", parents=("p0",)),
        "c-merged": ShardInfo("c-merged", parents=("p0", "p1")),
        "open": ShardInfo("open"),
    }
    midway = {"p0": {"seq": "5"}, "p1": {"seq": "20"}, "open": {"seq": "3"}}
    positions, readable = plan_shards(midway, listing)
    # Closed parents are read until they end (moto keeps writing to them), so p1 stays readable.
    assert readable == ["open", "p0", "p1"]
    assert positions["c-split-a"] == {"from": "TRIM_HORIZON"}

    at_end = {"p0": {"seq": "10"}, "p1": {"seq": "20"}, "open": {"seq": "3"}}
    assert plan_shards(at_end, listing)[1] == [
        "c-merged",
        "c-split-a",
        "c-split-b",
        "open",
        "p0",
        "p1",
    ]

    ended = {"p0": {"seq": "7", "done": True}, "p1": {"seq": "12"}}
    assert plan_shards(ended, listing)[1] == ["c-split-a", "c-split-b", "open", "p1"]

    expired = {k: v for k, v in listing.items() if k != "p0"}
    positions, readable = plan_shards(midway, expired)
    assert "p0" not in positions
    assert "c-split-a" in readable

    only_then = plan_shards({}, listing, allowed={"p0", "open"})[0]
    assert set(only_then) == {"p0", "open"}


def test_a_new_query_starts_every_shard_where_initial_position_says():
    now_ms = 1_719_311_025_000

    assert start_position(StartPosition("TRIM_HORIZON"), now_ms) == {"from": "TRIM_HORIZON"}
    assert start_position(StartPosition("LATEST"), now_ms) == {"from": "AT_TIMESTAMP", "ms": now_ms}
    at = start_position(StartPosition("AT_TIMESTAMP", 5), now_ms)
    assert at == {"from": "AT_TIMESTAMP", "ms": 5}
    assert iterator_arguments(at) == {
        "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=UTC),
    }
    assert iterator_arguments({"seq": "42", "done": True}) == {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "42",
    }


def test_offsets_are_stable_json_and_done_moves_no_records():
    offset = make_offset("s", {"b": {"seq": "2", "done": True}, "a": {"from": "TRIM_HORIZON"}})

    assert json.dumps(offset) == (
        '{"stream": "s", "shards": {"a": {"from": "TRIM_HORIZON"}, '
        '"b": {"done": true, "seq": "2"}}}'
    )
    assert position_key({"seq": "2", "done": True}) == position_key({"seq": "2"})


def test_a_record_limit_is_shared_over_shards_and_the_remainder_rotates():
    shards = ["a", "b", "c"]

    assert split_budget(None, shards, 0) == {"a": None, "b": None, "c": None}
    assert split_budget(10, shards, 0) == {"a": 4, "b": 3, "c": 3}
    assert split_budget(10, shards, 1) == {"b": 4, "c": 3, "a": 3}
    assert split_budget(10, [], 0) == {}


def test_listing_entries_name_parents_and_the_last_sequence_of_closed_shards():
    closed = shard_info(
        {
            "ShardId": "c",
            "ParentShardId": "p0",
            "AdjacentParentShardId": "p1",
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "99"},
        }
    )

    assert closed == ShardInfo("c", ("p0", "p1"), 99)
    assert shard_info({"ShardId": "o", "SequenceNumberRange": {}}) == ShardInfo("o")
