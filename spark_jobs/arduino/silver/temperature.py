"""`temperature`: DHT11 temperature in °C, one row per Kafka record."""

import dlt
from arduino_payload import parsed


@dlt.table(comment='DHT11 temperature in °C parsed from {"msg": "<value>"}')
@dlt.expect_or_drop("temperature parses", "temperature IS NOT NULL")
@dlt.expect(
    "within the DHT11 range (0-50 °C)", "temperature IS NULL OR temperature BETWEEN 0 AND 50"
)
def temperature():
    return parsed(dlt.read_stream("dht_temp_raw"), "temperature")
