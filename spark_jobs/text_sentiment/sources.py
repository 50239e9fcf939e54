"""Posts arrive as JSON-lines files (`tweets_<epoch>.json`) in the system's landing path."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.io.autoloader_source import autoloader_stream
from spark_jobs.io.storage import landing_uri, schema_location

SYSTEM = "text-sentiment"


# The columns the tables read: with them hinted, the pipeline starts before the first file
# lands (the rest of the tweet's fields are added by schema evolution when they appear).
HINTS = "id bigint, geo string, lang string, text string"


@dp.source()
def posts(spark: SparkSession, settings: Settings) -> DataFrame:
    """New landing files only, schema inferred (the original's `cloud_files(..., "json")`)."""
    return autoloader_stream(
        spark,
        settings,
        landing_uri(settings, settings.text_sentiment.landing_path),
        "json",
        schema_location=schema_location(settings, SYSTEM, "posts"),
        schema_hints=HINTS,
    )
