"""`magn_live`: the live averaged magnitude per 1-second window (the "M-Magn SSS" display)."""

import dlt
from pyspark.sql import functions as F


@dlt.table(comment="Average magnitude per tumbling window, 3-second watermark")
@dlt.expect("window ends after it starts", "window_end > window_start")
def magn_live():
    windows = F.window("time", spark.conf.get("motion.live.window"))
    return (
        spark.readStream.table("sensor")
        .withWatermark("time", spark.conf.get("motion.live.watermark"))
        .groupBy(windows.alias("w"))
        .agg(F.avg("magn").alias("avg_magn"))
        .select(
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            "avg_magn",
        )
    )
