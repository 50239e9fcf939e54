"""Reading Delta tables into Spark without the Delta jars: batch snapshots and new commits.

Batch reads (`read_table`) hand the snapshot's file list, taken from delta-rs, to Spark's own
parquet reader when the table is on local disk; partition columns come back from the
hive-style directories. Spark here has no S3A connector, so tables on `s3://` are read by the
`delta-rs` Python data source instead: one task per data file, read with pyarrow on the
executors.

Streaming reads (`read_stream`) follow the table's commits. The offset is
`{"version": n}`: a micro-batch covers the data files added by the commits in
`(start, end]`, each file one task. `maxFilesPerTrigger` caps a batch at whole commits that
fit (at least one commit), and `Trigger.AvailableNow` stops at the version current when the
query started. Commits that remove data (update, delete, merge, overwrite) stop the stream
unless `skipChangeCommits` is set; compactions (`dataChange=false`) are ignored.

The data source is registered as format `delta-rs`; the same format writes streams and
batches (see `spark_jobs.io.delta_sink`). Its options: `path`, `version` (batch), `startingVersion`
(`latest` or a number; default 0), `maxFilesPerTrigger`, `skipChangeCommits`, and the
storage options under `storage.STORAGE_OPTIONS_KEY`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    DataSourceStreamWriter,
    DataSourceWriter,
    InputPartition,
)
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType

from iotlake.config import Settings
from spark_jobs.io.storage import (
    STORAGE_OPTIONS_KEY,
    arrow_filesystem,
    decode_options,
    encode_options,
    is_local,
    join,
    local_path,
    storage_options,
)

FORMAT = "delta-rs"
NO_VERSION = -1
# Reader features whose files cannot be read as plain parquet.
_UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping"}
_READ_BATCH_ROWS = 65_536


class DeltaRsDataSource(DataSource):
    """Format `delta-rs`: batch and streaming reads here, streaming writes in delta_sink."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        """The table's schema; a stream over a table not created yet needs a given schema."""
        table = open_table(self._uri(), decode_options(self.options))
        if table is None:
            raise ValueError(
                f"Delta table {self._uri()} does not exist yet: create it first or pass "
                "a schema with .schema(...)"
            )
        return spark_schema(table)

    def reader(self, schema: StructType) -> DataSourceReader:
        version = self.options.get("version")
        return DeltaBatchReader(
            self._uri(), decode_options(self.options), schema, int(version) if version else None
        )

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        max_files = self.options.get("maxFilesPerTrigger")
        return DeltaStreamReader(
            table_uri=self._uri(),
            options=decode_options(self.options),
            schema=schema,
            starting_version=str(self.options.get("startingVersion", "0")),
            max_files_per_trigger=int(max_files) if max_files else None,
            skip_change_commits=_flag(self.options.get("skipChangeCommits")),
        )

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceWriter:
        from spark_jobs.io.delta_sink import DeltaBatchWriter

        return DeltaBatchWriter.from_options(self.options, schema, overwrite)

    def streamWriter(self, schema: StructType, overwrite: bool) -> DataSourceStreamWriter:
        from spark_jobs.io.delta_sink import DeltaStreamWriter

        writer = DeltaStreamWriter.from_options(self.options, schema, overwrite)
        return writer.require_exactly_once()

    def _uri(self) -> str:
        uri = self.options.get("path")
        if not uri:
            raise ValueError("format delta-rs needs the table URI: .load(uri) or .option('path')")
        return uri


def register(spark: SparkSession) -> None:
    """Make format `delta-rs` available to `spark.read`, `readStream` and `writeStream`."""
    spark.dataSource.register(DeltaRsDataSource)


def read_table(
    spark: SparkSession, table_uri: str, settings: Settings, version: int | None = None
) -> DataFrame:
    """A snapshot of a Delta table (the latest, or `version`) as a Spark DataFrame."""
    options = storage_options(settings, table_uri)
    table = DeltaTable(table_uri, version=version, storage_options=options or None)
    check_readable(table, table_uri)
    schema = spark_schema(table)
    files = snapshot_files(table)
    if not files:
        return spark.createDataFrame([], schema)
    partition_columns = table.metadata().partition_columns
    if is_local(table_uri) and hive_layout(files, partition_columns):
        root = local_path(table_uri)
        paths = [join(root, file.path) for file in files]
        reader = spark.read.schema(schema)
        if partition_columns:
            reader = reader.option("basePath", root)
        return reader.parquet(*paths).select(*schema.fieldNames())
    register(spark)
    reader = spark.read.format(FORMAT).option(STORAGE_OPTIONS_KEY, encode_options(options))
    return reader.option("version", str(table.version())).load(table_uri)


def read_stream(
    spark: SparkSession,
    table_uri: str,
    settings: Settings,
    *,
    starting_version: int | str | None = None,
    max_files_per_trigger: int | None = None,
    skip_change_commits: bool = False,
    schema: StructType | None = None,
) -> DataFrame:
    """A streaming DataFrame of the rows each new commit of a Delta table adds."""
    register(spark)
    reader = spark.readStream.format(FORMAT)
    reader = reader.option(
        STORAGE_OPTIONS_KEY, encode_options(storage_options(settings, table_uri))
    )
    if starting_version is not None:
        reader = reader.option("startingVersion", str(starting_version))
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
    if skip_change_commits:
        reader = reader.option("skipChangeCommits", "true")
    if schema is not None:
        reader = reader.schema(schema)
    return reader.load(table_uri)


def open_table(table_uri: str, options: Mapping[str, str]) -> DeltaTable | None:
    """The table at `table_uri`, or None when no Delta table is there yet."""
    try:
        return DeltaTable(table_uri, storage_options=dict(options) or None)
    except TableNotFoundError:
        return None


def spark_schema(table: DeltaTable) -> StructType:
    """The Spark schema of a Delta table: Delta's schema JSON is Spark's StructType JSON."""
    return StructType.fromJson(json.loads(table.schema().to_json()))


def check_readable(table: DeltaTable, table_uri: str) -> None:
    """Refuse tables whose data files are not plain parquet (deletion vectors, mapping)."""
    features = set(table.protocol().reader_features or ())
    unsupported = features & _UNSUPPORTED_READER_FEATURES
    if unsupported:
        raise ValueError(
            f"Delta table {table_uri} uses {', '.join(sorted(unsupported))}, which the "
            "delta-rs reader of iotlake does not read; run it with the Delta jars instead"
        )


@dataclass
class DeltaFilePartition(InputPartition):
    """One data file of a table: a Spark task reads exactly this file."""

    path: str
    partition_values: dict[str, Any] = field(default_factory=dict)
    size: int = 0
    version: int | None = None


def snapshot_files(table: DeltaTable) -> list[DeltaFilePartition]:
    """The data files of the loaded snapshot, with their partition values."""
    actions = pa.table(table.get_add_actions(flatten=True))
    prefix = "partition."
    partition_names = [name for name in actions.column_names if name.startswith(prefix)]
    files = []
    for row in actions.to_pylist():
        values = {name[len(prefix) :]: row[name] for name in partition_names}
        files.append(DeltaFilePartition(_file_path(row["path"]), values, row["size_bytes"]))
    return files


def hive_layout(files: Sequence[DeltaFilePartition], partition_columns: Sequence[str]) -> bool:
    """True when every file sits under `col=value/` directories in partition-column order.

    Spark's parquet reader recovers partition values only from such paths; tables whose
    writers chose other layouts are read through the data source instead.
    """
    for file in files:
        if "://" in file.path:
            return False
        directories = file.path.split("/")[:-1]
        names = [directory.split("=", 1)[0] for directory in directories]
        if names != list(partition_columns) or not all("=" in d for d in directories):
            return False
    return True


def read_file(
    table_uri: str,
    options: Mapping[str, str],
    file: DeltaFilePartition,
    schema: StructType,
) -> Iterator[pa.RecordBatch]:
    """The rows of one data file as Arrow batches in the Spark schema's order and types.

    Partition columns are filled from the file's partition values; columns the file lacks
    (added to the table after it was written) are null.
    """
    target = to_arrow_schema(schema, timezone="UTC")
    if "://" in file.path:
        filesystem, path = arrow_filesystem(file.path, options)
    else:
        filesystem, root = arrow_filesystem(table_uri, options)
        path = join(root, file.path)
    with filesystem.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        present = [name for name in target.names if name in parquet.schema_arrow.names]
        present = [name for name in present if name not in file.partition_values]
        for batch in parquet.iter_batches(batch_size=_READ_BATCH_ROWS, columns=present):
            yield conform(batch, target, file.partition_values)


def conform(
    batch: pa.RecordBatch, target: pa.Schema, partition_values: Mapping[str, Any]
) -> pa.RecordBatch:
    """`batch` with exactly the target's columns and types, partition values as constants."""
    rows = batch.num_rows
    arrays = []
    for target_field in target:
        if target_field.name in partition_values:
            arrays.append(_constant(partition_values[target_field.name], target_field.type, rows))
        elif target_field.name in batch.schema.names:
            column = batch.column(target_field.name)
            same = column.type == target_field.type
            arrays.append(column if same else column.cast(target_field.type))
        else:
            arrays.append(pa.nulls(rows, target_field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _constant(value: Any, arrow_type: pa.DataType, rows: int) -> pa.Array:
    """A column repeating one partition value (given as text or as a typed value)."""
    if value is None:
        return pa.nulls(rows, arrow_type)
    scalar = pa.scalar(value)
    if scalar.type != arrow_type:
        scalar = _cast_partition_value(scalar, arrow_type)
    return pa.repeat(scalar, rows)


def _cast_partition_value(scalar: pa.Scalar, arrow_type: pa.DataType) -> pa.Scalar:
    """Cast a logged partition value; timestamps are logged in UTC without an offset."""
    try:
        return scalar.cast(arrow_type)
    except pa.ArrowInvalid:
        if not (pa.types.is_timestamp(arrow_type) and arrow_type.tz):
            raise
        return scalar.cast(pa.timestamp(arrow_type.unit)).cast(arrow_type)


class DeltaBatchReader(DataSourceReader):
    """Reads a table snapshot with one task per data file (for tables Spark cannot open)."""

    def __init__(
        self,
        table_uri: str,
        options: dict[str, str],
        schema: StructType,
        version: int | None,
    ) -> None:
        self.table_uri = table_uri
        self.options = options
        self.schema = schema
        self.version = version

    def partitions(self) -> Sequence[InputPartition]:
        table = DeltaTable(self.table_uri, version=self.version, storage_options=self._storage())
        check_readable(table, self.table_uri)
        return snapshot_files(table)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, DeltaFilePartition)
        yield from read_file(self.table_uri, self.options, partition, self.schema)

    def _storage(self) -> dict[str, str] | None:
        return dict(self.options) or None


class DeltaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Streams the data files added by each new commit of a table, offset `{"version": n}`.

    The driver-side state (the open table, parsed commits) is rebuilt lazily and never
    pickled: Spark ships this object to executors, which only call `read`.
    """

    def __init__(
        self,
        table_uri: str,
        options: dict[str, str],
        schema: StructType,
        starting_version: str = "0",
        max_files_per_trigger: int | None = None,
        skip_change_commits: bool = False,
    ) -> None:
        self.table_uri = table_uri
        self.options = options
        self.schema = schema
        self.starting_version = starting_version
        self.max_files_per_trigger = max_files_per_trigger
        self.skip_change_commits = skip_change_commits
        self._table: DeltaTable | None = None
        self._commits: dict[int, list[DeltaFilePartition]] = {}
        self._target_version: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_table=None, _commits={})
        return state

    def initialOffset(self) -> dict:
        """Before `startingVersion` (default: from the first commit), or at the latest."""
        if self.starting_version.strip().lower() == "latest":
            return {"version": self._current_version()}
        return {"version": int(self.starting_version) - 1}

    def getDefaultReadLimit(self) -> ReadLimit:
        if self.max_files_per_trigger:
            return ReadMaxFiles(self.max_files_per_trigger)
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        """Pin the end of an AvailableNow run to the version current now."""
        self._target_version = self._current_version()

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        latest = self._current_version()
        if self._target_version is not None:
            latest = min(latest, self._target_version)
        first = start["version"]
        if isinstance(limit, ReadMaxFiles) and latest > first:
            latest = self._last_version_within(first, latest, limit.max_files)
        return {"version": max(latest, first)}

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        files: list[DeltaFilePartition] = []
        for version in range(start["version"] + 1, end["version"] + 1):
            files.extend(self._commit_files(version))
        return files

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, DeltaFilePartition)
        yield from read_file(self.table_uri, self.options, partition, self.schema)

    def commit(self, end: dict) -> None:
        """Forget parsed commits Spark will not ask for again."""
        for version in [v for v in self._commits if v <= end["version"]]:
            del self._commits[version]

    def _current_version(self) -> int:
        if self._table is None:
            self._table = open_table(self.table_uri, self.options)
            if self._table is None:
                return NO_VERSION
            check_readable(self._table, self.table_uri)
        else:
            self._table.update_incremental()
        return self._table.version()

    def _last_version_within(self, after: int, latest: int, max_files: int) -> int:
        """The last version whose commits since `after` add at most `max_files` files.

        A commit is never split, so a single commit larger than the limit is a batch alone.
        """
        total, end = 0, after
        for version in range(after + 1, latest + 1):
            total += len(self._commit_files(version))
            if total > max_files and end > after:
                break
            end = version
            if total >= max_files:
                break
        return end

    def _commit_files(self, version: int) -> list[DeltaFilePartition]:
        if version not in self._commits:
            self._commits[version] = self._parse_commit(version)
        return self._commits[version]

    def _parse_commit(self, version: int) -> list[DeltaFilePartition]:
        """The data files a commit adds, read from its JSON entry in `_delta_log`."""
        filesystem, root = arrow_filesystem(self.table_uri, self.options)
        path = join(root, f"_delta_log/{version:020d}.json")
        try:
            with filesystem.open_input_stream(path) as handle:
                lines = handle.read().decode().splitlines()
        except FileNotFoundError as error:
            raise ValueError(
                f"commit {version} of {self.table_uri} is gone from _delta_log (log cleanup "
                "removed it): restart the stream from a later startingVersion"
            ) from error
        actions = [json.loads(line) for line in lines if line.strip()]
        if any(action.get("remove", {}).get("dataChange") for action in actions):
            if self.skip_change_commits:
                return []
            raise ValueError(
                f"commit {version} of {self.table_uri} removes or rewrites data (update, "
                "delete, merge or overwrite); a Delta stream follows appends only: set "
                "skipChangeCommits=true to skip such commits"
            )
        return [
            DeltaFilePartition(
                path=_file_path(add["path"]),
                partition_values=dict(add.get("partitionValues") or {}),
                size=int(add.get("size", 0)),
                version=version,
            )
            for action in actions
            if (add := action.get("add")) and add.get("dataChange", True)
        ]


def _file_path(logged: str) -> str:
    """A file's table-relative path as stored, from its URL-encoded form in the log."""
    return logged if "://" in logged else unquote(logged)


def _flag(value: str | None) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")
