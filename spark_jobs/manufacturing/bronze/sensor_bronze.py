"""`sensor_bronze`: every sensor reading as it landed, misfit values in `_rescued_data`."""

from pyspark.sql import DataFrame

from spark_jobs import dp


@dp.table(comment="Loads raw sensor data into the bronze layer")
@dp.expect("valid pressure", "air_pressure > 0")
def sensor_bronze(sensor_files: DataFrame) -> DataFrame:
    return sensor_files.drop("_file_path")
