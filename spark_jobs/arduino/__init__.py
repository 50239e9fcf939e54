"""Arduino sensors: DHT11, SR04 and PIR -> MQTT -> bridge -> Kafka -> medallion tables."""
