"""Sensor and inspection CSV files landing for Auto Loader, with the original's schema hints.

Only files not read before are read; columns are inferred from the files and the hints fix
their types; a value that does not fit its type is kept in `_rescued_data`; a file with a new
column evolves the schema (the runner restarts the query, the table gains the column).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.io.autoloader_source import autoloader_stream
from spark_jobs.io.storage import landing_uri, schema_location

SYSTEM = "manufacturing"
SENSOR_HINTS = (
    "device_id int, trip_id int, factory_id string, model_id string, timestamp timestamp, "
    "airflow_rate double, rotation_speed double, air_pressure float, temperature float, "
    "delay float, density float"
)
INSPECTION_HINTS = "defect float, timestamp timestamp, device_id integer"


@dp.source()
def sensor_files(spark: SparkSession, settings: Settings) -> DataFrame:
    return autoloader_stream(
        spark,
        settings,
        landing_uri(settings, settings.manufacturing.sensor_landing),
        "csv",
        schema_location=schema_location(settings, SYSTEM, "sensor"),
        schema_hints=SENSOR_HINTS,
    )


@dp.source()
def inspection_files(spark: SparkSession, settings: Settings) -> DataFrame:
    return autoloader_stream(
        spark,
        settings,
        landing_uri(settings, settings.manufacturing.inspection_landing),
        "csv",
        schema_location=schema_location(settings, SYSTEM, "inspection"),
        schema_hints=INSPECTION_HINTS,
    )
