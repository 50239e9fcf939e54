"""The simulated Arduino board: DHT11, SR04 and PIR readings published over MQTT with QoS 1.

What the original board sent (docs/originals.md, arduino): `{"msg": "<integer as string>"}` on
`dht_temp` (temperature, about 18-30 °C) and `dht_hum` (humidity, about 23-65 %), the SR04's
distance in cm on `sr04_distance` (2-400 cm, measured often), and `{"msg": "1"}` on
`pir_test/1` for each movement the PIR sensor detects. The replay notebook published a DHT
reading every 0.2 s; that is the default here.

`generate_readings` is the pure generator (same seed, same readings); `Publisher` is the MQTT
client; `run` paces the readings in real time; `main` is what `iotlake produce arduino` runs.
"""

from __future__ import annotations

import heapq
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from iotlake.config import Settings
from services.arduino import DISTANCE, HUMIDITY, PIR, TEMPERATURE, mqtt_topic
from services.runtime import say

TEMPERATURE_C = (18, 30)
HUMIDITY_PERCENT = (23, 65)
DISTANCE_CM = (2, 400)
QOS = 1


@dataclass(frozen=True)
class BoardConfig:
    """How often each sensor reports; with a seed, every reading is reproducible."""

    dht_period: float = 0.2
    distance_hz: float = 5.0
    detections_per_minute: float = 6.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.dht_period <= 0:
            raise ValueError("dht_period must be positive")
        if not 0 < self.distance_hz <= 1000:
            raise ValueError("distance_hz must be in (0, 1000]")
        if self.detections_per_minute < 0:
            raise ValueError("detections_per_minute must not be negative")


@dataclass(frozen=True)
class Reading:
    """One MQTT message of the board: seconds after start, topic (without prefix), value."""

    at: float
    topic: str
    value: int


def payload(value: int) -> bytes:
    """The original's payload: the integer as a string under `msg`."""
    return json.dumps({"msg": str(value)}).encode()


class _Walk:
    """A smooth bounded random walk: the slope changes a little each step, like a room's air."""

    def __init__(self, rng: random.Random, low: float, high: float, step: float) -> None:
        self._rng, self._low, self._high, self._step = rng, low, high, step
        self.value = rng.uniform(low + (high - low) / 4, high - (high - low) / 4)
        self._slope = 0.0

    def next(self) -> float:
        self._slope = 0.9 * self._slope + self._rng.gauss(0, self._step)
        self.value += self._slope
        if not self._low <= self.value <= self._high:
            self.value = min(max(self.value, self._low), self._high)
            self._slope = -self._slope
        return self.value


def _schedule(config: BoardConfig, rng: random.Random) -> Iterator[tuple[float, int, str]]:
    """Every due time, in order: DHT ticks, distance ticks and PIR detections merged."""

    def ticks(period: float, kind: str, order: int) -> Iterator[tuple[float, int, str]]:
        index = 0
        while True:
            yield index * period, order, kind
            index += 1

    def detections() -> Iterator[tuple[float, int, str]]:
        at = 0.0
        while config.detections_per_minute > 0:
            at += rng.expovariate(config.detections_per_minute / 60)
            yield at, 2, "pir"

    return heapq.merge(
        ticks(config.dht_period, "dht", 0), ticks(1 / config.distance_hz, "sr04", 1), detections()
    )


def generate_readings(
    config: BoardConfig, *, duration: float | None = None, count: int | None = None
) -> Iterator[Reading]:
    """The board's readings in time order: those within `duration` seconds, or `count` of them."""
    if duration is None and count is None:
        raise ValueError("give duration or count, or the generator never ends")
    rng = random.Random(config.seed)
    temperature = _Walk(rng, *TEMPERATURE_C, step=0.02)
    humidity = _Walk(rng, *HUMIDITY_PERCENT, step=0.05)
    distance = _Walk(rng, *DISTANCE_CM, step=2.0)
    produced = 0

    def room(at: float, kind: str) -> list[Reading]:
        if kind == "dht":
            return [
                Reading(at, TEMPERATURE, round(temperature.next())),
                Reading(at, HUMIDITY, round(humidity.next())),
            ]
        if kind == "sr04":
            return [Reading(at, DISTANCE, round(distance.next()))]
        return [Reading(at, PIR, 1)]

    for at, _, kind in _schedule(config, rng):
        if duration is not None and at >= duration:
            return
        for reading in room(at, kind):
            if count is not None and produced >= count:
                return
            produced += 1
            yield reading


class Publisher:
    """A QoS 1 MQTT client that reconnects by itself and counts what the broker acknowledged.

    Messages published while the broker is away stay queued in the client and go out after
    the reconnect, so a broker restart loses nothing (a message whose PUBACK was lost may
    arrive twice: QoS 1 is at-least-once).
    """

    def __init__(self, settings: Settings, client_id: str, report: Callable[[str], None]) -> None:
        self._settings = settings
        self._report = report
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.published = 0
        self.acknowledged = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=1, max_delay=8)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acknowledged += 1

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._report(f"connected to mqtt://{self._settings.mqtt.host}:{self._settings.mqtt.port}")
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._report(f"disconnected from MQTT ({reason_code}); reconnecting")

    def start(self, timeout: float = 30.0) -> None:
        """Connect, then keep reconnecting in the background.

        It waits for the first connection: messages published before it would be sent after
        the connection's first direct publishes, out of order. After a reconnect, MQTT itself
        orders only within a connection: a message in flight when the broker went away is
        resent after the reconnect and may land after newer ones.
        """
        self.client.connect_async(self._settings.mqtt.host, self._settings.mqtt.port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self._report(f"no MQTT connection within {timeout:g}s; publishing queues meanwhile")

    def publish(self, reading: Reading) -> None:
        topic = mqtt_topic(self._settings, reading.topic)
        self.client.publish(topic, payload(reading.value), qos=QOS)
        self.published += 1

    @property
    def unacknowledged(self) -> int:
        with self._lock:
            return self.published - self.acknowledged

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` s for every PUBACK, disconnect; return how many are missing."""
        deadline = time.monotonic() + timeout
        while self.unacknowledged > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        missing = self.unacknowledged
        self.client.disconnect()
        self.client.loop_stop()
        return missing


def publish_readings(
    settings: Settings,
    readings: Iterable[Reading],
    *,
    client_id: str = "iotlake-board-batch",
    timeout: float = 60.0,
) -> int:
    """Publish already generated readings as fast as the broker takes them; return the count.

    Raises TimeoutError when some stay unacknowledged after `timeout` seconds.
    """
    publisher = Publisher(settings, client_id, report=lambda line: None)
    publisher.start()
    for reading in readings:
        publisher.publish(reading)
    missing = publisher.close(timeout)
    if missing:
        raise TimeoutError(f"{missing} of {publisher.published} readings were not acknowledged")
    return publisher.published


@dataclass(frozen=True)
class BoardOptions:
    """Everything `iotlake produce arduino` takes."""

    board: BoardConfig = BoardConfig()
    duration: float | None = None
    client_id: str = "iotlake-board"
    progress_every: float = 5.0
    stop_timeout: float = 30.0


def _progress(counts: dict[str, int], latest: dict[str, int], publisher: Publisher) -> str:
    return (
        f"published {publisher.published} readings: "
        f"temperature {latest.get(TEMPERATURE, '-')} °C, humidity {latest.get(HUMIDITY, '-')} %, "
        f"distance {latest.get(DISTANCE, '-')} cm, {counts.get(PIR, 0)} detections; "
        f"{publisher.unacknowledged} awaiting PUBACK"
    )


def run(
    settings: Settings,
    options: BoardOptions,
    *,
    stop: threading.Event | None = None,
    report: Callable[[str], None] = say,
) -> int:
    """Publish readings in real time until `duration` ends or `stop` is set; return unacked."""
    stop = stop or threading.Event()
    publisher = Publisher(settings, options.client_id, report)
    publisher.start()
    board = options.board
    report(
        f"board -> mqtt://{settings.mqtt.host}:{settings.mqtt.port}: DHT11 every "
        f"{board.dht_period:g} s, SR04 at {board.distance_hz:g} Hz, "
        f"~{board.detections_per_minute:g} PIR detections/min"
    )
    duration = options.duration if options.duration is not None else float("inf")
    began = time.monotonic()
    next_progress = began + options.progress_every
    counts: dict[str, int] = {}
    latest: dict[str, int] = {}
    for reading in generate_readings(board, duration=duration):
        wait = began + reading.at - time.monotonic()
        if wait > 0 and stop.wait(wait):
            break
        if stop.is_set():
            break
        publisher.publish(reading)
        counts[reading.topic] = counts.get(reading.topic, 0) + 1
        latest[reading.topic] = reading.value
        if time.monotonic() >= next_progress:
            report(_progress(counts, latest, publisher))
            next_progress += options.progress_every
    missing = publisher.close(options.stop_timeout)
    report(f"stopped: {publisher.published} published, {missing} not acknowledged")
    return missing


def main(settings: Settings, options: BoardOptions, stop: threading.Event) -> int:
    """Publish until the duration or `stop`; 0 when the broker acknowledged every reading."""
    return 0 if run(settings, options, stop=stop) == 0 else 1


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("produce", "arduino")
