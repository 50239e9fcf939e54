"""The options of format `cloudFiles`, read once into `AutoloaderOptions`.

Names are Databricks' and case-insensitive; a blank value means the default:

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
  may be and still be read (default 0; see `discovery`).
- `header` (csv): `true` (default) or `false` (columns `_c0`, `_c1`, ...).
- `rescuedDataColumn`: name of the rescued data column (default `_rescued_data`).
- `filePathColumn`: name of the column holding each row's source file (default `_file_path`;
  the plain-column counterpart of Databricks' `_metadata.file_path`).
- storage credentials for `s3://` under `storage.STORAGE_OPTIONS_KEY` (set by
  `autoloader_stream`).

Hints accept string, int/integer, bigint/long, smallint, tinyint, float, double, boolean,
timestamp, date and decimal(p,s); they are kept as Spark type JSON so the options stay plain,
hashable values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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
    TimestampType,
    _parse_datatype_json_string,
)

from spark_jobs.io.options import (
    Invalid,
    OptionError,
    SourceOptions,
    choice,
    flag,
    integer,
    option,
)
from spark_jobs.io.storage import STORAGE_OPTIONS_KEY, decode_options, is_local, local_path

FORMAT = "cloudFiles"
DEFAULT_SAMPLE_FILES = 50
EVOLUTION_MODES = ("addNewColumns", "rescue", "none")

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
_HINT_ITEM = re.compile(r"^\s*(`[^`]+`|[^\s`]+)\s+(.+?)\s*$")


class AutoloaderOptionError(OptionError):
    """An option of the cloudFiles source is wrong; the message is one line naming it."""


def landing_path(raw: str) -> str:
    """An object-store path without a trailing slash, or an absolute local path.

    Executors may run in another working directory, so a relative path is resolved here.
    """
    path = raw.strip()
    return path.rstrip("/") if not is_local(path) else str(Path(local_path(path)).resolve())


def local_directory(raw: str) -> str:
    """An absolute local path: the driver writes the schema log there."""
    location = raw.strip()
    if not is_local(location):
        raise Invalid("a local directory")
    return str(Path(local_path(location)).resolve())


def column_name(raw: str) -> str:
    """A column name: not blank, since a blank name would be no column at all."""
    name = raw.strip()
    if not name:
        raise Invalid("a column name")
    return name


def storage_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """The encoded storage options as sorted pairs (hashable, unlike a dict)."""
    return tuple(sorted(decode_options({STORAGE_OPTIONS_KEY: raw}).items()))


def parse_hints(ddl: str) -> tuple[tuple[str, str], ...]:
    """`name type, ...` as (name, Spark type JSON) pairs; decimals keep their comma."""
    hints: list[tuple[str, str]] = []
    for item in _split_top_level(ddl):
        match = _HINT_ITEM.match(item)
        if not match:
            raise Invalid("'<column> <type>' pairs like 'defect float'", item.strip())
        name, type_text = match.group(1).strip("`"), match.group(2)
        hints.append((name, json.dumps(hint_type(type_text).jsonValue())))
    names = [name for name, _ in hints]
    if len(set(names)) != len(names):
        raise Invalid("hints that name each column once")
    return tuple(hints)


def _split_top_level(ddl: str) -> list[str]:
    """The DDL's items, split at commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in ddl:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def hint_type(text: str) -> DataType:
    """The Spark type a hint names; Invalid for a type the readers cannot convert to."""
    lowered = text.strip().lower()
    if lowered in _HINT_TYPES:
        return _HINT_TYPES[lowered]
    decimal = _DECIMAL_RE.match(lowered)
    if decimal:
        precision, scale = decimal.group(1), decimal.group(2)
        return DecimalType(int(precision), int(scale)) if precision else DecimalType(10, 0)
    supported = ", ".join([*_HINT_TYPES, "decimal(p,s)"])
    raise Invalid(f"one of the types {supported}", text.strip())


@dataclass(frozen=True)
class AutoloaderOptions(SourceOptions):
    """The source's options, parsed and checked once, then shipped to every process."""

    SOURCE: ClassVar[str] = FORMAT
    ERROR: ClassVar[type[OptionError]] = AutoloaderOptionError

    fmt: str = option(
        "cloudFiles.format",
        parse=choice("csv", "json"),
        required='csv or json, e.g. .option("cloudFiles.format", "csv")',
    )
    path: str = option("path", parse=landing_path, required=".load('<landing dir or s3://...>')")
    schema_location: str = option(
        "cloudFiles.schemaLocation",
        parse=local_directory,
        required='.option("cloudFiles.schemaLocation", "<local directory>")',
    )
    hints: tuple[tuple[str, str], ...] = option(  # (column, Spark type JSON), in given order
        "cloudFiles.schemaHints", parse=parse_hints, default=()
    )
    infer_types: bool = option("cloudFiles.inferColumnTypes", parse=flag, default=True)
    evolution: str = option(
        "cloudFiles.schemaEvolutionMode", parse=choice(*EVOLUTION_MODES), default="addNewColumns"
    )
    max_files: int | None = option("cloudFiles.maxFilesPerTrigger", parse=integer(), default=None)
    sample_files: int = option(
        "cloudFiles.schemaInference.sampleSize.numFiles",
        parse=integer(),
        default=DEFAULT_SAMPLE_FILES,
    )
    late_file_seconds: int = option(
        "cloudFiles.lateFileSeconds", parse=integer(minimum=0), default=0
    )
    header: bool = option("header", parse=flag, default=True)
    rescued_column: str = option(
        "rescuedDataColumn", parse=column_name, default="_rescued_data", keep_blank=True
    )
    path_column: str = option(
        "filePathColumn", parse=column_name, default="_file_path", keep_blank=True
    )
    storage: tuple[tuple[str, str], ...] = option(
        STORAGE_OPTIONS_KEY, parse=storage_pairs, default=(), listed=False
    )

    def validate(self) -> None:
        """The two metadata columns need distinct names that no hint claims."""
        if self.rescued_column == self.path_column:
            raise self.invalid(
                "filePathColumn", self.path_column, "a name other than rescuedDataColumn's"
            )
        for name, _ in self.hints:
            if name in (self.rescued_column, self.path_column):
                metadata = f"{self.rescued_column} and {self.path_column}"
                expected = f"hints of columns other than the metadata columns {metadata}"
                raise self.invalid("cloudFiles.schemaHints", name, expected)

    def hint_types(self) -> dict[str, DataType]:
        """The hinted Spark types by column name."""
        return {name: _parse_datatype_json_string(raw) for name, raw in self.hints}


def canonical_name(key: str) -> str:
    """An option's name as declared, from any case of it or of its part after the first dot
    (`maxFilesPerTrigger` for `cloudFiles.maxFilesPerTrigger`); unknown keys as given."""
    names = AutoloaderOptions.names()
    full = {name.lower(): name for name in names}
    short = {name.split(".", 1)[-1].lower(): name for name in names}
    return full.get(key.lower()) or short.get(key.lower(), key)
