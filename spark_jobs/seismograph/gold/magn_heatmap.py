"""`magn_heatmap`: the maximum magnitude per phone per time bin (2 s, as in the original)."""

import dlt
from pyspark.sql import functions as F


@dlt.table(comment="Max magnitude per device per time bin, for the heat map and the 3D plot")
@dlt.expect("bin magnitude is not negative", "magn >= 0")
def magn_heatmap():
    bins = F.window("time", spark.conf.get("motion.heatmap.bin"))
    return (
        spark.readStream.table("sensor")
        .withWatermark("time", spark.conf.get("motion.heatmap.watermark"))
        .groupBy("device", bins.alias("bin"))
        .agg(F.max("magn").alias("magn"))
        .select("device", F.col("bin.start").alias("time_bin"), "magn")
    )
