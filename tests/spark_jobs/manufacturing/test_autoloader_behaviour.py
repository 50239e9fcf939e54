"""Auto Loader on the manufacturing landing paths: misfit values are rescued, new columns
evolve the bronze table, and a fresh anomaly flows through to the `Defects detected` alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotlake.alerts import defects_detected, evaluate
from iotlake.config import Settings
from services.producers.manufacturing_batch import BatchConfig, generate_batch
from services.producers.manufacturing_landing import to_csv, write_file
from spark_jobs.io.storage import landing_uri
from spark_jobs.lakeflow.loader import Pipeline
from spark_jobs.runner import load, run_table
from tests.support.lake import read_table
from tests.support.settings import settings_for

SYSTEM = "manufacturing"

pytestmark = pytest.mark.slow


def pipeline(spark, settings: Settings, *tables: str) -> Pipeline:
    """The manufacturing pipeline with the graph of `tables` resolved (only theirs: the
    inspection landing path stays empty here)."""
    loaded = load(SYSTEM, settings, spark)
    for name in tables:
        loaded.resolve(name)
    return loaded


def run(spark, settings: Settings, loaded: Pipeline, *tables: str) -> None:
    """Each table's flow in turn; a table its upstream's batches wrote needs no run of its own."""
    written: set[str] = set()
    for name in tables:
        if name not in written:
            flow = run_table(spark, settings, loaded, loaded.specs[name], report=print)
            written |= {spec.name for spec in flow.chained}


def land_sensors(settings: Settings, frame: pd.DataFrame, name: str) -> None:
    directory = landing_uri(settings, settings.manufacturing.sensor_landing)
    write_file(f"{directory}/{name}.csv", to_csv(frame), {})


def bronze_flows(settings: Settings) -> pd.DataFrame:
    log = read_table(settings, SYSTEM, "event_log")
    return log[(log["table"] == "sensor_bronze") & log["expectation"].isna()]


def test_misfit_values_are_rescued_and_a_new_column_evolves_bronze(spark, tmp_path: Path):
    settings = settings_for(tmp_path)
    first = generate_batch(BatchConfig(rows=300, devices=4, seed=2)).sensors
    first["temperature"] = first["temperature"].astype(object)
    first.loc[7, "temperature"] = "overheated"
    land_sensors(settings, first, "batch-1")
    loaded = pipeline(spark, settings, "sensor_bronze")

    run(spark, settings, loaded, "sensor_bronze")

    bronze = read_table(settings, SYSTEM, "sensor_bronze")
    assert len(bronze) == 300  # the misfit row is kept
    rescued = bronze[bronze["_rescued_data"].notna()]
    assert len(rescued) == 1
    assert rescued["temperature"].isna().all()
    assert json.loads(rescued["_rescued_data"].iloc[0])["temperature"] == "overheated"
    assert rescued["timestamp"].iloc[0] == pd.Timestamp(first.loc[7, "timestamp"], tz="UTC")
    batches_before = bronze_flows(settings)["batch_id"].max()

    second = generate_batch(BatchConfig(rows=50, devices=4, seed=3)).sensors
    second["vibration"] = np.round(np.random.default_rng(1).uniform(0, 5, len(second)), 3)
    land_sensors(settings, second, "batch-2")

    run(spark, settings, loaded, "sensor_bronze")

    bronze = read_table(settings, SYSTEM, "sensor_bronze")
    assert "vibration" in bronze.columns and len(bronze) == 350
    old = bronze["timestamp"].isin(pd.to_datetime(first["timestamp"]).dt.tz_localize("UTC"))
    assert old.sum() == 300 and bronze.loc[old, "vibration"].isna().all()
    new = bronze[~old].sort_values("timestamp")
    want = second.sort_values("timestamp")
    assert np.allclose(new["vibration"].to_numpy(), want["vibration"].to_numpy())
    flows = bronze_flows(settings)
    assert flows[flows["batch_id"] > batches_before]["rows_in"].sum() == 50


def test_a_fresh_anomaly_fires_the_alert_and_an_old_one_does_not(spark, tmp_path: Path):
    settings = settings_for(tmp_path)
    readings = generate_batch(BatchConfig(rows=60, devices=3, seed=4)).sensors
    readings["temperature"] = 50.0  # nothing anomalous by temperature ...
    readings["delay"], readings["density"] = 1.0, 1.0
    now = datetime.now(UTC).replace(tzinfo=None)
    readings["timestamp"] = [now - timedelta(hours=3, minutes=i) for i in range(len(readings))]
    readings.loc[5, "temperature"] = 120.0  # ... but one reading, hours ago
    land_sensors(settings, readings, "old")
    loaded = pipeline(spark, settings, "anomaly_detected")
    run(spark, settings, loaded, "sensor_bronze", "anomaly_detected")

    assert len(read_table(settings, SYSTEM, "anomaly_detected")) == 1
    assert evaluate(settings, defects_detected(settings)).state == "OK"

    fresh = readings.iloc[[0]].copy()
    fresh["temperature"] = 130.0
    fresh["timestamp"] = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    land_sensors(settings, fresh, "fresh")
    run(spark, settings, loaded, "sensor_bronze", "anomaly_detected")

    status = evaluate(settings, defects_detected(settings))
    assert status.state == "TRIGGERED" and status.value == 1
