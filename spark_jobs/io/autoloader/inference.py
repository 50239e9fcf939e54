"""Column types guessed from sampled values, as Auto Loader does with `inferColumnTypes`.

Types: int, bigint (integers beyond int), double, boolean (`true`/`false`), timestamp
(ISO-8601 with a time part; without an offset it is UTC), else string. Numeric kinds widen;
any other mix is a string, which holds every value. Without type inference every column is a
string. Columns keep the order they are first seen in, and match by exact (case-sensitive)
name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql.types import (
    BooleanType,
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.io.autoloader.formats import sample_values
from spark_jobs.io.autoloader.options import AutoloaderOptions
from spark_jobs.io.autoloader.values import (
    FLOAT_RE,
    INT32,
    INT64,
    INT_RE,
    TIMESTAMP_RE,
    parse_timestamp,
)

# Inferred kinds widen in this order; anything else meeting a different kind is a string.
_NUMERIC_ORDER = {"integer": 0, "long": 1, "double": 2}

_KIND_TYPES: dict[str, DataType] = {
    "integer": IntegerType(),
    "long": LongType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
    "timestamp": TimestampType(),
    "string": StringType(),
}


def infer_kind(value: Any, infer_types: bool) -> str | None:
    """The narrowest type name of one value: integer, long, double, boolean, timestamp, string."""
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if not infer_types:
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if INT32[0] <= value <= INT32[1] else "long"
    if isinstance(value, float):
        return "double"
    if not isinstance(value, str):
        return "string"
    text = value.strip()
    if INT_RE.match(text):
        number = int(text)
        if INT32[0] <= number <= INT32[1]:
            return "integer"
        return "long" if INT64[0] <= number <= INT64[1] else "double"
    if FLOAT_RE.match(text) and not text.lower().strip("+-").startswith(("nan", "inf")):
        return "double"
    if text.lower() in ("true", "false"):
        return "boolean"
    if TIMESTAMP_RE.match(text) and parse_timestamp(text) is not None:
        return "timestamp"
    return "string"


def merge_kinds(left: str | None, right: str | None) -> str | None:
    """The kind holding values of both kinds; None (only nulls seen) gives way to the other."""
    if left is None or left == right:
        return right
    if right is None:
        return left
    if left in _NUMERIC_ORDER and right in _NUMERIC_ORDER:
        return max(left, right, key=_NUMERIC_ORDER.__getitem__)
    return "string"


def infer_columns(
    options: AutoloaderOptions, names: Sequence[str], only: set[str] | None = None
) -> StructType:
    """Columns and types from the first `sample_files` files (the head of each).

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
