"""`temp_hum`: average temperature and humidity per minute, behind the `temp_hum` dashboard.

The original dashboard's two line charts ("temp_trend", "hum_trend") read this table. Both
silver streams feed one aggregation: each row carries one of the two values, and `avg`
skips the other's NULLs.
"""

import dlt
from pyspark.sql import functions as F


@dlt.table(comment="Average DHT11 temperature and humidity per minute (temp_trend, hum_trend)")
@dlt.expect("plausible temperature", "temperature IS NULL OR temperature BETWEEN 0 AND 50")
@dlt.expect("plausible humidity", "humidity IS NULL OR humidity BETWEEN 20 AND 90")
def temp_hum():
    temperature = dlt.read_stream("temperature").select(
        "timestamp", "temperature", F.lit(None).cast("double").alias("humidity")
    )
    humidity = dlt.read_stream("humidity").select(
        "timestamp", F.lit(None).cast("double").alias("temperature"), "humidity"
    )
    both = temperature.unionByName(humidity)
    return both.groupBy(F.date_trunc("minute", "timestamp").alias("minute")).agg(
        F.avg("temperature").alias("temperature"),
        F.avg("humidity").alias("humidity"),
        F.count("temperature").alias("temperature_readings"),
        F.count("humidity").alias("humidity_readings"),
    )
