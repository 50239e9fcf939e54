"""The four Kafka topics the bridge fills, one per sensor kind (names in `settings.arduino`)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.io.records import kafka_records


@dp.source()
def dht_temp(spark: SparkSession, settings: Settings) -> DataFrame:
    """DHT11 temperature readings, `{"msg": "<°C>"}`."""
    return kafka_records(spark, settings, settings.arduino.temperature_topic)


@dp.source()
def dht_hum(spark: SparkSession, settings: Settings) -> DataFrame:
    """DHT11 humidity readings, `{"msg": "<%>"}`."""
    return kafka_records(spark, settings, settings.arduino.humidity_topic)


@dp.source()
def sr04_distance(spark: SparkSession, settings: Settings) -> DataFrame:
    """SR04 distances to the nearest object, `{"msg": "<cm>"}`."""
    return kafka_records(spark, settings, settings.arduino.distance_topic)


@dp.source()
def pir_test(spark: SparkSession, settings: Settings) -> DataFrame:
    """PIR detections: each record is one detected movement, whatever its payload."""
    return kafka_records(spark, settings, settings.arduino.pir_topic)
