"""`dht_hum_raw`: DHT11 humidity records exactly as the bridge forwarded them to Kafka."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.quality import within_record_size


@dp.table(comment="DHT11 humidity records from Kafka topic dht_hum, as received")
@dp.expect("record has data", "data IS NOT NULL")
@within_record_size()
def dht_hum_raw(dht_hum: DataFrame) -> DataFrame:
    return dht_hum
