"""How a silver table turns a raw `{"msg": "<value>"}` record into a timestamped number."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

PAYLOAD_SCHEMA = "msg STRING"


def parsed(raw: DataFrame, column: str) -> DataFrame:
    """`timestamp` (the Kafka record's) and the payload's value as DOUBLE in `column`.

    A value that is not a number becomes NULL (try_cast), for the table's expectations to
    drop rather than failing the batch.
    """
    message = F.from_json("data", PAYLOAD_SCHEMA).getField("msg")
    return raw.select(
        F.col("approximateArrivalTimestamp").alias("timestamp"),
        message.try_cast("double").alias(column),
    )
