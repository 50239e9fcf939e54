"""kill -9 of the streaming driver at seeded random moments loses and doubles nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from services.producers.phone_simulator import FleetConfig, generate_events, send_events
from spark_jobs.runner import run_once
from tests.conftest import settings_env
from tests.spark_jobs.pipelines import private_settings, read_table

SYSTEM = "seismograph"
KILLS = 3


def _driver(settings) -> subprocess.Popen:
    """`iotlake run seismograph --continuous` in its own process group (with its JVM)."""
    env = {
        **os.environ,
        **settings_env(settings),
        "IOTLAKE_SEISMOGRAPH__STREAM": settings.seismograph.stream,
        "IOTLAKE_SEISMOGRAPH__TRANSPORT": settings.seismograph.transport,
        "IOTLAKE_PIPELINES__TRIGGER_SECONDS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "iotlake", "run", SYSTEM, "--continuous"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


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
        driver = _driver(settings)
        time.sleep(chance.uniform(20, 40))
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)

    # The killed drivers did commit work: the kills hit a pipeline that was running.
    committed_before = len(read_table(settings, SYSTEM, "raw_stream"))
    assert committed_before > 0
    run_once(spark, settings, SYSTEM, report=lambda line: None)

    raw = read_table(settings, SYSTEM, "raw_stream")
    assert len(raw) == len(events)
    assert raw[["shardId", "sequenceNumber"]].drop_duplicates().shape[0] == len(events)
    sensor = read_table(settings, SYSTEM, "sensor")
    assert len(sensor) == len(events)
    stat = read_table(settings, SYSTEM, "global_stat").iloc[0]
    magnitudes = np.array([event["magnitude"] for event in events], dtype=float)
    assert stat["events"] == len(events)
    assert stat["avg"] == pytest.approx(magnitudes.mean())
    per_device = read_table(settings, SYSTEM, "max_magn_by_device")
    assert len(per_device) == len({event["device"] for event in events})
    heat = read_table(settings, SYSTEM, "magn_heatmap")
    assert heat.duplicated(["device", "time_bin"]).sum() == 0
    log = read_table(settings, SYSTEM, "event_log")
    flows = log[log["expectation"].isna() & (log["table"] == "raw_stream")]
    assert flows["rows_in"].sum() == len(events)
