"""The `Defects detected` alert fires on a recent anomaly and stays OK otherwise.

Anomaly rows are written to a real Delta table; the alert's query runs on it with delta-rs,
and `iotlake alerts` prints one line per alert and exits 1 while one is triggered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from iotlake.alerts import check_all, defects_detected, evaluate
from iotlake.cli import app
from iotlake.config import Settings, load_settings
from spark_jobs.io.storage import table_uri

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(lake={"root": str(tmp_path / "lake")}, state_dir=str(tmp_path))


def write_anomalies(settings: Settings, times: list[datetime]) -> None:
    """An `anomaly_detected` table with one hot reading at each of `times`."""
    frame = pd.DataFrame(
        {
            "device_id": pd.array(range(1, len(times) + 1), dtype="int32"),
            "timestamp": pd.to_datetime(times, utc=True),
            "temperature": pd.array([105.0] * len(times), dtype="float32"),
        }
    )
    schema = pa.schema(
        [
            ("device_id", pa.int32()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("temperature", pa.float32()),
        ]
    )
    data = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    write_deltalake(
        table_uri(settings, "manufacturing", "anomaly_detected"), data, mode="overwrite"
    )


def test_alert_fires_when_an_anomaly_is_newer_than_ten_minutes(settings):
    write_anomalies(settings, [NOW - timedelta(hours=2), NOW - timedelta(minutes=9, seconds=59)])

    status = evaluate(settings, defects_detected(settings), now=NOW)

    assert status.state == "TRIGGERED" and status.triggered
    assert status.value == 1
    assert status.alert.subject == "Defects detected"
    assert status.alert.muted  # created muted, as the original
    assert "TRIGGERED" in status.line() and "defects_count = 1" in status.line()


def test_alert_stays_ok_when_every_anomaly_is_older_than_ten_minutes(settings):
    write_anomalies(settings, [NOW - timedelta(hours=2), NOW - timedelta(minutes=10)])

    status = evaluate(settings, defects_detected(settings), now=NOW)

    assert status.state == "OK" and not status.triggered
    assert status.value == 0


def test_alert_window_follows_the_configured_minutes(tmp_path):
    settings = load_settings(
        lake={"root": str(tmp_path / "lake")}, manufacturing={"alert_minutes": 180}
    )
    write_anomalies(settings, [NOW - timedelta(hours=2), NOW - timedelta(hours=4)])

    assert evaluate(settings, defects_detected(settings), now=NOW).value == 1


def test_alert_is_unknown_before_the_pipeline_created_its_table(settings):
    [status] = check_all(settings, now=NOW)

    assert status.state == "UNKNOWN" and status.value is None and not status.triggered


def _cli(tmp_path: Path, *args: str):
    env = {"IOTLAKE_LAKE__ROOT": str(tmp_path / "lake"), "IOTLAKE_STATE_DIR": str(tmp_path)}
    return CliRunner().invoke(app, ["alerts", *args], env=env)


def test_alerts_command_prints_one_line_and_exits_1_while_triggered(settings, tmp_path):
    write_anomalies(settings, [datetime.now(UTC) - timedelta(minutes=2)])

    result = _cli(tmp_path)

    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("TRIGGERED") and "Defects detected" in lines[0]
    [reported] = json.loads(_cli(tmp_path, "--json").output)
    assert reported["state"] == "TRIGGERED" and reported["value"] == 1 and reported["muted"]


def test_alerts_command_exits_0_when_nothing_fires(settings, tmp_path):
    write_anomalies(settings, [datetime.now(UTC) - timedelta(hours=1)])

    result = _cli(tmp_path)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK") and "defects_count = 0" in result.output
