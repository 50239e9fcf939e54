"""`max_magn_by_device`: the histogram of the highest magnitude each phone reached."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp


@dp.table(
    comment="Maximum magnitude per client, the DAIS histogram",
    output_mode="update",
    keys=("device",),
)
@dp.expect("max magnitude is not negative", "max_magn >= 0")
def max_magn_by_device(sensor: DataFrame) -> DataFrame:
    return sensor.groupBy("device").agg(F.max("magn").alias("max_magn"))
