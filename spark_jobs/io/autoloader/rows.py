"""One landed file turned into rows of the output schema, as Arrow batches for Spark.

Columns: the data columns (stored schema with hints applied; evolved columns at the end of
them), then `_rescued_data` STRING and `_file_path` STRING. `_rescued_data` is null for rows
that parse fully; otherwise a JSON object holding, per column, the original value that did
not fit the column's type (the column itself is null), the values of columns the schema does
not have (`rescue` and, defensively, `addNewColumns`), surplus CSV fields (`_c<index>`),
`_corrupt_record` (a JSON line that is not an object) or `_error` (a file that is not UTF-8
text: one row, every value null), and always `_file_path`. Bad input thus never stops the
stream and never vanishes. Empty files yield no rows. Nested JSON values are kept as JSON
text in a string column. A file is read whole into its task's memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import DataType, StructType

from spark_jobs.io.autoloader.discovery import full_path, read_bytes
from spark_jobs.io.autoloader.formats import csv_records, decode, json_records
from spark_jobs.io.autoloader.options import AutoloaderOptions
from spark_jobs.io.autoloader.values import Converter, Misfit, converter

ARROW_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class RowShape:
    """What executors need to turn records into rows of the output schema."""

    names: tuple[str, ...]
    types: tuple[DataType, ...]
    keep_unknown: bool  # rescue columns the schema lacks (every mode but `none`)
    known: frozenset[str] = frozenset()

    def converters(self) -> list[Converter]:
        return [converter(kind) for kind in self.types]


def build_row(
    record: Mapping[str, Any],
    shape: RowShape,
    converters: Sequence[Converter],
    path: str,
    extra: Mapping[str, Any] | None = None,
) -> list[Any]:
    """One output row: converted values, then the rescued JSON (or None), then the path.

    A value that does not fit is kept as it came: CSV text as text, a JSON value as JSON.
    """
    rescued: dict[str, Any] = {}
    values: list[Any] = []
    for name, convert_value in zip(shape.names, converters, strict=True):
        value = record.get(name)
        if value is None:
            values.append(None)
            continue
        try:
            values.append(convert_value(value))
        except (Misfit, ValueError, OverflowError):
            values.append(None)
            rescued[name] = value
    if shape.keep_unknown and len(record) > 0:
        rescued.update({key: value for key, value in record.items() if key not in shape.known})
    rescued.update(extra or {})
    if rescued:
        rescued["_file_path"] = path
        return [*values, json.dumps(rescued, default=str), path]
    return [*values, None, path]


def file_rows(options: AutoloaderOptions, shape: RowShape, name: str) -> Iterator[list[Any]]:
    """Every row of one landed file; a file that is not UTF-8 text gives one rescued row."""
    path = full_path(options, name)
    converters = shape.converters()
    data = read_bytes(options, name)
    try:
        text = decode(data)
    except UnicodeDecodeError as error:
        reason = f"file is not UTF-8 text ({error.reason} at byte {error.start})"
        yield build_row({}, shape, converters, path, {"_error": reason})
        return
    if options.fmt == "csv":
        columns, rows = csv_records(text, options.header)
        for row in rows:
            record = dict(zip(columns, row, strict=False))
            surplus = {f"_c{index}": row[index] for index in range(len(columns), len(row))}
            yield build_row(record, shape, converters, path, surplus)
        return
    for item in json_records(text):
        if isinstance(item, str):
            yield build_row({}, shape, converters, path, {"_corrupt_record": item})
        else:
            yield build_row(item, shape, converters, path)


def to_batches(rows: Iterable[list[Any]], schema: StructType) -> Iterator[pa.RecordBatch]:
    """Rows as Arrow batches of exactly the Arrow schema Spark expects for `schema`."""
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= ARROW_BATCH_ROWS:
            yield _batch(chunk, arrow_schema)
            chunk = []
    if chunk:
        yield _batch(chunk, arrow_schema)


def _batch(chunk: list[list[Any]], arrow_schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*chunk, strict=True))
    arrays = [
        pa.array(list(values), type=field.type)
        for values, field in zip(columns, arrow_schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)
