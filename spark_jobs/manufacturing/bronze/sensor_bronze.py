"""`sensor_bronze`: every sensor reading as it landed, misfit values in `_rescued_data`.

Auto Loader reads only files not read before; the hints fix the columns' types, a value that
does not fit its type is kept in `_rescued_data`, and a file with a new column evolves the
schema (the flow restarts and the table gains the column).
"""

import dlt

SENSOR_HINTS = (
    "device_id int, trip_id int, factory_id string, model_id string, timestamp timestamp, "
    "airflow_rate double, rotation_speed double, air_pressure float, temperature float, "
    "delay float, density float"
)


@dlt.table(comment="Loads raw sensor data into the bronze layer")
@dlt.expect("valid pressure", "air_pressure > 0")
def sensor_bronze():
    return (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "csv")
        .option("cloudFiles.schemaHints", SENSOR_HINTS)
        .option("cloudFiles.schemaLocation", f"{spark.conf.get('checkpoints')}/sensor")
        .load(spark.conf.get("sensor_landing"))
        .drop("_file_path")
    )
