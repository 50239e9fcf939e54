"""`anomaly_detected`: readings the physics rules flag; the SQL alert counts the recent ones."""

from pyspark import pipelines as dp
from pyspark.sql import functions as F


@dp.table(
    comment="Uses physics-based modeling to predict anomaly events. Feeds Databricks SQL Alerts"
)
def anomaly_detected():
    return spark.readStream.table("sensor_bronze").where(
        ((F.col("delay") > 155) & (F.col("rotation_speed") > 800))
        | (F.col("temperature") > 101)
        | ((F.col("density") > 4.6) & (F.col("air_pressure") < 840))
    )
