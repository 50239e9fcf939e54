"""`anomaly_detected`: readings the physics rules flag; the SQL alert counts the recent ones."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp


@dp.table(
    comment="Uses physics-based modeling to predict anomaly events. Feeds the SQL alert "
    "`Defects detected` (iotlake alerts)"
)
def anomaly_detected(sensor_bronze: DataFrame) -> DataFrame:
    return sensor_bronze.where(
        ((F.col("delay") > 155) & (F.col("rotation_speed") > 800))
        | (F.col("temperature") > 101)
        | ((F.col("density") > 4.6) & (F.col("air_pressure") < 840))
    )
