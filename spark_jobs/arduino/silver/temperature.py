"""`temperature`: DHT11 temperature in °C, one row per Kafka record."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.arduino.payload import parsed


@dp.table(comment='DHT11 temperature in °C parsed from {"msg": "<value>"}')
@dp.expect_or_drop("temperature parses", "temperature IS NOT NULL")
@dp.expect(
    "within the DHT11 range (0-50 °C)", "temperature IS NULL OR temperature BETWEEN 0 AND 50"
)
def temperature(dht_temp_raw: DataFrame) -> DataFrame:
    return parsed(dht_temp_raw, "temperature")
