"""CSV and JSON-lines text as records, the one place that knows each format's layout.

Reading rows, inferring a schema and spotting new columns all start from the same records,
so a file reads the same way in each of them. CSV follows Python's `csv` dialect (quoted
fields may hold commas and newlines); blank lines are skipped in both formats. A JSON line
that is not an object stays raw text, for the rescued data column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from spark_jobs.io.autoloader.discovery import read_bytes
from spark_jobs.io.autoloader.options import AutoloaderOptions

# Inference and column detection read at most this much of a file.
INFERENCE_BYTES = 1 << 20


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
    """The columns a file carries: its CSV header, or every key of its JSON lines.

    A CSV file costs one line; a JSON file is read whole, since any line may add a key.
    """
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


def sample_values(options: AutoloaderOptions, name: str) -> Iterator[tuple[str, Any]]:
    """(column, value) pairs from the head of one file, for inference; unreadable files give
    none. A CSV column is named even when the file has no rows, so it is not lost."""
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
