"""The embedded Mosquitto broker delivers what is published."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt


def test_subscriber_receives_published_readings(stack):
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    subscribed = queue.Queue()
    subscriber.on_message = lambda c, u, msg: received.put((msg.topic, msg.payload))
    subscriber.on_subscribe = lambda *args: subscribed.put(True)
    subscriber.connect(stack.mqtt.host, stack.mqtt.port)
    subscriber.subscribe("dht_temp", qos=1)
    subscriber.loop_start()
    subscribed.get(timeout=10)

    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-pub")
    publisher.connect(stack.mqtt.host, stack.mqtt.port)
    publisher.loop_start()
    for value in (21, 22, 23):
        publisher.publish("dht_temp", f'{{"msg": "{value}"}}', qos=1).wait_for_publish(10)

    got = [received.get(timeout=10) for _ in range(3)]
    publisher.loop_stop()
    subscriber.loop_stop()
    assert got == [("dht_temp", f'{{"msg": "{v}"}}'.encode()) for v in (21, 22, 23)]
