"""`pir_stream_test`: the original's table, one row per PIR detection (one Kafka message).

As in the original's Spark job, the message value is ignored; `timestamp` is the Kafka
record's time formatted 'dd/MM/yyyy HH:mm:ss' (a STRING) and `movement` a constant.
"""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp

TIMESTAMP_FORMAT = "dd/MM/yyyy HH:mm:ss"


@dp.table(comment="Movement detections from Kafka topic pir_test, as the original wrote them")
@dp.expect("timestamp is set", "timestamp IS NOT NULL")
def pir_stream_test(pir_test_raw: DataFrame) -> DataFrame:
    return pir_test_raw.select(
        F.date_format("approximateArrivalTimestamp", TIMESTAMP_FORMAT).alias("timestamp"),
        F.lit("new detection").alias("movement"),
    )
