"""What the gateway accepts from a phone: one event object or an array, checked field by field.

An event is `{"magnitude": 3, "time": "2023-05-24T18:56:56.800Z", "device":
"client-61751e743724"}`, the fields the DAIS page sent: a finite magnitude >= 0 (an integer
stays an integer), the phone's time in ISO-8601 UTC with milliseconds and Z, a device id of
`client-` and 12 lowercase hex digits. Anything else is refused with the field it concerns
and a message a person can act on; the first problem found is the one reported.

A valid event becomes the record to forward: compact JSON in the page's field order
(magnitude, time, device), the text `JSON.stringify` gives on the page, so a record is
byte-for-byte what the phone sent when it sent it compactly. Numbers are kept as their
literals while checking, so `3`, `"3"` and `true` stay distinguishable, and an object naming
a field twice is refused because JSON parsers disagree on which value wins.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FIELDS = ("magnitude", "time", "device")
# The page batches about 5 events a second; 50 leaves room for a phone catching up after a
# network hiccup while keeping one request's body small (50 x 4 KiB by default).
MAX_EVENTS_PER_REQUEST = 50
DEVICE_PATTERN = re.compile(r"client-[0-9a-f]{12}")
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


class _Number(str):
    """A JSON number kept as its literal, so a number and a string stay distinguishable."""


class _DuplicateField(ValueError):
    """An object names the same field twice; JSON parsers disagree on which value wins."""


@dataclass(frozen=True)
class Rejection:
    """Why one event (or the whole request) was refused, and the HTTP status that fits."""

    error: str
    field: str | None = None
    status: int = 400

    def as_json(self, index: int | None = None) -> dict[str, Any]:
        shown: dict[str, Any] = {} if index is None else {"index": index}
        return shown | {"error": self.error, "field": self.field}


@dataclass(frozen=True)
class Event:
    """A valid event: its device and the exact record bytes to forward."""

    device: str
    record: bytes

    @property
    def partition_key(self) -> str:
        return f"partition-{self.device}"


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise _DuplicateField(name)
        found[name] = value
    return found


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if isinstance(value, _Number):
        return "number"
    names = {str: "string", bool: "boolean", dict: "object", list: "array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_text(value: Any) -> bool:
    """A JSON string (a number literal is kept as a str subclass, so check for it)."""
    return isinstance(value, str) and not isinstance(value, _Number)


def clip(text: str, limit: int = 40) -> str:
    """Echo at most `limit` characters of client input back in an error."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value: Any) -> str:
    return clip(json.dumps(value))


def parse_events(body: bytes) -> list[Any] | Rejection:
    """The request's event values (one object or an array of them), or why it is unreadable."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("body is not UTF-8 text; send JSON")
    try:
        document = json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_Number,
            object_pairs_hook=_unique_fields,
        )
    except _DuplicateField as duplicate:
        name = clip(str(duplicate))
        return Rejection(f"field '{name}' appears twice in one event", name)
    except (ValueError, RecursionError) as error:
        return Rejection(f"body is not valid JSON: {error}")
    values = document if isinstance(document, list) else [document]
    if not values:
        return Rejection("empty array: send one event object or an array of 1 or more")
    if len(values) > MAX_EVENTS_PER_REQUEST:
        return Rejection(
            f"{len(values)} events in one request; at most {MAX_EVENTS_PER_REQUEST}",
            status=413,
        )
    return values


def _magnitude(value: Any) -> int | float | Rejection:
    """The magnitude as a number, keeping an integer an integer (as the page sends it)."""
    if not isinstance(value, _Number):
        return Rejection(f"magnitude must be a number, got {_json_type(value)}", "magnitude")
    number = float(value)
    if not math.isfinite(number):
        return Rejection(f"magnitude must be a finite number, got {value}", "magnitude")
    if number < 0:
        return Rejection(f"magnitude must be >= 0, got {value}", "magnitude")
    is_integer = not any(mark in value for mark in ".eE")
    return int(value) if is_integer else number


def _check_time(value: Any) -> Rejection | None:
    example = "like 2023-05-24T18:56:56.800Z"
    if not _is_text(value):
        return Rejection(f"time must be a string {example}, got {_json_type(value)}", "time")
    if not TIME_PATTERN.fullmatch(value):
        return Rejection(
            f"time must be ISO-8601 UTC with milliseconds and Z, {example}; got {_shown(value)}",
            "time",
        )
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return Rejection(f"time {_shown(value)} is not a real date and time", "time")
    return None


def _check_device(value: Any) -> Rejection | None:
    if _is_text(value) and DEVICE_PATTERN.fullmatch(value):
        return None
    shown = _shown(value) if _is_text(value) else _json_type(value)
    return Rejection(
        "device must be 'client-' and 12 lowercase hex digits, like client-61751e743724; "
        f"got {shown}",
        "device",
    )


def validate_event(value: Any, max_event_bytes: int) -> Event | Rejection:
    """One event checked field by field; the first problem found is the one reported."""
    if not isinstance(value, dict):
        return Rejection(
            f"an event must be a JSON object with {', '.join(FIELDS)}; got {_json_type(value)}"
        )
    for name in value:
        if name not in FIELDS:
            name = clip(name)
            return Rejection(f"unknown field '{name}'; an event has only {', '.join(FIELDS)}", name)
    for name in FIELDS:
        if name not in value:
            return Rejection(f"missing field '{name}'", name)
    magnitude = _magnitude(value["magnitude"])
    if isinstance(magnitude, Rejection):
        return magnitude
    problem = _check_time(value["time"]) or _check_device(value["device"])
    if problem:
        return problem
    record = json.dumps(
        {"magnitude": magnitude, "time": value["time"], "device": value["device"]},
        separators=(",", ":"),
    ).encode()
    if len(record) > max_event_bytes:
        return Rejection(f"event is {len(record)} bytes; at most {max_event_bytes}", status=413)
    return Event(value["device"], record)
