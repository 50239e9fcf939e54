"""Values of CSV text or JSON turned into values of a column's Spark type.

A value that does not fit raises `Misfit`, and the row keeps it in the rescued data column
instead of losing it or stopping the stream. The grammar here (which text is an integer, a
double, a timestamp) is also what inference recognises, so an inferred column accepts every
value inference saw. An empty CSV field is null for every type but strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pyspark.sql.types import DataType, DecimalType

from spark_jobs.io.autoloader.options import AutoloaderOptions

INT_RE = re.compile(r"^[+-]?\d+$")
FLOAT_RE = re.compile(
    r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)$", re.I
)
TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BOOLEAN_RE = re.compile(r"^(true|false)$", re.I)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_RANGES = {"byte": (-128, 127), "short": (-32768, 32767), "integer": INT32, "long": INT64}

Converter = Callable[[Any], Any]
Parsed = TypeVar("Parsed")


class Misfit(ValueError):
    """A value that does not fit its column's type."""


def parse_timestamp(text: str) -> datetime | None:
    """An ISO-8601 timestamp in UTC (a bare one is taken as UTC, the session time zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def converter(kind: DataType) -> Converter:
    """The function turning CSV text or a JSON value into a value of `kind`.

    It raises Misfit (or ValueError) for a value that does not fit. Chosen once per column,
    not per value, because it runs for every value of every file.
    """
    if isinstance(kind, DecimalType):
        step, precision = Decimal(1).scaleb(-kind.scale), kind.precision
        return lambda value: _to_decimal(value, step, precision)
    match kind.typeName():
        case "string":
            return _to_string
        case "byte" | "short" | "integer" | "long" as name:
            low, high = _RANGES[name]
            return lambda value: _to_integral(value, low, high)
        case "double" | "float":
            return _to_float
        case "boolean":
            return _to_boolean
        case "timestamp":
            return _to_timestamp
        case "date":
            return _to_date
    raise AutoloaderOptions.error(
        "cloudFiles.schemaHints", f"type {kind.simpleString()} is not supported"
    )


def convert(value: Any, kind: DataType) -> Any:
    """`value` as a value of `kind` (one-off use; readers keep a converter per column)."""
    return None if value is None else converter(kind)(value)


def _to_string(value: Any) -> Any:
    return value if type(value) is str else json.dumps(value)


def _from_text(
    value: Any, pattern: re.Pattern[str], parse: Callable[[str], Parsed | None]
) -> Parsed | None:
    """A CSV field or JSON string matching `pattern`, parsed; None for a blank one.

    Any other JSON value, text off the grammar and text `parse` rejects are Misfits.
    """
    if type(value) is not str:
        raise Misfit
    text = value.strip()
    if not text:
        return None
    parsed = parse(text) if pattern.match(text) else None
    if parsed is None:
        raise Misfit
    return parsed


def _to_integral(value: Any, low: int, high: int) -> int | None:
    number = value if type(value) is int else _from_text(value, INT_RE, int)
    if number is not None and not low <= number <= high:
        raise Misfit
    return number


def _to_float(value: Any) -> float | None:
    if type(value) is float or type(value) is int:
        return float(value)
    return _from_text(value, FLOAT_RE, float)


def _to_boolean(value: Any) -> bool | None:
    if type(value) is bool:
        return value
    return _from_text(value, _BOOLEAN_RE, lambda text: text.lower() == "true")


def _to_timestamp(value: Any) -> datetime | None:
    return _from_text(value, TIMESTAMP_RE, parse_timestamp)


def _to_date(value: Any) -> date | None:
    return _from_text(value, _DATE_RE, date.fromisoformat)


def _to_decimal(value: Any, step: Decimal, precision: int) -> Decimal | None:
    if type(value) not in (str, int, float) or value == "":
        if value == "":
            return None
        raise Misfit
    try:
        number = Decimal(value.strip() if type(value) is str else str(value)).quantize(step)
    except (InvalidOperation, ValueError):
        raise Misfit from None
    if not number.is_finite() or len(number.as_tuple().digits) > precision:
        raise Misfit
    return number
