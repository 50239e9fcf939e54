"""`global_stat`: count, max, min, average and spread of all magnitudes so far."""

import dlt
from pyspark.sql import functions as F


@dlt.table(name="global_stat", comment="Global statistics over the whole stream")
@dlt.expect("max is not below min", "events = 0 OR max >= min")
def xyz_global():
    return (
        dlt.read_stream("sensor")
        .groupBy()
        .agg(
            F.count("magn").alias("events"),
            F.max("magn").alias("max"),
            F.min("magn").alias("min"),
            F.avg("magn").alias("avg"),
            F.stddev("magn").alias("stddev"),
        )
    )
