"""`inspection_silver`: each inspection joined with its device's latest hourly sensor features.

As the original (`02_featurization.py`) does with dbl-tempo: undo the negated air pressures,
add `EMA_rotation_speed` (window 5, factor 0.2), resample each device-trip to hourly means,
then as-of join the inspections (by device) with the newest hour at or before each one,
sensor columns prefixed `sensor_`, each taking its last non-null value. The original's text
mentions interpolation but its code does not call it, so neither does this.
"""

from pyspark import pipelines as dp
from pyspark.sql import functions as F
from tempo import TSDF

SENSOR_KEYS = ["device_id", "trip_id", "factory_id", "model_id"]
RENAMED = {
    "sensor_trip_id": "trip_id",
    "sensor_model_id": "model_id",
    "sensor_factory_id": "factory_id",
}


def hourly_features(sensor_bronze):
    """Sensor readings as an hourly time series per device and trip, with the EMA feature."""
    pressure = F.col("air_pressure")
    sensors = sensor_bronze.drop("_rescued_data").withColumn(
        "air_pressure", F.when(pressure < 0, -pressure).otherwise(pressure)
    )
    return (
        TSDF(sensors, ts_col="timestamp", partition_cols=SENSOR_KEYS)
        .EMA("rotation_speed", window=5)
        .resample(freq="1 hour", func="mean")
    )


@dp.materialized_view(comment="Joins bronze sensor data with inspection reports")
def inspection_silver():
    features = hourly_features(dp.read("sensor_bronze"))
    inspections = TSDF(
        dp.read("inspection_bronze").drop("_rescued_data"),
        ts_col="timestamp",
        partition_cols=["device_id"],
    )
    joined = inspections.asofJoin(features, right_prefix="sensor").df
    for old, new in RENAMED.items():
        joined = joined.withColumnRenamed(old, new)
    # tempo orders joined columns through a set; name them in a fixed, readable order.
    left = [c for c in inspections.df.columns if c != "device_id"]
    right = [f"sensor_{c}" for c in features.df.columns if c not in SENSOR_KEYS]
    return joined.select("device_id", *left, *RENAMED.values(), *right)
