"""Batches written by the runner with Delta Lake for Spark: exactly once, and any Delta reader
(delta-rs here, as the dashboard uses it) reads them after appends, MERGE and new columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from spark_jobs import catalog
from spark_jobs.batches import write_batch
from spark_jobs.lakeflow.api import TableSpec
from tests.support.settings import settings_for


def _rows(spark: SparkSession, rows: list[tuple], schema: str = "device string, temp double"):
    return spark.createDataFrame(rows, schema)


def _read(uri: str) -> list[dict]:
    """The table as delta-rs sees it, sorted, independently of Spark."""
    return sorted(
        DeltaTable(uri).to_pyarrow_table().to_pylist(), key=lambda row: row["device"] or ""
    )


def test_a_replayed_append_batch_is_written_once(spark, tmp_path: Path):
    uri = str(tmp_path / "readings")
    batch = _rows(spark, [("a", 20.5), ("b", 21.0)])

    write_batch(batch, uri, "writer-1", 0)
    write_batch(batch, uri, "writer-1", 0)  # the same batch again, as after a crash
    write_batch(_rows(spark, [("c", 22.0)]), uri, "writer-1", 1)

    assert [row["device"] for row in _read(uri)] == ["a", "b", "c"]
    assert catalog.committed_batch(spark, uri, "writer-1") == 1


def test_merge_upserts_on_keys_once_per_batch_and_delta_rs_reads_it(spark, tmp_path: Path):
    uri = str(tmp_path / "readings")
    first = _rows(spark, [("a", 20.0), (None, 1.0)])
    write_batch(first, uri, "writer-1", 0)  # the runner creates it first
    changes = _rows(spark, [("a", 25.0), ("b", 18.0), (None, 2.0)])

    write_batch(changes, uri, "writer-1", 1, mode="update", keys=("device",))
    write_batch(changes, uri, "writer-1", 1, mode="update", keys=("device",))

    rows = _read(uri)
    assert [(row["device"], row["temp"]) for row in rows if row["device"]] == [
        ("a", 25.0),
        ("b", 18.0),
    ]
    # Keys compare null-safely: the group with no device stays one row.
    assert [row["temp"] for row in rows if row["device"] is None] == [2.0]
    assert DeltaTable(uri).history(1)[0]["operation"] == "MERGE"
    assert catalog.committed_batch(spark, uri, "writer-1") == 1


def test_a_complete_batch_replaces_the_rows_and_may_replace_the_schema(spark, tmp_path: Path):
    uri = str(tmp_path / "readings")
    write_batch(_rows(spark, [("a", 20.0), ("b", 21.0)]), uri, "view", 0, mode="complete")
    narrower = spark.createDataFrame([("c",)], "device string")

    write_batch(narrower, uri, "view", 1, mode="complete", replace_schema=True)

    assert _read(uri) == [{"device": "c"}]


def test_new_columns_reach_delta_rs_with_earlier_rows_null(spark, tmp_path: Path):
    uri = str(tmp_path / "readings")
    write_batch(_rows(spark, [("a", 20.5)]), uri, "writer-1", 0)

    wider = _rows(spark, [("b", 21.0, 40.5)], "device string, temp double, humidity double")
    catalog._add_columns(spark, uri, wider.schema)
    write_batch(wider, uri, "writer-1", 1)

    rows = _read(uri)
    assert [(row["device"], row["humidity"]) for row in rows] == [("a", None), ("b", 40.5)]


def test_tables_are_read_by_name_after_the_runner_creates_them(spark, tmp_path: Path):
    settings = settings_for(tmp_path)
    frame = _rows(spark, [("a", 20.5)])
    spec = TableSpec(
        name="named",
        system="delta-check",
        kind="streaming",
        function=None,
        catalog="delta_cat",
        schema_name="checks",
    )
    name = catalog.ensure_table(spark, settings, spec, frame.schema)
    uri = catalog.location(settings, spec)
    write_batch(frame, uri, "writer-1", 0)

    assert name.replace("`", "") == "delta_cat.checks.named"
    assert uri == str(Path(settings.lake_root).resolve() / "delta-check" / "named")
    assert spark.read.table(name).count() == 1
    spark.sql(f"DROP TABLE {name}")  # forget the name in this session; the files stay
    assert "delta_cat.checks.named" in catalog.register_lake(spark, settings)
    assert not spark.catalog.tableExists("delta_cat.checks.named")
    spark.sql(f"CREATE TABLE {name} USING delta LOCATION '{uri}'")
    assert spark.sql("SELECT temp FROM delta_cat.checks.named").first()[0] == pytest.approx(20.5)
