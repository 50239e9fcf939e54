"""`distance`: SR04 distance to the nearest object in cm, one row per Kafka record."""

import dlt
from arduino_payload import parsed


@dlt.table(comment='SR04 distance to the nearest object in cm parsed from {"msg": "<value>"}')
@dlt.expect_or_drop("distance parses", "distance IS NOT NULL")
@dlt.expect("within the SR04 range (2-400 cm)", "distance IS NULL OR distance BETWEEN 2 AND 400")
def distance():
    return parsed(dlt.read_stream("sr04_distance_raw"), "distance")
