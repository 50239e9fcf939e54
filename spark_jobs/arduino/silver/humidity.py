"""`humidity`: DHT11 relative humidity in %, one row per Kafka record."""

import dlt
from arduino_payload import parsed


@dlt.table(comment='DHT11 relative humidity in % parsed from {"msg": "<value>"}')
@dlt.expect_or_drop("humidity parses", "humidity IS NOT NULL")
@dlt.expect("within the DHT11 range (20-90 %)", "humidity IS NULL OR humidity BETWEEN 20 AND 90")
def humidity():
    return parsed(dlt.read_stream("dht_hum_raw"), "humidity")
