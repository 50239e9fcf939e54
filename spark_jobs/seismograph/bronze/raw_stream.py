"""`raw_stream`: phone records exactly as received, before any parsing."""

from pyspark.sql import DataFrame

from spark_jobs import dp
from spark_jobs.quality import within_record_size


@dp.table(comment="Accelerometer records from the phones, as received from the broker")
@dp.expect("record has data", "data IS NOT NULL")
@within_record_size()
def raw_stream(dais2023: DataFrame) -> DataFrame:
    return dais2023
