"""The simulated board: reproducible DHT11/SR04/PIR readings, published over MQTT with QoS 1."""

from __future__ import annotations

import json
import signal
import threading
from itertools import pairwise

import paho.mqtt.client as mqtt

from services.arduino import DISTANCE, HUMIDITY, PIR, TEMPERATURE
from services.arduino.simulator import BoardConfig, generate_readings, payload
from tests.support.arduino import private_arduino
from tests.support.cli import run_cli
from tests.support.processes import start_module


def _by_topic(readings) -> dict[str, list]:
    found: dict[str, list] = {}
    for reading in readings:
        found.setdefault(reading.topic, []).append(reading)
    return found


def test_same_seed_gives_the_same_readings():
    config = BoardConfig(seed=42)
    assert list(generate_readings(config, duration=30)) == list(
        generate_readings(config, duration=30)
    )
    assert list(generate_readings(config, duration=30)) != list(
        generate_readings(BoardConfig(seed=43), duration=30)
    )


def test_readings_follow_the_sensor_rates_and_stay_in_the_originals_ranges():
    readings = list(generate_readings(BoardConfig(seed=1), duration=600))
    topics = _by_topic(readings)

    assert len(topics[TEMPERATURE]) == len(topics[HUMIDITY]) == 3000  # every 0.2 s
    assert len(topics[DISTANCE]) == 3000  # 5 Hz
    assert 20 <= len(topics[PIR]) <= 100  # about 6 a minute, at random
    assert [r.at for r in readings] == sorted(r.at for r in readings)
    assert {r.value for r in topics[PIR]} == {1}
    assert all(18 <= r.value <= 30 for r in topics[TEMPERATURE])
    assert all(23 <= r.value <= 65 for r in topics[HUMIDITY])
    assert all(2 <= r.value <= 400 for r in topics[DISTANCE])


def test_temperature_and_humidity_move_smoothly_like_a_room():
    topics = _by_topic(generate_readings(BoardConfig(seed=9), duration=600))
    for topic in (TEMPERATURE, HUMIDITY):
        values = [r.value for r in topics[topic]]
        assert max(abs(a - b) for a, b in pairwise(values)) <= 1, topic
        assert len(set(values)) > 3, topic  # it does move


def test_payload_is_the_originals_json_with_the_integer_as_a_string():
    assert json.loads(payload(23)) == {"msg": "23"}


def test_bad_rates_are_refused_on_the_command_line():
    result = run_cli(None, "produce", "arduino", "--distance-hz", "0")

    assert result.exit_code == 2
    assert "distance_hz must be in (0, 1000]" in result.stderr


def test_simulator_command_publishes_over_mqtt_and_stops_cleanly_on_sigterm(stack):
    settings = private_arduino(stack)
    prefix = settings.arduino.mqtt_prefix
    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{prefix}watcher")
    client.on_connect = lambda c, *a: c.subscribe(f"{prefix}#", qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda c, u, m: received.append((m.topic, m.payload))
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    assert subscribed.wait(10)
    child = start_module(
        settings,
        "services.arduino.simulator",
        *["--seed", "3", "--progress-every", "0.5", "--detections-per-minute", "600"],
        env={"PYTHONUNBUFFERED": "1", "IOTLAKE_ARDUINO__MQTT_PREFIX": prefix},
    )
    try:
        lines = [child.stdout.readline() for _ in range(4)]
        child.send_signal(signal.SIGTERM)
        lines += child.communicate(timeout=30)[0].splitlines()
    finally:
        if child.poll() is None:
            child.kill()
        client.loop_stop()
        client.disconnect()

    assert child.returncode == 0, lines
    assert any(line.startswith("published ") for line in lines), lines
    assert lines[-1].startswith("stopped: ") and lines[-1].endswith(" 0 not acknowledged")
    published = int(lines[-1].split()[1].rstrip(","))
    topics = {topic.removeprefix(prefix) for topic, _ in received}
    assert {TEMPERATURE, HUMIDITY, DISTANCE} <= topics
    assert len(received) == published
    assert all(set(json.loads(body)) == {"msg"} for _, body in received)
