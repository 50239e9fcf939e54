"""`pir_test_raw`: PIR detection records from Kafka topic pir_test, as the bridge sent them."""

import dlt
from arduino_records import records


@dlt.table(comment="PIR detection records from Kafka topic pir_test, as received")
@dlt.expect("record has data", "data IS NOT NULL")
@dlt.expect("record within 64 KiB", "data IS NULL OR octet_length(data) <= 65536")
def pir_test_raw():
    return records(spark, "pir")
