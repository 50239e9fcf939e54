"""How a silver table reads a number from a raw `{"msg": "<value>"}` record (helper module
of the pipeline's table files).

A value that is not a finite number becomes NULL for the table's `parses` rule to drop rather
than failing the batch: text that does not parse (try_cast), and the `nan` a DHT11 prints on a
failed read (or `inf`), which would parse and turn every average over it into NaN.
"""

from pyspark.sql import functions as F


def parsed(raw, column):
    value = F.from_json("data", "msg STRING").getField("msg").try_cast("double")
    finite = ~F.isnan(value) & (F.abs(value) < F.lit(float("inf")))
    return raw.select(
        F.col("approximateArrivalTimestamp").alias("timestamp"),
        F.when(finite, value).alias(column),
    )
