"""The phone simulator sends what the DAIS page sent, to the real Kinesis and Kafka emulators."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime

import pytest
from confluent_kafka.admin import AdminClient

from services.producers import phone_simulator
from services.producers.phone_simulator import (
    FleetConfig,
    PhoneFleet,
    PhoneOptions,
    generate_events,
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

TIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$"
)
DEVICE = re.compile(r"^client-[0-9a-f]{12}$")
DAIS_START = 1684954616.8  # 2023-05-24T18:56:56.800Z
QUIET = {"report": lambda line: None}


def parse_time(text: str) -> datetime:
    assert TIME.match(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def live_run(stack):
    """Three seconds of 40 phones (half shaken) at the real pace into a private 4-shard stream."""
    stream = fresh_stream(stack, 4)
    config = FleetConfig(phones=40, shaken_fraction=0.5, seed=7)
    result = run(stack, PhoneOptions(fleet=config, stream=stream, duration=3.0), **QUIET)
    return config, result, read_stream(stack, stream)


def test_records_carry_the_original_fields_formats_and_partition_keys(live_run):
    _, result, records = live_run

    events = [json.loads(record.data) for record in records]

    assert len(records) == result.stats.records == result.generated > 0
    for record, event in zip(records, events, strict=True):
        assert list(event) == ["magnitude", "time", "device"]
        assert type(event["magnitude"]) is int and event["magnitude"] >= 0
        parse_time(event["time"])
        assert DEVICE.match(event["device"])
        assert record.partition_key == f"partition-{event['device']}"
        assert record.data == json.dumps(event, separators=(",", ":")).encode()


def test_records_spread_over_all_four_shards(live_run):
    _, _, records = live_run

    per_shard = defaultdict(int)
    for record in records:
        per_shard[record.shard_id] += 1

    assert len(per_shard) == 4


def test_each_phone_sends_at_most_one_event_per_200_ms_about_five_a_second(live_run):
    config, _, records = live_run
    times = defaultdict(list)
    for record in records:
        event = json.loads(record.data)
        times[event["device"]].append(parse_time(event["time"]))

    spacings = [
        (later - earlier).total_seconds()
        for series in times.values()
        for earlier, later in zip(sorted(series), sorted(series)[1:], strict=False)
    ]

    assert len(times) == config.phones
    assert min(spacings) >= 0.2
    assert all(12 <= len(series) <= 16 for series in times.values())  # 3 s at 5 Hz


def test_idle_phones_send_zeros_at_the_same_pace(live_run):
    config, _, records = live_run
    fleet = PhoneFleet(config, 0)  # devices and roles depend on the seed alone
    idle = {phone.device for phone in fleet.phones if phone.peak == 0}
    by_device = defaultdict(list)
    for record in records:
        event = json.loads(record.data)
        by_device[event["device"]].append(event["magnitude"])

    assert len(idle) == 20
    assert all(set(by_device[device]) == {0} for device in idle)
    assert all(len(by_device[device]) >= 14 for device in idle)


def test_shaken_phones_reach_about_the_dais_peak_and_the_mean_is_a_few_units():
    events = list(generate_events(FleetConfig(seed=11), 0, duration=120))
    magnitudes = [event["magnitude"] for event in events]

    assert len(events) == 130 * 5 * 120
    assert 180 <= max(magnitudes) <= 240
    assert 2 <= sum(magnitudes) / len(magnitudes) <= 7


def _run_on_a_fixed_clock(stack, options: PhoneOptions):
    """The simulator's run from DAIS_START on a clock that moves only when it sleeps."""
    clock = FakeClock(DAIS_START)
    return run(stack, options, clock=clock.time, sleep=clock.sleep, **QUIET)


def test_seeded_generator_repeats_itself_and_other_seeds_differ():
    first = list(generate_events(FleetConfig(phones=20, seed=3), 0, events=2000))
    again = list(generate_events(FleetConfig(phones=20, seed=3), 0, events=2000))
    other = list(generate_events(FleetConfig(phones=20, seed=4), 0, events=2000))

    assert first == again
    assert {e["device"] for e in first}.isdisjoint({e["device"] for e in other})


def test_run_on_a_fixed_clock_sends_exactly_the_generated_events(stack):
    stream = fresh_stream(stack, 4)
    config = FleetConfig(phones=25, seed=5)

    result = _run_on_a_fixed_clock(stack, PhoneOptions(fleet=config, stream=stream, events=600))
    expected = list(generate_events(config, round(DAIS_START * 1000), events=600))
    received = [json.loads(record.data) for record in read_stream(stack, stream)]

    assert result.stats.events == 600
    assert expected[0]["time"].startswith("2023-05-24T18:56:56.")
    key = lambda e: (e["time"], e["device"])  # noqa: E731
    assert sorted(received, key=key) == sorted(expected, key=key)


def test_pack_puts_arrays_of_one_phones_events_in_each_record(stack):
    stream = fresh_stream(stack, 4)
    config = FleetConfig(phones=10, seed=9)

    result = _run_on_a_fixed_clock(
        stack, PhoneOptions(fleet=config, stream=stream, events=230, pack=5)
    )
    records = read_stream(stack, stream)
    arrays = [json.loads(record.data) for record in records]

    assert all(isinstance(array, list) for array in arrays)
    assert all(len({e["device"] for e in array}) == 1 for array in arrays)
    for record, array in zip(records, arrays, strict=True):
        assert record.partition_key == f"partition-{array[0]['device']}"
    assert sorted(len(array) for array in arrays)[-1] == 5
    assert sum(len(array) for array in arrays) == result.stats.events == 230
    assert len(records) == result.stats.records


def test_kafka_target_lands_on_the_topic_keyed_by_device(stack):
    topic = fresh_topic(stack, 4)
    config = FleetConfig(phones=30, seed=12)

    result = _run_on_a_fixed_clock(
        stack, PhoneOptions(fleet=config, target="kafka", stream=topic, events=300)
    )
    messages = read_topic(stack, topic, 4, expected=300)

    assert result.stats.events == 300
    assert len(messages) == 300
    assert len({partition for partition, _, _ in messages}) == 4
    for _, key, value in messages:
        event = json.loads(value)
        assert key.decode() == f"partition-{event['device']}"
        parse_time(event["time"])


def test_events_sent_while_the_stream_is_missing_arrive_once_it_exists(stack):
    result, lines, stream = run_before_the_stream_exists(
        stack,
        run,
        lambda stream: PhoneOptions(
            fleet=FleetConfig(phones=20, seed=2), stream=stream, events=200, retry_sleep=0.2
        ),
        shards=2,
    )

    assert result.stats.errors > 0
    assert any("does it exist?" in line for line in lines)
    assert result.stats.events == result.stats.records == 200
    assert result.stats.unsent == 0
    assert len(read_stream(stack, stream)) == 200


def test_sigterm_flushes_and_the_printed_count_is_what_the_stream_holds(stack):
    final, held = sent_before_sigterm(
        stack,
        "services.producers.phone_simulator",
        4,
        *("--phones", "60", "--progress-every", "0.5"),
    )

    assert int(final.group(1)) == int(final.group(2)) == held > 0


def test_defaults_name_the_provisioned_stream_and_topic(stack, monkeypatch):
    result, options = options_from_command_line(
        stack, monkeypatch, phone_simulator, "produce", "seismograph"
    )
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    topics = admin.list_topics(timeout=10).topics

    assert result.exit_code == 0, result.output
    assert (options.stream, options.target, options.pack) == ("dais2023", "kinesis", 1)
    assert (options.fleet.phones, options.fleet.rate_per_phone) == (130, 5.0)
    assert open_shards(stack, options.stream) == 4
    assert len(topics["dais2023"].partitions) == 4


def test_more_than_five_events_a_second_per_phone_is_refused():
    result = run_cli(None, "produce", "seismograph", "--rate-per-phone", "6")

    assert result.exit_code == 2
    assert "one event per 200 ms" in result.stderr
