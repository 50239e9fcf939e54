"""How a silver table turns a raw `{"msg": "<value>"}` record into a timestamped number."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

PAYLOAD_SCHEMA = "msg STRING"


def parsed(raw: DataFrame, column: str) -> DataFrame:
    """`timestamp` (the Kafka record's) and the payload's value as DOUBLE in `column`.

    A value that is not a finite number becomes NULL, for the table's expectations to drop
    rather than failing the batch: text that does not parse (try_cast), and the `nan` a DHT11
    sketch prints on a failed read (or `inf`), which would parse and turn every average over
    it into NaN.
    """
    value = F.from_json("data", PAYLOAD_SCHEMA).getField("msg").try_cast("double")
    finite = ~F.isnan(value) & (F.abs(value) < F.lit(float("inf")))
    return raw.select(
        F.col("approximateArrivalTimestamp").alias("timestamp"),
        F.when(finite, value).alias(column),
    )
