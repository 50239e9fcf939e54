"""`max_magn_by_device`: the histogram of the highest magnitude each phone reached (M-Histo)."""

import dlt
from pyspark.sql import functions as F


@dlt.table(comment="Maximum magnitude per client, the DAIS histogram")
@dlt.expect("max magnitude is not negative", "max_magn >= 0")
def max_magn_by_device():
    return (
        spark.readStream.table("demo_frank.motion.sensor")
        .groupBy("device")
        .agg(F.max("magn").alias("max_magn"))
    )
