"""kill -9 of the streaming driver, the broker or the AWS emulator loses and doubles nothing.

Each test sends seeded events, kills one process at seeded random moments while events flow
and the pipeline runs, and then compares every table with what was sent, computed again
with pandas: every event exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from iotlake.config import Settings
from services.embedded import stack as embedded
from services.producers.phone_simulator import FleetConfig, generate_events, send_events
from spark_jobs.io.kinesis.fetch import every_record
from spark_jobs.runner import run_once
from tests.support.lake import private_settings, read_table
from tests.support.settings import settings_env, settings_for

SYSTEM = "seismograph"
KILLS = 3


def _driver(settings, log: Path | None = None) -> subprocess.Popen:
    """`iotlake run seismograph --continuous` in its own process group (with its JVM)."""
    env = {
        **os.environ,
        **settings_env(settings),
        "IOTLAKE_PIPELINES__TRIGGER_SECONDS": "1",
    }
    with log.open("ab") if log else open(os.devnull, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "iotlake", "run", SYSTEM, "--continuous"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(driver: subprocess.Popen) -> None:
    """SIGKILL the driver's whole process group (the Python process and its JVM).

    The group may outlive its leader: a driver that exited can leave its JVM behind.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)


def _check_tables_against(settings: Settings, events: list[dict]) -> None:
    """raw_stream, sensor and the gold tables hold every sent event exactly once."""
    raw = read_table(settings, SYSTEM, "raw_stream")
    assert len(raw) == len(events)
    assert raw[["shardId", "sequenceNumber"]].drop_duplicates().shape[0] == len(events)
    sensor = read_table(settings, SYSTEM, "sensor")
    assert len(sensor) == len(events)
    stat = read_table(settings, SYSTEM, "global_stat").iloc[0]
    magnitudes = np.array([event["magnitude"] for event in events], dtype=float)
    assert stat["events"] == len(events)
    assert stat["avg"] == pytest.approx(magnitudes.mean())
    per_device = read_table(settings, SYSTEM, "max_magn_by_device").set_index("device")
    expected_max = pd.DataFrame(events).groupby("device")["magnitude"].max()
    assert len(per_device) == len(expected_max)
    assert per_device["max_magn"].sort_index().to_numpy() == pytest.approx(
        expected_max.sort_index().to_numpy()
    )
    heat = read_table(settings, SYSTEM, "magn_heatmap")
    assert heat.duplicated(["device", "time_bin"]).sum() == 0
    log = read_table(settings, SYSTEM, "event_log")
    flows = log[log["expectation"].isna() & (log["table"] == "raw_stream")]
    assert flows["rows_in"].sum() == len(events)


@pytest.mark.slow
def test_driver_killed_mid_stream_three_times_loses_and_doubles_nothing(stack, spark, tmp_path):
    settings = private_settings(stack, tmp_path / "lake", SYSTEM, "kafka", shards=4)
    chance = random.Random(2023)
    start_ms = 1_700_000_000_000
    events: list[dict] = []
    for kill in range(KILLS):
        # New events arrive while the driver runs, so kills land before, in and after batches.
        wave = list(generate_events(FleetConfig(phones=20, seed=kill), start_ms, duration=4))
        start_ms += 4_000
        assert send_events(settings, wave).failed == 0
        events += wave
        driver = _driver(settings, tmp_path / "driver.log")
        # Kills land at seeded moments: before, in and after batches. The first driver
        # commits a batch first (a loaded machine needs a while to start six queries).
        deadline = time.monotonic() + 240
        while kill == 0 and _raw_rows(settings) == 0 and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(chance.uniform(0, 10) if kill == 0 else chance.uniform(5, 40))
        _stop(driver)

    # The killed drivers did commit work: the kills hit a pipeline that was running.
    committed_before = len(read_table(settings, SYSTEM, "raw_stream"))
    assert committed_before > 0
    run_once(spark, settings, SYSTEM, report=lambda line: None)

    _check_tables_against(settings, events)


# --- kill -9 of a service (broker, emulator) while events flow and the driver runs ---------


@dataclass
class Feed:
    """Seeded waves of phone events, one after another from a background thread, until stopped.

    A wave's events are generated before it is sent, and counted as sent only once the
    sender acknowledged all of them (it retries through an outage for up to two minutes).
    """

    settings: Settings
    # 10 phones at 5 events/s: 50 events/s; 1,300 phones are 10x the DAIS load.
    phones: int = 10
    sent: list[dict] = field(default_factory=list)
    unsent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start_ms, wave = 1_710_000_000_000, 0
        while not self._stop.is_set():
            fleet = FleetConfig(phones=self.phones, seed=wave)
            events = list(generate_events(fleet, start_ms, duration=1))
            start_ms, wave = start_ms + 1_000, wave + 1
            stats = send_events(self.settings, events, timeout=120)
            self.unsent += stats.unsent
            self.sent += events
            self._stop.wait(1.0)

    def stop(self, timeout: float = 300) -> None:
        """Finish the wave in flight and stop."""
        assert self._thread is not None
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish its last wave in time"


@dataclass
class Supervised:
    """The continuous driver, started again whenever it exits (as a job's retry policy does).

    `restarts` says how often a fault took the driver down with it.
    """

    settings: Settings
    log: Path
    restarts: int = 0
    _driver: subprocess.Popen | None = None

    def keep_alive(self) -> None:
        if self._driver is None:
            self._driver = _driver(self.settings, self.log)
        elif self._driver.poll() is not None:
            _stop(self._driver)  # its JVM too, before another driver takes the checkpoints
            self._driver = _driver(self.settings, self.log)
            self.restarts += 1

    def kill(self) -> None:
        """kill -9 of the driver (and its JVM); `keep_alive` starts the next one."""
        assert self._driver is not None
        _stop(self._driver)

    def stop(self) -> None:
        if self._driver is not None:
            _stop(self._driver)


def _table_rows(settings: Settings, table: str) -> pd.DataFrame | None:
    try:
        return read_table(settings, SYSTEM, table)
    except Exception:  # not created yet, or a commit in flight
        return None


def _caught_up(settings: Settings, sent: list[dict]) -> bool:
    """The gold tables the checks read have seen every sent event, and the event log has
    the batches that wrote them (logged last in each micro-batch)."""
    stat = _table_rows(settings, "global_stat")
    if stat is None or len(stat) != 1 or int(stat.iloc[0]["events"]) < len(sent):
        return False
    per_device = _table_rows(settings, "max_magn_by_device")
    if per_device is None or len(per_device) < len({e["device"] for e in sent}):
        return False
    log = _table_rows(settings, "event_log")
    if log is None:
        return False
    flows = log[log["expectation"].isna() & (log["table"] == "raw_stream")]
    return int(flows["rows_in"].sum()) >= len(sent)


def _sleep_supervising(seconds: float, driver: Supervised) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        driver.keep_alive()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _kafka_truth(settings: Settings) -> pd.DataFrame:
    """Every record the topic holds, read from offset 0 with a plain consumer."""
    bootstrap = settings.kafka.bootstrap_servers
    topic = settings.seismograph.stream
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    partitions = sorted(metadata.topics[topic].partitions)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "truth", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    rows, quiet_since = [], time.monotonic()
    while time.monotonic() - quiet_since < 5:
        batch = [m for m in consumer.consume(1000, timeout=1) if m.error() is None]
        if batch:
            quiet_since = time.monotonic()
        rows += [(f"{topic}-{m.partition()}", str(m.offset()), m.value().decode()) for m in batch]
    consumer.close()
    return pd.DataFrame(rows, columns=["shardId", "sequenceNumber", "data"])


def _kinesis_truth(settings: Settings) -> pd.DataFrame:
    """Every record the stream holds, read from TRIM_HORIZON shard by shard."""
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    rows = [
        (shard_id, r["SequenceNumber"], r["Data"].decode())
        for shard_id, r in every_record(kinesis, settings.seismograph.stream)
    ]
    return pd.DataFrame(rows, columns=["shardId", "sequenceNumber", "data"])


def _event_keys(frame: pd.DataFrame) -> pd.Series:
    return frame["device"].astype(str) + "@" + frame["time"].astype(str)


@dataclass(frozen=True)
class Outcome:
    injected: int
    rows_at_kills: tuple[int, ...]
    sent: int
    lost: int
    duplicated: int
    driver_restarts: int
    seconds: float


def _raw_rows(settings: Settings) -> int:
    raw = _table_rows(settings, "raw_stream")
    return 0 if raw is None else len(raw)


def _faulted_run(
    settings: Settings,
    kill: Callable[[Supervised], None],
    seed: int,
    log: Path,
    phones: int = 10,
) -> tuple[Outcome, list[dict]]:
    """Events flow and the pipeline commits; `kill` strikes 3 times at seeded moments."""
    chance = random.Random(seed)
    began = time.monotonic()
    driver, feed, rows_at_kills = Supervised(settings, log), Feed(settings, phones), []
    driver.keep_alive()
    feed.start()
    try:
        deadline = time.monotonic() + 240
        while _raw_rows(settings) == 0 and time.monotonic() < deadline:
            _sleep_supervising(1, driver)
        for _ in range(KILLS):
            _sleep_supervising(chance.uniform(2, 6), driver)
            rows_at_kills.append(_raw_rows(settings))
            kill(driver)
        _sleep_supervising(3, driver)
        feed.stop()
        assert feed.unsent == 0
        deadline = time.monotonic() + 240
        while not _caught_up(settings, feed.sent) and time.monotonic() < deadline:
            _sleep_supervising(2, driver)
        assert _caught_up(settings, feed.sent), "the backlog did not drain within 4 minutes"
    finally:
        driver.stop()
    sensor = read_table(settings, SYSTEM, "sensor")
    sent_keys = set(_event_keys(pd.DataFrame(feed.sent)))
    got = _event_keys(sensor.assign(time=sensor["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")))
    got = got.str.slice(0, -3) + "Z"  # microseconds to the producer's milliseconds
    outcome = Outcome(
        injected=KILLS,
        rows_at_kills=tuple(rows_at_kills),
        sent=len(feed.sent),
        lost=len(sent_keys - set(got)),
        duplicated=int(got.duplicated().sum()),
        driver_restarts=driver.restarts,
        seconds=round(time.monotonic() - began, 1),
    )
    print(f"\n{settings.seismograph.transport}: {outcome}")
    return outcome, feed.sent


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory) -> Iterator[Settings]:
    """A stack of its own: these tests kill its broker and emulator, nobody else's."""
    settings = settings_for(tmp_path_factory.mktemp("fault-stack"))
    embedded.up(settings, report=lambda line: None)
    try:
        yield settings
    finally:
        embedded.down(settings, report=lambda line: None)


def _check_against_broker(settings: Settings, truth: pd.DataFrame) -> None:
    """raw_stream holds each record of the topic or stream exactly once, and nothing else."""
    raw = read_table(settings, SYSTEM, "raw_stream")[["shardId", "sequenceNumber", "data"]]
    merged = raw.merge(truth, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert not raw.duplicated(["shardId", "sequenceNumber"]).any()


def _check_service_fault(
    settings: Settings, outcome: Outcome, sent: list[dict], truth: pd.DataFrame
) -> None:
    """Nothing lost; the pipeline doubles nothing; producer retries are counted apart.

    A producer whose acknowledgement died with the broker sends the batch again, so the
    broker may hold an event twice (at-least-once delivery into the broker). The pipeline
    must then hold exactly what the broker holds, each record once, and every gold table
    is recomputed from those records.
    """
    held = [json.loads(data) for data in truth["data"]]
    held_keys = _event_keys(pd.DataFrame(held))
    retried = int(held_keys.duplicated().sum())
    print(f"{settings.seismograph.transport}: {retried} events doubled by producer retries")
    assert outcome.lost == 0
    assert 0 < outcome.rows_at_kills[0] < outcome.sent  # the kills hit a running pipeline
    assert set(held_keys) == set(_event_keys(pd.DataFrame(sent)))
    assert outcome.duplicated == retried  # the pipeline itself doubles nothing
    _check_against_broker(settings, truth)
    _check_tables_against(settings, held)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("transport", "service", "seed", "truth"),
    [
        pytest.param("kafka", "kafka", 6, _kafka_truth, id="broker"),
        # The emulator holds the Kinesis stream itself: its journal must bring every record
        # back. (Over Kafka with a local lake the emulator holds nothing the pipeline reads
        # or writes.)
        pytest.param("kinesis", "aws", 66, _kinesis_truth, id="emulator"),
    ],
)
def test_service_killed_three_times_while_events_flow_loses_and_doubles_nothing(
    fault_stack, tmp_path, transport, service, seed, truth
):
    settings = private_settings(fault_stack, tmp_path / "lake", SYSTEM, transport, shards=4)

    outcome, sent = _faulted_run(
        settings,
        lambda driver: embedded.restart(fault_stack, service, hard=True),
        seed=seed,
        log=tmp_path / "driver.log",
    )

    _check_service_fault(settings, outcome, sent, truth(settings))


@pytest.mark.slow
def test_driver_killed_three_times_at_ten_times_the_load_drains_and_loses_nothing(
    fault_stack, tmp_path
):
    """1,300 phones (6,500 events/s) on Kafka; the driver is killed -9 three times mid-load
    and started again each time: the backlog drains, every event is in every table once."""
    settings = private_settings(fault_stack, tmp_path / "lake", SYSTEM, "kafka", shards=4)

    outcome, sent = _faulted_run(
        settings, Supervised.kill, seed=10, log=tmp_path / "driver.log", phones=1300
    )

    assert outcome.driver_restarts == KILLS
    assert outcome.lost == 0 and outcome.duplicated == 0
    assert 0 < outcome.rows_at_kills[0] < outcome.sent  # the kills hit a running pipeline
    _check_against_broker(settings, _kafka_truth(settings))
    _check_tables_against(settings, sent)
