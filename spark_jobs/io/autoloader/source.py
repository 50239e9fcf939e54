"""`format("cloudFiles")` for Spark: the data source, its stream reader, and how tasks split.

The driver plans: it lists the landing path, picks the files not read yet (`discovery`),
checks them for new columns (`schema`) and splits them into tasks; each task reads its files
into rows (`rows`). A batch of up to `MIN_PARTITIONS` files reads each file in its own task;
larger batches group files into tasks of about `SPLIT_BYTES` (at least `MIN_PARTITIONS`
tasks, at most `MAX_PARTITIONS`), so executors read in parallel with pyarrow's filesystem
without paying a task's start-up for every small file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType

from iotlake.config import Settings
from spark_jobs.io.autoloader.discovery import (
    Landed,
    advance,
    check_offset,
    is_read,
    list_landed,
    make_offset,
)
from spark_jobs.io.autoloader.options import FORMAT, AutoloaderOptions, canonical_name
from spark_jobs.io.autoloader.rows import RowShape, file_rows, to_batches
from spark_jobs.io.autoloader.schema import data_columns, output_schema, record_new_columns
from spark_jobs.io.storage import STORAGE_OPTIONS_KEY, encode_options, storage_options

MAX_PARTITIONS = 256
# Small files share tasks (a Python task costs ~0.3 s to start here), but a batch keeps at
# least MIN_PARTITIONS tasks so every core works; about SPLIT_BYTES of data per task beyond.
MIN_PARTITIONS = 8
SPLIT_BYTES = 64 << 20
OPEN_COST_BYTES = 1 << 20


def plan_groups(files: Sequence[Landed]) -> list[list[str]]:
    """The batch's files split into tasks of similar size; each keeps the files' order.

    One file per task up to MIN_PARTITIONS files; beyond that about SPLIT_BYTES per task
    (each file counted OPEN_COST_BYTES more, so many tiny files still spread out), at most
    MAX_PARTITIONS tasks.
    """
    costs = [landed.size + OPEN_COST_BYTES for landed in files]
    wanted = max(MIN_PARTITIONS, -(-sum(costs) // SPLIT_BYTES))
    count = min(len(files), wanted, MAX_PARTITIONS)
    loads = [0] * count
    members: list[list[int]] = [[] for _ in range(count)]
    for index in sorted(range(len(files)), key=lambda i: -costs[i]):
        lightest = loads.index(min(loads))
        loads[lightest] += costs[index]
        members[lightest].append(index)
    ordered = sorted((sorted(group) for group in members if group), key=lambda group: group[0])
    return [[files[i].name for i in group] for group in ordered]


class FileGroup(InputPartition):
    """Files (names relative to the landing path) one task reads, in order."""

    def __init__(self, index: int, names: list[str]):
        super().__init__(index)
        self.names = names


class AutoloaderStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """New files between two offsets; the driver plans, each task reads its files."""

    def __init__(self, options: AutoloaderOptions, schema: StructType):
        self.options = options
        self.schema = schema
        metadata = {options.rescued_column, options.path_column}
        data = [field for field in schema.fields if field.name not in metadata]
        self.shape = RowShape(
            tuple(field.name for field in data),
            tuple(field.dataType for field in data),
            keep_unknown=options.evolution != "none",
            known=frozenset(field.name for field in data),
        )
        self._available_now: dict[str, int] | None = None
        self._planned: dict[str, list[Landed]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Executors need only the options and the shape, not the driver's plans.
        return {**self.__dict__, "_planned": {}, "_available_now": None}

    def initialOffset(self) -> dict[str, Any]:
        """Nothing read yet: every landed file is new."""
        return make_offset(-1, [])

    def getDefaultReadLimit(self) -> ReadLimit:
        limit = self.options.max_files
        return ReadMaxFiles(limit) if limit else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        """Fix the files landed now; later files wait for the next run."""
        self._available_now = {f.name: f.mtime_ms for f in list_landed(self.options)}

    def _new_files(self, start: dict[str, Any]) -> tuple[list[Landed], dict[str, int]]:
        """Files not read yet (under AvailableNow: of those fixed at its start), oldest first,
        and every listed file's modification time."""
        landed = list_landed(self.options)
        mtimes = {f.name: f.mtime_ms for f in landed}
        if self._available_now is not None:
            fixed = self._available_now
            landed = [f for f in landed if fixed.get(f.name) == f.mtime_ms]
        return [f for f in landed if not is_read(start, f)], mtimes

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        """The offset after the next new files (all, or `maxFilesPerTrigger` of them)."""
        new, mtimes = self._new_files(check_offset(start))
        if isinstance(limit, ReadMaxFiles):
            new = new[: limit.max_files]
        if not new:
            return start
        if self.options.evolution == "addNewColumns":
            record_new_columns(self.options, set(self.shape.names), new)
        end = advance(start, new, mtimes, self.options.late_file_seconds * 1000)
        self._planned[_key(start, end)] = new
        return end

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        """The batch's files in tasks: one file each for small batches, else grouped."""
        files = self._planned.pop(_key(start, end), None)
        if files is None:
            check_offset(start)
            check_offset(end)  # a batch replayed from the checkpoint: find its files again
            landed = list_landed(self.options)
            files = [f for f in landed if is_read(end, f) and not is_read(start, f)]
        return [FileGroup(index, names) for index, names in enumerate(plan_groups(files))]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, FileGroup)
        rows = (
            row for name in partition.names for row in file_rows(self.options, self.shape, name)
        )
        return to_batches(rows, self.schema)

    def commit(self, end: dict[str, Any]) -> None:
        """Nothing to release: offsets alone say what was read."""


def _key(start: dict[str, Any], end: dict[str, Any]) -> str:
    return json.dumps([start, end], sort_keys=True)


class AutoloaderDataSource(DataSource):
    """`format("cloudFiles")`: new files of a landing path as a Spark stream."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        """The stored (or, at the first start, inferred) columns with hints applied."""
        options = AutoloaderOptions.parse(self.options)
        return output_schema(options, data_columns(options))

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return AutoloaderStreamReader(AutoloaderOptions.parse(self.options), schema)


def register(spark: SparkSession) -> None:
    """Make format `cloudFiles` available to `spark.readStream`."""
    spark.dataSource.register(AutoloaderDataSource)


def autoloader_options(
    settings: Settings,
    path: str,
    fmt: str,
    schema_location: str,
    schema_hints: str | None = None,
    **options: Any,
) -> dict[str, str]:
    """The source options for a landing path, checked here so mistakes fail on the driver.

    Extra options may be given by their full name (`**{"cloudFiles.maxFilesPerTrigger": 2}`)
    or their short one (`maxFilesPerTrigger=2`).
    """
    given = {
        "cloudFiles.format": fmt,
        "path": path,
        "cloudFiles.schemaLocation": str(schema_location),
        STORAGE_OPTIONS_KEY: encode_options(storage_options(settings, path)),
    }
    if schema_hints:
        given["cloudFiles.schemaHints"] = schema_hints
    for key, value in options.items():
        given[canonical_name(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    AutoloaderOptions.parse(given)
    return given


def autoloader_stream(
    spark: SparkSession,
    settings: Settings,
    path: str,
    fmt: str,
    schema_location: str,
    schema_hints: str | None = None,
    **options: Any,
) -> DataFrame:
    """A streaming DataFrame of the rows of files newly landed under `path`."""
    given = autoloader_options(settings, path, fmt, schema_location, schema_hints, **options)
    register(spark)
    return spark.readStream.format(FORMAT).options(**given).load()
