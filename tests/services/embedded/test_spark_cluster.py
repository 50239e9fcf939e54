"""The standalone cluster runs a streaming query that outlives the loss of a worker."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

from services.embedded import stack as embedded
from services.embedded.process import kill_hard, read_handle, wait_until
from services.embedded.spark_cluster import alive_workers, master_state, worker_name
from tests.support.settings import settings_env, settings_for

REPO = Path(__file__).resolve().parents[3]
PARTITIONS = 4
WAVES, PER_WAVE = 12, 500


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`iotlake up --cluster` with two workers, on free ports of its own."""
    base = settings_for(tmp_path_factory.mktemp("cluster"))
    spark = base.spark.model_copy(update={"workers": 2, "worker_memory": "1g"})
    settings = base.model_copy(update={"spark": spark})
    embedded.up(settings, cluster=True, report=lambda line: None)
    try:
        yield settings
    finally:
        embedded.down(settings, report=lambda line: None)


def test_cluster_comes_up_with_every_worker_alive(cluster):
    state = master_state(cluster.spark.master_ui_port)

    assert state["status"] == "ALIVE"
    assert alive_workers(cluster.spark.master_ui_port) == 2
    assert {worker["cores"] for worker in state["workers"]} == {cluster.spark.worker_cores}


def _produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for number in range(first, first + count):
        producer.produce(topic, value=f"reading-{number}", partition=number % PARTITIONS)
    assert producer.flush(60) == 0


def _table(path: Path) -> pd.DataFrame:
    try:
        return DeltaTable(str(path)).to_pandas()
    except Exception:  # not created yet
        return pd.DataFrame(columns=["partition", "offset", "data"])


def _executors_on_both_workers(settings) -> bool:
    workers = master_state(settings.spark.master_ui_port).get("workers", [])
    return sum(worker.get("coresused", 0) > 0 for worker in workers) == 2


def _driver(settings, topic: str, table: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        **settings_env(settings),
        "IOTLAKE_SPARK__MASTER": settings.spark.cluster_url,
        "IOTLAKE_SPARK__DRIVER_MEMORY": "1g",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.services.embedded.stream_driver", topic, str(table)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.slow
@pytest.mark.cluster
def test_worker_killed_mid_stream_query_goes_on_and_writes_each_record_once(cluster, tmp_path):
    bootstrap = cluster.kafka.bootstrap_servers
    topic = f"cluster-{os.getpid()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    table, log = tmp_path / "readings", tmp_path / "driver.log"
    _produce(bootstrap, topic, 0, PER_WAVE)
    driver = _driver(cluster, topic, table, log)
    victim = worker_name(random.Random(4).choice([1, 2]))
    try:
        # Both executors have work before the kill: the query is spread over the cluster.
        assert wait_until(lambda: len(_table(table)) > 0, 240), log.read_text()[-2000:]
        assert wait_until(lambda: _executors_on_both_workers(cluster), 60)
        feeder = threading.Thread(
            target=lambda: [
                (_produce(bootstrap, topic, wave * PER_WAVE, PER_WAVE), time.sleep(0.5))
                for wave in range(1, WAVES)
            ]
        )
        feeder.start()
        time.sleep(3)
        rows_at_kill = len(_table(table))
        kill_hard(read_handle(cluster.run_dir, victim))
        feeder.join(120)
        expected = WAVES * PER_WAVE
        finished = wait_until(lambda: len(_table(table)) >= expected, 300, interval=2)
        still_running = driver.poll() is None
    finally:
        with contextlib.suppress(ProcessLookupError):  # the driver and its JVM
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)

    rows = _table(table)
    print(
        f"\nworker {victim} killed at {rows_at_kill} of {WAVES * PER_WAVE} rows; "
        f"table has {len(rows)} rows, {rows.duplicated(['partition', 'offset']).sum()} doubled"
    )
    assert 0 < rows_at_kill < expected
    assert "Lost executor" in log.read_text()  # the kill took a running executor with it
    assert finished and still_running, log.read_text()[-2000:]
    assert len(rows) == expected
    assert not rows.duplicated(["partition", "offset"]).any()
    assert set(rows["data"]) == {f"reading-{number}" for number in range(expected)}
