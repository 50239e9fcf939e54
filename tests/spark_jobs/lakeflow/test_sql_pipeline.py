"""A SQL file beside a Python one, in a `databricks.yml` bundle whose targets give its
variables their values: SQL datasets read Auto Loader files and Python datasets, with their
expectations and table properties.

The bundle's `prod` target is run once (a module fixture) and each test looks at what that run
left.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from spark_jobs.flows import write_mode
from spark_jobs.io.storage import table_uri, volume_uri
from tests.support.lakeflow import (
    BUNDLE,
    DEVICES,
    READINGS,
    Run,
    failed,
    land_json,
    records,
    run_pipeline,
    write_folder,
)
from tests.support.settings import settings_for

SQL = "lakeflow_sql"
SMALL = 100
SQL_FILES = {
    "databricks.yml": BUNDLE,
    "transformations/readings.sql": f"""
        -- Bronze: JSON files read by Auto Loader, in both SQL spellings.
        CREATE OR REFRESH STREAMING TABLE readings_raw
        COMMENT 'Readings as they landed'
        AS SELECT * FROM cloud_files("${{landing}}/readings", "json");

        CREATE OR REFRESH STREAMING TABLE devices_raw
        AS SELECT device, site FROM STREAM read_files("${{landing}}/devices", format => "json");

        CREATE TEMPORARY VIEW positive
        AS SELECT device, reading FROM STREAM(LIVE.readings_raw) WHERE reading > ${{min_reading}};

        CREATE OR REFRESH STREAMING TABLE readings (
          CONSTRAINT device_named EXPECT (device IS NOT NULL) ON VIOLATION DROP ROW,
          CONSTRAINT reading_small EXPECT (reading < {SMALL})
        )
        TBLPROPERTIES ('quality' = 'silver')
        AS SELECT * FROM STREAM(LIVE.positive);

        CREATE OR REFRESH STREAMING TABLE device_ranking
        AS SELECT device, count(*) AS n FROM STREAM(LIVE.readings)
        GROUP BY device ORDER BY n DESC;

        -- Reads `devices`, a materialized view declared in Python.
        CREATE OR REFRESH MATERIALIZED VIEW site_totals
        AS SELECT d.site, sum(r.reading) AS total
        FROM LIVE.readings r JOIN LIVE.devices d ON r.device = d.device
        GROUP BY d.site;
        """,
    "transformations/devices.py": """
        from pyspark import pipelines as dp
        from pyspark.sql import functions as F


        @dp.materialized_view(comment="Devices with their site in capitals")
        def devices():
            return spark.read.table("devices_raw").select("device", F.upper("site").alias("site"))
        """,
}
PROD_LANDING = "/Volumes/lf/sqlmix/files/prod"


@pytest.fixture(scope="module")
def sql_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("sql-pipeline")
    settings = settings_for(root)
    folder = write_folder(root / "pipeline", SQL_FILES)
    land_json(volume_uri(settings, f"{PROD_LANDING}/readings"), "1.json", READINGS)
    land_json(volume_uri(settings, f"{PROD_LANDING}/devices"), "1.json", DEVICES)
    return run_pipeline(spark, settings, folder, target="prod")


@pytest.mark.slow
def test_a_bundle_target_picks_its_own_variable_values(sql_run: Run):
    definition = sql_run.pipeline.definition

    assert definition.target == "prod"
    assert sql_run.pipeline.configuration["landing"] == PROD_LANDING
    assert sql_run.pipeline.configuration["min_reading"] == "0"
    assert (sql_run.pipeline.catalog, sql_run.pipeline.schema) == ("lf", "sqlmix")


@pytest.mark.slow
def test_sql_datasets_run_beside_python_ones_with_their_expectations(spark, sql_run: Run):
    specs, log = sql_run.pipeline.specs, sql_run.log
    positive = [row for row in READINGS if row["reading"] > 0]
    kept = [row for row in positive if row["device"] is not None]

    kinds = {name: spec.kind for name, spec in specs.items()}
    assert kinds == {
        "readings_raw": "streaming",
        "devices_raw": "streaming",
        "positive": "view",
        "readings": "streaming",
        "device_ranking": "streaming",
        "site_totals": "materialized",
        "devices": "materialized",
    }
    assert specs["site_totals"].upstream == ("devices", "readings")
    assert specs["devices"].upstream == ("devices_raw",)
    assert specs["readings"].upstream == ("readings_raw",)
    # cloud_files and STREAM read_files, with ${landing} from the prod target's variable.
    raw = sql_run.table("readings_raw")
    assert records(raw, "device", "reading") == records(pd.DataFrame(READINGS), "device", "reading")
    assert records(sql_run.table("devices_raw"), "device", "site") == records(
        pd.DataFrame(DEVICES), "device", "site"
    )
    assert records(sql_run.table("readings"), "device", "reading") == records(
        pd.DataFrame(kept), "device", "reading"
    )
    assert failed(log, "readings") == {
        "device_named": ("drop", len(positive) - len(kept)),
        "reading_small": ("warn", sum(row["reading"] >= SMALL for row in kept)),
    }
    assert not Path(table_uri(sql_run.settings, SQL, "positive")).exists()
    detail = spark.sql("DESCRIBE DETAIL lf.sqlmix.readings_raw").first()
    assert detail.description == "Readings as they landed"
    assert spark.sql("DESCRIBE DETAIL lf.sqlmix.readings").first().properties == {
        "quality": "silver"
    }
    # The ordered aggregate is rewritten whole; the MV joins SQL and Python datasets.
    ranking = sql_run.table("device_ranking")
    counts = pd.DataFrame(kept)["device"].value_counts()
    assert dict(zip(ranking["device"], ranking["n"], strict=True)) == counts.to_dict()
    assert write_mode(sql_run.pipeline.call(specs["device_ranking"])).mode == "complete"
    sites = {row["device"]: row["site"].upper() for row in DEVICES}
    totals: dict[str, float] = {}
    for row in kept:
        totals[sites[row["device"]]] = totals.get(sites[row["device"]], 0) + row["reading"]
    site_totals = sql_run.table("site_totals")
    assert dict(zip(site_totals["site"], site_totals["total"], strict=True)) == totals
