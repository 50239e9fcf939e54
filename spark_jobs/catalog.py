"""Tables by name: a database per system in Spark's catalog, each table a Delta table in the lake.

The lake is the source of truth: `<lake root>/<target>/<system>/<table>` holds each table's
files and Delta log, and `<system>.<table>` (hyphens become underscores: `aws_iot`) names it;
the system's folder is its database's location, so a table user code creates by name lands
beside the others. Every session iotlake builds registers the tables the lake holds
(`register_lake`), so a new session, a CLI command or a test says
`spark.read.table("seismograph.sensor")` for a table an earlier run wrote; the runner
registers the tables it creates. A name registered at another location (another lake root in
the same session) is pointed at the configured lake.
"""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from iotlake.config import Settings
from spark_jobs.io.storage import table_uri

DELTA_LOG = "_delta_log"


def database(system: str) -> str:
    """The database of a system: its name with hyphens as underscores (`aws-iot` -> aws_iot)."""
    return system.replace("-", "_")


def table_name(system: str, table: str) -> str:
    """`<database>.<table>`, the name user code reads a table by."""
    return f"{database(system)}.{table}"


def ensure_table(
    spark: SparkSession,
    settings: Settings,
    system: str,
    table: str,
    schema: StructType,
    partition_by: tuple[str, ...] = (),
) -> str:
    """Create the table (empty) if the lake has none, add columns `schema` has and it lacks,
    register its name; returns the name.

    Downstream flows read a table as a stream from its first commit, so it must exist before
    its own flow has written anything.
    """
    from delta.tables import DeltaTable

    uri = table_uri(settings, system, table)
    if not DeltaTable.isDeltaTable(spark, uri):
        builder = DeltaTable.createIfNotExists(spark).location(uri).addColumns(schema)
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        builder.execute()
    else:
        _add_columns(spark, uri, schema)
    register(spark, settings, system, table)
    return table_name(system, table)


def _add_columns(spark: SparkSession, uri: str, schema: StructType) -> list[str]:
    """Columns of `schema` the table lacks, added (nullable) so earlier rows read NULL."""
    existing = {name.lower() for name in spark.read.format("delta").load(uri).columns}
    added = [field for field in schema.fields if field.name.lower() not in existing]
    if added:
        columns = ", ".join(f"`{field.name}` {field.dataType.simpleString()}" for field in added)
        spark.sql(f"ALTER TABLE delta.`{uri}` ADD COLUMNS ({columns})")
    return [field.name for field in added]


def register(spark: SparkSession, settings: Settings, system: str, table: str) -> None:
    """Name the lake's table `<system>.<table>` in this session's catalog."""
    uri = table_uri(settings, system, table)
    name = table_name(system, table)
    spark.sql(
        f"CREATE DATABASE IF NOT EXISTS {database(system)} LOCATION '{table_uri(settings, system)}'"
    )
    if spark.catalog.tableExists(name):
        described = _describe(spark, name)
        if _normal(described.get("Location", "")) == _normal(uri):
            return
        if described.get("Type") != "EXTERNAL":
            raise ValueError(f"{name} is a managed table elsewhere; drop it to use {uri}")
        spark.sql(f"DROP TABLE {name}")  # an external table: its files stay
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{uri}'")


def register_lake(spark: SparkSession, settings: Settings) -> list[str]:
    """Register every Delta table found under the target's lake root; returns their names."""
    names = []
    for system, table in lake_tables(spark, settings):
        register(spark, settings, system, table)
        names.append(table_name(system, table))
    return names


def lake_tables(spark: SparkSession, settings: Settings) -> list[tuple[str, str]]:
    """(system, table) of every directory `<root>/<system>/<table>/_delta_log` in the lake."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    root = jvm.org.apache.hadoop.fs.Path(table_uri(settings))
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    filesystem = root.getFileSystem(conf)
    if not filesystem.exists(root):
        return []
    found = []
    for system_dir in filesystem.listStatus(root):
        if not system_dir.isDirectory():
            continue
        for table_dir in filesystem.listStatus(system_dir.getPath()):
            name = table_dir.getPath().getName()
            log = jvm.org.apache.hadoop.fs.Path(table_dir.getPath(), DELTA_LOG)
            if table_dir.isDirectory() and not name.startswith("_") and filesystem.exists(log):
                found.append((system_dir.getPath().getName(), name))
    return sorted(found)


def _snapshot(spark: SparkSession, uri: str):
    """The table's newest snapshot, from Delta Lake's own log reader (no Spark job)."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, uri)
    none = jvm.scala.Option.empty()
    return log.update(False, none, none)


def version(spark: SparkSession, uri: str) -> int | None:
    """The table's current version, None while it has none."""
    snapshot = _snapshot(spark, uri)
    found = snapshot.version()
    return None if found < 0 else int(found)


def committed_batch(spark: SparkSession, uri: str, app_id: str) -> int | None:
    """The last batch a writer committed to the table as an idempotent Delta write
    (`txnAppId` / `txnVersion`), None if it has committed none."""
    committed = _snapshot(spark, uri).transactions().get(app_id)
    return int(committed.get()) if committed.isDefined() else None


def _describe(spark: SparkSession, name: str) -> dict[str, str]:
    """The catalog's detail rows of a table (Location, Type, Provider...)."""
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    return {row.col_name: row.data_type for row in rows}


def _normal(uri: str) -> str:
    """Locations compare without `file:` and trailing slashes."""
    text = uri.removeprefix("file://").removeprefix("file:")
    return text.rstrip("/")
