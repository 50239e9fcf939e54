"""The manufacturing pipeline end to end on real Spark and Delta, from landed CSV files.

Every table is compared with an independent pandas computation of its definition
(tests/support/manufacturing.py), and a second run after more files land reads
only those files.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotlake.config import Settings
from services.producers.manufacturing_batch import BatchConfig, generate_batch, more_data
from services.producers.manufacturing_landing import land_batch, to_csv, write_file
from spark_jobs.io.storage import landing_uri
from spark_jobs.runner import run_once
from tests.support import manufacturing as expected
from tests.support.lake import read_table
from tests.support.settings import settings_for

SYSTEM = "manufacturing"
FIRST = BatchConfig(rows=4_000, devices=16, seed=7)


def landed(settings: Settings, which: str) -> Path:
    return Path(landing_uri(settings, getattr(settings.manufacturing, f"{which}_landing")))


def crafted_inspections(hourly: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Inspections that exercise the as-of join's edge cases, beside the sampled ones.

    Some fall exactly on a sensor hour (a tie counts), some on an hour whose mean temperature
    is null (the previous non-null one is taken), some between hours, one before any reading
    of its device and one for a device with no readings at all (sensor columns null); two
    lack a time or a device, for bronze to drop.
    """
    rng = np.random.default_rng(seed)
    picks = hourly.sample(40, random_state=seed)
    null_hours = hourly[hourly["temperature"].isna()].head(10)
    times = pd.concat(
        [
            picks["timestamp"],
            null_hours["timestamp"] + pd.Timedelta(minutes=30),
            picks["timestamp"] + pd.to_timedelta(rng.integers(1, 7200, len(picks)), unit="s"),
        ]
    )
    devices = pd.concat([picks["device_id"], null_hours["device_id"], picks["device_id"]])
    first = hourly.sort_values("timestamp").iloc[0]
    frame = pd.DataFrame(
        {
            "defect": rng.integers(0, 2, len(times)).astype(float),
            "timestamp": times.dt.tz_localize(None).to_numpy(),
            "device_id": devices.to_numpy(),
        }
    )
    extra = pd.DataFrame(
        {
            "defect": [1.0, 0.0, 0.0, 1.0],
            "timestamp": [
                (first["timestamp"] - pd.Timedelta(hours=3)).tz_localize(None),
                pd.Timestamp("2023-06-01 12:00:00"),
                pd.NaT,
                pd.Timestamp("2023-06-01 13:00:00"),
            ],
            "device_id": pd.array([first["device_id"], 999, 1, None], dtype="Int32"),
        }
    )
    return pd.concat([frame, extra], ignore_index=True)


def flows(log: pd.DataFrame, table: str) -> pd.DataFrame:
    return log[(log["table"] == table) & log["expectation"].isna()]


@pytest.mark.slow
def test_tables_match_pandas_and_a_rerun_reads_only_the_new_files(spark, tmp_path):
    settings = settings_for(tmp_path)
    first = generate_batch(FIRST)
    land_batch(settings, first, "batch-1")
    sensors_so_far = expected.read_landed(landed(settings, "sensor"), expected.SENSOR_TYPES)
    hourly = expected.hourly_features(sensors_so_far)
    assert hourly["temperature"].isna().any(), "the seed should give an hour of null temperatures"
    craft = crafted_inspections(hourly, seed=3)
    target = f"{landed(settings, 'inspection')}/batch-1-crafted.csv"
    write_file(target, to_csv(craft), {})

    began = time.monotonic()
    run_once(spark, settings, SYSTEM, report=print)
    first_run = time.monotonic() - began
    log_after_first = read_table(settings, SYSTEM, "event_log")

    second = generate_batch(more_data(FIRST, 1, rows=1_500, devices=8))
    land_batch(settings, second, "batch-2")
    began = time.monotonic()
    run_once(spark, settings, SYSTEM, report=print)
    second_run = time.monotonic() - began
    print(f"first run {first_run:.1f}s, second run {second_run:.1f}s")

    # The second run read only batch 2's files: its bronze batches hold exactly those rows.
    log = read_table(settings, SYSTEM, "event_log")
    for table, rows in (
        ("sensor_bronze", len(second.sensors)),
        ("inspection_bronze", len(second.inspections)),
    ):
        done = flows(log_after_first, table)["batch_id"].max()
        new = flows(log, table)
        assert new[new["batch_id"] > done]["rows_in"].sum() == rows, table
        assert new["rows_in"].sum() == rows + (
            len(first.sensors) if table == "sensor_bronze" else len(first.inspections) + len(craft)
        )

    sensors = expected.read_landed(landed(settings, "sensor"), expected.SENSOR_TYPES)
    inspections = expected.read_landed(landed(settings, "inspection"), expected.INSPECTION_TYPES)
    assert len(sensors) == len(first.sensors) + len(second.sensors)

    bronze = read_table(settings, SYSTEM, "sensor_bronze")
    assert bronze["_rescued_data"].isna().all()
    expected.assert_frames_match(
        bronze.drop(columns=["_rescued_data"]),
        expected.sensor_bronze(sensors),
        ["device_id", "timestamp"],
    )
    pressure = log[(log["table"] == "sensor_bronze") & (log["expectation"] == "valid pressure")]
    assert pressure["failed"].sum() == (~(sensors["air_pressure"] > 0)).sum() > 0

    expected.assert_frames_match(
        read_table(settings, SYSTEM, "inspection_bronze").drop(columns=["_rescued_data"]),
        expected.inspection_bronze(inspections),
        ["device_id", "timestamp", "defect"],
    )
    dropped = flows(log, "inspection_bronze")
    assert (
        (dropped["rows_in"] - dropped["rows_out"]).sum()
        == inspections["timestamp"].isna().sum() + inspections["device_id"].isna().sum()
        > 0
    )

    anomalies = read_table(settings, SYSTEM, "anomaly_detected")
    expected.assert_frames_match(
        anomalies.drop(columns=["_rescued_data"]),
        expected.anomaly_detected(sensors),
        ["device_id", "timestamp"],
    )
    assert len(anomalies) > 0

    silver = read_table(settings, SYSTEM, "inspection_silver")
    want_silver = expected.inspection_silver(inspections, sensors)
    expected.assert_frames_match(silver, want_silver, ["device_id", "timestamp", "defect"])
    assert silver["sensor_timestamp"].isna().sum() == 2  # the early one and device 999

    gold = read_table(settings, SYSTEM, "inspection_gold")
    expected.assert_frames_match(
        gold,
        expected.inspection_gold(want_silver),
        ["device_id", "factory_id", "model_id", "defect"],
    )
    rows = {
        table: len(read_table(settings, SYSTEM, table))
        for table in ("sensor_bronze", "inspection_bronze", "anomaly_detected")
    }
    print(f"rows: {rows}, inspection_silver {len(silver)}, inspection_gold {len(gold)}")
