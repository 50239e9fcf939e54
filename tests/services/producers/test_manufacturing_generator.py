"""The manufacturing generator lands what the original's generator lands (docs/originals.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from iotlake.config import load_settings
from services.producers import manufacturing_batch as gen
from services.producers import manufacturing_generator as generator
from spark_jobs.io.storage import landing_uri
from tests.support.cli import run_cli

CONFIG = gen.BatchConfig(rows=20_000, devices=60, seed=11)


@pytest.fixture(scope="module")
def batch() -> gen.Batch:
    return gen.generate_batch(CONFIG)


def test_factory_and_model_follow_sparks_hash_of_the_device_id(spark):
    ids = [*range(1, 200), 0, -1, -7, 2**31 - 1, -(2**31)]
    frame = spark.createDataFrame([(i,) for i in ids], "device_id int")
    factories = F.array(*[F.lit(name) for name in gen.FACTORIES])
    models = F.array(*[F.lit(name) for name in gen.MODELS])
    rows = frame.select(
        "device_id",
        F.hash("device_id").alias("hash"),
        F.element_at(factories, F.abs(F.hash("device_id") % 5) + 1).alias("factory"),
        F.element_at(models, F.abs(F.hash("device_id") % 14) + 1).alias("model"),
    ).collect()

    for row in rows:
        assert gen.spark_hash_int(row.device_id) == row.hash, row.device_id
        if row.device_id > 0:
            assert gen.factory_of(row.device_id) == row.factory
            assert gen.model_of(row.device_id) == row.model


def test_devices_are_uniform_and_each_keeps_one_factory_and_model(batch):
    counts = batch.sensors["device_id"].value_counts()
    assert sorted(counts.index) == list(range(1, 61))
    mean = CONFIG.rows / CONFIG.devices
    assert counts.between(mean * 0.7, mean * 1.3).all()
    per_device = batch.sensors.groupby("device_id")[["factory_id", "model_id"]].nunique()
    assert (per_device == 1).all().all()
    assert set(batch.sensors["factory_id"]) == set(gen.FACTORIES)
    assert set(batch.sensors["model_id"]) <= set(gen.MODELS)


def test_timestamps_come_in_runs_of_whole_minutes_inside_the_window():
    rng = np.random.default_rng(3)
    runs = gen.run_starts(rng, CONFIG.rows, CONFIG.start, CONFIG.end)
    lengths = [length for _, length in runs]
    assert sum(lengths) == CONFIG.rows
    assert all(gen.RUN_MIN <= length <= gen.RUN_MAX for length in lengths[:-1])
    assert lengths[-1] < gen.LAST_RUN or gen.RUN_MIN <= lengths[-1] <= gen.RUN_MAX

    times = pd.Series(gen.timestamps(np.random.default_rng(3), CONFIG))
    steps = times.diff().dt.total_seconds()
    starts = np.cumsum([0, *lengths[:-1]])
    inside = np.setdiff1d(np.arange(1, len(times)), starts)
    assert (steps.iloc[inside] == 60).all()
    assert times.min() >= pd.Timestamp(CONFIG.start)
    assert times.max() <= pd.Timestamp(CONFIG.end)


def test_trip_id_is_the_dense_rank_of_the_date_per_device(batch):
    truth = batch.truth
    dates = truth["timestamp"].dt.date
    for _, rows in truth.groupby("device_id"):
        ranks = {date: rank for rank, date in enumerate(sorted(set(dates[rows.index])), 1)}
        assert rows["trip_id"].tolist() == [ranks[date] for date in dates[rows.index]]


def test_sensor_file_nulls_temperature_negates_pressure_and_jitters_time(batch):
    sensors, truth = batch.sensors, batch.truth
    n = len(sensors)
    nulls = sensors["temperature"].isna()
    negated = sensors["air_pressure"] == -truth["air_pressure"]
    # Binomial bounds, about five standard deviations wide.
    assert abs(nulls.sum() - 0.10 * n) < 5 * np.sqrt(n * 0.10 * 0.90)
    assert abs(negated.sum() - 0.05 * n) < 5 * np.sqrt(n * 0.05 * 0.95)
    assert (sensors.loc[~negated, "air_pressure"] == truth.loc[~negated, "air_pressure"]).all()
    assert (sensors.loc[~nulls, "temperature"] == truth.loc[~nulls, "temperature"]).all()
    jitter = (sensors["timestamp"] - truth["timestamp"]).dt.total_seconds()
    assert jitter.between(0, 3, inclusive="left").all() and jitter.std() > 0.5
    assert list(sensors.columns) == list(gen.SENSOR_COLUMNS)


def test_inspections_sample_point_four_percent_one_in_sixteen_defects_hours_later(batch):
    inspections, truth = batch.inspections, batch.truth
    size = round(CONFIG.rows * gen.SAMPLE_FRACTION)
    assert len(inspections) == size
    assert (inspections["defect"] == 1).sum() == round(size / 16)
    assert set(inspections["defect"]) <= {0.0, 1.0}
    assert list(inspections.columns) == list(gen.INSPECTION_COLUMNS)
    timed = inspections.dropna(subset=["timestamp"])
    for row in timed.itertuples():
        readings = truth.loc[truth["device_id"] == row.device_id, "timestamp"]
        delay = (row.timestamp - readings).dt.total_seconds() / 3600
        assert delay.between(4, 6).any()
    assert inspections["timestamp"].isna().sum() <= 0.05 * size + 5 * np.sqrt(size * 0.05)


def test_defect_labels_are_one_or_two_and_never_in_a_devices_first_twenty_readings(batch):
    truth = batch.truth
    assert set(truth["defect"]) <= {0, 1, 2}
    assert (truth["defect"] > 0).sum() > 0
    first = truth.groupby("device_id").head(gen.DEFECT_SHIFT)
    assert (first["defect"] == 0).all()


def test_same_config_gives_the_same_rows_and_another_seed_others(batch):
    again = gen.generate_batch(CONFIG)
    pd.testing.assert_frame_equal(again.sensors, batch.sensors)
    pd.testing.assert_frame_equal(again.inspections, batch.inspections)
    other = gen.generate_batch(gen.BatchConfig(rows=CONFIG.rows, devices=60, seed=12))
    assert not other.sensors["temperature"].equals(batch.sensors["temperature"])


def test_more_data_covers_the_next_month_at_thirty_degrees():
    config = gen.more_data(CONFIG, 2, rows=1_000, devices=10)
    assert (config.start, config.end) == (datetime(2024, 2, 1), datetime(2024, 3, 3))
    assert (config.mean_temp, config.seasonal, config.devices, config.rows) == (30, False, 10, 1000)
    sensors = gen.generate_batch(config).sensors
    assert sensors["timestamp"].min() >= pd.Timestamp(config.start)
    assert sensors["device_id"].max() <= 10


def test_live_batches_cover_consecutive_windows_ending_now(tmp_path):
    settings = load_settings(lake={"root": str(tmp_path / "lake")}, state_dir=str(tmp_path))
    clock = iter([datetime(2026, 5, 1, 12, 0), datetime(2026, 5, 1, 12, 5)])
    options = generator.GeneratorOptions(live=True, live_devices=5, batches=2, interval=0.01)
    lines: list[str] = []

    landed = generator.run(settings, options, now=lambda: next(clock), report=lines.append)

    assert landed == 2 and len(lines) == 2
    sensor_dir = Path(landing_uri(settings, settings.manufacturing.sensor_landing))
    files = sorted(sensor_dir.glob("*.csv"))
    assert len(files) == 2
    first, second = (pd.read_csv(path, parse_dates=["timestamp"]) for path in files)
    assert first["timestamp"].min() >= pd.Timestamp("2026-05-01 11:00")
    assert first["timestamp"].max() <= pd.Timestamp("2026-05-01 12:00:03")
    assert second["timestamp"].min() >= pd.Timestamp("2026-05-01 12:00")
    assert second["timestamp"].max() <= pd.Timestamp("2026-05-01 12:05:03")
    assert len(second) == 5 * 5  # one reading a minute per device
    assert files[0].read_text().splitlines()[0] == ",".join(gen.SENSOR_COLUMNS)
    assert not list(sensor_dir.glob(".*"))  # no partial file left behind


def test_command_line_lands_the_initial_load_then_more_batches_alone(tmp_path):
    settings = load_settings(lake={"root": str(tmp_path / "lake")}, state_dir=str(tmp_path))
    command = ("produce", "manufacturing")

    first = run_cli(settings, *command, "--rows", "3000", "--devices", "8", "--more", "2")

    assert first.exit_code == 0, first.output
    inspection_dir = Path(landing_uri(settings, settings.manufacturing.inspection_landing))
    assert len(list(inspection_dir.glob("*.csv"))) == 3
    assert "3 batch(es) landed" in first.stdout

    more = run_cli(settings, *command, "--more", "1", "--more-only", "--seed", "5")

    assert more.exit_code == 0 and len(list(inspection_dir.glob("*.csv"))) == 4
    assert "1 batch(es) landed" in more.stdout


def test_command_line_refuses_impossible_sizes_with_exit_code_2():
    result = run_cli(None, "produce", "manufacturing", "--rows", "0")

    assert result.exit_code == 2
    assert "rows must be at least 1" in result.stderr
    assert gen.original_initial(0).rows >= 390_000
    assert timedelta(0) < gen.original_initial(0).end - gen.original_initial(0).start
