"""Batches written by the runner with Delta Lake for Spark: exactly once, and any Delta reader
(delta-rs here, as the dashboard uses it) reads them after appends, MERGE and new columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from spark_jobs import catalog, dp
from spark_jobs.runner import write_batch


def _spec(output_mode: dp.OutputMode, keys: tuple[str, ...] = ()) -> dp.TableSpec:
    return dp.TableSpec(
        name="readings",
        system="delta-check",
        layer="silver",
        comment="",
        function=lambda: None,
        upstream=(),
        output_mode=output_mode,
        keys=keys,
    )


def _rows(spark: SparkSession, rows: list[tuple], schema: str = "device string, temp double"):
    return spark.createDataFrame(rows, schema)


def _read(uri: str) -> list[dict]:
    """The table as delta-rs sees it, sorted, independently of Spark."""
    return sorted(
        DeltaTable(uri).to_pyarrow_table().to_pylist(), key=lambda row: row["device"] or ""
    )


def test_a_replayed_append_batch_is_written_once(spark, tmp_path: Path):
    uri = str(tmp_path / "readings")
    spec = _spec("append")
    batch = _rows(spark, [("a", 20.5), ("b", 21.0)])

    write_batch(batch, spec, uri, "writer-1", 0)
    write_batch(batch, spec, uri, "writer-1", 0)  # the same batch again, as after a crash
    write_batch(_rows(spark, [("c", 22.0)]), spec, uri, "writer-1", 1)

    assert [row["device"] for row in _read(uri)] == ["a", "b", "c"]
    assert catalog.committed_batch(spark, uri, "writer-1") == 1


def test_merge_upserts_on_keys_once_per_batch_and_delta_rs_reads_it(spark, tmp_path: Path):
    uri = str(tmp_path / "readings")
    spec = _spec("update", keys=("device",))
    first = _rows(spark, [("a", 20.0), (None, 1.0)])
    write_batch(first, _spec("append"), uri, "writer-1", 0)  # the runner creates it first
    changes = _rows(spark, [("a", 25.0), ("b", 18.0), (None, 2.0)])

    write_batch(changes, spec, uri, "writer-1", 1)
    write_batch(changes, spec, uri, "writer-1", 1)

    rows = _read(uri)
    assert [(row["device"], row["temp"]) for row in rows if row["device"]] == [
        ("a", 25.0),
        ("b", 18.0),
    ]
    # Keys compare null-safely: the group with no device stays one row.
    assert [row["temp"] for row in rows if row["device"] is None] == [2.0]
    assert DeltaTable(uri).history(1)[0]["operation"] == "MERGE"


def test_new_columns_reach_delta_rs_with_earlier_rows_null(spark, tmp_path: Path):
    settings_root = tmp_path
    uri = str(settings_root / "readings")
    spec = _spec("append")
    write_batch(_rows(spark, [("a", 20.5)]), spec, uri, "writer-1", 0)

    wider = _rows(spark, [("b", 21.0, 40.5)], "device string, temp double, humidity double")
    catalog._add_columns(spark, uri, wider.schema)
    write_batch(wider, spec, uri, "writer-1", 1)

    rows = _read(uri)
    assert [(row["device"], row["humidity"]) for row in rows] == [("a", None), ("b", 40.5)]


def test_tables_are_read_by_name_after_the_runner_creates_them(spark, tmp_path: Path):
    from tests.conftest import settings_for

    settings = settings_for(tmp_path)
    frame = _rows(spark, [("a", 20.5)])
    name = catalog.ensure_table(spark, settings, "delta-check", "named", frame.schema)
    uri = str(Path(settings.lake_root).resolve() / "delta-check" / "named")
    write_batch(frame, _spec("append"), uri, "writer-1", 0)

    assert name == "delta_check.named"
    assert spark.read.table(name).count() == 1
    spark.sql(f"DROP TABLE {name}")  # forget the name; the files stay in the lake
    assert "delta_check.named" in catalog.register_lake(spark, settings)
    assert spark.sql("SELECT temp FROM delta_check.named").first()[0] == pytest.approx(20.5)
