"""`global_stat`: count, max, min, average and spread of all magnitudes so far."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp


@dp.table(comment="Global statistics over the whole stream", output_mode="complete")
@dp.expect("max is not below min", "events = 0 OR max >= min")
def global_stat(sensor: DataFrame) -> DataFrame:
    return sensor.agg(
        F.count("magn").alias("events"),
        F.max("magn").alias("max"),
        F.min("magn").alias("min"),
        F.avg("magn").alias("avg"),
        F.stddev("magn").alias("stddev"),
    )
