"""The aws-iot producer sends the original's readings, to the real Kinesis and Kafka emulators."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict

from services.producers import aws_iot_producer
from services.producers.aws_iot_producer import (
    STATUSES,
    SensorConfig,
    SensorOptions,
    generate_records,
    run,
)
from tests.support.cli import run_cli
from tests.support.producers import (
    FakeClock,
    fresh_stream,
    fresh_topic,
    open_shards,
    options_from_command_line,
    read_stream,
    read_topic,
    run_before_the_stream_exists,
    sent_before_sigterm,
)

QUIET = {"report": lambda line: None}
START = 1716570000.0


def two_decimals(value: float) -> bool:
    return round(value, 2) == value


def test_records_land_in_kinesis_with_the_original_schema_keyed_by_device(stack):
    stream = fresh_stream(stack, 1)
    config = SensorConfig(seed=21)
    clock = FakeClock(START)

    result = run(
        stack,
        SensorOptions(sensors=config, stream=stream, records=50),
        clock=clock.time,
        sleep=clock.sleep,
        **QUIET,
    )
    records = read_stream(stack, stream)
    readings = [json.loads(record.data) for record in records]

    assert result.stats.records == len(records) == 50
    assert readings == list(generate_records(config, round(START * 1000), records=50))
    assert len({reading["device_id"] for reading in readings}) == 5
    for record, reading in zip(records, readings, strict=True):
        assert list(reading) == ["device_id", "timestamp", "metrics", "status", "region"]
        assert uuid.UUID(reading["device_id"]).version == 4
        assert record.partition_key == reading["device_id"]
        assert type(reading["timestamp"]) is int
        metrics = reading["metrics"]
        assert list(metrics) == ["temperature_c", "pressure_hpa", "humidity_percent"]
        assert 18.0 <= metrics["temperature_c"] <= 30.0
        assert 980.0 <= metrics["pressure_hpa"] <= 1030.0
        assert 40.0 <= metrics["humidity_percent"] <= 70.0
        assert all(type(v) is float and two_decimals(v) for v in metrics.values())
        assert reading["status"] in STATUSES
        assert reading["region"] == "us-east-1"


def test_each_device_sends_one_record_a_second_stamped_in_epoch_ms(stack):
    stream = fresh_stream(stack, 1)
    before = time.time() * 1000

    result = run(stack, SensorOptions(stream=stream, duration=3.0), **QUIET)
    readings = [json.loads(record.data) for record in read_stream(stack, stream)]
    stamps = defaultdict(list)
    for reading in readings:
        stamps[reading["device_id"]].append(reading["timestamp"])

    assert result.stats.records == len(readings) == 15
    assert len(stamps) == 5
    for series in stamps.values():
        assert before - 1000 <= series[0] <= time.time() * 1000
        assert [b - a for a, b in zip(series, series[1:], strict=False)] == [1000, 1000]


def test_about_one_in_six_temperatures_is_above_28():
    readings = list(generate_records(SensorConfig(seed=1), 0, records=120_000))
    hot = sum(reading["metrics"]["temperature_c"] > 28.0 for reading in readings)

    # U(18, 30): P(> 28) = 2/12; the standard error over 120,000 readings is about 0.0011.
    assert abs(hot / len(readings) - 1 / 6) < 0.006


def test_status_is_uniform_and_independent_of_temperature():
    readings = list(generate_records(SensorConfig(seed=2), 0, records=120_000))
    by_status = Counter(reading["status"] for reading in readings)
    hot_by_status = Counter(
        reading["status"] for reading in readings if reading["metrics"]["temperature_c"] > 28.0
    )

    assert set(by_status) == set(STATUSES)
    for status in STATUSES:
        assert abs(by_status[status] / len(readings) - 1 / 3) < 0.01
        # Hot readings are as common under every status: about 1/6 within each.
        assert abs(hot_by_status[status] / by_status[status] - 1 / 6) < 0.01


def test_seeded_devices_repeat_and_other_seeds_differ():
    first = list(generate_records(SensorConfig(seed=8), 0, records=100))
    again = list(generate_records(SensorConfig(seed=8), 0, records=100))
    other = list(generate_records(SensorConfig(seed=9), 0, records=100))

    assert first == again
    assert {r["device_id"] for r in first}.isdisjoint({r["device_id"] for r in other})


def test_kafka_target_lands_on_the_topic_keyed_by_device(stack):
    topic = fresh_topic(stack, 1)

    result = run(
        stack,
        SensorOptions(sensors=SensorConfig(rate=20), target="kafka", stream=topic, records=40),
        **QUIET,
    )
    messages = read_topic(stack, topic, 1, expected=40)

    assert result.stats.records == len(messages) == 40
    for _, key, value in messages:
        assert key.decode() == json.loads(value)["device_id"]


def test_after_a_failed_call_it_sleeps_and_sends_the_same_records_again(stack):
    result, lines, stream = run_before_the_stream_exists(
        stack,
        run,
        lambda stream: SensorOptions(
            sensors=SensorConfig(rate=10, seed=4), stream=stream, records=30, retry_sleep=0.3
        ),
        shards=1,
    )
    received = [json.loads(record.data) for record in read_stream(stack, stream)]

    assert result.stats.errors >= 2
    assert any("retrying" in line and "in 0.3s" in line for line in lines)
    assert result.stats.records == len(received) == 30
    assert len({(r["device_id"], r["timestamp"]) for r in received}) == 30


def test_sigterm_exits_zero_and_the_printed_count_is_what_the_stream_holds(stack):
    final, held = sent_before_sigterm(
        stack,
        "services.producers.aws_iot_producer",
        1,
        *("--rate", "10", "--progress-every", "0.5"),
    )

    assert int(final.group(1)) == held > 0


def test_defaults_are_five_devices_once_a_second_to_the_provisioned_stream(stack, monkeypatch):
    result, options = options_from_command_line(
        stack, monkeypatch, aws_iot_producer, "produce", "aws-iot"
    )

    assert result.exit_code == 0, result.output
    assert (options.sensors.devices, options.sensors.rate, options.retry_sleep) == (5, 1.0, 5.0)
    assert (options.stream, options.target) == ("iot-sensor-data-stream", "kinesis")
    assert open_shards(stack, options.stream) == 1


def test_a_non_positive_rate_is_refused():
    result = run_cli(None, "produce", "aws-iot", "--rate", "0")

    assert result.exit_code == 2
    assert "rate must be" in result.stderr
