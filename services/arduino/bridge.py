"""The MQTT -> Kafka bridge: what the original's EMQX "Data Bridge to Kafka" rule did.

Each MQTT topic goes to its Kafka topic (`dht_temp`, `dht_hum`, `sr04_distance`, `pir_test/1`
-> `pir_test`; see `services.arduino.topic_map`), payload unchanged, no key.

Delivery is at-least-once and loses nothing while either side is away:
- the bridge keeps a persistent MQTT session (fixed client id, clean start off, a session
  expiry), subscribed with QoS 1, so Mosquitto queues the board's readings while the bridge
  is down and redelivers anything not yet acknowledged;
- an MQTT message is acknowledged (PUBACK, paho's manual ack) only after Kafka confirmed it
  (acks=all, idempotent producer), so a crash between the two means a redelivery, never a
  loss. The price is a possible duplicate after a crash or a broker restart;
- paho reconnects by itself with a growing delay, and the Kafka topics have one partition,
  so each sensor's readings stay in the order the board sent them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iotlake.config import Settings
from services.arduino import topic_map
from services.producers.transport import KafkaSender, Record
from services.runtime import say

QOS = 1
RECEIVE_MAXIMUM = 65535


@dataclass(frozen=True)
class BridgeOptions:
    """Everything `iotlake bridge` takes; None means the value in the settings."""

    client_id: str | None = None
    session_expiry_seconds: int = 7 * 24 * 3600
    progress_every: float = 10.0
    stop_timeout: float = 30.0
    linger_ms: float = 5.0
    max_reconnect_delay: int = 16


@dataclass
class BridgeStats:
    """Messages received from MQTT, confirmed by Kafka per Kafka topic, acknowledged to MQTT."""

    per_topic: Counter = field(default_factory=Counter)
    received: int = 0
    acknowledged: int = 0
    connects: int = 0

    @property
    def forwarded(self) -> int:
        """Messages Kafka confirmed, over every topic."""
        return sum(self.per_topic.values())


class Bridge:
    """One MQTT subscriber and one Kafka sender, joined by delivery-confirmed acks.

    paho calls `_on_message` in its network thread; Kafka's delivery reports arrive in the
    thread that calls `poll`, and a message Kafka did not confirm is produced again. Acks
    queue between them and go out from `poll` too. An ack for a message received on an
    earlier connection is not sent: the broker redelivers it on the new one (the resent copy
    carries the same packet id), and that copy is acknowledged.
    """

    def __init__(
        self,
        settings: Settings,
        options: BridgeOptions = BridgeOptions(),
        report: Callable[[str], None] = say,
    ) -> None:
        self.settings = settings
        self.options = options
        self.report = report
        self.stats = BridgeStats()
        self.topics = topic_map(settings)
        self._generation = 0
        self._closing = False
        self._ready: deque[tuple[int, int]] = deque()
        self._connected = threading.Event()
        self.sender = KafkaSender(
            settings,
            linger=options.linger_ms / 1000,
            report=report,
            client_id="iotlake-bridge",
        )
        client_id = options.client_id or settings.arduino.bridge_client_id
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=options.max_reconnect_delay)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # --- MQTT side (paho's network thread) ---------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.report(f"MQTT refused the connection: {reason_code}")
            return
        self._generation += 1
        self.stats.connects += 1
        client.subscribe([(topic, QOS) for topic in self.topics])
        self.report(
            f"connected to mqtt://{self.settings.mqtt.host}:{self.settings.mqtt.port} "
            f"(session present: {flags.session_present}); forwarding "
            + ", ".join(f"{m} -> {k}" for m, k in self.topics.items())
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """Subscribed: from now on the broker keeps every reading for this session."""
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._closing:
            self.report(f"disconnected from MQTT ({reason_code}); reconnecting with backoff")

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if self._closing:
            return  # not acknowledged: the broker keeps it for the next session
        kafka_topic = self.topics.get(message.topic)
        if kafka_topic is None:
            self.report(f"no Kafka topic for MQTT topic {message.topic!r}; acknowledged, dropped")
            client.ack(message.mid, message.qos)
            return
        self.stats.received += 1
        confirmed = partial(self._confirmed, kafka_topic, self._generation, message)
        record = Record(None, bytes(message.payload), topic=kafka_topic, on_acknowledged=confirmed)
        self.sender.send([record])

    # --- Kafka side (the thread calling `poll`) -----------------------------------------

    def _confirmed(self, topic: str, generation: int, message: mqtt.MQTTMessage) -> None:
        """Kafka has the message: acknowledge it to MQTT, unless it came on an older connection."""
        self.stats.per_topic[topic] += 1
        if message.qos > 0 and generation == self._generation:
            self._ready.append((message.mid, message.qos))

    def _send_acks(self) -> None:
        while self._ready:
            mid, qos = self._ready.popleft()
            self.client.ack(mid, qos)
            self.stats.acknowledged += 1

    def start(self) -> None:
        """Connect in the background with a persistent session; paho keeps reconnecting."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.options.session_expiry_seconds
        # Mosquitto sends at most this many unacknowledged messages and queues the rest, up
        # to its max_queued_messages (1000 by default), dropping beyond: take all it can.
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            keepalive=10,
            clean_start=False,
            properties=properties,
        )
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected and subscribed, within `timeout` seconds."""
        return self._connected.wait(timeout)

    def poll(self, timeout: float) -> None:
        """Collect Kafka's delivery reports (waiting up to `timeout` s for one) and
        acknowledge the confirmed messages."""
        self.sender.poll(time.time(), wait=timeout)
        self._send_acks()

    @property
    def in_flight(self) -> int:
        """Messages Kafka has not confirmed yet."""
        return self.sender.pending

    def stop(self, timeout: float) -> int:
        """Take no new messages, flush Kafka, acknowledge, disconnect; return unconfirmed."""
        self._closing = True
        self.sender.close(timeout)
        self._send_acks()
        left = self.sender.stats.unsent
        self.client.disconnect()
        self.client.loop_stop()
        return left


def _progress(stats: BridgeStats, in_flight: int) -> str:
    topics = ", ".join(f"{topic} {count}" for topic, count in sorted(stats.per_topic.items()))
    return (
        f"forwarded {stats.forwarded} messages ({topics or 'none yet'}); {in_flight} awaiting Kafka"
    )


def run(
    settings: Settings,
    options: BridgeOptions = BridgeOptions(),
    *,
    stop: threading.Event | None = None,
    report: Callable[[str], None] = say,
) -> BridgeStats:
    """Bridge until `stop` is set, with a progress line every `progress_every` seconds."""
    stop = stop or threading.Event()
    bridge = Bridge(settings, options, report)
    bridge.start()
    report(
        f"bridging mqtt://{settings.mqtt.host}:{settings.mqtt.port} -> "
        f"kafka {settings.kafka.bootstrap_servers}"
    )
    next_progress = time.monotonic() + options.progress_every
    while not stop.is_set():
        bridge.poll(0.1)
        if time.monotonic() >= next_progress:
            report(_progress(bridge.stats, bridge.in_flight))
            next_progress += options.progress_every
    left = bridge.stop(options.stop_timeout)
    report(
        f"stopped: {bridge.stats.forwarded} forwarded, {bridge.stats.acknowledged} acknowledged, "
        f"{left} left unconfirmed (the broker redelivers them)"
    )
    return bridge.stats


def main(settings: Settings, options: BridgeOptions, stop: threading.Event) -> int:
    """Bridge until `stop`; what Kafka had not confirmed by then MQTT redelivers later."""
    run(settings, options, stop=stop)
    return 0


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("bridge")
