"""`sr04_distance_raw`: SR04 distance records from Kafka topic sr04_distance, as sent."""

import dlt
from arduino_records import records


@dlt.table(comment="SR04 distance records from Kafka topic sr04_distance, as received")
@dlt.expect("record has data", "data IS NOT NULL")
@dlt.expect("record within 64 KiB", "data IS NULL OR octet_length(data) <= 65536")
def sr04_distance_raw():
    return records(spark, "distance")
