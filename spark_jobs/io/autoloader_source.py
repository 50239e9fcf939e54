"""Auto Loader for iotlake: new CSV or JSON-lines files in a landing path as a Spark stream.

Pipelines written for Databricks' `cloudFiles` source read the same way here, from a local
directory or `s3://bucket/prefix`:

    events = autoloader_stream(
        spark, settings, "s3://iotlake-landing/manufacturing/sensor_bronze", "csv",
        schema_location=str(checkpoints / "sensor_bronze"),
        schema_hints="defect float, timestamp timestamp, device_id integer",
    )

Options of format `cloudFiles` (names are case-insensitive):

- `cloudFiles.format` (required): `csv` or `json` (one JSON object per line).
- `path` (required): the landing directory, local or `s3://`; listed recursively, skipping
  names that start with `.` or `_` (temporary files, `_schemas`).
- `cloudFiles.schemaLocation` (required): a local directory; `_schemas/<n>` in it holds
  version n of the inferred data columns (Spark StructType JSON), as Auto Loader keeps them.
- `cloudFiles.schemaHints`: DDL such as `defect float, timestamp timestamp`; hinted types
  override inferred ones, hinted columns absent from the files are added.
- `cloudFiles.inferColumnTypes`: `true` (default in iotlake) or `false` (every column a string).
- `cloudFiles.schemaEvolutionMode`: `addNewColumns` (default), `rescue` or `none`.
- `cloudFiles.maxFilesPerTrigger`: at most this many files per micro-batch.
- `cloudFiles.schemaInference.sampleSize.numFiles`: files read to infer the schema (default 50;
  at most 1 MiB of each).
- `cloudFiles.lateFileSeconds`: how much older than the newest file read a late-landing file
  may be and still be read (default 0; see Offsets).
- `header` (csv): `true` (default) or `false` (columns `_c0`, `_c1`, ...).
- `rescuedDataColumn`: name of the rescued data column (default `_rescued_data`).
- `filePathColumn`: name of the column holding each row's source file (default `_file_path`;
  the plain-column counterpart of Databricks' `_metadata.file_path`).
- storage credentials for `s3://` under `storage.STORAGE_OPTIONS_KEY` (set by
  `autoloader_stream`).

Columns: the data columns (stored schema with hints applied; evolved columns at the end of
them), then `_rescued_data` STRING and `_file_path` STRING. `_rescued_data` is null for rows
that parse fully; otherwise a JSON object holding, per column, the original value that did
not fit the column's type (the column itself is null), the values of columns the schema does
not have (`rescue` and, defensively, `addNewColumns`), surplus CSV fields (`_c<index>`),
`_corrupt_record` (a JSON line that is not an object) or `_error` (a file that is not UTF-8
text: one row, every value null), and always `_file_path`. Empty files yield no rows. Nested
JSON values are kept as JSON text in a string column.

Inference reads the oldest files present at the first start (see the sample option) and
stores version 0; later starts use the newest stored version, whatever lands since. Types:
int, bigint (integers beyond int), double, boolean (`true`/`false`), timestamp (ISO-8601 with
a time part; without an offset it is UTC), else string; numeric kinds widen, any other mix is a
string. Hints accept string, int/integer, bigint/long, smallint, tinyint, float, double,
boolean, timestamp, date and decimal(p,s). Columns match by exact (case-sensitive) name. An
empty CSV field is null. A schema given with `.schema(...)` is not supported: the stored one
is the schema. The schema location is written by the driver, so it must be on the driver's
disk (it need not be reachable by executors).

Offsets, kept in the Spark checkpoint, are `{"v": 1, "before": ms, "seen": [names]}`: every
file whose modification time (epoch ms) is earlier than `before`, plus the named files (paths
relative to `path`, modified at or after `before`), has been read. Files are taken in
(modification time, path) order and `before` follows the newest file read, so by default the
list only names files sharing the latest time. A file that lands with a modification time
older than `before` is not read: an upload to S3 gets the time it completes, but a local file
written elsewhere and renamed into place keeps the time of its last write, and another file
may have been read in between. `cloudFiles.lateFileSeconds` (default 0) keeps `before` that
many seconds behind the newest file read, so such late files are still found, at the price of
naming every file of the last seconds in the offset.

Schema evolution is detected on the driver, when a batch is planned: the batch's CSV headers
(one line each) and JSON keys (the whole files) are compared with the schema. In
`addNewColumns` mode a new column records the next schema version and stops the query with
`SchemaEvolutionError` before the batch runs; the restarted query reads that batch with the
evolved schema, earlier rows having the new columns null. Detection reads JSON files once more
on the driver, a cost worth paying for small landing files; CSV costs one line per file.

A batch of up to `MIN_PARTITIONS` files reads each file in its own task; larger batches group
files into tasks of about `SPLIT_BYTES` (at least `MIN_PARTITIONS` tasks, at most
`MAX_PARTITIONS`), so executors read in parallel with pyarrow's filesystem without paying a
task's start-up for every small file. A file is read whole into its task's memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampType,
    _parse_datatype_json_string,
)

from iotlake.config import Settings
from spark_jobs.io.storage import (
    STORAGE_OPTIONS_KEY,
    arrow_filesystem,
    decode_options,
    encode_options,
    is_local,
    local_path,
    storage_options,
)

FORMAT = "cloudFiles"
OFFSET_VERSION = 1
MAX_PARTITIONS = 256
# Small files share tasks (a Python task costs ~0.3 s to start here), but a batch keeps at
# least MIN_PARTITIONS tasks so every core works; about SPLIT_BYTES of data per task beyond.
MIN_PARTITIONS = 8
SPLIT_BYTES = 64 << 20
OPEN_COST_BYTES = 1 << 20
INFERENCE_BYTES = 1 << 20
DEFAULT_SAMPLE_FILES = 50
SCHEMAS_DIR = "_schemas"
EVOLUTION_MODES = ("addNewColumns", "rescue", "none")

KNOWN_OPTIONS = (
    "cloudFiles.format",
    "path",
    "cloudFiles.schemaLocation",
    "cloudFiles.schemaHints",
    "cloudFiles.inferColumnTypes",
    "cloudFiles.schemaEvolutionMode",
    "cloudFiles.maxFilesPerTrigger",
    "cloudFiles.schemaInference.sampleSize.numFiles",
    "cloudFiles.lateFileSeconds",
    "header",
    "rescuedDataColumn",
    "filePathColumn",
    STORAGE_OPTIONS_KEY,
)
_KNOWN_LOWER = {name.lower(): name for name in KNOWN_OPTIONS}
# Short names `autoloader_stream` accepts as keyword arguments, e.g. maxFilesPerTrigger=2.
_SHORT_NAMES = {name.split(".", 1)[-1].lower(): name for name in KNOWN_OPTIONS}

_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(
    r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)$", re.I
)
_TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_RANGES = {"byte": (-128, 127), "short": (-32768, 32767), "integer": _INT32, "long": _INT64}

_HINT_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "varchar": StringType(),
    "int": IntegerType(),
    "integer": IntegerType(),
    "bigint": LongType(),
    "long": LongType(),
    "smallint": ShortType(),
    "short": ShortType(),
    "tinyint": ByteType(),
    "byte": ByteType(),
    "float": FloatType(),
    "real": FloatType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
    "bool": BooleanType(),
    "timestamp": TimestampType(),
    "date": DateType(),
}
_DECIMAL_RE = re.compile(r"^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$|^decimal$", re.I)


class AutoloaderOptionError(ValueError):
    """An option of the cloudFiles source is wrong; the message is one line naming it."""


class SchemaEvolutionError(RuntimeError):
    """New columns were found and recorded; restarting the query reads them. One line."""


def _option_error(name: str, problem: str) -> AutoloaderOptionError:
    return AutoloaderOptionError(f"cloudFiles source: option '{name}' {problem}")


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoloaderOptions:
    """The source's options, parsed and checked once, then shipped to every process."""

    fmt: str
    path: str
    schema_location: str
    hints: tuple[tuple[str, str], ...] = ()  # (column, Spark type JSON), in the hints' order
    infer_types: bool = True
    evolution: str = "addNewColumns"
    max_files: int | None = None
    sample_files: int = DEFAULT_SAMPLE_FILES
    late_file_seconds: int = 0
    header: bool = True
    rescued_column: str = "_rescued_data"
    path_column: str = "_file_path"
    storage: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> AutoloaderOptions:
        """Check every option; raise AutoloaderOptionError naming the first bad one."""
        given = {str(key).lower(): value for key, value in options.items()}
        for key in given:
            if key not in _KNOWN_LOWER:
                known = ", ".join(name for name in KNOWN_OPTIONS if name != STORAGE_OPTIONS_KEY)
                raise _option_error(key, f"is not known; known options: {known}")
        fmt = (given.get("cloudfiles.format") or "").strip().lower()
        if fmt not in ("csv", "json"):
            raise _option_error("cloudFiles.format", f"must be csv or json, not {fmt!r}")
        path = (given.get("path") or "").strip()
        if not path:
            raise _option_error("path", "is required: .load('<landing dir or s3://...>')")
        location = (given.get("cloudfiles.schemalocation") or "").strip()
        if not location:
            raise _option_error("cloudFiles.schemaLocation", "is required (a local directory)")
        if not is_local(location):
            raise _option_error(
                "cloudFiles.schemaLocation", f"must be a local directory: {location}"
            )
        parsed = cls(
            fmt=fmt,
            path=path.rstrip("/") if not is_local(path) else str(Path(local_path(path)).resolve()),
            schema_location=str(Path(local_path(location)).resolve()),
            hints=parse_hints(given.get("cloudfiles.schemahints") or ""),
            infer_types=_flag(given, "cloudFiles.inferColumnTypes", True),
            evolution=_evolution_mode(given.get("cloudfiles.schemaevolutionmode")),
            max_files=_positive(given, "cloudFiles.maxFilesPerTrigger"),
            sample_files=_positive(given, "cloudFiles.schemaInference.sampleSize.numFiles")
            or DEFAULT_SAMPLE_FILES,
            late_file_seconds=_positive(given, "cloudFiles.lateFileSeconds", minimum=0) or 0,
            header=_flag(given, "header", True),
            rescued_column=_column_name(given, "rescuedDataColumn", "_rescued_data"),
            path_column=_column_name(given, "filePathColumn", "_file_path"),
            storage=tuple(sorted(_storage(given).items())),
        )
        if parsed.rescued_column == parsed.path_column:
            raise _option_error("filePathColumn", "must differ from rescuedDataColumn")
        for name, _ in parsed.hints:
            if name in (parsed.rescued_column, parsed.path_column):
                raise _option_error("cloudFiles.schemaHints", f"names the metadata column {name}")
        return parsed

    def hint_types(self) -> dict[str, DataType]:
        return {name: _type_from_json(raw) for name, raw in self.hints}


def _storage(given: Mapping[str, str]) -> dict[str, str]:
    """The storage options; `given` has lower-cased keys, decode_options wants the real key."""
    return decode_options({STORAGE_OPTIONS_KEY: given.get(STORAGE_OPTIONS_KEY.lower(), "")})


def _flag(given: Mapping[str, str], name: str, default: bool) -> bool:
    raw = given.get(name.lower())
    if raw is None or str(raw).strip() == "":
        return default
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise _option_error(name, f"must be true or false, not {raw!r}")
    return value == "true"


def _positive(given: Mapping[str, str], name: str, minimum: int = 1) -> int | None:
    raw = given.get(name.lower())
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise _option_error(name, f"must be a positive integer, not {raw!r}") from None
    if value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise _option_error(name, f"must be {kind}, not {raw!r}")
    return value


def _evolution_mode(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return "addNewColumns"
    for mode in EVOLUTION_MODES:
        if mode.lower() == raw.strip().lower():
            return mode
    modes = " | ".join(EVOLUTION_MODES)
    raise _option_error("cloudFiles.schemaEvolutionMode", f"must be {modes}, not {raw!r}")


def _column_name(given: Mapping[str, str], name: str, default: str) -> str:
    raw = given.get(name.lower())
    value = default if raw is None else str(raw).strip()
    if not value:
        raise _option_error(name, "must be a column name, not empty")
    return value


def parse_hints(ddl: str) -> tuple[tuple[str, str], ...]:
    """`name type, ...` as (name, Spark type JSON) pairs; decimals keep their comma."""
    hints: list[tuple[str, str]] = []
    for item in _split_top_level(ddl):
        match = re.match(r"^\s*(`[^`]+`|[^\s`]+)\s+(.+?)\s*$", item)
        if not match:
            raise _option_error("cloudFiles.schemaHints", f"cannot read {item.strip()!r}")
        name, type_text = match.group(1).strip("`"), match.group(2)
        hints.append((name, json.dumps(_hint_type(type_text).jsonValue())))
    names = [name for name, _ in hints]
    if len(set(names)) != len(names):
        raise _option_error("cloudFiles.schemaHints", "names a column twice")
    return tuple(hints)


def _split_top_level(ddl: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in ddl:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _hint_type(text: str) -> DataType:
    lowered = text.strip().lower()
    if lowered in _HINT_TYPES:
        return _HINT_TYPES[lowered]
    decimal = _DECIMAL_RE.match(lowered)
    if decimal:
        precision, scale = decimal.group(1), decimal.group(2)
        return DecimalType(int(precision), int(scale)) if precision else DecimalType(10, 0)
    raise _option_error("cloudFiles.schemaHints", f"type {text.strip()!r} is not supported")


def _type_from_json(raw: str) -> DataType:
    return _parse_datatype_json_string(raw)


# ---------------------------------------------------------------------------------------------
# Listing and offsets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Landed:
    """One landed file: ordered by (modification time, name), the order files are read in."""

    mtime_ms: int
    name: str  # relative to the landing path
    size: int = field(default=0, compare=False)


def list_landed(options: AutoloaderOptions) -> list[Landed]:
    """Every readable file under the landing path, oldest first."""
    filesystem, root = _filesystem(options)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    found = []
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        name = info.path[len(root) :].lstrip("/")
        if any(part.startswith((".", "_")) for part in name.split("/")):
            continue
        mtime = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else 0
        found.append(Landed(mtime, name, info.size or 0))
    return sorted(found)


@lru_cache(maxsize=8)
def _filesystem(options: AutoloaderOptions) -> tuple[pafs.FileSystem, str]:
    """The landing path's filesystem, built once per process (every file read needs it)."""
    return arrow_filesystem(options.path, dict(options.storage))


def make_offset(before: int, seen: Iterable[str]) -> dict:
    """An offset as it goes into the checkpoint: plain JSON, names sorted so it is stable."""
    return {"v": OFFSET_VERSION, "before": before, "seen": sorted(set(seen))}


def check_offset(offset: dict) -> dict:
    """The offset if this version of the source wrote it; a clear error otherwise."""
    if offset.get("v") != OFFSET_VERSION or "before" not in offset or "seen" not in offset:
        raise ValueError(
            f"cloudFiles: the checkpoint holds an offset this source cannot read: {offset}"
        )
    return offset


def is_read(offset: dict, landed: Landed) -> bool:
    """True when `offset` covers the file: older than its mark, or named at the mark."""
    return landed.mtime_ms < offset["before"] or landed.name in offset["seen"]


def advance(
    offset: dict, taken: Sequence[Landed], mtimes: Mapping[str, int], window_ms: int = 0
) -> dict:
    """The offset after reading `taken` (new files, oldest first) on top of `offset`.

    The mark moves to the newest file read minus `window_ms`; files read at or after the mark
    stay named, so a file landing late (older than the newest, newer than the mark) is still
    found. Names no longer listed (deleted files) are dropped.
    """
    if not taken:
        return offset
    mark = max(offset["before"], taken[-1].mtime_ms - window_ms)
    known = {**mtimes, **{landed.name: landed.mtime_ms for landed in taken}}
    names = set(offset["seen"]) | {landed.name for landed in taken}
    return make_offset(mark, (name for name in names if known.get(name, mark - 1) >= mark))


def full_path(options: AutoloaderOptions, name: str) -> str:
    """The file's address as users see it: an absolute local path or `s3://bucket/key`."""
    return f"{options.path.rstrip('/')}/{name}"


# ---------------------------------------------------------------------------------------------
# Parsing files
# ---------------------------------------------------------------------------------------------


def read_bytes(options: AutoloaderOptions, name: str, limit: int | None = None) -> bytes:
    """A landed file's bytes (the first `limit` of them): files are parsed whole."""
    filesystem, root = _filesystem(options)
    with filesystem.open_input_stream(f"{root}/{name}") as stream:
        return stream.read(limit) if limit else stream.read()


def decode(data: bytes) -> str:
    """UTF-8 text (a leading byte-order mark dropped); UnicodeDecodeError for anything else."""
    return data.decode("utf-8-sig")


def csv_records(text: str, header: bool) -> tuple[list[str], Iterator[list[str]]]:
    """The header's column names (or `_c<i>`) and the data rows of one CSV text."""
    reader = csv.reader(io.StringIO(text))
    rows = (row for row in reader if row)
    if header:
        first = next(rows, None)
        if first is None:
            return [], iter(())
        return [name.strip() for name in first], rows
    buffered = list(rows)
    width = max((len(row) for row in buffered), default=0)
    return [f"_c{index}" for index in range(width)], iter(buffered)


def json_records(text: str) -> Iterator[dict[str, Any] | str]:
    """Each non-blank line as an object, or as its raw text when it is not a JSON object."""
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield line
            continue
        yield value if isinstance(value, dict) else line


def file_columns(options: AutoloaderOptions, name: str) -> list[str]:
    """The columns a file carries: its CSV header, or every key of its JSON lines."""
    try:
        if options.fmt == "csv":
            if not options.header:
                return []
            text = decode(read_bytes(options, name, INFERENCE_BYTES))
            return csv_records(text.split("\n", 1)[0], True)[0]
        text = decode(read_bytes(options, name))
    except UnicodeDecodeError:
        return []
    keys: dict[str, None] = {}
    for record in json_records(text):
        if isinstance(record, dict):
            keys.update(dict.fromkeys(record))
    return list(keys)


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------

# Inferred kinds widen in this order; anything else meeting a different kind is a string.
_NUMERIC_ORDER = {"integer": 0, "long": 1, "double": 2}


def infer_kind(value: Any, infer_types: bool) -> str | None:
    """The narrowest type name of one value: integer, long, double, boolean, timestamp, string."""
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if not infer_types:
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if _INT32[0] <= value <= _INT32[1] else "long"
    if isinstance(value, float):
        return "double"
    if not isinstance(value, str):
        return "string"
    text = value.strip()
    if _INT_RE.match(text):
        number = int(text)
        if _INT32[0] <= number <= _INT32[1]:
            return "integer"
        return "long" if _INT64[0] <= number <= _INT64[1] else "double"
    if _FLOAT_RE.match(text) and not text.lower().strip("+-").startswith(("nan", "inf")):
        return "double"
    if text.lower() in ("true", "false"):
        return "boolean"
    if _TIMESTAMP_RE.match(text) and parse_timestamp(text) is not None:
        return "timestamp"
    return "string"


def merge_kinds(left: str | None, right: str | None) -> str | None:
    if left is None or left == right:
        return right
    if right is None:
        return left
    if left in _NUMERIC_ORDER and right in _NUMERIC_ORDER:
        return max(left, right, key=_NUMERIC_ORDER.__getitem__)
    return "string"


_KIND_TYPES: dict[str, DataType] = {
    "integer": IntegerType(),
    "long": LongType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
    "timestamp": TimestampType(),
    "string": StringType(),
}


def infer_columns(
    options: AutoloaderOptions, names: Sequence[str], only: set[str] | None = None
) -> StructType:
    """Columns and types from the sampled files (at most INFERENCE_BYTES of each).

    With `only`, just those columns are inferred (the new ones of an evolution).
    """
    order: dict[str, None] = {}
    kinds: dict[str, str | None] = {}
    for name in names[: options.sample_files]:
        for column, value in sample_values(options, name):
            if only is not None and column not in only:
                continue
            order.setdefault(column)
            kinds[column] = merge_kinds(kinds.get(column), infer_kind(value, options.infer_types))
    return StructType(
        [StructField(column, _KIND_TYPES[kinds[column] or "string"]) for column in order]
    )


def sample_values(options: AutoloaderOptions, name: str) -> Iterator[tuple[str, Any]]:
    """(column, value) pairs from the head of one file; unreadable files give none."""
    data = read_bytes(options, name, INFERENCE_BYTES)
    truncated = len(data) >= INFERENCE_BYTES
    try:
        text = decode(data)
    except UnicodeDecodeError:
        if not truncated:
            return
        text = data.decode("utf-8", errors="ignore")
    if truncated:  # the last line may be cut in the middle
        text = text.rsplit("\n", 1)[0]
    if options.fmt == "csv":
        columns, rows = csv_records(text, options.header)
        for column in columns:
            yield column, None
        for row in rows:
            yield from zip(columns, row, strict=False)
        return
    for record in json_records(text):
        if isinstance(record, dict):
            yield from record.items()


# ---------------------------------------------------------------------------------------------
# Schema location
# ---------------------------------------------------------------------------------------------


def schemas_dir(options: AutoloaderOptions) -> Path:
    return Path(options.schema_location) / SCHEMAS_DIR


def latest_schema(options: AutoloaderOptions) -> tuple[int, StructType] | None:
    """The newest stored version of the data columns, or None before the first start."""
    directory = schemas_dir(options)
    versions = sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit())
    if not versions:
        return None
    stored = json.loads((directory / str(versions[-1])).read_text())
    if stored.get("format") != options.fmt:
        raise _option_error(
            "cloudFiles.format",
            f"is {options.fmt} but the schema location holds a {stored.get('format')} schema",
        )
    return versions[-1], StructType.fromJson(stored["schema"])


def store_schema(options: AutoloaderOptions, version: int, columns: StructType) -> bool:
    """Write schema `version` unless one exists; True when this call wrote it.

    Written to a temporary file and linked into place, so readers never see half a file and
    two queries racing for one version cannot both win.
    """
    directory = schemas_dir(options)
    directory.mkdir(parents=True, exist_ok=True)
    body = {"version": version, "format": options.fmt, "schema": columns.jsonValue()}
    temporary = directory / f".{version}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(body, indent=1))
    try:
        os.link(temporary, directory / str(version))
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def data_columns(options: AutoloaderOptions) -> StructType:
    """The stored data columns, inferring and storing version 0 at the first start."""
    stored = latest_schema(options)
    if stored is not None:
        return stored[1]
    landed = list_landed(options)
    columns = infer_columns(options, [file.name for file in landed])
    if not columns.fields and not options.hints:
        raise _option_error(
            "path",
            f"has no files to infer a schema from ({options.path}); land a file first or "
            "name the columns in cloudFiles.schemaHints",
        )
    store_schema(options, 0, columns)
    return latest_schema(options)[1]  # type: ignore[index]  # the stored one wins a race


def output_schema(options: AutoloaderOptions, columns: StructType) -> StructType:
    """Data columns with hints applied (unseen hinted columns appended), then metadata columns."""
    hints = options.hint_types()
    fields = [StructField(field.name, hints.get(field.name, field.dataType)) for field in columns]
    present = {field.name for field in columns}
    fields += [StructField(name, kind) for name, kind in hints.items() if name not in present]
    for name in (options.rescued_column, options.path_column):
        if name in present:
            raise _option_error(
                "rescuedDataColumn" if name == options.rescued_column else "filePathColumn",
                f"{name!r} is also a data column of the files; choose another name",
            )
        fields.append(StructField(name, StringType()))
    return StructType(fields)


# ---------------------------------------------------------------------------------------------
# Converting values
# ---------------------------------------------------------------------------------------------


class _Misfit(ValueError):
    """A value that does not fit its column's type."""


def parse_timestamp(text: str) -> datetime | None:
    """An ISO-8601 timestamp in UTC (a bare one is taken as UTC, the session time zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Converter = Callable[[Any], Any]


def converter(kind: DataType) -> Converter:
    """The function turning CSV text or a JSON value into a value of `kind`.

    It raises _Misfit (or ValueError) for a value that does not fit; an empty CSV field is
    null for every type but strings. Chosen once per column, not per value, because it runs
    for every value of every file.
    """
    if isinstance(kind, StringType):
        return _to_string
    if isinstance(kind, (IntegerType, LongType, ShortType, ByteType)):
        low, high = _RANGES[kind.typeName()]
        return lambda value: _to_integral(value, low, high)
    if isinstance(kind, (DoubleType, FloatType)):
        return _to_float
    if isinstance(kind, BooleanType):
        return _to_boolean
    if isinstance(kind, TimestampType):
        return _to_timestamp
    if isinstance(kind, DateType):
        return _to_date
    if isinstance(kind, DecimalType):
        step, precision = Decimal(1).scaleb(-kind.scale), kind.precision
        return lambda value: _to_decimal(value, step, precision)
    raise _option_error("cloudFiles.schemaHints", f"type {kind.simpleString()} is not supported")


def convert(value: Any, kind: DataType) -> Any:
    """`value` as a value of `kind` (one-off use; readers keep a converter per column)."""
    return None if value is None else converter(kind)(value)


def _to_string(value: Any) -> Any:
    return value if type(value) is str else json.dumps(value)


def _to_integral(value: Any, low: int, high: int) -> int | None:
    if type(value) is int:
        number = value
    elif type(value) is str:
        text = value.strip()
        if not text:
            return None
        if not _INT_RE.match(text):
            raise _Misfit
        number = int(text)
    else:
        raise _Misfit
    if not low <= number <= high:
        raise _Misfit
    return number


def _to_float(value: Any) -> float | None:
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        if _FLOAT_RE.match(text):
            return float(text)
    raise _Misfit


def _to_boolean(value: Any) -> bool | None:
    if type(value) is bool:
        return value
    if type(value) is str:
        text = value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
        if not text:
            return None
    raise _Misfit


def _to_timestamp(value: Any) -> datetime | None:
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        moment = parse_timestamp(text) if _TIMESTAMP_RE.match(text) else None
        if moment is not None:
            return moment
    raise _Misfit


def _to_date(value: Any) -> date | None:
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        if _DATE_RE.match(text):
            return date.fromisoformat(text)
    raise _Misfit


def _to_decimal(value: Any, step: Decimal, precision: int) -> Decimal | None:
    if type(value) not in (str, int, float) or value == "":
        if value == "":
            return None
        raise _Misfit
    try:
        number = Decimal(value.strip() if type(value) is str else str(value)).quantize(step)
    except (InvalidOperation, ValueError):
        raise _Misfit from None
    if not number.is_finite() or len(number.as_tuple().digits) > precision:
        raise _Misfit
    return number


# ---------------------------------------------------------------------------------------------
# Reading one file into rows
# ---------------------------------------------------------------------------------------------


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
        except (_Misfit, ValueError, OverflowError):
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
    for record in json_records(text):
        if isinstance(record, str):
            yield build_row({}, shape, converters, path, {"_corrupt_record": record})
        else:
            yield build_row(record, shape, converters, path)


def to_batches(rows: Iterable[list[Any]], schema: StructType) -> Iterator[pa.RecordBatch]:
    """Rows as Arrow batches of exactly the Arrow schema Spark expects for `schema`."""
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= 10_000:
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


# ---------------------------------------------------------------------------------------------
# Spark
# ---------------------------------------------------------------------------------------------


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

    def initialOffset(self) -> dict:
        """Nothing read yet: every landed file is new."""
        return make_offset(-1, [])

    def getDefaultReadLimit(self) -> ReadLimit:
        limit = self.options.max_files
        return ReadMaxFiles(limit) if limit else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        """Fix the files landed now; later files wait for the next run."""
        self._available_now = {f.name: f.mtime_ms for f in list_landed(self.options)}

    def _new_files(self, start: dict) -> tuple[list[Landed], dict[str, int]]:
        """Files not read yet (under AvailableNow: of those fixed at its start), oldest first,
        and every listed file's modification time."""
        landed = list_landed(self.options)
        mtimes = {f.name: f.mtime_ms for f in landed}
        if self._available_now is not None:
            fixed = self._available_now
            landed = [f for f in landed if fixed.get(f.name) == f.mtime_ms]
        return [f for f in landed if not is_read(start, f)], mtimes

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        """The offset after the next new files (all, or `maxFilesPerTrigger` of them)."""
        new, mtimes = self._new_files(check_offset(start))
        if isinstance(limit, ReadMaxFiles):
            new = new[: limit.max_files]
        if not new:
            return start
        if self.options.evolution == "addNewColumns":
            self._check_new_columns(new)
        end = advance(start, new, mtimes, self.options.late_file_seconds * 1000)
        self._planned[_key(start, end)] = new
        return end

    def _check_new_columns(self, files: Sequence[Landed]) -> None:
        """Record an evolved schema and stop when the batch's files carry unknown columns."""
        known = set(self.shape.names)
        found: dict[str, str] = {}
        for landed in files:
            for column in file_columns(self.options, landed.name):
                if column not in known and column not in found:
                    found[column] = landed.name
        if not found:
            return
        stored = latest_schema(self.options)
        version, columns = stored if stored else (-1, StructType())
        inferred = infer_columns(self.options, list(dict.fromkeys(found.values())), set(found))
        present = {field.name for field in columns}
        evolved = StructType(
            columns.fields + [field for field in inferred.fields if field.name not in present]
        )
        store_schema(self.options, version + 1, evolved)
        names = ", ".join(found)
        first = full_path(self.options, next(iter(found.values())))
        raise SchemaEvolutionError(
            f"cloudFiles: new column(s) {names} found in {first}; schema version {version + 1} "
            f"recorded in {schemas_dir(self.options)}; restart the query to read them"
        )

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
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

    def commit(self, end: dict) -> None:
        """Nothing to release: offsets alone say what was read."""


def _key(start: dict, end: dict) -> str:
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
        name = _KNOWN_LOWER.get(key.lower()) or _SHORT_NAMES.get(key.lower(), key)
        given[name] = str(value).lower() if isinstance(value, bool) else str(value)
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
