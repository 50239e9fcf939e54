"""The runner refreshes materialized views and follows a landing path's schema evolution."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.io.autoloader_source import autoloader_stream
from spark_jobs.io.storage import landing_uri, schema_location, table_uri
from spark_jobs.runner import refresh_view, run_table, run_tables
from tests.conftest import settings_for
from tests.spark_jobs.pipelines import read_table

SYSTEM = "runner-check"


@pytest.fixture()
def settings(tmp_path: Path) -> Iterator[Settings]:
    """A local lake of its own; the specs a test registers are removed afterwards."""
    before = set(dp.TABLES), set(dp.SOURCES)
    yield settings_for(tmp_path)
    for key in set(dp.TABLES) - before[0]:
        del dp.TABLES[key]
    for key in set(dp.SOURCES) - before[1]:
        del dp.SOURCES[key]


def _register_table(name: str, function, upstream: tuple[str, ...], kind: dp.Kind) -> dp.TableSpec:
    spec = dp.TableSpec(
        name=name,
        system=SYSTEM,
        layer="gold" if kind == "materialized" else "bronze",
        comment="",
        function=function,
        upstream=upstream,
        kind=kind,
        output_mode="complete" if kind == "materialized" else "append",
    )
    dp.TABLES[(SYSTEM, name)] = spec
    return spec


def _readings(settings: Settings, rows: list[tuple[str, float]]) -> None:
    data = pa.table(
        {"device_id": [r[0] for r in rows], "temperature": pa.array([r[1] for r in rows])}
    )
    write_deltalake(table_uri(settings, SYSTEM, "readings"), data, mode="append")


def test_materialized_view_replaces_its_rows_at_each_refresh_and_logs_each(spark, settings):
    _register_table("readings", lambda: None, (), "streaming")

    def hottest(readings: DataFrame) -> DataFrame:
        return readings.groupBy("device_id").agg(F.max("temperature").alias("max_temperature"))

    spec = _register_table("hottest", hottest, ("readings",), "materialized")
    _readings(settings, [("a", 20.0), ("a", 25.0), ("b", 18.0)])

    assert refresh_view(spark, settings, spec, report=print) == 2
    _readings(settings, [("b", 31.0), ("c", 5.0)])
    assert refresh_view(spark, settings, spec, report=print) == 3

    view = read_table(settings, SYSTEM, "hottest").sort_values("device_id")
    assert view.to_dict("records") == [
        {"device_id": "a", "max_temperature": 25.0},
        {"device_id": "b", "max_temperature": 31.0},
        {"device_id": "c", "max_temperature": 5.0},
    ]
    log = read_table(settings, SYSTEM, "event_log").sort_values("batch_id")
    assert log["table"].tolist() == ["hottest", "hottest"]
    assert log["batch_id"].tolist() == [0, 1]
    assert log["rows_out"].tolist() == [2, 3]


def _land(directory: Path, name: str, text: str, mtime: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))


@pytest.mark.slow
def test_new_column_in_landed_files_restarts_the_stream_and_evolves_the_table(spark, settings):
    landing = landing_uri(settings, "runner-check/readings")

    def files(spark: SparkSession, settings: Settings) -> DataFrame:
        location = schema_location(settings, SYSTEM, "files")
        return autoloader_stream(spark, settings, landing, "csv", location)

    dp.SOURCES[(SYSTEM, "files")] = dp.SourceSpec("files", SYSTEM, files)
    landed = _register_table(
        "landed", lambda files: files.drop("_file_path"), ("files",), "streaming"
    )
    now = time.time()
    _land(Path(landing), "one.csv", "device_id,temperature\na,20.5\nb,21.0\n", now - 20)

    run_table(spark, settings, landed, report=print)
    _land(Path(landing), "two.csv", "device_id,temperature,humidity\nc,22.0,40.5\n", now - 10)
    lines: list[str] = []
    run_table(spark, settings, landed, report=lines.append)

    assert any("new column(s) humidity" in line and "restarting" in line for line in lines)
    rows = read_table(settings, SYSTEM, "landed").sort_values("device_id")
    assert set(rows.columns) == {"device_id", "temperature", "humidity", "_rescued_data"}
    assert rows["device_id"].tolist() == ["a", "b", "c"]
    assert rows["humidity"].isna().tolist() == [True, True, False]
    assert rows["humidity"].iloc[2] == pytest.approx(40.5)
    assert pd.notna(rows["temperature"]).all()
    log = read_table(settings, SYSTEM, "event_log")
    assert log.loc[log["expectation"].isna(), "rows_in"].sum() == 3


def test_a_stateless_table_is_written_inside_its_upstreams_batches(spark, settings):
    """`clean` filters `raw`: no query of its own, one Delta commit per batch of `raw`.
    `first_seen` drops duplicates (state across batches): it keeps its own query."""
    _readings(settings, [("a", 20.0), ("b", -300.0), ("a", 21.0)])

    def readings(spark: SparkSession, settings: Settings) -> DataFrame:
        return spark.readStream.format("delta").load(table_uri(settings, SYSTEM, "readings"))

    dp.SOURCES[(SYSTEM, "readings")] = dp.SourceSpec("readings", SYSTEM, readings)
    raw = _register_table("raw", lambda readings: readings, ("readings",), "streaming")
    clean = _register_table(
        "clean", lambda raw: raw.filter("temperature > -273.15"), ("raw",), "streaming"
    )
    first_seen = _register_table(
        "first_seen", lambda raw: raw.dropDuplicates(["device_id"]), ("raw",), "streaming"
    )

    flows = run_tables(spark, settings, SYSTEM, [raw, clean, first_seen], report=print)

    assert [flow.spec.name for flow in flows] == ["raw", "first_seen"]
    assert [child.name for child in flows[0].chained] == ["clean"]
    clean = read_table(settings, SYSTEM, "clean").sort_values("temperature")
    assert clean["temperature"].tolist() == [20.0, 21.0]
    assert sorted(read_table(settings, SYSTEM, "first_seen")["device_id"]) == ["a", "b"]
    log = read_table(settings, SYSTEM, "event_log")
    flows_logged = log[log["expectation"].isna()].groupby("table")["rows_in"].sum()
    assert flows_logged["raw"] == 3 and flows_logged["clean"] == 2  # after its filter
