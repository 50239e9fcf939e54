"""`inspection_bronze`: inspection results with a time and a device; others are dropped."""

from pyspark.sql import DataFrame

from spark_jobs import dp


@dp.table(comment="Loads raw inspection files into the bronze layer")
@dp.expect_all_or_drop(
    {"valid timestamp": "`timestamp` is not null", "valid device id": "device_id is not null"}
)
def inspection_bronze(inspection_files: DataFrame) -> DataFrame:
    return inspection_files.drop("_file_path")
