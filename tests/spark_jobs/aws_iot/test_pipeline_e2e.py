"""Seeded device readings through Kinesis -> bronze -> silver -> gold, checked against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.producers.aws_iot_producer import SensorConfig, generate_records, send_records
from spark_jobs.runner import run_once
from tests.support.lake import private_settings, read_table

START_MS = 1_716_570_000_000
SYSTEM = "aws-iot"


def _expected(readings: list[dict]) -> pd.DataFrame:
    frame = pd.json_normalize(readings)
    frame["event_timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    frame["temperature_c"] = frame["metrics.temperature_c"].astype("float32")
    frame["is_critical"] = frame["temperature_c"] > 28.0
    return frame


@pytest.mark.slow
def test_seeded_readings_build_every_table_as_pandas_computes_it(stack, spark, tmp_path):
    settings = private_settings(stack, tmp_path / "lake", SYSTEM, "kinesis", shards=1)
    readings = list(generate_records(SensorConfig(seed=5), START_MS, records=600))
    assert send_records(settings, readings).failed == 0

    run_once(spark, settings, SYSTEM, report=print)

    expected = _expected(readings)
    raw = read_table(settings, SYSTEM, "iot_sensor_raw")
    assert list(raw.columns) == ["json_payload", "kinesis_time"]
    assert len(raw) == len(readings)
    assert raw["json_payload"].str.contains("pressure_hpa").all()

    processed = read_table(settings, SYSTEM, "iot_sensor_processed")
    assert list(processed.columns) == [
        "device_id",
        "timestamp",
        "status",
        "region",
        "kinesis_time",
        "event_timestamp",
        "temperature_c",
        "is_critical",
    ]
    got = processed.sort_values(["device_id", "timestamp"]).reset_index(drop=True)
    want = expected.sort_values(["device_id", "timestamp"]).reset_index(drop=True)
    assert got["timestamp"].tolist() == want["timestamp"].tolist()
    assert got["is_critical"].tolist() == want["is_critical"].tolist()
    assert (got["event_timestamp"].dt.tz_convert("UTC") == want["event_timestamp"]).all()

    trend = read_table(settings, SYSTEM, "temperature_trend").sort_values("time_window")
    minutes = want.assign(time_window=want["event_timestamp"].dt.floor("min"))
    want_trend = minutes.groupby("time_window", as_index=False)["temperature_c"].mean()
    assert len(trend) == len(want_trend)
    assert np.allclose(trend["average_fleet_temp"], want_trend["temperature_c"], atol=1e-4)

    critical = read_table(settings, SYSTEM, "critical_by_device")
    want_critical = minutes[minutes["is_critical"]].groupby(["device_id", "time_window"]).size()
    assert critical["critical_count"].sum() == want_critical.sum()
    got_critical = critical.set_index(["device_id", "time_window"])["critical_count"]
    got_critical.index = got_critical.index.set_levels(
        got_critical.index.levels[1].tz_convert("UTC"), level=1
    )
    assert got_critical.sort_index().tolist() == want_critical.sort_index().tolist()
