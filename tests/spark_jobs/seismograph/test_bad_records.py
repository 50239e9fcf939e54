"""Bad records never crash the pipeline and never vanish: bronze keeps them, rules count them."""

from __future__ import annotations

import json

import boto3
import pytest

from spark_jobs.runner import run_once
from tests.spark_jobs.pipelines import private_settings, read_table

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
