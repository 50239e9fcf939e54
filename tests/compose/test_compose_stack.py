"""The end-to-end tests, run against the `docker compose` stack instead of the embedded one.

The pipeline tests below are the same functions as under tests/spark_jobs/: imported here,
they receive this directory's `stack` fixture (the compose stack's Kafka, LocalStack and
Mosquitto on 127.0.0.1), create private topics and streams there and run the pipelines with
the test process's local Spark. The last test checks the stack's own `pipelines` container:
readings sent to the default stream reach its Delta tables in LocalStack's S3.

They run in the compose-e2e workflow (`make test-compose` after `docker compose up --wait`)
and skip elsewhere.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from deltalake import DeltaTable

from services.producers.aws_iot_producer import SensorConfig, generate_records, send_records
from spark_jobs.io.storage import storage_options, table_uri
from tests.spark_jobs.arduino.test_bad_records import (
    test_bad_messages_are_kept_in_bronze_dropped_or_flagged_in_silver_and_counted as test_arduino_bad_messages,  # noqa: E501
)
from tests.spark_jobs.arduino.test_pipeline_e2e import (
    test_seeded_readings_build_every_table_as_pandas_computes_it as test_arduino_e2e,
)
from tests.spark_jobs.aws_iot.test_bad_records import (
    test_bad_payloads_are_kept_raw_dropped_or_flagged_and_counted as test_aws_iot_bad_payloads,
)
from tests.spark_jobs.aws_iot.test_pipeline_e2e import (
    test_seeded_readings_build_every_table_as_pandas_computes_it as test_aws_iot_e2e,
)
from tests.spark_jobs.seismograph.test_pipeline_e2e import (
    test_seeded_events_build_every_table_as_pandas_computes_it as test_seismograph_e2e,
)

__all__ = [
    "test_arduino_bad_messages",
    "test_arduino_e2e",
    "test_aws_iot_bad_payloads",
    "test_aws_iot_e2e",
    "test_seismograph_e2e",
]
PIPELINE_TIMEOUT_SECONDS = 600
DASHBOARD_URL = "http://127.0.0.1:8501/_stcore/health"


def _processed_devices(settings) -> set[str]:
    """Device ids in the compose lake's `iot_sensor_processed` (empty until it exists)."""
    uri = table_uri(settings, "aws-iot", "iot_sensor_processed")
    options = storage_options(settings, uri) or None
    if not DeltaTable.is_deltatable(uri, options):
        return set()
    table = DeltaTable(uri, storage_options=options)
    return set(table.to_pyarrow_table(columns=["device_id"]).column("device_id").to_pylist())


@pytest.mark.slow
def test_compose_pipelines_container_writes_readings_to_the_s3_lake(stack):
    readings = list(generate_records(SensorConfig(seed=3), int(time.time() * 1000), records=25))
    tag = uuid.uuid4().hex[:8]
    for reading in readings:  # device ids of this run only
        reading["device_id"] = f"{tag}-{reading['device_id']}"
    assert send_records(stack, readings).failed == 0
    wanted = {reading["device_id"] for reading in readings}

    deadline = time.monotonic() + PIPELINE_TIMEOUT_SECONDS
    found: set[str] = set()
    while time.monotonic() < deadline and not wanted <= found:
        found = _processed_devices(stack) & wanted
        time.sleep(5)

    assert found == wanted


def test_compose_dashboard_answers_its_health_check(stack):
    assert requests.get(DASHBOARD_URL, timeout=10).text.strip() == "ok"
