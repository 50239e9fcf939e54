"""`sr04_distance_raw`: SR04 distance records exactly as the bridge forwarded them to Kafka."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.quality import within_record_size


@dp.table(comment="SR04 distance records from Kafka topic sr04_distance, as received")
@dp.expect("record has data", "data IS NOT NULL")
@within_record_size()
def sr04_distance_raw(sr04_distance: DataFrame) -> DataFrame:
    return sr04_distance
