"""The runner refreshes materialized views, follows a landing path's schema evolution and
writes stateless tables inside their upstream's batches, for pipelines written as on
Databricks (`import dlt`, reads by name, Auto Loader) in a folder of their own."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from iotlake.config import Settings
from spark_jobs import runner
from spark_jobs.lakeflow.loader import Pipeline
from tests.support.lake import read_table
from tests.support.settings import settings_for

PIPELINE = "runner-check"


def pipeline_folder(root: Path, configuration: dict[str, str], code: str) -> Path:
    """A pipeline folder: `spark-pipeline.yml` and one transformations file."""
    folder = root / "pipeline"
    (folder / "transformations").mkdir(parents=True)
    settings = [
        f"name: {PIPELINE}",
        "catalog: checks",
        "database: runner",
        "libraries:",
        "  - glob:",
        "      include: transformations/**",
        "configuration:",
        *(f"  {key}: {value}" for key, value in configuration.items()),
    ]
    (folder / "spark-pipeline.yml").write_text("\n".join(settings) + "\n")
    (folder / "transformations" / "tables.py").write_text(textwrap.dedent(code))
    return folder


# `raw` streams the Delta table at `readings_path`; `clean` drops impossible temperatures.
RAW_AND_CLEAN = """
import dlt


@dlt.table
def raw():
    return spark.readStream.format("delta").load(spark.conf.get("readings_path"))


@dlt.table
def clean():
    return spark.readStream.table("raw").filter("temperature > -273.15")
"""


def readings_pipeline(root: Path, source: Path, tables: str) -> Path:
    """A pipeline folder of `raw` over the Delta table at `source`, `clean`, and `tables`."""
    return pipeline_folder(
        root, {"readings_path": str(source)}, RAW_AND_CLEAN + textwrap.dedent(tables)
    )


def load(settings: Settings, spark, folder: Path) -> Pipeline:
    return runner.load(folder, settings, spark)


def readings(path: Path, rows: list[tuple[str, float]]) -> None:
    """Append rows to a Delta table outside the pipeline, written with delta-rs."""
    data = pa.table(
        {"device_id": [r[0] for r in rows], "temperature": pa.array([r[1] for r in rows])}
    )
    write_deltalake(str(path), data, mode="append")


def test_materialized_view_replaces_its_rows_at_each_refresh_and_logs_each(spark, tmp_path):
    settings = settings_for(tmp_path)
    source = tmp_path / "readings"
    folder = pipeline_folder(
        tmp_path,
        {"readings_path": str(source)},
        """
        import dlt
        from pyspark.sql import functions as F


        @dlt.table
        def hottest():
            readings = spark.read.format("delta").load(spark.conf.get("readings_path"))
            return readings.groupBy("device_id").agg(F.max("temperature").alias("max_temperature"))
        """,
    )
    readings(source, [("a", 20.0), ("a", 25.0), ("b", 18.0)])
    pipeline = load(settings, spark, folder)

    assert runner.run_once(spark, settings, pipeline) == []  # no streaming flow
    assert pipeline.specs["hottest"].materialized
    assert len(read_table(settings, PIPELINE, "hottest")) == 2
    readings(source, [("b", 31.0), ("c", 5.0)])
    assert runner.refresh_view(spark, settings, pipeline, pipeline.specs["hottest"], print) == 3

    view = read_table(settings, PIPELINE, "hottest").sort_values("device_id")
    assert view.to_dict("records") == [
        {"device_id": "a", "max_temperature": 25.0},
        {"device_id": "b", "max_temperature": 31.0},
        {"device_id": "c", "max_temperature": 5.0},
    ]
    log = read_table(settings, PIPELINE, "event_log").sort_values("batch_id")
    assert log["table"].tolist() == ["hottest", "hottest"]
    assert log["batch_id"].tolist() == [0, 1]
    assert log["rows_out"].tolist() == [2, 3]


def _land(directory: Path, name: str, text: str, mtime: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))


@pytest.mark.slow
def test_new_column_in_landed_files_restarts_the_stream_and_evolves_the_table(spark, tmp_path):
    settings = settings_for(tmp_path)
    landing = tmp_path / "landing" / "readings"
    folder = pipeline_folder(
        tmp_path,
        {"landing": str(landing)},
        """
        import dlt


        @dlt.table(comment="Readings as they landed")
        def landed():
            return (
                spark.readStream.format("cloudFiles")
                .option("cloudFiles.format", "csv")
                .load(spark.conf.get("landing"))
                .drop("_file_path")
            )
        """,
    )
    now = time.time()
    _land(landing, "one.csv", "device_id,temperature\na,20.5\nb,21.0\n", now - 20)
    pipeline = load(settings, spark, folder)

    runner.run_once(spark, settings, pipeline)
    _land(landing, "two.csv", "device_id,temperature,humidity\nc,22.0,40.5\n", now - 10)
    lines: list[str] = []
    runner.run_once(spark, settings, pipeline, report=lines.append)

    assert any("new column(s) humidity" in line and "restarting" in line for line in lines)
    rows = read_table(settings, PIPELINE, "landed").sort_values("device_id")
    assert set(rows.columns) == {"device_id", "temperature", "humidity", "_rescued_data"}
    assert rows["device_id"].tolist() == ["a", "b", "c"]
    assert rows["humidity"].isna().tolist() == [True, True, False]
    assert rows["humidity"].iloc[2] == pytest.approx(40.5)
    assert pd.notna(rows["temperature"]).all()
    log = read_table(settings, PIPELINE, "event_log")
    assert log.loc[log["expectation"].isna(), "rows_in"].sum() == 3


@pytest.mark.slow
def test_a_stateless_table_is_written_inside_its_upstreams_batches(spark, tmp_path):
    """`clean` filters `raw`: no query of its own, one Delta commit per batch of `raw`.
    `first_seen` drops duplicates (state across batches): it keeps its own query."""
    settings = settings_for(tmp_path)
    source = tmp_path / "readings"
    rows = [("a", 20.0), ("b", -300.0), ("a", 21.0)]
    readings(source, rows)
    folder = readings_pipeline(
        tmp_path,
        source,
        """
        @dlt.table
        def first_seen():
            return dlt.read_stream("raw").dropDuplicates(["device_id"])
        """,
    )

    flows = runner.run_once(spark, settings, load(settings, spark, folder))

    assert [flow.spec.name for flow in flows] == ["raw", "first_seen"]
    assert [child.name for child in flows[0].chained] == ["clean"]
    clean = read_table(settings, PIPELINE, "clean").sort_values("temperature")
    assert clean["temperature"].tolist() == sorted(t for _, t in rows if t > -273.15)
    assert sorted(read_table(settings, PIPELINE, "first_seen")["device_id"]) == ["a", "b"]
    log = read_table(settings, PIPELINE, "event_log")
    flows_logged = log[log["expectation"].isna()].groupby("table")["rows_in"].sum()
    assert flows_logged["raw"] == len(rows) and flows_logged["clean"] == 2  # after its filter


@pytest.mark.slow
def test_max_min_sum_count_aggregates_fold_each_batch_into_their_table(spark, tmp_path):
    """`per_device` (max, min, sum, count over `clean`) rides in `raw`'s batches: each batch's
    partial aggregate is merged into the table, so two runs over two waves hold the totals of
    both. `mean_by_device` (avg) cannot be folded that way, nor `warm_devices` (a drop rule
    would lose a batch's share of a group): they keep their own queries."""
    settings = settings_for(tmp_path)
    source = tmp_path / "readings"
    first = [("a", 20.0), ("b", 5.0), ("a", 23.5)]
    second = [("a", 19.0), ("c", 7.0), ("b", 6.5)]
    folder = readings_pipeline(
        tmp_path,
        source,
        """
        from pyspark.sql import functions as F


        @dlt.table
        @dlt.expect("highest is not below lowest", "highest >= lowest")
        def per_device():
            return (
                dlt.read_stream("clean")
                .groupBy("device_id")
                .agg(
                    F.max("temperature").alias("highest"),
                    F.min("temperature").alias("lowest"),
                    F.sum("temperature").alias("total"),
                    F.count("*").alias("readings"),
                )
            )


        @dlt.table
        def mean_by_device():
            mean = F.avg("temperature").alias("mean")
            return dlt.read_stream("clean").groupBy("device_id").agg(mean)


        @dlt.table
        @dlt.expect_or_drop("warm", "highest > 0")
        def warm_devices():
            highest = F.max("temperature").alias("highest")
            return dlt.read_stream("clean").groupBy("device_id").agg(highest)
        """,
    )

    for wave in (first, second):
        readings(source, wave)
        flows = runner.run_once(spark, settings, load(settings, spark, folder))

    assert [flow.spec.name for flow in flows] == ["raw", "mean_by_device", "warm_devices"]
    assert [child.name for child in flows[0].chained] == ["clean", "per_device"]
    everything = pd.DataFrame(first + second, columns=["device_id", "temperature"])
    want = everything.groupby("device_id")["temperature"].agg(["max", "min", "sum", "count"])
    got = read_table(settings, PIPELINE, "per_device").set_index("device_id").sort_index()
    assert got["highest"].tolist() == want["max"].tolist()
    assert got["lowest"].tolist() == want["min"].tolist()
    assert got["total"].tolist() == pytest.approx(want["sum"].tolist())
    assert got["readings"].tolist() == want["count"].tolist()
    log = read_table(settings, PIPELINE, "event_log")
    checked = log[log["expectation"] == "highest is not below lowest"]
    assert checked["failed"].sum() == 0 and checked["passed"].sum() == 2 + 3  # changed groups
