"""Databricks' `catalog.schema.table` names on open-source Spark, through iotlake's catalog plugin.

`iotlake.catalog.LakeCatalog` (jars/catalog/) registered as `spark.sql.catalog.<c>` maps
schema `s` of catalog `c` onto the session catalog's database `c__s`: each table is one Delta
table, reached by either name, with every Delta operation Delta's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.errors import IllegalArgumentException
from pyspark.sql import DataFrame, SparkSession

PLUGIN = "iotlake.catalog.LakeCatalog"
CATALOGS = ("workspace", "demo_frank")


@pytest.fixture
def schema(spark: SparkSession) -> Iterator[str]:
    """A fresh schema name, dropped with its tables from both catalogs afterwards.

    The catalogs are registered here, after the session started, as Databricks code on
    iotlake does: Spark loads a catalog when a name first uses it.
    """
    if "iotlake-catalog" not in spark.sparkContext.getConf().get("spark.jars", ""):
        pytest.skip(
            "the iotlake-catalog jar is not on this session's spark.jars: run `make jars` and "
            "put .jars/catalog/iotlake-catalog.jar on spark.jars in spark_jobs/session.py"
        )
    for name in CATALOGS:
        spark.conf.set(f"spark.sql.catalog.{name}", PLUGIN)
    name = f"lake_catalog_{uuid.uuid4().hex[:8]}"
    yield name
    for catalog in CATALOGS:
        spark.sql(f"DROP SCHEMA IF EXISTS {catalog}.{name} CASCADE")


def _rows(spark: SparkSession, table: str, order: str = "id") -> list[tuple]:
    return [tuple(row) for row in spark.table(table).orderBy(order).collect()]


def _schemas(spark: SparkSession, catalog: str) -> list[str]:
    return [row[0] for row in spark.sql(f"SHOW SCHEMAS IN {catalog}").collect()]


def _write_available_now(stream: DataFrame, checkpoint: Path, table: str) -> None:
    """Write all the stream holds now into `table`, named by its three parts, and wait."""
    query = (
        stream.writeStream.format("delta")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .toTable(table)
    )
    query.awaitTermination()


def test_sql_creates_a_schema_and_delta_table_that_is_a_session_database_table(spark, schema):
    spark.sql(f"CREATE SCHEMA workspace.{schema}")
    spark.sql(f"CREATE TABLE workspace.{schema}.readings (id INT, temp DOUBLE) USING delta")
    spark.sql(f"INSERT INTO workspace.{schema}.readings VALUES (1, 20.5), (2, 21.0)")

    assert _rows(spark, f"workspace.{schema}.readings") == [(1, 20.5), (2, 21.0)]
    assert _rows(spark, f"spark_catalog.workspace__{schema}.readings") == [(1, 20.5), (2, 21.0)]
    shown = spark.sql(f"SHOW TABLES IN workspace.{schema}").collect()
    assert [(row.namespace, row.tableName) for row in shown] == [(schema, "readings")]
    assert schema in _schemas(spark, "workspace")
    detail = spark.sql(f"DESCRIBE DETAIL workspace.{schema}.readings").first()
    assert detail.format == "delta"


def test_save_as_table_creates_appends_and_overwrites_by_three_part_name(spark, schema):
    spark.sql(f"CREATE SCHEMA workspace.{schema}")
    name = f"workspace.{schema}.iot_sensor_processed"
    frame = spark.createDataFrame([(1, "a"), (2, "b")], "id INT, device STRING")

    frame.write.format("delta").saveAsTable(name)
    frame.write.format("delta").mode("append").saveAsTable(name)
    assert spark.table(name).count() == 4

    frame.limit(1).write.format("delta").mode("overwrite").saveAsTable(name)
    assert _rows(spark, name) == [(1, "a")]
    operations = [row.operation for row in DeltaTable.forName(spark, name).history().collect()]
    assert operations == ["CREATE OR REPLACE TABLE AS SELECT", "WRITE", "CREATE TABLE AS SELECT"]


def test_a_stream_written_with_to_table_is_read_back_by_name(spark, schema, tmp_path: Path):
    spark.sql(f"CREATE SCHEMA workspace.{schema}")
    source = tmp_path / "source"
    spark.range(5).selectExpr("id", "id * 2 AS doubled").write.json(str(source))
    raw, copy = f"workspace.{schema}.pir_stream_test", f"workspace.{schema}.pir_copy"

    files = spark.readStream.schema("id LONG, doubled LONG").json(str(source))
    _write_available_now(files, tmp_path / "raw-checkpoint", raw)
    assert _rows(spark, raw) == [(i, i * 2) for i in range(5)]

    _write_available_now(spark.readStream.table(raw), tmp_path / "copy-checkpoint", copy)
    assert _rows(spark, copy) == [(i, i * 2) for i in range(5)]


def test_two_catalogs_keep_the_same_schema_name_apart(spark, schema):
    for catalog, column in (("workspace", "ws_value"), ("demo_frank", "frank_value")):
        spark.sql(f"CREATE SCHEMA {catalog}.{schema}")
        spark.createDataFrame([(1,)], f"{column} INT").write.format("delta").saveAsTable(
            f"{catalog}.{schema}.sensor"
        )

    assert spark.table(f"workspace.{schema}.sensor").columns == ["ws_value"]
    assert spark.table(f"demo_frank.{schema}.sensor").columns == ["frank_value"]
    assert spark.table(f"spark_catalog.demo_frank__{schema}.sensor").columns == ["frank_value"]
    spark.sql(f"DROP SCHEMA workspace.{schema} CASCADE")
    assert schema not in _schemas(spark, "workspace")
    assert schema in _schemas(spark, "demo_frank")


def test_delta_table_for_name_updates_and_merges_a_three_part_name(spark, schema):
    spark.sql(f"CREATE SCHEMA demo_frank.{schema}")
    name = f"demo_frank.{schema}.sensor"
    spark.createDataFrame([(1, 1.0), (2, 2.0)], "id INT, magn DOUBLE").write.format(
        "delta"
    ).saveAsTable(name)

    table = DeltaTable.forName(spark, name)
    table.update("id = 2", {"magn": "20.0"})
    changes = spark.createDataFrame([(1, 10.0), (3, 3.0)], "id INT, magn DOUBLE")
    (
        table.alias("t")
        .merge(changes.alias("c"), "t.id = c.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )

    assert _rows(spark, name) == [(1, 10.0), (2, 20.0), (3, 3.0)]
    assert [row.operation for row in table.history().collect()][:2] == ["MERGE", "UPDATE"]


def test_sql_merge_into_a_three_part_name_upserts(spark, schema):
    spark.sql(f"CREATE SCHEMA workspace.{schema}")
    name = f"workspace.{schema}.latest"
    spark.sql(f"CREATE TABLE {name} (id INT, temp DOUBLE) USING delta")
    spark.sql(f"INSERT INTO {name} VALUES (1, 20.0), (2, 21.0)")
    spark.createDataFrame([(2, 25.0), (3, 18.0)], "id INT, temp DOUBLE").createOrReplaceTempView(
        "lake_catalog_changes"
    )

    spark.sql(
        f"""MERGE INTO {name} t USING lake_catalog_changes c ON t.id = c.id
            WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"""
    )

    assert _rows(spark, name) == [(1, 20.0), (2, 25.0), (3, 18.0)]


def test_alter_describe_and_drop_table_act_on_the_session_table(spark, schema):
    spark.sql(f"CREATE SCHEMA workspace.{schema}")
    name = f"workspace.{schema}.readings"
    spark.sql(f"CREATE TABLE {name} (id INT) USING delta")

    spark.sql(f"ALTER TABLE {name} ADD COLUMNS (unit STRING)")
    described = spark.sql(f"DESCRIBE TABLE {name}").collect()
    assert [(row.col_name, row.data_type) for row in described] == [
        ("id", "int"),
        ("unit", "string"),
    ]
    assert spark.table(f"spark_catalog.workspace__{schema}.readings").columns == ["id", "unit"]

    spark.sql(f"DROP TABLE {name}")
    assert not spark.catalog.tableExists(f"spark_catalog.workspace__{schema}.readings")
    assert spark.sql(f"SHOW TABLES IN workspace.{schema}").count() == 0


def test_a_delta_table_in_a_schemas_folder_is_named_until_its_name_is_dropped(spark, schema):
    spark.sql(f"CREATE SCHEMA workspace.{schema}")
    folder = spark.catalog.getDatabase(f"workspace__{schema}").locationUri
    readings = spark.createDataFrame([(1, 20.5)], "id INT, temp DOUBLE")
    for table in ("readings", "alerts"):  # written by path, as an earlier run's files are
        readings.write.format("delta").save(f"{folder}/{table}")

    assert _rows(spark, f"workspace.{schema}.readings") == [(1, 20.5)]
    shown = spark.sql(f"SHOW TABLES IN workspace.{schema}").collect()
    assert sorted(row.tableName for row in shown) == ["alerts", "readings"]

    spark.sql(f"DROP TABLE workspace.{schema}.readings")
    assert not spark.catalog.tableExists(f"workspace.{schema}.readings")
    assert spark.read.format("delta").load(f"{folder}/readings").count() == 1


def test_a_name_with_more_than_one_schema_level_is_a_clear_error(spark, schema):
    with pytest.raises(IllegalArgumentException, match="one level deep"):
        spark.table(f"workspace.{schema}.nested.readings")
