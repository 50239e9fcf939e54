"""`iotlake job run`: a plain streaming script, as a Databricks job runs it, writes tables
named by catalog, schema and table."""

from __future__ import annotations

import pandas as pd
import pytest

from iotlake.config import Settings
from spark_jobs.io.storage import table_uri, volume_uri
from spark_jobs.lakeflow.job import run_job
from tests.support.lakeflow import DEVICES, READINGS, land_json, records, write_folder

JOB = """
    landing = spark.conf.get("landing")
    checkpoints = spark.conf.get("checkpoints")
    spark.sql("CREATE SCHEMA IF NOT EXISTS jobcat.sensors")  # as on Databricks: no schema, no table

    (
        spark.readStream.format("json")
        .schema("device STRING, reading DOUBLE")
        .load(landing)
        .writeStream.format("delta")
        .option("checkpointLocation", f"{checkpoints}/json")
        .trigger(availableNow=True)
        .toTable("jobcat.sensors.readings")
        .awaitTermination()
    )
    (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "json")
        .load("/Volumes/jobcat/sensors/landing/readings")
        .writeStream.format("delta")
        .option("checkpointLocation", f"{checkpoints}/autoloader")
        .trigger(availableNow=True)
        .toTable("jobcat.sensors.loaded")
        .awaitTermination()
    )
    """


@pytest.mark.slow
def test_a_job_script_streams_files_into_tables_named_by_three_parts(
    spark, stack_settings: Settings, tmp_path
):
    # The session's own settings: a table a job creates by name is a managed table of the
    # session's lake (its warehouse), as `iotlake job run` builds the session.
    settings = stack_settings
    landing = tmp_path / "landing"
    land_json(landing, "1.json", READINGS)
    land_json(volume_uri(settings, "/Volumes/jobcat/sensors/landing/readings"), "1.json", DEVICES)
    script = write_folder(tmp_path / "job", {"stream.py": JOB}) / "stream.py"

    run_job(
        spark,
        settings,
        script,
        conf={"landing": str(landing), "checkpoints": str(tmp_path / "checkpoints")},
    )

    readings = spark.read.table("jobcat.sensors.readings").toPandas()
    assert records(readings, "device", "reading") == records(
        pd.DataFrame(READINGS), "device", "reading"
    )
    loaded = spark.read.table("jobcat.sensors.loaded").toPandas()
    assert records(loaded, "device", "site") == records(pd.DataFrame(DEVICES), "device", "site")
    for table in ("readings", "loaded"):
        location = spark.sql(f"DESCRIBE DETAIL jobcat.sensors.{table}").first().location
        assert location.removeprefix("file:") == table_uri(settings, "jobcat__sensors.db", table)
