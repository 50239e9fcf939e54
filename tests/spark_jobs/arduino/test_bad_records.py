"""Bad sensor messages never crash the Arduino pipeline and never vanish.

Messages go straight to the test's private Kafka topics (what the bridge would forward).
Bronze keeps every record; silver drops values that do not parse into a number (counted by
its `... parses` rule) and keeps out-of-range ones (counted by its range rule); every PIR
message is a detection whatever its payload, as in the original. The expected counts come
from parsing each payload in Python with the same rules.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from confluent_kafka import Producer

from spark_jobs.quality import MAX_RECORD_BYTES
from spark_jobs.runner import run_once
from tests.support.arduino import private_arduino
from tests.support.lake import failed_count, read_table

SYSTEM = "arduino"
GOOD = b'{"msg": "23"}'
# None is a Kafka record without a value (a tombstone).
TEMPERATURE_MESSAGES: dict[str, bytes | None] = {
    "good": GOOD,
    "duplicate": GOOD,
    "malformed JSON": b'{"msg": ',
    "binary": b"\x00\xff\xfe\x80",
    "empty": b"",
    "no value": None,
    "missing msg": b'{"value": "23"}',
    "wrong type": b'{"msg": "n/a"}',
    "failed DHT11 read": b'{"msg": "nan"}',
    "infinite": b'{"msg": "-inf"}',
    "number instead of text": b'{"msg": 24}',
    "unknown field": b'{"msg": "22", "unit": "C"}',
    "out of range": b'{"msg": "55"}',
    "oversized": json.dumps({"msg": "21", "padding": "x" * MAX_RECORD_BYTES}).encode(),
}
PIR_MESSAGES: list[bytes | None] = [b'{"msg": "1"}', b"\x00\xff", None, b"motion"]


def _value(payload: bytes | None) -> float | None:
    """The number silver reads from a payload (`msg` as text, then as a double), or None."""
    if payload is None:
        return None
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("msg") is None:
        return None
    try:
        value = float(str(document["msg"]))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _send(settings, topic: str, values: list[bytes | None]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for value in values:
        producer.produce(topic, value=value, key=b"board")
    assert producer.flush(30) == 0


@pytest.mark.slow
def test_bad_messages_are_kept_in_bronze_dropped_or_flagged_in_silver_and_counted(
    stack, spark, tmp_path
):
    lake = stack.lake.model_copy(update={"root": str(tmp_path / "lake")})
    settings = private_arduino(stack, lake=lake)
    messages = list(TEMPERATURE_MESSAGES.values())
    _send(settings, settings.arduino.temperature_topic, messages)
    _send(settings, settings.arduino.pir_topic, PIR_MESSAGES)

    run_once(spark, settings, SYSTEM, report=lambda line: None)

    raw = read_table(settings, SYSTEM, "dht_temp_raw")
    temperature = read_table(settings, SYSTEM, "temperature")
    pir = read_table(settings, SYSTEM, "pir_stream_test")
    log = read_table(settings, SYSTEM, "event_log")
    values = [value for value in map(_value, messages) if value is not None]
    # Nothing lost: bronze has every record, in offset order, as text (U+FFFD for bad bytes).
    in_order = raw.assign(offset=raw["sequenceNumber"].astype(int)).sort_values("offset")
    sent = [None if m is None else m.decode("utf-8", errors="replace") for m in messages]
    assert [None if pd.isna(d) else d for d in in_order["data"]] == sent
    assert failed_count(log, "dht_temp_raw", "record has data") == messages.count(None)
    oversized = sum(m is not None and len(m) > MAX_RECORD_BYTES for m in messages)
    assert failed_count(log, "dht_temp_raw", "record within 64 KiB") == oversized == 1
    # Silver: what parses is there (the duplicate twice), what does not is counted.
    assert sorted(temperature["temperature"]) == sorted(values)
    assert failed_count(log, "temperature", "temperature parses") == len(messages) - len(values)
    out_of_range = sum(not 0 <= value <= 50 for value in values)
    assert out_of_range == 1
    assert failed_count(log, "temperature", "within the DHT11 range (0-50 °C)") == out_of_range
    # Every PIR message is one detection, as the original counted them.
    assert len(pir) == len(PIR_MESSAGES)
    assert pir["movement"].unique().tolist() == ["new detection"]
