"""Bad records never crash the pipeline and never vanish: bronze keeps them, rules count them.

Late events are the one kind Spark itself drops (from the watermarked aggregations); the
runner copies Spark's count of them into the event log, and `sensor` keeps them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pandas as pd
import pytest

from spark_jobs import late_rows
from spark_jobs.quality import MAX_RECORD_BYTES
from spark_jobs.runner import Flow, run_once
from tests.support.lake import failed_count, private_settings, read_table

SYSTEM = "seismograph"
GOOD = {"magnitude": 4, "time": "2023-05-24T18:56:56.800Z", "device": "client-61751e743724"}
BAD = [
    b"{not json",  # malformed JSON
    b"\x00\xff\xfe binary",  # not text at all
    json.dumps({"magnitude": 3, "time": "2023-05-24T18:56:57.000Z"}).encode(),  # no device
    json.dumps({**GOOD, "magnitude": -5}).encode(),  # a value no phone can send
    b"",  # empty record payloads are refused by Kinesis itself; kept here as a space
]


@pytest.mark.slow
def test_malformed_records_are_kept_in_bronze_and_counted_by_expectations(stack, spark, tmp_path):
    settings = private_settings(stack, tmp_path / "lake", SYSTEM, "kinesis", shards=1)
    kinesis = boto3.client("kinesis", **stack.aws.boto3_kwargs())
    payloads = [json.dumps(GOOD).encode(), *[bad or b" " for bad in BAD]]
    kinesis.put_records(
        StreamName=settings.seismograph.stream,
        Records=[{"Data": data, "PartitionKey": "partition-x"} for data in payloads],
    )

    run_once(spark, settings, SYSTEM, report=lambda line: None)

    raw = read_table(settings, SYSTEM, "raw_stream")
    sensor = read_table(settings, SYSTEM, "sensor")
    log = read_table(settings, SYSTEM, "event_log")
    counts = log[log["table"] == "sensor"].groupby("expectation")["failed"].sum()
    assert len(raw) == len(payloads)  # nothing lost: every record is in bronze as received
    # Records that yield no device are dropped from `sensor` and counted as such.
    assert counts["device is set"] == 4
    assert sensor["device"].tolist() == [GOOD["device"], GOOD["device"]]
    # The negative magnitude is kept (a warning) and counted, as are the three records whose
    # magnitude could not be read at all: each rule sees every row, NULL counting as failed.
    assert sorted(sensor["magn"]) == [-5.0, 4.0]
    assert counts["magnitude is not negative"] == 4


def _stamp(moment: datetime) -> str:
    """The page's time format: ISO-8601 UTC with milliseconds and Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _put(settings, payloads: list[bytes]) -> None:
    """Send the records in order on the test's one-shard stream."""
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    for start in range(0, len(payloads), 100):
        answer = kinesis.put_records(
            StreamName=settings.seismograph.stream,
            Records=[
                {"Data": data, "PartitionKey": "partition-x"}
                for data in payloads[start : start + 100]
            ],
        )
        assert answer["FailedRecordCount"] == 0


@pytest.mark.slow
def test_duplicate_unknown_field_wrong_type_and_oversized_records_are_kept_and_counted(
    stack, spark, tmp_path
):
    settings = private_settings(stack, tmp_path / "lake", SYSTEM, "kinesis", shards=1)
    start = datetime(2023, 5, 24, 18, 56, 56, 800_000, tzinfo=UTC)
    events = {
        "duplicate": {**GOOD, "time": _stamp(start)},  # sent twice: a producer's retry
        "unknown field": {**GOOD, "time": _stamp(start + timedelta(seconds=1)), "tilt": 12},
        "wrong type": {**GOOD, "time": _stamp(start + timedelta(seconds=2)), "magnitude": "x"},
        "bad time": {**GOOD, "time": "yesterday"},
        "oversized": {
            **GOOD,
            "time": _stamp(start + timedelta(seconds=3)),
            "padding": "x" * MAX_RECORD_BYTES,
        },
    }
    payloads = [json.dumps(event).encode() for event in events.values()]
    payloads.insert(1, payloads[0])

    run_once_quietly(spark, settings, payloads)

    raw = read_table(settings, SYSTEM, "raw_stream")
    sensor = read_table(settings, SYSTEM, "sensor")
    log = read_table(settings, SYSTEM, "event_log")
    # Nothing lost: bronze holds every record as sent, the duplicate twice (the originals do
    # not deduplicate; each copy has its own sequence number).
    assert sorted(raw["data"]) == sorted(data.decode() for data in payloads)
    copies = raw[raw["data"] == payloads[0].decode()]
    assert copies["sequenceNumber"].nunique() == 2
    # Every record names a device, so every one reaches `sensor`, the duplicate twice too.
    assert len(sensor) == len(payloads)
    assert (pd.to_datetime(sensor["time"], utc=True) == pd.Timestamp(start)).sum() == 2
    # The unknown field stays in bronze's payload; silver keeps the original's columns.
    assert raw["data"].str.contains('"tilt": 12').sum() == 1
    assert list(sensor.columns) == ["device", "time", "magn"]
    # A value of the wrong type becomes NULL, counted by the magnitude rule (NULL fails it).
    unreadable = int(sensor["magn"].isna().sum() + (sensor["magn"] < 0).sum())
    assert unreadable == 1
    assert failed_count(log, "sensor", "magnitude is not negative") == unreadable
    # An unreadable time is kept in `sensor` and counted.
    assert sensor["time"].isna().sum() == 1
    assert failed_count(log, "sensor", "time is set") == 1
    # The oversized record is kept in bronze and counted by the size rule.
    oversized = sum(len(data) > MAX_RECORD_BYTES for data in payloads)
    assert oversized == 1
    assert failed_count(log, "raw_stream", "record within 64 KiB") == oversized


def run_once_quietly(spark, settings, payloads: list[bytes]) -> list[Flow]:
    _put(settings, payloads)
    return run_once(spark, settings, SYSTEM, report=lambda line: None)


@pytest.mark.slow
def test_events_behind_the_watermark_are_counted_in_the_event_log_and_kept_in_sensor(
    stack, spark, tmp_path
):
    settings = private_settings(stack, tmp_path / "lake", SYSTEM, "kinesis", shards=1)
    config = settings.seismograph
    start = datetime(2023, 5, 24, 18, 0, 0, tzinfo=UTC)

    def event(seconds: float, magnitude: int) -> dict:
        return {**GOOD, "time": _stamp(start + timedelta(seconds=seconds)), "magnitude": magnitude}

    on_time = [event(second + 0.5, 1) for second in range(20)]
    run_once_quietly(spark, settings, [json.dumps(e).encode() for e in on_time])
    # Three late events in one window, two in windows of their own, two in time.
    second_round = [event(s, 9) for s in (2.1, 2.2, 2.3, 5.1, 7.1, 19.1, 21.1)]
    flows = run_once_quietly(spark, settings, [json.dumps(e).encode() for e in second_round])

    # Independently: the watermark after the first round is the newest event time minus the
    # watermark delay, and an event is late when its whole window ends at or before it.
    times = pd.to_datetime([e["time"] for e in on_time], utc=True)
    watermark = times.max() - pd.Timedelta(seconds=config.live_watermark_seconds)
    window = pd.Timedelta(seconds=config.live_window_seconds)
    second_times = pd.to_datetime([e["time"] for e in second_round], utc=True)
    late = [t for t in second_times if t.floor(window) + window <= watermark]
    late_windows = {t.floor(window) for t in late}
    assert (len(late), len(late_windows)) == (5, 3)

    log = read_table(settings, SYSTEM, "event_log")
    dropped = failed_count(log, "magn_live", "within watermark")
    # Spark counts late rows after its per-partition partial aggregation: at least one per
    # late window, at most one per late event.
    assert len(late_windows) <= dropped <= len(late)
    assert failed_count(log, "magn_heatmap", "within watermark") == 0  # its watermark is an hour
    # Looking again (as the continuous runner does every second) logs nothing twice.
    live_flow = next(flow for flow in flows if flow.spec.name == "magn_live")
    assert late_rows.record(spark, settings, live_flow.spec, live_flow.query) == 0
    assert len(read_table(settings, SYSTEM, "event_log")) == len(log)
    # The late events are kept upstream: nothing is lost.
    sensor = read_table(settings, SYSTEM, "sensor")
    assert len(sensor) == len(on_time) + len(second_round)
    # The gold windows they missed keep the on-time average.
    live = read_table(settings, SYSTEM, "magn_live")
    live["window_start"] = pd.to_datetime(live["window_start"], utc=True)
    on_time_avg = pd.Series(1.0, index=sorted(late_windows))
    got = live.set_index("window_start").loc[sorted(late_windows), "avg_magn"]
    assert got.tolist() == on_time_avg.tolist()
