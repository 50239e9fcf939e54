"""`dht_hum_raw`: DHT11 humidity records from Kafka topic dht_hum, as the bridge sent them."""

import dlt
from arduino_records import records


@dlt.table(comment="DHT11 humidity records from Kafka topic dht_hum, as received")
@dlt.expect("record has data", "data IS NOT NULL")
@dlt.expect("record within 64 KiB", "data IS NULL OR octet_length(data) <= 65536")
def dht_hum_raw():
    return records(spark, "humidity")
