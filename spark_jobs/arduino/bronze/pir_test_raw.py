"""`pir_test_raw`: PIR detection records exactly as the bridge forwarded them to Kafka."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.quality import within_record_size


@dp.table(comment="PIR detection records from Kafka topic pir_test, as received")
@dp.expect("record has data", "data IS NOT NULL")
@within_record_size()
def pir_test_raw(pir_test: DataFrame) -> DataFrame:
    return pir_test
