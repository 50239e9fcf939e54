"""`magn_live`: the live averaged magnitude per 1-second window (the "M-Magn SSS" display)."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from iotlake.config import Settings
from spark_jobs import dp


@dp.table(
    comment="Average magnitude per tumbling window, 3-second watermark",
    output_mode="update",
    keys=("window_start",),
)
@dp.expect("window ends after it starts", "window_end > window_start")
def magn_live(sensor: DataFrame, settings: Settings) -> DataFrame:
    config = settings.seismograph
    windows = F.window("time", f"{config.live_window_seconds} seconds")
    return (
        sensor.withWatermark("time", f"{config.live_watermark_seconds} seconds")
        .groupBy(windows.alias("w"))
        .agg(F.avg("magn").alias("avg_magn"))
        .select(
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            "avg_magn",
        )
    )
