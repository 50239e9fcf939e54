"""`humidity`: DHT11 relative humidity in %, one row per Kafka record."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.arduino.payload import parsed


@dp.table(comment='DHT11 relative humidity in % parsed from {"msg": "<value>"}')
@dp.expect_or_drop("humidity parses", "humidity IS NOT NULL")
@dp.expect("within the DHT11 range (20-90 %)", "humidity IS NULL OR humidity BETWEEN 20 AND 90")
def humidity(dht_hum_raw: DataFrame) -> DataFrame:
    return parsed(dht_hum_raw, "humidity")
