"""`iot_sensor_raw`: the device JSON as it arrived, with the Kinesis arrival time.

The whole payload is kept, so pressure and humidity survive here even though the processed
table, like the original, only carries temperature.
"""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp
from spark_jobs.quality import within_record_size


@dp.table(comment="Raw device payloads from Kinesis")
@dp.expect("payload present", "json_payload IS NOT NULL")
@within_record_size("json_payload")
def iot_sensor_raw(iot_sensor_stream: DataFrame) -> DataFrame:
    return iot_sensor_stream.select(
        F.col("data").alias("json_payload"),
        F.col("approximateArrivalTimestamp").alias("kinesis_time"),
    )
