"""`inspection_bronze`: inspection results with a time and a device; others are dropped."""

import dlt

INSPECTION_HINTS = "defect float, timestamp timestamp, device_id integer"


@dlt.table(comment="Loads raw inspection files into the bronze layer")
@dlt.expect_all_or_drop(
    {"valid timestamp": "`timestamp` is not null", "valid device id": "device_id is not null"}
)
def inspection_bronze():
    return (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "csv")
        .option("cloudFiles.schemaHints", INSPECTION_HINTS)
        .option("cloudFiles.schemaLocation", f"{spark.conf.get('checkpoints')}/inspection")
        .load(spark.conf.get("inspection_landing"))
        .drop("_file_path")
    )
