"""`magn_heatmap`: the maximum magnitude per phone per time bin (2 s, as in the original)."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from iotlake.config import Settings
from spark_jobs import dp


@dp.table(
    comment="Max magnitude per device per time bin, for the heat map and the 3D plot",
    output_mode="update",
    keys=("device", "time_bin"),
)
@dp.expect("bin magnitude is not negative", "magn >= 0")
def magn_heatmap(sensor: DataFrame, settings: Settings) -> DataFrame:
    config = settings.seismograph
    bins = F.window("time", f"{config.heatmap_bin_seconds} seconds")
    return (
        sensor.withWatermark("time", f"{config.heatmap_watermark_seconds} seconds")
        .groupBy("device", bins.alias("bin"))
        .agg(F.max("magn").alias("magn"))
        .select("device", F.col("bin.start").alias("time_bin"), "magn")
    )
