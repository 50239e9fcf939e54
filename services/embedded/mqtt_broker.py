"""MQTT broker: Mosquitto from Debian, persistent so a restart keeps queued messages."""

from __future__ import annotations

import os

import paho.mqtt.client as mqtt

from iotlake.config import Settings
from services.embedded.spec import ServiceSpec


def connack_received(host: str, port: int) -> bool:
    """Healthy means the broker accepts an MQTT CONNECT."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="iotlake-health")
    try:
        client.connect(host, port, keepalive=5)
        client.disconnect()
    except OSError:
        return False
    return True


def _write_config(settings: Settings) -> None:
    data = (settings.data_dir / "mosquitto").resolve()
    data.mkdir(parents=True, exist_ok=True)
    lines = [
        f"listener {settings.mqtt.port} {settings.mqtt.host}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data}/",
        "autosave_interval 1",
        # Keep everything queued for a persistent subscriber that is away (the Kafka bridge
        # during a restart): the default of 1000 would drop readings after about a minute.
        "max_queued_messages 0",
        "log_dest stdout",
    ]
    if os.geteuid() == 0:
        # Run as root, mosquitto would switch to its own user, which cannot write our dir.
        lines.append("user root")
    (data / "mosquitto.conf").write_text("\n".join(lines) + "\n")


def spec(settings: Settings) -> ServiceSpec:
    mqtt_config = settings.mqtt
    conf = (settings.data_dir / "mosquitto" / "mosquitto.conf").resolve()
    return ServiceSpec(
        name="mqtt",
        command=[str(mqtt_config.binary), "-c", str(conf)],
        endpoint=f"mqtt://{mqtt_config.host}:{mqtt_config.port}",
        host=mqtt_config.host,
        ports=(mqtt_config.port,),
        healthy=lambda: connack_received(mqtt_config.host, mqtt_config.port),
        install_hint="install Mosquitto with `make deps` (Debian package mosquitto)",
        prepare=lambda: _write_config(settings),
    )
