"""`critical_by_device`: critical readings per device per minute, for the anomaly bar chart."""

import dlt
from pyspark.sql import functions as F


@dlt.table(comment="Critical readings per device and minute (query_for_anomaly_bar_chart)")
@dlt.expect("count is positive", "critical_count > 0")
def critical_by_device():
    return (
        dlt.read_stream("iot_sensor_processed")
        .where("is_critical")
        .groupBy("device_id", F.date_trunc("minute", "event_timestamp").alias("time_window"))
        .agg(F.count(F.lit(1)).alias("critical_count"))
    )
