"""Seeded board readings through MQTT -> bridge -> Kafka -> every table, checked against pandas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from expectations.suites import validate
from services.arduino import DISTANCE, HUMIDITY, PIR, TEMPERATURE, mqtt_topic
from services.arduino.simulator import BoardConfig, Publisher, Reading, generate_readings, payload
from spark_jobs.runner import load_system, location, run_once
from tests.support.arduino import private_arduino, read_values, running_bridge
from tests.support.lake import read_table

SYSTEM = "arduino"
MALFORMED = b'{"msg": "n/a"}'
TOO_HOT = 55  # parses, outside the DHT11's 0-50 °C: kept, counted as a warning
BRONZE = {
    TEMPERATURE: ("dht_temp_raw", "temperature_topic"),
    HUMIDITY: ("dht_hum_raw", "humidity_topic"),
    DISTANCE: ("sr04_distance_raw", "distance_topic"),
    PIR: ("pir_test_raw", "pir_topic"),
}


def _utc(column: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(column)
    return stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")


def _publish(settings, readings: list[Reading]) -> dict[str, list[bytes]]:
    """Publish the readings, then one malformed temperature; return the payloads per topic."""
    publisher = Publisher(settings, "board-e2e", report=lambda line: None)
    publisher.start()
    for reading in readings:
        publisher.publish(reading)
    publisher.client.publish(mqtt_topic(settings, TEMPERATURE), MALFORMED, qos=1)
    publisher.published += 1
    assert publisher.close(60) == 0
    sent = {topic: [payload(r.value) for r in readings if r.topic == topic] for topic in BRONZE}
    sent[TEMPERATURE].append(MALFORMED)
    return sent


def _silver_expected(bronze: pd.DataFrame, sent: list[bytes], column: str) -> pd.DataFrame:
    """Kafka timestamps from bronze (in offset order) beside the values the board sent."""
    ordered = bronze.assign(offset=bronze["sequenceNumber"].astype(int)).sort_values("offset")
    values = [json.loads(data)["msg"] for data in sent]
    frame = pd.DataFrame(
        {"timestamp": _utc(ordered["approximateArrivalTimestamp"]).to_numpy(), column: values}
    )
    frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.dropna().sort_values(["timestamp", column]).reset_index(drop=True)


def _sorted(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = frame.assign(timestamp=_utc(frame["timestamp"]))
    return frame.sort_values(["timestamp", column]).reset_index(drop=True)[["timestamp", column]]


@pytest.mark.slow
def test_seeded_readings_build_every_table_as_pandas_computes_it(stack, spark, tmp_path):
    lake = stack.lake.model_copy(update={"root": str(tmp_path / "lake")})
    settings = private_arduino(stack, lake=lake)
    config = BoardConfig(seed=7, detections_per_minute=60)
    readings = list(generate_readings(config, duration=20))
    readings.append(Reading(20.0, TEMPERATURE, TOO_HOT))

    with running_bridge(settings):
        sent = _publish(settings, readings)
        for topic, (_, field) in BRONZE.items():
            got = read_values(settings, getattr(settings.arduino, field), len(sent[topic]))
            assert got == sent[topic], topic

    run_once(spark, settings, SYSTEM, report=print)

    bronze = {}
    for topic, (table, _) in BRONZE.items():
        frame = read_table(settings, SYSTEM, table)
        bronze[topic] = frame
        in_order = frame.sort_values("sequenceNumber", key=lambda s: s.astype(int))
        assert [d.encode() for d in in_order["data"]] == sent[topic], table
        assert frame["source"].unique().tolist() == ["kafka"]

    silver = {TEMPERATURE: "temperature", HUMIDITY: "humidity", DISTANCE: "distance"}
    expected = {}
    for topic, table in silver.items():
        expected[topic] = _silver_expected(bronze[topic], sent[topic], table)
        got = _sorted(read_table(settings, SYSTEM, table), table)
        assert len(got) == len(expected[topic]), table
        assert (got["timestamp"] == expected[topic]["timestamp"]).all(), table
        assert np.allclose(got[table], expected[topic][table]), table
    assert len(expected[TEMPERATURE]) == len(sent[TEMPERATURE]) - 1  # the malformed one

    pir = read_table(settings, SYSTEM, "pir_stream_test")
    zone = spark.conf.get("spark.sql.session.timeZone")
    stamps = _utc(bronze[PIR]["approximateArrivalTimestamp"]).dt.tz_convert(zone)
    assert sorted(pir["timestamp"]) == sorted(stamps.dt.strftime("%d/%m/%Y %H:%M:%S"))
    assert pir["movement"].unique().tolist() == ["new detection"]
    assert len(pir) == len(sent[PIR]) > 0

    gold = read_table(settings, SYSTEM, "temp_hum").assign(minute=lambda f: _utc(f["minute"]))
    gold = gold.sort_values("minute").reset_index(drop=True)
    temp = expected[TEMPERATURE].assign(minute=lambda f: f["timestamp"].dt.floor("min"))
    hum = expected[HUMIDITY].assign(minute=lambda f: f["timestamp"].dt.floor("min"))
    want = (
        temp.groupby("minute")["temperature"]
        .agg(["mean", "count"])
        .join(hum.groupby("minute")["humidity"].agg(["mean", "count"]), how="outer", lsuffix="_t")
        .reset_index()
    )
    assert gold["minute"].tolist() == want["minute"].tolist()
    assert np.allclose(gold["temperature"], want["mean_t"])
    assert np.allclose(gold["humidity"], want["mean"])
    assert gold["temperature_readings"].tolist() == want["count_t"].tolist()
    assert gold["humidity_readings"].tolist() == want["count"].tolist()

    log = read_table(settings, SYSTEM, "event_log")
    failed = log.groupby("expectation")["failed"].sum()
    assert failed["temperature parses"] == 1
    assert failed["within the DHT11 range (0-50 °C)"] == 1
    assert failed["humidity parses"] == 0 and failed["distance parses"] == 0

    for spec in load_system(SYSTEM, settings):
        if spec.layer != "bronze":
            frame = spark.read.format("delta").load(location(settings, spec))
            failing = {o.expectation: o.unexpected for o in validate(frame, spec) if not o.success}
            want_failing = (
                {"within the DHT11 range (0-50 °C)": 1} if spec.name == "temperature" else {}
            )
            assert failing == want_failing, spec.name
