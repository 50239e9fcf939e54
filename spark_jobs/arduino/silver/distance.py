"""`distance`: SR04 distance to the nearest object in cm, one row per Kafka record."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.arduino.payload import parsed


@dp.table(comment='SR04 distance to the nearest object in cm parsed from {"msg": "<value>"}')
@dp.expect_or_drop("distance parses", "distance IS NOT NULL")
@dp.expect("within the SR04 range (2-400 cm)", "distance IS NULL OR distance BETWEEN 2 AND 400")
def distance(sr04_distance_raw: DataFrame) -> DataFrame:
    return parsed(sr04_distance_raw, "distance")
