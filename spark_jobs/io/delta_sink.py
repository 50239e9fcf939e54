"""Writing Spark streams into Delta tables with delta-rs, exactly once across restarts.

Appends (`write_stream`, or `df.writeStream.format("delta-rs")`) are a distributed write:
every Spark task writes its partition's rows as parquet files straight into the table
location (local disk or `s3://`) and returns the files' metadata; the driver then commits all
files of the micro-batch in one Delta transaction. That commit carries the application
transaction `(app_id, batch_id)`; a batch whose id the table has already seen for that
app_id (a replay after a crash between the Delta commit and Spark's checkpoint commit) is
not committed again and its new files are deleted. The app_id is the streaming query's id,
read from the checkpoint, so a new checkpoint means a new writer, as with Delta's own sink.

Aggregates in "update" output mode (`merge_stream`) are merged on key columns per
micro-batch with delta-rs MERGE, and keyless aggregates (one global row) replace the
table's row; both carry the same application transaction and skip replayed batches.

Pipelines that inspect each micro-batch in foreachBatch first (expectations, metrics) use
`append_batch` (the same distributed write through `df.write.format("delta-rs")`) and
`merge_batch`, passing their own app_id and the batch id; `ensure_table` creates a table
empty before its first batch so that downstream streams can start.

Options of format `delta-rs` for writing: `path`, `partitionBy` (comma-separated), `appId`
(streams default to the query id from `checkpointLocation`), `batchId` (batch writes only,
with `appId`), and the storage options under `storage.STORAGE_OPTIONS_KEY`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Field, Schema, Transaction, write_deltalake
from deltalake.transaction import AddAction, create_table_with_add_actions
from pyspark.sql import DataFrame
from pyspark.sql.datasource import (
    DataSourceArrowWriter,
    DataSourceStreamArrowWriter,
    WriterCommitMessage,
)
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from iotlake.config import Settings
from spark_jobs.io.delta_source import FORMAT, open_table, register
from spark_jobs.io.storage import (
    STORAGE_OPTIONS_KEY,
    arrow_filesystem,
    decode_options,
    encode_options,
    join,
    storage_options,
)

log = logging.getLogger(__name__)

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_MAX_STAT_STRING = 64
ROW_GROUP_ROWS = 1_000_000
ROW_GROUP_BYTES = 128 * 1024 * 1024


def write_stream(
    df: DataFrame,
    table_uri: str,
    checkpoint_location: str | Path,
    settings: Settings,
    *,
    partition_by: Sequence[str] = (),
    query_name: str | None = None,
    trigger: Mapping[str, Any] | None = None,
    output_mode: str = "append",
    app_id: str | None = None,
) -> StreamingQuery:
    """Start a query appending `df` to the Delta table at `table_uri`, exactly once.

    `trigger` takes the keyword of `DataStreamWriter.trigger`, e.g. `{"availableNow": True}`
    or `{"processingTime": "5 seconds"}`. Output mode "complete" replaces the table's
    contents with each batch.
    """
    register(df.sparkSession)
    writer = (
        df.writeStream.format(FORMAT)
        .outputMode(output_mode)
        .option("checkpointLocation", _absolute(checkpoint_location))
        .option(STORAGE_OPTIONS_KEY, encode_options(storage_options(settings, table_uri)))
    )
    if partition_by:
        writer = writer.option("partitionBy", ",".join(partition_by))
    if app_id:
        writer = writer.option("appId", app_id)
    if query_name:
        writer = writer.queryName(query_name)
    if trigger:
        writer = writer.trigger(**trigger)
    return writer.start(table_uri)


def merge_stream(
    df: DataFrame,
    table_uri: str,
    checkpoint_location: str | Path,
    settings: Settings,
    *,
    keys: Sequence[str],
    query_name: str | None = None,
    trigger: Mapping[str, Any] | None = None,
    output_mode: str = "update",
    partition_by: Sequence[str] = (),
) -> StreamingQuery:
    """Start a query merging each micro-batch of an aggregate into a Delta table.

    Rows whose `keys` match a table row replace it, others are inserted; with no keys the
    batch's rows replace the table's (a global aggregate's single row). The batch is
    collected to the driver as Arrow, so this suits aggregates, not raw events.
    """
    merger = BatchMerger(
        table_uri=table_uri,
        options=storage_options(settings, table_uri),
        keys=tuple(keys),
        partition_by=tuple(partition_by),
        checkpoint_location=_absolute(checkpoint_location),
    )
    writer = (
        df.writeStream.foreachBatch(merger)
        .outputMode(output_mode)
        .option("checkpointLocation", _absolute(checkpoint_location))
    )
    if query_name:
        writer = writer.queryName(query_name)
    if trigger:
        writer = writer.trigger(**trigger)
    return writer.start()


def next_batch_id(table_uri: str, options: Mapping[str, str], app_id: str) -> int:
    """The batch id after the last one `app_id` committed to the table (0 for the first)."""
    table = open_table(table_uri, options)
    committed = None if table is None else table.transaction_version(app_id)
    return 0 if committed is None else committed + 1


def replace_table(
    data: pa.Table, table_uri: str, options: Mapping[str, str], app_id: str, batch_id: int
) -> None:
    """Replace the table's rows and schema with `data` (a materialized view's refresh), in one
    commit carrying the writer's batch id; an empty result empties the table."""
    write_deltalake(
        table_uri,
        data,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=dict(options) or None,
        commit_properties=batch_commit_properties(app_id, batch_id),
    )


def append_batch(
    batch: DataFrame,
    table_uri: str,
    options: Mapping[str, str],
    *,
    app_id: str,
    batch_id: int,
    partition_by: Sequence[str] = (),
) -> bool:
    """Append one foreachBatch micro-batch exactly once; the executors write the files.

    For pipelines that must look at each batch before writing it (expectations, metrics).
    A batch already committed for `app_id` is not even computed. False when it was skipped.
    """
    if already_applied(open_table(table_uri, options), app_id, batch_id):
        return False
    register(batch.sparkSession)
    (
        batch.write.format(FORMAT)
        .mode("append")
        .option(STORAGE_OPTIONS_KEY, encode_options(dict(options)))
        .option("partitionBy", ",".join(partition_by))
        .option("appId", app_id)
        .option("batchId", str(batch_id))
        .save(table_uri)
    )
    return True


def ensure_table(
    table_uri: str,
    options: Mapping[str, str],
    schema: StructType,
    partition_by: Sequence[str] = (),
    evolve: bool = False,
) -> None:
    """Create the table empty if it is missing, so streams reading it can start at once.

    An existing table must have the same columns and partitioning. With `evolve`, columns
    the stream has and the table lacks are added first (nullable, so earlier rows read null),
    as a streaming table follows its source's schema evolution.
    """
    table = open_table(table_uri, options)
    if table is None:
        DeltaTable.create(
            table_uri,
            delta_schema(schema),
            mode="ignore",
            partition_by=list(partition_by) or None,
            storage_options=dict(options) or None,
        )
        return
    if evolve and add_new_columns(table, schema):
        table = open_table(table_uri, options)
    check_schema(table_uri, table, schema)
    check_partitioning(table_uri, table, tuple(partition_by))


def add_new_columns(table: DeltaTable, schema: StructType) -> list[str]:
    """Add the columns of `schema` that `table` lacks; their names, in the stream's order."""
    present = set(table.schema().to_arrow().names)
    new = [column for column in schema.fields if column.name not in present]
    if new:
        table.alter.add_columns(
            [
                Field.from_json(json.dumps({**_public_metadata(c.jsonValue()), "nullable": True}))
                for c in new
            ]
        )
    return [column.name for column in new]


def checkpoint_query_id(checkpoint_location: str) -> str | None:
    """The streaming query id Spark keeps in `<checkpoint>/metadata`, if it is there."""
    location = checkpoint_location.removeprefix("file://").removeprefix("file:")
    try:
        return json.loads((Path(location) / "metadata").read_text().splitlines()[0])["id"]
    except (FileNotFoundError, IndexError, KeyError, json.JSONDecodeError):
        return None


def already_applied(table: DeltaTable | None, app_id: str, batch_id: int) -> bool:
    """True when the table has committed `batch_id` (or a later batch) for `app_id`."""
    if table is None:
        return False
    committed = table.transaction_version(app_id)
    return committed is not None and committed >= batch_id


def batch_commit_properties(app_id: str, batch_id: int) -> CommitProperties:
    """The commit properties that record `batch_id` as applied for `app_id`."""
    return CommitProperties(
        app_transactions=[Transaction(app_id, batch_id)],
        custom_metadata={"iotlake.appId": app_id, "iotlake.batchId": batch_id},
    )


@dataclass
class DataFile:
    """One parquet file a task wrote: what the driver needs to add it to the table."""

    path: str
    size: int
    partition_values: dict[str, str | None]
    stats: str
    modification_time: int

    def add_action(self) -> AddAction:
        return AddAction(
            self.path, self.size, self.partition_values, self.modification_time, True, self.stats
        )


@dataclass
class DeltaFilesWritten(WriterCommitMessage):
    """A task's commit message: the files it wrote (none for an empty partition)."""

    files: list[DataFile] = field(default_factory=list)


class DeltaStreamWriter(DataSourceStreamArrowWriter):
    """Executors write parquet files; the driver commits each micro-batch once."""

    def __init__(
        self,
        table_uri: str,
        options: dict[str, str],
        schema: StructType,
        partition_by: tuple[str, ...],
        app_id: str | None,
        checkpoint_location: str | None,
        overwrite: bool = False,
    ) -> None:
        missing = [name for name in partition_by if name not in schema.fieldNames()]
        if missing:
            raise ValueError(f"partition columns {missing} are not columns of the data")
        self.table_uri = table_uri
        self.options = options
        self.schema = schema
        self.partition_by = partition_by
        self.app_id = app_id
        self.checkpoint_location = checkpoint_location
        self.overwrite = overwrite

    @classmethod
    def from_options(
        cls, options: Mapping[str, str], schema: StructType, overwrite: bool
    ) -> DeltaStreamWriter:
        """A writer configured from format `delta-rs` options; checks the table's schema."""
        table_uri = options.get("path")
        if not table_uri:
            raise ValueError("format delta-rs needs the table URI: .save(uri) or .option('path')")
        partition_by = tuple(
            name.strip() for name in (options.get("partitionBy") or "").split(",") if name.strip()
        )
        writer = cls(
            table_uri=table_uri,
            options=decode_options(options),
            schema=schema,
            partition_by=partition_by,
            app_id=options.get("appId"),
            checkpoint_location=options.get("checkpointLocation"),
            overwrite=overwrite,
        )
        writer.check_table()
        return writer

    def check_table(self) -> None:
        """Fail at query start, not at the first commit, when the table does not fit."""
        table = open_table(self.table_uri, self.options)
        if table is None:
            return
        check_schema(self.table_uri, table, self.schema)
        check_partitioning(self.table_uri, table, self.partition_by)

    def write(self, iterator: Iterator[pa.RecordBatch]) -> DeltaFilesWritten:
        """Runs on an executor: this task's rows become parquet files in the table."""
        return write_task_files(self.table_uri, self.options, self.partition_by, iterator)

    def commit(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        """Runs on the driver: add every task's files to the table in one transaction."""
        commit_files(
            self.table_uri,
            self.options,
            self.schema,
            self.partition_by,
            written_files(messages),
            app_id=self.resolve_app_id(),
            batch_id=batchId,
            overwrite=self.overwrite,
        )

    def abort(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        """Runs on the driver when a task failed: remove the files the others wrote."""
        self.delete(written_files(messages))

    def require_exactly_once(self) -> DeltaStreamWriter:
        """A stream needs an app id (given, or the checkpoint's query id) to skip replays."""
        if not self.app_id and not self.checkpoint_location:
            raise ValueError(
                "format delta-rs needs a checkpointLocation (or an appId option) to write "
                "each micro-batch exactly once"
            )
        return self

    def resolve_app_id(self) -> str:
        """The application id of this writer: the option, else the checkpoint's query id."""
        if self.app_id:
            return self.app_id
        query_id = checkpoint_query_id(self.checkpoint_location or "")
        if query_id is None:
            raise ValueError(
                f"no streaming query id in {self.checkpoint_location}/metadata: "
                "pass an appId option to format delta-rs"
            )
        return query_id

    def delete(self, files: Iterable[DataFile]) -> None:
        delete_files(self.table_uri, self.options, files)


class DeltaBatchWriter(DataSourceArrowWriter):
    """`df.write.format("delta-rs")`: the same distributed write, committed by the driver.

    With options `appId` and `batchId` (set by `append_batch`) the commit records that batch
    and a batch the table already has is not committed again.
    """

    def __init__(self, target: DeltaStreamWriter, batch_id: int | None) -> None:
        self.target = target
        self.batch_id = batch_id

    @classmethod
    def from_options(
        cls, options: Mapping[str, str], schema: StructType, overwrite: bool
    ) -> DeltaBatchWriter:
        batch_id = options.get("batchId")
        target = DeltaStreamWriter.from_options(options, schema, overwrite)
        if (batch_id is None) != (target.app_id is None):
            raise ValueError("format delta-rs takes the options appId and batchId together")
        return cls(target, int(batch_id) if batch_id is not None else None)

    def write(self, iterator: Iterator[pa.RecordBatch]) -> DeltaFilesWritten:
        """Runs on an executor: this task's rows become parquet files in the table."""
        return self.target.write(iterator)

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        """Runs on the driver: one transaction for every task's files."""
        target = self.target
        commit_files(
            target.table_uri,
            target.options,
            target.schema,
            target.partition_by,
            written_files(messages),
            app_id=target.app_id,
            batch_id=self.batch_id,
            overwrite=target.overwrite,
        )

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        """Runs on the driver when a task failed: remove the files the others wrote."""
        self.target.delete(written_files(messages))


def written_files(messages: Iterable[WriterCommitMessage | None]) -> list[DataFile]:
    """All files named by the tasks' commit messages (failed tasks send None)."""
    return [
        file
        for message in messages
        if isinstance(message, DeltaFilesWritten)
        for file in message.files
    ]


def write_task_files(
    table_uri: str,
    options: Mapping[str, str],
    partition_by: tuple[str, ...],
    iterator: Iterator[pa.RecordBatch],
) -> DeltaFilesWritten:
    """One task's share of a write: its rows as parquet files in the table location.

    A task that fails removes what it wrote; files of tasks that succeeded are removed by the
    driver's abort, or become part of the table in the driver's commit.
    """
    filesystem, root = arrow_filesystem(table_uri, dict(options))
    files = TaskFiles(filesystem, root, partition_by, _task_prefix())
    try:
        for batch in iterator:
            files.add(batch)
        return DeltaFilesWritten(files.close())
    except BaseException:
        files.discard()
        raise


def commit_files(
    table_uri: str,
    options: Mapping[str, str],
    schema: StructType,
    partition_by: tuple[str, ...],
    files: list[DataFile],
    *,
    app_id: str | None,
    batch_id: int | None,
    overwrite: bool = False,
) -> bool:
    """Add the files of one micro-batch to the table in one transaction, at most once.

    The table is created by the first batch. A batch the table has already seen for
    `app_id` commits nothing and its files are deleted. Without an `app_id` (a plain batch
    write) the commit records no application transaction. False when nothing was committed.
    """
    table = open_table(table_uri, options)
    tracked = app_id is not None and batch_id is not None
    if tracked and already_applied(table, app_id, batch_id):
        log.info("delta sink %s: batch %s already committed, skipped", app_id, batch_id)
        delete_files(table_uri, options, files)
        return False
    if table is not None and not files and not overwrite:
        return False
    properties = batch_commit_properties(app_id, batch_id) if tracked else None
    actions = [file.add_action() for file in files]
    if table is None:
        create_table_with_add_actions(
            table_uri,
            delta_schema(schema),
            actions,
            mode="append",
            partition_by=list(partition_by) or None,
            storage_options=dict(options) or None,
            commit_properties=properties,
        )
    else:
        table.create_write_transaction(
            actions,
            "overwrite" if overwrite else "append",
            delta_schema(schema),
            partition_by=list(partition_by) or None,
            commit_properties=properties,
        )
    log.info("delta sink %s: batch %s committed %d files", app_id, batch_id, len(files))
    return True


def delete_files(table_uri: str, options: Mapping[str, str], files: Iterable[DataFile]) -> None:
    """Remove written files that no commit will reference.

    A file the table does reference is kept: Spark may abort a write whose commit reached
    the Delta log before the failure it reacts to (a commit that succeeded, then a worker
    that died), and deleting those files would lose committed rows.
    """
    files = list(files)
    if not files:
        return
    table = open_table(table_uri, options)
    referenced = set()
    if table is not None:
        paths = pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()
        referenced = {unquote(path) for path in paths}
    filesystem, root = arrow_filesystem(table_uri, dict(options))
    for file in files:
        if unquote(file.path) in referenced:
            log.warning("delta sink: %s is in the table's log; not deleted", file.path)
            continue
        _delete_quietly(filesystem, join(root, file.path))


def delta_schema(schema: StructType) -> Schema:
    """The Delta schema of a Spark schema: both use the same JSON form.

    Spark's own field annotations (metadata keys starting with `__`, such as
    `__autoGeneratedAlias`) describe a query plan, not the data, and are left out.
    """
    return Schema.from_json(json.dumps(_public_metadata(schema.jsonValue())))


def _public_metadata(node: Any) -> Any:
    """A schema JSON tree without Spark-internal field metadata, at any nesting depth."""
    if isinstance(node, list):
        return [_public_metadata(item) for item in node]
    if not isinstance(node, dict):
        return node
    cleaned = {key: _public_metadata(value) for key, value in node.items()}
    if isinstance(cleaned.get("metadata"), dict):
        metadata = cleaned["metadata"]
        cleaned["metadata"] = {k: v for k, v in metadata.items() if not k.startswith("__")}
    return cleaned


def check_schema(table_uri: str, table: DeltaTable, schema: StructType) -> None:
    """Refuse a stream whose column names or types differ from the table's.

    Order, nullability and field metadata may differ: Delta readers match columns by name, and
    a table that evolved has its added columns last whatever the stream's order.
    """
    existing = json.loads(table.schema().to_json())["fields"]
    have = {field["name"]: _type_shape(field["type"]) for field in existing}
    want = {item.name: _type_shape(item.dataType.jsonValue()) for item in schema.fields}
    if have != want:
        raise ValueError(
            f"stream schema {list(want)} does not match Delta table "
            f"{table_uri} {list(have)} (names and types must agree)"
        )


def check_partitioning(table_uri: str, table: DeltaTable, partition_by: tuple[str, ...]) -> None:
    """Refuse a write partitioned otherwise than the table."""
    existing = table.metadata().partition_columns
    if list(existing) != list(partition_by):
        raise ValueError(
            f"Delta table {table_uri} is partitioned by {existing}, not {list(partition_by)}"
        )


_NOT_SHAPE = {"metadata", "nullable", "containsNull", "valueContainsNull"}


def _type_shape(node: Any) -> Any:
    """A type's JSON without nullability and metadata, for comparing what columns hold."""
    if isinstance(node, list):
        return [_type_shape(item) for item in node]
    if isinstance(node, dict):
        return {key: _type_shape(value) for key, value in node.items() if key not in _NOT_SHAPE}
    return node


class TaskFiles:
    """The open parquet files of one task: one per distinct partition value tuple."""

    def __init__(
        self,
        filesystem: pafs.FileSystem,
        root: str,
        partition_by: tuple[str, ...],
        prefix: str,
    ) -> None:
        self.filesystem = filesystem
        self.root = root
        self.partition_by = partition_by
        self.prefix = prefix
        self.open: dict[tuple[str | None, ...], OpenFile] = {}

    def add(self, batch: pa.RecordBatch) -> None:
        """Append a batch, routing each row to its partition's file."""
        if batch.num_rows == 0:
            return
        for values, rows in split_by_partition(batch, self.partition_by):
            key = tuple(values[name] for name in self.partition_by)
            if key not in self.open:
                self.open[key] = self._new_file(values, rows.schema)
            self.open[key].write(rows)

    def close(self) -> list[DataFile]:
        return [file.close() for file in self.open.values()]

    def discard(self) -> None:
        """Best-effort removal of this task's files after a failure."""
        for file in self.open.values():
            file.abort()
            _delete_quietly(self.filesystem, join(self.root, file.path))

    def _new_file(self, values: dict[str, str | None], schema: pa.Schema) -> OpenFile:
        directories = [f"{name}={partition_directory(values[name])}" for name in self.partition_by]
        name = f"{self.prefix}-{uuid.uuid4()}.c000.snappy.parquet"
        relative = "/".join([*directories, name])
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            self.filesystem.create_dir(join(self.root, "/".join(directories)), recursive=True)
        return OpenFile(self.filesystem, join(self.root, relative), relative, values, schema)


class OpenFile:
    """A parquet file being written, with the Delta statistics of what it holds.

    Spark hands a task its rows in Arrow batches of about 10k rows; they are buffered into
    row groups of up to `ROW_GROUP_ROWS` rows or `ROW_GROUP_BYTES` bytes, since a parquet row
    group per small batch makes the write slower and the file slower to read.
    """

    def __init__(
        self,
        filesystem: pafs.FileSystem,
        full_path: str,
        path: str,
        partition_values: dict[str, str | None],
        schema: pa.Schema,
    ) -> None:
        self.path = path
        self.partition_values = partition_values
        self.stats = FileStats(schema)
        self.sink = filesystem.open_output_stream(full_path)
        self.writer = pq.ParquetWriter(self.sink, schema, compression="snappy")
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0

    def write(self, rows: pa.RecordBatch) -> None:
        self.pending.append(rows)
        self.pending_rows += rows.num_rows
        self.pending_bytes += rows.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered batches as one row group and fold them into the statistics."""
        if not self.pending:
            return
        group = pa.Table.from_batches(self.pending)
        self.writer.write_table(group, row_group_size=group.num_rows)
        self.stats.update(group)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def close(self) -> DataFile:
        self.flush()
        self.writer.close()
        size = self.sink.tell()
        self.sink.close()
        return DataFile(
            path=self.path,
            size=size,
            partition_values=self.partition_values,
            stats=self.stats.to_json(),
            modification_time=int(time.time() * 1000),
        )

    def abort(self) -> None:
        for closable in (self.writer, self.sink):
            # The file is deleted next: closing is only tidying up.
            with contextlib.suppress(Exception):
                closable.close()


class FileStats:
    """Delta file statistics: numRecords, nullCount, and min/max where they help skipping."""

    def __init__(self, schema: pa.Schema) -> None:
        self.num_records = 0
        self.null_count = {name: 0 for name in schema.names if _flat(schema.field(name).type)}
        self.bounded = [name for name in schema.names if _has_bounds(schema.field(name).type)]
        self.minimum: dict[str, Any] = {}
        self.maximum: dict[str, Any] = {}

    def update(self, rows: pa.Table) -> None:
        self.num_records += rows.num_rows
        for name in self.null_count:
            self.null_count[name] += rows.column(name).null_count
        for name in self.bounded:
            bounds = pc.min_max(rows.column(name))
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is None:
                continue
            if name not in self.minimum or low < self.minimum[name]:
                self.minimum[name] = low
            if name not in self.maximum or high > self.maximum[name]:
                self.maximum[name] = high

    def to_json(self) -> str:
        minimum = _stat_values(self.minimum, upper=False)
        maximum = _stat_values(self.maximum, upper=True)
        usable = minimum.keys() & maximum.keys()
        return json.dumps(
            {
                "numRecords": self.num_records,
                "minValues": {name: minimum[name] for name in sorted(usable)},
                "maxValues": {name: maximum[name] for name in sorted(usable)},
                "nullCount": self.null_count,
            },
            separators=(",", ":"),
        )


def _flat(arrow_type: pa.DataType) -> bool:
    return not pa.types.is_nested(arrow_type)


def _has_bounds(arrow_type: pa.DataType) -> bool:
    """Types whose min/max Delta readers use for data skipping and JSON can carry exactly."""
    if pa.types.is_timestamp(arrow_type):
        return arrow_type.tz is not None
    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_date(arrow_type)
        or pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
    )


def _stat_values(values: Mapping[str, Any], *, upper: bool) -> dict[str, Any]:
    """Bounds in Delta's JSON form; a bound that cannot be stated safely is left out."""
    result = {}
    for name, value in values.items():
        encoded = _stat_value(value, upper=upper)
        if encoded is not None:
            result[name] = encoded
    return result


def _stat_value(value: Any, *, upper: bool) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return _timestamp_bound(value, upper=upper)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= _MAX_STAT_STRING else None
    return value


def _timestamp_bound(value: dt.datetime, *, upper: bool) -> str:
    """Delta keeps timestamp bounds in milliseconds: round outwards so no row falls outside."""
    value = value.astimezone(dt.UTC)
    spare = value.microsecond % 1000
    if spare:
        value -= dt.timedelta(microseconds=spare)
        if upper:
            value += dt.timedelta(milliseconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def split_by_partition(
    batch: pa.RecordBatch, partition_by: tuple[str, ...]
) -> Iterator[tuple[dict[str, str | None], pa.RecordBatch]]:
    """The rows of `batch` per partition value tuple, without the partition columns."""
    if not partition_by:
        yield {}, batch
        return
    table = pa.Table.from_batches([batch])
    distinct = table.select(list(partition_by)).group_by(list(partition_by)).aggregate([])
    for key in distinct.to_pylist():
        mask = None
        for name in partition_by:
            column = table.column(name)
            if key[name] is None:
                matches = pc.is_null(column)
            else:
                matches = pc.equal(column, pa.scalar(key[name], column.type))
            mask = matches if mask is None else pc.and_(mask, matches)
        rows = table.filter(mask).drop_columns(list(partition_by)).combine_chunks()
        values = {name: partition_text(key[name]) for name in partition_by}
        for part in rows.to_batches():
            yield values, part


def partition_text(value: Any) -> str | None:
    """A partition value as Delta's log stores it (strings; timestamps in UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise ValueError("binary columns cannot partition a Delta table")
    return str(value)


def partition_directory(text: str | None) -> str:
    """A partition value as a directory name: percent-escaped, as Hive and Spark read it."""
    return NULL_PARTITION if text is None else quote(text, safe="")


class BatchMerger:
    """The foreachBatch function of `merge_stream`: one idempotent MERGE per batch."""

    def __init__(
        self,
        table_uri: str,
        options: dict[str, str],
        keys: tuple[str, ...],
        partition_by: tuple[str, ...],
        checkpoint_location: str,
    ) -> None:
        self.table_uri = table_uri
        self.options = options
        self.keys = keys
        self.partition_by = partition_by
        self.checkpoint_location = checkpoint_location

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        app_id = checkpoint_query_id(self.checkpoint_location)
        if app_id is None:
            raise ValueError(f"no streaming query id in {self.checkpoint_location}/metadata")
        missing = [key for key in self.keys if key not in batch.columns]
        if missing:
            raise ValueError(f"merge keys {missing} are not columns of the stream")
        merge_batch(
            batch.toArrow(),
            self.table_uri,
            self.options,
            keys=self.keys,
            app_id=app_id,
            batch_id=batch_id,
            partition_by=self.partition_by,
        )


def merge_batch(
    data: pa.Table,
    table_uri: str,
    options: Mapping[str, str],
    *,
    keys: Sequence[str],
    app_id: str,
    batch_id: int,
    partition_by: Sequence[str] = (),
) -> bool:
    """Merge one micro-batch of aggregate rows into the table; False if it was applied before.

    Keys compare null-safely, so a group whose key is null stays one row.
    """
    table = open_table(table_uri, options)
    if already_applied(table, app_id, batch_id):
        log.info("delta merge %s: batch %s already committed, skipped", app_id, batch_id)
        return False
    properties = batch_commit_properties(app_id, batch_id)
    if table is None or not keys:
        if table is not None and data.num_rows == 0:
            return False
        write_deltalake(
            table_uri,
            data,
            mode="append" if table is None else "overwrite",
            partition_by=list(partition_by) or None,
            storage_options=dict(options) or None,
            commit_properties=properties,
        )
        return True
    if data.num_rows == 0:
        return False
    # Each clause in parentheses: DataFusion binds AND tighter than IS NOT DISTINCT FROM.
    predicate = " AND ".join(
        f"(target.{_quoted(key)} IS NOT DISTINCT FROM source.{_quoted(key)})" for key in keys
    )
    merger = table.merge(
        data,
        predicate=predicate,
        source_alias="source",
        target_alias="target",
        commit_properties=properties,
    )
    merger.when_matched_update_all().when_not_matched_insert_all().execute()
    return True


def _quoted(name: str) -> str:
    """A column name as a SQL identifier for delta-rs predicates (any case or character)."""
    return '"' + name.replace('"', '""') + '"'


def _task_prefix() -> str:
    """`part-<partition id>` like Spark's file names, so a file shows which task wrote it."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return f"part-{context.partitionId():05d}" if context is not None else "part-x"


def _delete_quietly(filesystem: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(path)


def _absolute(location: str | Path) -> str:
    text = str(location)
    return text if "://" in text else str(Path(text).resolve())
