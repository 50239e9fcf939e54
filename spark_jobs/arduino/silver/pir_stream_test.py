"""`pir_stream_test`: the original's table, one row per PIR detection (one Kafka message).

As in the original's Spark job, the message value is ignored; `timestamp` is the Kafka
record's time formatted 'dd/MM/yyyy HH:mm:ss' (a STRING) and `movement` a constant.
"""

import dlt
from pyspark.sql import functions as F


@dlt.table(comment="Movement detections from Kafka topic pir_test, as the original wrote them")
@dlt.expect("timestamp is set", "timestamp IS NOT NULL")
def pir_stream_test():
    return spark.readStream.table("pir_test_raw").select(
        F.date_format("approximateArrivalTimestamp", "dd/MM/yyyy HH:mm:ss").alias("timestamp"),
        F.lit("new detection").alias("movement"),
    )
