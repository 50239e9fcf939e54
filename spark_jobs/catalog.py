"""Tables by name: `catalog.schema.table` as a Databricks user writes it, on the local lake.

The lake is the source of truth: `<lake root>/<target>/<system>/<table>` holds each table's
files and Delta log. Spark's own catalog has databases only, so each Databricks catalog name
is a small catalog plugin of iotlake's (`iotlake.catalog.LakeCatalog`, in `jars/catalog/`)
over Spark's: schema `s` of catalog `c` is Spark database `c__s`, located at the pipeline's
folder of the lake, so a table user code creates by name lands beside the pipeline's. The
folder's `_schema.json` says which catalog and schema its tables are named in; every session
iotlake builds names the tables the lake holds (`register_lake`: the plugin registers each on
first lookup), so a new session, a CLI command or a test reads
`spark.read.table("demo_frank.motion.sensor")` for a table an earlier run wrote. A name
registered at another location (another lake root in the same session) is pointed at the
configured lake.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from iotlake.config import Settings
from spark_jobs import JavaObject
from spark_jobs.io.storage import table_uri

if TYPE_CHECKING:
    from spark_jobs.lakeflow.api import TableSpec

DELTA_LOG = "_delta_log"
SCHEMA_FILE = "_schema.json"
PLUGIN = "iotlake.catalog.LakeCatalog"


def database(catalog: str, schema: str) -> str:
    """The Spark database behind `catalog.schema` (see `jars/catalog/`)."""
    return f"{catalog}__{schema}"


def table_name(spec: TableSpec) -> str:
    """`catalog.schema.table`, the name user code reads a table by."""
    return ".".join(f"`{part}`" for part in (spec.catalog, spec.schema_name, spec.target))


def use_catalogs(spark: SparkSession, names: list[str]) -> None:
    """Make each Databricks catalog name resolve (Spark loads a catalog on first use)."""
    for name in names:
        key = f"spark.sql.catalog.{name}"
        if spark.conf.get(key, None) is None:
            spark.conf.set(key, PLUGIN)


def ensure_table(
    spark: SparkSession, settings: Settings, spec: TableSpec, schema: StructType | None
) -> str:
    """Create the table (empty) if the lake has none, add columns `schema` has and it lacks,
    register its name; returns the name.

    Downstream flows read a table as a stream from its first commit, so it must exist before
    its own flow has written anything. The declaration's comment, properties, partition and
    clustering columns apply when the table is created.
    """
    from delta.tables import DeltaTable

    uri = location(settings, spec)
    columns = schema if schema is not None else _declared_schema(spark, spec)
    if not DeltaTable.isDeltaTable(spark, uri):
        builder = DeltaTable.createIfNotExists(spark).location(uri).addColumns(columns)
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        if spec.cluster_by:
            builder = builder.clusterBy(*spec.cluster_by)
        if spec.comment:
            builder = builder.comment(spec.comment)
        for key, value in spec.table_properties.items():
            builder = builder.property(key, value)
        builder.execute()
    else:
        _add_columns(spark, uri, columns)
    register(spark, settings, spec)
    return table_name(spec)


def _declared_schema(spark: SparkSession, spec: TableSpec) -> StructType:
    if isinstance(spec.schema, StructType):
        return spec.schema
    return spark.createDataFrame([], str(spec.schema)).schema


def location(settings: Settings, spec: TableSpec) -> str:
    """A table's folder: `path=` if the declaration gives one, else its pipeline's folder."""
    return spec.path or table_uri(settings, spec.system, spec.target)


def _add_columns(spark: SparkSession, uri: str, schema: StructType) -> list[str]:
    """Columns of `schema` the table lacks, added (nullable) so earlier rows read NULL."""
    existing = {name.lower() for name in spark.read.format("delta").load(uri).columns}
    added = [field for field in schema.fields if field.name.lower() not in existing]
    if added:
        columns = ", ".join(f"`{field.name}` {field.dataType.simpleString()}" for field in added)
        spark.sql(f"ALTER TABLE delta.`{uri}` ADD COLUMNS ({columns})")
    return [field.name for field in added]


def register(spark: SparkSession, settings: Settings, spec: TableSpec) -> None:
    """Name the lake's table `catalog.schema.table` in this session's catalog."""
    _register(
        spark,
        settings,
        spec.system,
        spec.catalog or "",
        spec.schema_name or "",
        spec.target,
        location(settings, spec),
    )


def _register(
    spark: SparkSession,
    settings: Settings,
    system: str,
    catalog: str,
    schema: str,
    table: str,
    uri: str,
) -> None:
    folder = table_uri(settings, system)
    _use_schema(spark, catalog, schema, folder)
    _write_schema_file(spark, folder, catalog, schema)
    name = f"`{database(catalog, schema)}`.`{table}`"
    if spark.catalog.tableExists(name):
        described = _describe(spark, name)
        if _normal(described.get("Location", "")) == _normal(uri):
            return
        if described.get("Type") != "EXTERNAL":
            raise ValueError(f"{name} is a managed table elsewhere; drop it to use {uri}")
        spark.sql(f"DROP TABLE {name}")  # an external table: its files stay
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{uri}'")


_schema_files_written: set[str] = set()


def _write_schema_file(spark: SparkSession, folder: str, catalog: str, schema: str) -> None:
    """`_schema.json` in a pipeline's folder: the names `register_lake` gives its tables."""
    if folder in _schema_files_written:
        return
    jvm: JavaObject = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{folder}/{SCHEMA_FILE}")
    filesystem = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    text = json.dumps({"catalog": catalog, "schema": schema})
    if not filesystem.exists(path):
        out = filesystem.create(path, True)
        out.write(bytearray(text.encode()))
        out.close()
    _schema_files_written.add(folder)


def _use_schema(spark: SparkSession, catalog: str, schema: str, folder: str) -> None:
    """Schema `catalog.schema` as a database located at the lake folder that holds its tables
    (moved there if it was created for another lake root in this session)."""
    use_catalogs(spark, [catalog])
    name = f"`{database(catalog, schema)}`"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {name} LOCATION '{folder}'")
    if _normal(spark.catalog.getDatabase(database(catalog, schema)).locationUri) != _normal(folder):
        spark.sql(f"ALTER DATABASE {name} SET LOCATION '{folder}'")


def register_lake(spark: SparkSession, settings: Settings) -> list[str]:
    """Name every Delta table found under the target's lake root; returns the names.

    Each folder's schema becomes a database located at the folder; the catalog plugin
    registers a table of it when a query first looks the name up. A session's start costs a
    listing: 0.2 s for the seismograph's seven tables here, where registering each took 3.3 s."""
    names, folders = [], set()
    for folder, (catalog, schema), table in lake_tables(spark, settings):
        if folder not in folders:
            _use_schema(spark, catalog, schema, table_uri(settings, folder))
            folders.add(folder)
        names.append(f"{catalog}.{schema}.{table}")
    return names


def lake_tables(spark: SparkSession, settings: Settings) -> list[tuple[str, tuple[str, str], str]]:
    """(folder, (catalog, schema), table) of every `<root>/<folder>/<table>/_delta_log` whose
    folder names its schema: a `_schema.json`, or `<catalog>__<schema>.db` (a table user code
    created by name in a schema no pipeline owns, in Spark's warehouse layout)."""
    jvm: JavaObject = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path
    root = hadoop_path(table_uri(settings))
    filesystem = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not filesystem.exists(root):
        return []
    found = []
    for folder in filesystem.listStatus(root):
        if not folder.isDirectory():
            continue
        folder_name = folder.getPath().getName()
        names = _schema_of(filesystem, hadoop_path(folder.getPath(), SCHEMA_FILE), folder_name)
        if names is None:
            continue
        for table_dir in filesystem.listStatus(folder.getPath()):
            name = table_dir.getPath().getName()
            log = hadoop_path(table_dir.getPath(), DELTA_LOG)
            if table_dir.isDirectory() and not name.startswith("_") and filesystem.exists(log):
                found.append((folder_name, names, name))
    return sorted(found)


def _schema_of(
    filesystem: JavaObject, schema_file: JavaObject, folder_name: str
) -> tuple[str, str] | None:
    if filesystem.exists(schema_file):
        stream = filesystem.open(schema_file)
        try:
            text = bytes(stream.readAllBytes()).decode()
        finally:
            stream.close()
        names = json.loads(text)
        return names["catalog"], names["schema"]
    stem, dot, suffix = folder_name.rpartition(".")
    if dot and suffix == "db" and "__" in stem:
        catalog, _, schema = stem.partition("__")
        return catalog, schema
    return None


def _snapshot(spark: SparkSession, uri: str) -> JavaObject:
    """The table's newest snapshot, from Delta Lake's own log reader (no Spark job)."""
    jvm: JavaObject = spark.sparkContext._jvm
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
