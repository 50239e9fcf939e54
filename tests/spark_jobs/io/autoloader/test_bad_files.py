"""Bad files in a landing path never stop the cloudFiles source and never lose a line.

Empty files, header-only files, binary files, malformed lines, rows with too few or too
many fields, values of the wrong type and unknown fields land beside good files; the
source reads them in one run. Every non-blank line becomes exactly one row (a file that is
not UTF-8 text becomes one row), and every row that did not parse fully says why in
`_rescued_data`. The expected rows are counted from the files' text in Python.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.landing import rows_of

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\x01"
CSV_HINTS = "device_id int, temperature double, timestamp timestamp"


def _text_lines(data: bytes, header: bool) -> int | None:
    """Non-blank data lines of a file, or None when it is not UTF-8 text (one row)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    lines = [line for line in text.splitlines() if line.strip()]
    return max(len(lines) - 1, 0) if header else len(lines)


def _expected_rows(files: dict[str, bytes], header: bool) -> dict[str, int]:
    """Rows per file: its data lines, or one for a file that is not text."""
    counts = {name: _text_lines(data, header) for name, data in files.items()}
    return {name: 1 if count is None else count for name, count in counts.items()}


def _rows_by_file(rows: list[dict], files: dict[str, bytes], header: bool) -> dict[str, list[dict]]:
    """The rows by the name of their file, checked to be one for each of its data lines (one
    for a file that is not text): no line lost, no row made up."""
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(Path(row["_file_path"]).name, []).append(row)
    expected = _expected_rows(files, header)
    assert {name: len(group) for name, group in found.items()} == {
        name: count for name, count in expected.items() if count
    }
    assert len(rows) == sum(expected.values())
    return found


def _reason(row: dict) -> dict:
    return json.loads(row["_rescued_data"]) if row["_rescued_data"] else {}


def test_bad_csv_files_and_lines_become_rows_with_a_reason(spark, landing):
    # All land before the first start, so schema inference reads the bad files too.
    files = {
        "good.csv": b"device_id,temperature,timestamp\n1,20.5,2024-01-01 10:00:00\n",
        "empty.csv": b"",
        "header-only.csv": b"device_id,temperature,timestamp\n",
        "photo.csv": PNG,
        "blank-lines.csv": b"device_id,temperature,timestamp\n\n2,21,2024-01-01 10:00:01\n\n",
        "wrong-types.csv": b"device_id,temperature,timestamp\nseven,hot,yesterday\n",
        "long-row.csv": b"device_id,temperature,timestamp\n3,22,2024-01-01 10:00:02,extra,more\n",
        "bom.csv": b"\xef\xbb\xbfdevice_id,temperature,timestamp\n4,23,2024-01-01 10:00:03\n",
    }
    for name, data in files.items():
        landing.land(name, data)

    rows = rows_of(landing.run(spark, hints=CSV_HINTS))

    by_file = _rows_by_file(rows, files, header=True)
    (good,) = by_file["good.csv"]
    assert (good["device_id"], good["temperature"], good["_rescued_data"]) == (1, 20.5, None)
    (unreadable,) = by_file["photo.csv"]
    assert _reason(unreadable)["_error"].startswith("file is not UTF-8 text")
    (wrong,) = by_file["wrong-types.csv"]
    assert (wrong["device_id"], wrong["temperature"], wrong["timestamp"]) == (None, None, None)
    assert {k: v for k, v in _reason(wrong).items() if k != "_file_path"} == {
        "device_id": "seven",
        "temperature": "hot",
        "timestamp": "yesterday",
    }
    (long_row,) = by_file["long-row.csv"]
    assert long_row["device_id"] == 3
    assert _reason(long_row)["_c3"] == "extra" and _reason(long_row)["_c4"] == "more"
    (bom,) = by_file["bom.csv"]
    assert (bom["device_id"], bom["_rescued_data"]) == (4, None)
    for row in rows:
        if row["_rescued_data"]:
            assert _reason(row)["_file_path"] == row["_file_path"]


def test_a_csv_row_with_too_few_fields_is_kept_with_the_missing_columns_null(spark, landing):
    landing.land("short.csv", "device_id,temperature,timestamp\n5\n6,24,2024-01-01 10:00:04\n")

    rows = sorted(rows_of(landing.run(spark, hints=CSV_HINTS)), key=lambda r: r["device_id"])

    # As Auto Loader does: the row is kept, the columns it lacks are NULL (bronze rules on
    # those columns count it: e.g. the manufacturing `valid timestamp` expectation).
    assert [(r["device_id"], r["temperature"], r["timestamp"]) for r in rows][0] == (5, None, None)
    assert len(rows) == 2


def test_bad_json_files_and_lines_become_rows_with_a_reason(spark, landing):
    files = {
        "good.json": b'{"id": 1, "text": "fine", "score": 0.5}\n',
        "empty.json": b"",
        "whitespace.json": b"  \n\n\t\n",
        "photo.json": PNG,
        "broken.json": b'{"id": 2, "text": "ok", "score": 1}\n{"id": 3, "text": \n[1, 2]\n42\n',
        "wrong-types.json": b'{"id": "four", "text": 5, "score": "high"}\n',
        "unknown-field.json": b'{"id": 6, "text": "x", "score": 0, "lang": "de"}\n',
        "nested.json": b'{"id": 7, "text": {"body": "hi"}, "score": [1]}\n',
    }
    options = {"hints": "id bigint, text string, score double", "schemaEvolutionMode": "rescue"}
    # The schema is inferred from the first file; the others land after it is stored.
    landing.land("good.json", files["good.json"])
    first = landing.run(spark, fmt="json", **options)
    for name, data in files.items():
        if name != "good.json":
            landing.land(name, data)

    rows = rows_of(first) + rows_of(landing.run(spark, fmt="json", **options))

    by_file = _rows_by_file(rows, files, header=False)
    corrupt = [_reason(r)["_corrupt_record"] for r in by_file["broken.json"] if r["id"] is None]
    assert corrupt == ['{"id": 3, "text": ', "[1, 2]", "42"]
    (wrong,) = by_file["wrong-types.json"]
    assert (wrong["id"], wrong["score"]) == (None, None)
    assert {"id": "four", "score": "high"}.items() <= _reason(wrong).items()
    (unknown,) = by_file["unknown-field.json"]
    assert (unknown["id"], _reason(unknown)["lang"]) == (6, "de")
    (nested,) = by_file["nested.json"]
    assert json.loads(nested["text"]) == {"body": "hi"}  # kept as JSON text, not lost
    assert _reason(by_file["photo.json"][0])["_error"].startswith("file is not UTF-8 text")


def test_an_empty_first_file_does_not_stop_the_stream(spark, landing):
    landing.land("empty.csv", b"")
    first = rows_of(landing.run(spark, hints=CSV_HINTS))
    landing.land("later.csv", b"device_id,temperature,timestamp\n8,25,2024-01-01 10:00:05\n")

    later = rows_of(landing.run(spark, hints=CSV_HINTS))

    assert first == []
    assert [(r["device_id"], r["temperature"]) for r in later] == [(8, 25.0)]


def test_an_unclosed_quote_keeps_the_rest_of_its_file_as_text_and_stops_nothing(spark, landing):
    broken = b'device_id,temperature,timestamp\n9,"26,2024-01-01 10:00:06\n10,27,x\n'
    landing.land("unclosed-quote.csv", broken)
    landing.land("after.csv", b"device_id,temperature,timestamp\n11,28,2024-01-01 10:00:07\n")

    rows = {r["device_id"]: r for r in rows_of(landing.run(spark, hints=CSV_HINTS))}

    # CSV quoting lets a value span lines, so an unclosed quote runs to the end of its file:
    # those lines become one value, kept (rescued, as it is not a number) rather than lost.
    (swallowed,) = [r for r in rows.values() if r["_file_path"].endswith("unclosed-quote.csv")]
    assert _reason(swallowed)["temperature"] == "26,2024-01-01 10:00:06\n10,27,x\n"
    assert rows[11]["temperature"] == 28.0  # the next file is read as usual
