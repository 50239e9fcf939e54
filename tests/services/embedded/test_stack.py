"""`iotlake up/down/status` start and stop exactly their own processes, or fail clearly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import boto3
import psutil
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from services.embedded import stack as embedded
from services.embedded.process import read_handle
from tests.support.settings import settings_env, settings_for

IOTLAKE = [sys.executable, "-m", "iotlake"]


def _cli(settings, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), **extra_env}
    return subprocess.run([*IOTLAKE, *args], env=env, capture_output=True, text=True, timeout=300)


def _no_process_left(pids: list[int]) -> bool:
    return not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )


def test_up_reports_health_and_down_leaves_no_process(tmp_path):
    settings = settings_for(tmp_path)
    started = _cli(settings, "up")
    assert started.returncode == 0, started.stderr
    rows = json.loads(_cli(settings, "status", "--json").stdout)
    pids = [row["pid"] for row in rows]

    stopped = _cli(settings, "down")

    assert {row["name"] for row in rows} == {"aws", "kafka", "mqtt"}
    assert all(row["healthy"] and row["rss_mb"] > 0 for row in rows)
    assert all(row["endpoint"].count("127.0.0.1") == 1 for row in rows)
    assert stopped.returncode == 0
    assert _no_process_left(pids)
    assert not list((tmp_path / "run").glob("*.pid"))


def test_taken_port_fails_in_one_line_and_starts_nothing(tmp_path):
    settings = settings_for(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.mqtt.port))
        squatter.listen()
        result = _cli(settings, "up")

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"mqtt: port {settings.mqtt.port} on 127.0.0.1 is already in use" in result.stderr
    assert not list((tmp_path / "run").glob("*.pid"))


def test_missing_binary_names_the_service_and_the_fix(tmp_path):
    settings = settings_for(tmp_path)
    result = _cli(settings, "up", IOTLAKE_MQTT__BINARY=str(tmp_path / "no-mosquitto"))

    assert result.returncode == 1
    assert "mqtt:" in result.stderr and "make deps" in result.stderr
    assert not list((tmp_path / "run").glob("*.pid"))


def test_service_dying_at_start_rolls_back_what_started(tmp_path):
    settings = settings_for(tmp_path)
    settings = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"binary": "/bin/false"})}
    )
    seen: list[str] = []

    with pytest.raises(embedded.StackError, match=r"mqtt: exited with code 1 while starting"):
        embedded.up(settings, report=seen.append)

    assert seen[0].startswith("aws: healthy") and seen[1].startswith("kafka: healthy")
    assert read_handle(settings.run_dir, "aws") is None
    assert read_handle(settings.run_dir, "kafka") is None
    assert all(
        port_free
        for port_free in (
            embedded.port_is_free("127.0.0.1", settings.aws.port),
            embedded.port_is_free("127.0.0.1", settings.kafka.port),
        )
    )


def test_down_does_not_touch_a_process_that_reused_a_recorded_pid(tmp_path):
    settings = settings_for(tmp_path)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    settings.run_dir.mkdir(parents=True)
    # A stale PID file whose PID now belongs to someone else: same pid, other start time.
    (settings.run_dir / "kafka.pid").write_text(
        json.dumps({"name": "kafka", "pid": bystander.pid, "create_time": 1.0})
    )
    try:
        embedded.down(settings, report=lambda line: None)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow
def test_localstack_host_mode_serves_s3_and_kinesis(tmp_path):
    settings = settings_for(tmp_path)
    settings = settings.model_copy(
        update={"aws": settings.aws.model_copy(update={"emulator": "localstack"})}
    )
    embedded.up(settings, report=lambda line: None)
    try:
        s3 = boto3.client("s3", **settings.aws.boto3_kwargs())
        s3.create_bucket(Bucket="landing")
        s3.put_object(Bucket="landing", Key="a.json", Body=b"{}")
        kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
        kinesis.create_stream(StreamName="dais2023", ShardCount=2)
        kinesis.get_waiter("stream_exists").wait(StreamName="dais2023", WaiterConfig={"Delay": 0.5})
        put = kinesis.put_record(
            StreamName="dais2023", Data=b'{"magnitude": 3}', PartitionKey="partition-client-1"
        )
        iterator = kinesis.get_shard_iterator(
            StreamName="dais2023", ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator)["Records"]
        # The Delta sink's storage layer (delta-rs) reaches LocalStack's S3 from the same config.
        table = "s3://landing/tables/sensor"
        options = settings.aws.object_store_options()
        write_deltalake(
            table, pa.table({"device": ["client-a"], "magn": [3.0]}), storage_options=options
        )
        assert DeltaTable(table, storage_options=options).to_pyarrow_table().to_pydict() == {
            "device": ["client-a"],
            "magn": [3.0],
        }
        assert s3.get_object(Bucket="landing", Key="a.json")["Body"].read() == b"{}"
        assert [r["Data"] for r in records] == [b'{"magnitude": 3}']
    finally:
        embedded.down(settings, report=lambda line: None)
