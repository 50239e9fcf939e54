"""Bad device payloads never crash the AWS IoT pipeline and never vanish.

`iot_sensor_raw` keeps every Kinesis record as received; `iot_sensor_processed` drops the
ones that do not parse into a device and a time (counted by its `payload parses` rule) and
keeps readings without a temperature (counted by `temperature present`). The expected
counts come from parsing each payload in Python with the same rules.
"""

from __future__ import annotations

import json

import boto3
import numpy as np
import pandas as pd
import pytest

from services.producers.aws_iot_producer import SensorConfig, generate_records
from spark_jobs.quality import MAX_RECORD_BYTES
from spark_jobs.runner import run_once
from tests.support.lake import failed_count, private_settings, read_table

SYSTEM = "aws-iot"
START_MS = 1_716_570_000_000


def _bad_payloads(good: dict) -> dict[str, bytes]:
    """One record per kind of bad input, built from a valid reading."""
    metrics = good["metrics"]
    return {
        "malformed JSON": b'{"device_id": "d", "timestamp": ',
        "binary": b"\x00\xff\xfe\x80 not text",
        "JSON that is not an object": b"[1, 2, 3]",
        "no device": json.dumps({k: v for k, v in good.items() if k != "device_id"}).encode(),
        "no timestamp": json.dumps({k: v for k, v in good.items() if k != "timestamp"}).encode(),
        "time of the wrong type": json.dumps({**good, "timestamp": "yesterday"}).encode(),
        "temperature of the wrong type": json.dumps(
            {**good, "metrics": {**metrics, "temperature_c": "hot"}}
        ).encode(),
        "no metrics": json.dumps({k: v for k, v in good.items() if k != "metrics"}).encode(),
        "unknown field": json.dumps({**good, "firmware": "1.2.0"}).encode(),
        "oversized": json.dumps({**good, "padding": "x" * MAX_RECORD_BYTES}).encode(),
        "duplicate": json.dumps(good).encode(),
    }


def _parsed(payload: bytes) -> dict:
    """What the processed table's parse yields: `kept` is False when the row is dropped;
    `temperature` whether its temperature reads as a number (every rule sees every row,
    so an unparseable record fails the temperature rule too)."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, dict):
        return {"kept": False, "temperature": False}
    device, stamp = value.get("device_id"), value.get("timestamp")
    metrics = value.get("metrics")
    temperature = metrics.get("temperature_c") if isinstance(metrics, dict) else None
    return {
        "kept": isinstance(device, str) and isinstance(stamp, int) and not isinstance(stamp, bool),
        "device_id": device,
        "timestamp": stamp,
        "temperature": isinstance(temperature, int | float) and not isinstance(temperature, bool),
    }


@pytest.mark.slow
def test_bad_payloads_are_kept_raw_dropped_or_flagged_and_counted(stack, spark, tmp_path):
    settings = private_settings(stack, tmp_path / "lake", SYSTEM, "kinesis", shards=1)
    readings = list(generate_records(SensorConfig(seed=11), START_MS, records=20))
    bad = _bad_payloads(readings[0])
    payloads = [json.dumps(r).encode() for r in readings] + list(bad.values())
    kinesis = boto3.client("kinesis", **stack.aws.boto3_kwargs())
    answer = kinesis.put_records(
        StreamName=settings.aws_iot.stream,
        Records=[{"Data": data, "PartitionKey": "device"} for data in payloads],
    )
    assert answer["FailedRecordCount"] == 0

    run_once(spark, settings, SYSTEM, report=lambda line: None)

    raw = read_table(settings, SYSTEM, "iot_sensor_raw")
    processed = read_table(settings, SYSTEM, "iot_sensor_processed")
    log = read_table(settings, SYSTEM, "event_log")
    every = [_parsed(data) for data in payloads]
    parsed = [found for found in every if found["kept"]]
    # Nothing lost: every record is in bronze, the binary one with U+FFFD for its bad bytes.
    assert len(raw) == len(payloads)
    texts = {data.decode("utf-8", errors="replace") for data in payloads}
    assert set(raw["json_payload"]) == texts
    assert raw["json_payload"].str.contains('"firmware": "1.2.0"').sum() == 1
    # Unparseable readings are dropped from silver and counted; the rest are there, the
    # duplicate twice (the original does not deduplicate).
    assert failed_count(log, "iot_sensor_processed", "payload parses") == len(payloads) - len(
        parsed
    )
    assert len(processed) == len(parsed)
    duplicate = readings[0]
    same = processed[
        (processed["device_id"] == duplicate["device_id"])
        & (processed["timestamp"] == duplicate["timestamp"])
    ]
    assert len(same) == sum(
        p["device_id"] == duplicate["device_id"] and p["timestamp"] == duplicate["timestamp"]
        for p in parsed
    )
    assert len(same) >= 2
    # Readings without a readable temperature are kept and counted by the warning (which
    # also counts the rows the parse rule drops: every rule sees every row).
    unreadable = sum(not p["temperature"] for p in parsed)
    assert unreadable == 2
    assert processed["temperature_c"].isna().sum() == unreadable
    failing = sum(not p["temperature"] for p in every)
    assert failed_count(log, "iot_sensor_processed", "temperature present") == failing
    assert not processed.loc[processed["temperature_c"].isna(), "is_critical"].any()
    # The oversized record is kept in bronze and counted by the size rule.
    oversized = sum(len(data) > MAX_RECORD_BYTES for data in payloads)
    assert failed_count(log, "iot_sensor_raw", "record within 64 KiB") == oversized == 1
    # The gold trend averages only readable temperatures, per minute.
    readable = processed.dropna(subset=["temperature_c"])
    minute = pd.to_datetime(readable["event_timestamp"], utc=True).dt.floor("min")
    want = readable.groupby(minute)["temperature_c"].mean().sort_index()
    trend = read_table(settings, SYSTEM, "temperature_trend")
    got = trend.set_index(pd.to_datetime(trend["time_window"], utc=True))["average_fleet_temp"]
    assert got.sort_index().index.tolist() == want.index.tolist()
    assert np.allclose(got.sort_index(), want, rtol=1e-5)
