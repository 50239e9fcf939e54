"""The Arduino system's edge: a simulated board publishing over MQTT, and the MQTT -> Kafka bridge.

MQTT topics and the Kafka topic each is forwarded to (docs/originals.md, arduino):
`dht_temp` -> `dht_temp`, `dht_hum` -> `dht_hum`, `sr04_distance` -> `sr04_distance`,
`pir_test/1` -> `pir_test`. Payloads are `{"msg": "<integer as string>"}` as the original sent.
"""

from __future__ import annotations

from iotlake.config import Settings

TEMPERATURE = "dht_temp"
HUMIDITY = "dht_hum"
DISTANCE = "sr04_distance"
PIR = "pir_test/1"
MQTT_TOPICS: tuple[str, ...] = (TEMPERATURE, HUMIDITY, DISTANCE, PIR)


def mqtt_topic(settings: Settings, name: str) -> str:
    """An MQTT topic as published, after the configured prefix (tests use a private one)."""
    return f"{settings.arduino.mqtt_prefix}{name}"


def topic_map(settings: Settings) -> dict[str, str]:
    """MQTT topic -> Kafka topic, for every sensor the board has."""
    config = settings.arduino
    kafka = {
        TEMPERATURE: config.temperature_topic,
        HUMIDITY: config.humidity_topic,
        DISTANCE: config.distance_topic,
        PIR: config.pir_topic,
    }
    return {mqtt_topic(settings, name): kafka[name] for name in MQTT_TOPICS}
