"""`iotlake pipeline run` runs a Databricks-form pipeline folder; a mistake in it is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.support.cli import iotlake, one_line

SETTINGS = """\
name: readings
catalog: plant
database: floor
libraries:
  - glob:
      include: transformations/**
configuration:
  landing: {landing}
"""
TABLES = """\
import dlt


@dlt.table(comment="readings as they landed")
@dlt.expect_or_drop("has a device", "device IS NOT NULL")
def readings():
    return (
        spark.readStream.format("json")
        .schema("device STRING, value DOUBLE")
        .load(spark.conf.get("landing"))
    )
"""
SUMMARY = """\
CREATE OR REFRESH MATERIALIZED VIEW device_max
COMMENT "highest value per device"
AS SELECT device, max(value) AS max_value FROM LIVE.readings GROUP BY device;
"""


def _pipeline(root: Path, tables: str = TABLES) -> Path:
    folder = root / "pipeline"
    (folder / "transformations").mkdir(parents=True)
    landing = root / "landing"
    landing.mkdir()
    rows = [{"device": "a", "value": 1.5}, {"device": "a", "value": 4.0}, {"value": 2.0}]
    (landing / "1.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "spark-pipeline.yml").write_text(SETTINGS.format(landing=landing))
    (folder / "transformations" / "readings.py").write_text(tables)
    (folder / "transformations" / "device_max.sql").write_text(SUMMARY)
    return folder


@pytest.mark.slow
def test_pipeline_run_processes_a_python_and_sql_pipeline_folder(tmp_path: Path):
    folder = _pipeline(tmp_path)

    result = iotlake(tmp_path, "pipeline", "run", str(folder))

    assert result.returncode == 0, result.stderr[-2000:]
    assert "readings.readings batch 0: 3 in, 2 out (1 dropped)" in result.stdout
    lake = tmp_path / "lake" / "dev" / "readings"
    summary = DeltaTable(str(lake / "device_max")).to_pyarrow_table().to_pylist()
    assert summary == [{"device": "a", "max_value": 4.0}]


def test_a_mistake_in_pipeline_code_is_one_line_naming_file_and_fix(tmp_path: Path):
    folder = _pipeline(tmp_path, TABLES.replace("def readings():", "def readings(source):"))

    result = iotlake(tmp_path, "pipeline", "run", str(folder))

    assert result.returncode == 2
    line = one_line(result)
    assert "readings.py" in line and "parameter 'source'" in line
    assert "dlt.read_stream" in line
