"""`dht_temp_raw`: DHT11 temperature records exactly as the bridge forwarded them to Kafka."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.quality import within_record_size


@dp.table(comment="DHT11 temperature records from Kafka topic dht_temp, as received")
@dp.expect("record has data", "data IS NOT NULL")
@within_record_size()
def dht_temp_raw(dht_temp: DataFrame) -> DataFrame:
    return dht_temp
