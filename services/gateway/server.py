"""The seismograph's ingest gateway: serves the phone page and forwards its events.

The DAIS 2023 page wrote each event straight to Kinesis with Cognito credentials. Locally a
phone cannot hold emulator credentials, so it POSTs to this gateway instead, which checks
every event and forwards the valid ones, unchanged in meaning, to the Kinesis stream
`seismograph.stream` (`dais2023`; PartitionKey `partition-<device>`) and/or the Kafka topic of
that name (same key), by `seismograph.transport` unless told otherwise.

`POST /events` takes one event object or a JSON array of them:
`{"magnitude": 3, "time": "2023-05-24T18:56:56.800Z", "device": "client-61751e743724"}`.
Limits: at most MAX_EVENTS_PER_REQUEST events per request, a body of at most
`gateway.max_event_bytes` x MAX_EVENTS_PER_REQUEST bytes, each forwarded record at most
`gateway.max_event_bytes`, and per device a token bucket of
`gateway.max_events_per_second_per_client` events/s (bursts up to one second's worth).

Replies are JSON. 202 `{"accepted": n, "rejected": [...]}` when at least one event was
forwarded; each rejected event is listed as `{"index", "error", "field"}`. When nothing was
forwarded: 400 (bad input), 413 (too large), 429 (over the rate; with Retry-After), 503 (a
broker did not take the events; send them again), always with `error` and `field`.

Each record is the event as compact JSON in the page's field order (magnitude, time,
device), the text `JSON.stringify` gives on the page, so a record is byte-for-byte what the
phone sent when it sent it compactly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import re
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from iotlake.config import ConfigError, Settings, load_settings

log = logging.getLogger("iotlake.gateway")

TARGETS = ("kinesis", "kafka", "both")
FIELDS = ("magnitude", "time", "device")
# The page batches about 5 events a second; 50 leaves room for a phone catching up after a
# network hiccup while keeping one request's body small (50 x 4 KiB by default).
MAX_EVENTS_PER_REQUEST = 50
DEVICE_PATTERN = re.compile(r"client-[0-9a-f]{12}")
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class GatewayError(Exception):
    """The gateway cannot start; the message says what to fix."""


class ForwardError(Exception):
    """A broker did not take a batch of valid events."""


# --- validation -----------------------------------------------------------------------


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


def _clip(text: str, limit: int = 40) -> str:
    """Echo at most `limit` characters of client input back in an error."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value: Any) -> str:
    return _clip(json.dumps(value))


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
        name = _clip(str(duplicate))
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
            name = _clip(name)
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


# --- rate limit -----------------------------------------------------------------------


class RateLimiter:
    """A token bucket per device: `rate` events/s on average, bursts up to one second's worth.

    The burst allowance lets a page send its ~1 s batch in one request. Buckets that have
    refilled completely carry no information and are pruned, so random device ids cannot
    grow memory without bound.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._prune_at = 10_000

    def admit(self, devices: Sequence[str]) -> list[bool]:
        """Take one token per event, in order, all at the same instant (so a batch is fair)."""
        with self._lock:
            now = self._clock()
            admitted = [self._take(device, now) for device in devices]
            if len(self._buckets) > self._prune_at:
                self._prune(now)
            return admitted

    def _take(self, device: str, now: float) -> bool:
        tokens, last = self._buckets.get(device, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[device] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    def _prune(self, now: float) -> None:
        self._buckets = {
            device: (tokens, last)
            for device, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate < self.capacity
        }
        self._prune_at = max(10_000, 2 * len(self._buckets))


# --- forwarders -----------------------------------------------------------------------


class Forwarder(Protocol):
    name: str

    def check(self) -> None: ...

    def send(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class KinesisForwarder:
    """PutRecords to one stream; entries the stream refuses (throttling) are retried."""

    name = "kinesis"
    batch_limit = 500  # PutRecords' own limit

    def __init__(self, settings: Settings, stream: str, attempts: int = 5) -> None:
        import boto3
        from botocore.config import Config

        self.stream = stream
        self.attempts = attempts
        config = Config(
            connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3}
        )
        self._client = boto3.client("kinesis", config=config, **settings.aws.boto3_kwargs())
        self._endpoint = settings.aws.endpoint_url or f"AWS {settings.aws.region}"

    def check(self) -> None:
        """Fail at start, not on the first phone event, when the stream is not there."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.describe_stream_summary(StreamName=self.stream)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise GatewayError(f"Kinesis at {self._endpoint}: {error}") from None
            raise GatewayError(
                f"Kinesis stream '{self.stream}' does not exist at {self._endpoint}; "
                "run `iotlake provision seismograph`"
            ) from None
        except BotoCoreError as error:
            raise GatewayError(
                f"cannot reach Kinesis at {self._endpoint} ({error}); is the stack up "
                "(`iotlake up`)?"
            ) from None

    def send(self, events: Sequence[Event]) -> None:
        for start in range(0, len(events), self.batch_limit):
            self._put(events[start : start + self.batch_limit])

    def _put(self, events: Sequence[Event]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        pending = [{"Data": e.record, "PartitionKey": e.partition_key} for e in events]
        failure: dict[str, Any] = {}
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(0.05 * 2**attempt)
            try:
                results = self._client.put_records(StreamName=self.stream, Records=pending)
            except (BotoCoreError, ClientError) as error:
                raise ForwardError(f"Kinesis stream '{self.stream}': {error}") from error
            failed = [
                (entry, result)
                for entry, result in zip(pending, results["Records"], strict=True)
                if result.get("ErrorCode")
            ]
            if not failed:
                return
            pending = [entry for entry, _ in failed]
            failure = failed[0][1]
        raise ForwardError(
            f"Kinesis stream '{self.stream}': {len(pending)} record(s) still refused after "
            f"{self.attempts} attempts ({failure.get('ErrorCode')}: {failure.get('ErrorMessage')})"
        )

    def close(self) -> None:
        self._client.close()


class _Deliveries:
    """One request's Kafka delivery reports; `finished` is set when every event has one."""

    def __init__(self, expected: int) -> None:
        self.remaining = expected
        self.errors: list[str] = []
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def report(self, error: Any, _message: Any) -> None:
        with self._lock:
            if error is not None:
                self.errors.append(str(error))
            self.remaining -= 1
            if self.remaining <= 0:
                self.finished.set()


class KafkaForwarder:
    """Produces to one topic and waits for the broker's acknowledgement of every event.

    One thread serves all delivery reports, so a request waits only for its own events
    instead of every request thread taking turns polling the producer.
    """

    name = "kafka"

    def __init__(self, settings: Settings, topic: str, timeout: float = 15.0) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.timeout = timeout
        self._bootstrap = settings.kafka.bootstrap_servers
        self._producer = Producer(
            {
                "bootstrap.servers": self._bootstrap,
                "client.id": "iotlake-gateway",
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": int(timeout * 1000),
                "logger": logging.getLogger("iotlake.gateway.kafka"),
            }
        )
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, daemon=True)
        self._poller.start()

    def _serve_reports(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    def check(self) -> None:
        """Fail at start when the broker is down or the topic is missing."""
        from confluent_kafka import KafkaException

        try:
            topics = self._producer.list_topics(timeout=5).topics
        except KafkaException as error:
            raise GatewayError(
                f"cannot reach Kafka at {self._bootstrap} ({error}); is the stack up "
                "(`iotlake up`)?"
            ) from None
        if self.topic not in topics:
            raise GatewayError(
                f"Kafka topic '{self.topic}' does not exist at {self._bootstrap}; "
                "run `iotlake provision seismograph`"
            )

    def send(self, events: Sequence[Event]) -> None:
        deliveries = _Deliveries(len(events))
        for event in events:
            self._produce(event, deliveries)
        if not deliveries.finished.wait(self.timeout):
            raise ForwardError(
                f"Kafka topic '{self.topic}': not acknowledged within {self.timeout:g}s"
            )
        if deliveries.errors:
            raise ForwardError(f"Kafka topic '{self.topic}': {deliveries.errors[0]}")

    def _produce(self, event: Event, deliveries: _Deliveries) -> None:
        for _ in range(50):
            try:
                self._producer.produce(
                    self.topic,
                    key=event.partition_key.encode(),
                    value=event.record,
                    on_delivery=deliveries.report,
                )
                return
            except BufferError:  # the local queue is full: give the reports time to drain it
                time.sleep(0.1)
        raise ForwardError(f"Kafka topic '{self.topic}': producer queue stays full")

    def close(self) -> None:
        self._producer.flush(10)
        self._stopping.set()
        self._poller.join(timeout=5)


# --- the gateway ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Gateway:
    """Turns one request body into forwarded events and a reply; HTTP-agnostic."""

    def __init__(self, settings: Settings, forwarders: Sequence[Forwarder]) -> None:
        self.max_event_bytes = settings.gateway.max_event_bytes
        self.max_body_bytes = self.max_event_bytes * MAX_EVENTS_PER_REQUEST
        self.limiter = RateLimiter(settings.gateway.max_events_per_second_per_client)
        self.forwarders = list(forwarders)
        self.counts = {"accepted": 0, "rejected": 0, "forward_errors": 0}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    def handle(self, body: bytes) -> Reply:
        """Validate, rate-limit and forward the events in `body`; say what happened to each."""
        with self._tracked():
            values = parse_events(body)
            if isinstance(values, Rejection):  # the request as a whole is unusable
                self._count(rejected=1)
                payload = values.as_json() | {"accepted": 0}
                return Reply(values.status, payload)
            outcomes = [validate_event(value, self.max_event_bytes) for value in values]
            outcomes = self._rate_limit(outcomes)
            accepted = [outcome for outcome in outcomes if isinstance(outcome, Event)]
            rejected = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, Rejection)]
            if accepted:
                try:
                    self._forward(accepted)
                except ForwardError as error:
                    log.error("forward failed, %d event(s) refused: %s", len(accepted), error)
                    self._count(forward_errors=1)
                    advice = "send these events again (some may already have been forwarded)"
                    payload = {"error": f"{error}; {advice}", "field": None}
                    return Reply(503, payload, {"Retry-After": "1"})
            self._count(accepted=len(accepted), rejected=len(rejected))
            if not accepted:
                return _refusal(rejected)
            listed = [rejection.as_json(index) for index, rejection in rejected]
            return Reply(202, {"accepted": len(accepted), "rejected": listed})

    def _rate_limit(self, outcomes: list[Event | Rejection]) -> list[Event | Rejection]:
        """Replace each valid event over its device's rate by a 429 rejection."""
        valid = [(i, outcome) for i, outcome in enumerate(outcomes) if isinstance(outcome, Event)]
        admitted = self.limiter.admit([event.device for _, event in valid])
        limited = list(outcomes)
        for (index, event), allowed in zip(valid, admitted, strict=True):
            if not allowed:
                limited[index] = Rejection(
                    f"device {event.device} is over the rate limit of "
                    f"{self.limiter.rate:g} events/s; slow down",
                    "device",
                    429,
                )
        return limited

    def _forward(self, events: list[Event]) -> None:
        for forwarder in self.forwarders:
            forwarder.send(events)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, amount in increments.items():
                self.counts[name] += amount

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait for requests being forwarded to finish, so a stop loses no accepted event."""
        with self._lock:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def health(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.counts)
        return {"status": "ok", "forwarding_to": [f.name for f in self.forwarders]} | counts

    def close(self) -> None:
        for forwarder in self.forwarders:
            forwarder.close()


def _refusal(rejected: list[tuple[int, Rejection]]) -> Reply:
    """The reply when nothing was forwarded: the first reason on top, all of them listed."""
    statuses = {rejection.status for _, rejection in rejected}
    status = statuses.pop() if len(statuses) == 1 else 400
    first = rejected[0][1]
    payload = {
        "error": first.error,
        "field": first.field,
        "accepted": 0,
        "rejected": [rejection.as_json(index) for index, rejection in rejected],
    }
    return Reply(status, payload, {"Retry-After": "1"} if status == 429 else {})


def build_gateway(
    settings: Settings,
    target: str | None = None,
    stream: str | None = None,
    topic: str | None = None,
    check: bool = True,
) -> Gateway:
    """A gateway forwarding to `target` (kinesis, kafka or both; by default the configured
    `seismograph.transport`), checked reachable. The stream and topic default to
    `seismograph.stream`, where the pipeline reads."""
    target = target or settings.seismograph.transport
    stream = stream or settings.seismograph.stream
    topic = topic or settings.seismograph.stream
    if target not in TARGETS:
        raise GatewayError(f"target {target!r} is unknown; use one of {', '.join(TARGETS)}")
    forwarders: list[Forwarder] = []
    try:
        if target in ("kinesis", "both"):
            forwarders.append(KinesisForwarder(settings, stream))
        if target in ("kafka", "both"):
            forwarders.append(KafkaForwarder(settings, topic))
        for forwarder in forwarders if check else []:
            forwarder.check()
    except GatewayError:
        for forwarder in forwarders:
            forwarder.close()
        raise
    return Gateway(settings, forwarders)


# --- HTTP -----------------------------------------------------------------------------


def _load_pages() -> dict[str, tuple[bytes, str]]:
    return {
        route: ((STATIC_DIR / name).read_bytes(), content_type)
        for route, (name, content_type) in PAGES.items()
    }


class GatewayServer(ThreadingHTTPServer):
    """A thread per connection; the gateway object holds all shared state."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        self.pages = _load_pages()
        self.scheme = "http"
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line instead of a traceback (phones drop connections, TLS fails...)."""
        error = sys.exc_info()[1]
        log.debug("connection from %s ended: %r", client_address[0], error)


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"  # keep-alive: a phone posts about once a second
    server_version = "iotlake-gateway"
    timeout = 15  # seconds a connection may stay silent (also bounds slow bodies)
    # Headers and body go out in two writes; with Nagle on, each reply would wait ~40 ms
    # for the client's delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        path = urlsplit(self.path).path
        if path in self.server.pages:
            content, content_type = self.server.pages[path]
            self._send(200, content, content_type, PAGE_HEADERS)
        elif path == "/healthz":
            self._send_json(200, self.server.gateway.health())
        elif path == "/events":
            self._send_json(
                405, {"error": "POST events to /events", "field": None}, {"Allow": "POST"}
            )
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            message = f"no page at {_clip(path)}; try / or /events"
            self._send_json(404, {"error": message, "field": None})

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path != "/events":
            self.close_connection = True  # its body was not read
            message = f"POST to /events, not {_clip(path)}"
            self._send_json(404, {"error": message, "field": None})
            return
        body = self._read_body()
        if body is not None:
            reply = self.server.gateway.handle(body)
            self._send_json(reply.status, reply.payload, reply.headers)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering why it cannot be taken."""
        limit = self.server.gateway.max_body_bytes
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            self.close_connection = True
            self._send_json(411, {"error": "send a Content-Length header", "field": None})
            return None
        if not (length.isascii() and length.isdigit()):
            self.close_connection = True
            message = f"bad Content-Length {_clip(length)!r}"
            self._send_json(400, {"error": message, "field": None})
            return None
        size = int(length)
        if size > limit:
            self._discard(size, limit)
            self.close_connection = True
            message = (
                f"body is {size} bytes; at most {limit} ({MAX_EVENTS_PER_REQUEST} events of "
                f"at most {self.server.gateway.max_event_bytes} bytes)"
            )
            self._send_json(413, {"error": message, "field": None})
            return None
        body = self.rfile.read(size)
        if len(body) < size:  # the client went away mid-body
            self.close_connection = True
            return None
        return body

    def _discard(self, size: int, limit: int) -> None:
        """Read a moderately oversized body so the client sees the 413 rather than a reset."""
        remaining = size if size <= 8 * limit else 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        content = json.dumps(payload).encode()
        self._send(status, content, "application/json", headers or {})

    def _send(
        self,
        status: int,
        content: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


def make_server(
    gateway: Gateway,
    host: str,
    port: int,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
) -> GatewayServer:
    """Bind the gateway's HTTP(S) server; port 0 picks a free port."""
    try:
        server = GatewayServer((host, port), gateway)
    except OSError as error:
        message = f"cannot listen on {host}:{port} ({error}); pick another --port"
        raise GatewayError(message) from None
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as error:
            server.server_close()
            raise GatewayError(f"cannot load TLS certificate {certfile}: {error}") from None
        # The handshake runs in the connection's thread, so a slow client cannot stall accept.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.scheme = "https"
    return server


def serve(
    settings: Settings,
    target: str | None = None,
    host: str | None = None,
    port: int | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
) -> None:
    """Run the gateway until SIGTERM or SIGINT, then finish in-flight requests and stop."""
    gateway = build_gateway(settings, target)
    try:
        server = make_server(
            gateway,
            host if host is not None else settings.gateway.host,
            port if port is not None else settings.gateway.port,
            certfile,
            keyfile,
        )
    except GatewayError:
        gateway.close()
        raise
    restore = _stop_on_signals(server)
    names = ", ".join(f.name for f in gateway.forwarders)
    log.info("serving the phone page at %s/ and forwarding events to %s", server.url, names)
    if server.scheme == "http" and server.server_address[0] not in ("127.0.0.1", "localhost"):
        log.info("phones only send motion events over HTTPS: pass --certfile and --keyfile")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        restore()
        server.server_close()
        drained = gateway.drain(timeout=20)
        gateway.close()
        log.info("stopped%s", "" if drained else " (some requests were still forwarding)")


def _stop_on_signals(server: GatewayServer) -> Callable[[], None]:
    """Make SIGTERM/SIGINT stop `serve_forever`; return a function restoring the handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, _frame: Any) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: call it aside
        # (and log there too: a signal handler must not wait on the logging lock).
        def shut_down() -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            server.shutdown()

        threading.Thread(target=shut_down, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m services.gateway.server`: serve the phone page and forward its events."""
    parser = argparse.ArgumentParser(
        prog="iotlake gateway", description="Serve the seismograph phone page and ingest events."
    )
    parser.add_argument(
        "--host",
        help="interface to bind (default: gateway.host in settings, 127.0.0.1); "
        "0.0.0.0 lets phones on the same network connect",
    )
    parser.add_argument("--port", type=int, help="port (default: gateway.port in settings)")
    parser.add_argument(
        "--target", choices=TARGETS, help="where events go (default: seismograph.transport)"
    )
    parser.add_argument("--certfile", help="TLS certificate (PEM); phones need HTTPS for motion")
    parser.add_argument("--keyfile", help="TLS private key (PEM), if not inside --certfile")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
        serve(settings, args.target, args.host, args.port, args.certfile, args.keyfile)
    except (ConfigError, GatewayError) as error:
        log.error("%s", error)
        return 2 if isinstance(error, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
