"""The gateway's work on one request body, apart from HTTP: validate, rate-limit, forward, reply.

Replies are JSON. 202 `{"accepted": n, "rejected": [...]}` when at least one event was
forwarded; each rejected event is listed as `{"index", "error", "field"}`. When nothing was
forwarded: 400 (bad input), 413 (too large), 429 (over the rate; with Retry-After), 503 (a
broker did not take the events; send them again), always with `error` and `field`.
Keeping this free of HTTP lets tests drive it directly, and lets the server stay a thin
layer that reads bodies and writes replies.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from iotlake.config import Settings
from services.gateway.forwarding import close_senders, forward, open_senders
from services.gateway.limits import RateLimiter
from services.gateway.validation import (
    MAX_EVENTS_PER_REQUEST,
    Event,
    Rejection,
    parse_events,
    validate_event,
)
from services.producers.transport import Sender, TransportError

log = logging.getLogger("iotlake.gateway")


@dataclass(frozen=True)
class Reply:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Gateway:
    """Turns one request body into forwarded events and a reply; HTTP-agnostic."""

    def __init__(self, settings: Settings, senders: Sequence[Sender]) -> None:
        self.max_event_bytes = settings.gateway.max_event_bytes
        self.max_body_bytes = self.max_event_bytes * MAX_EVENTS_PER_REQUEST
        self.limiter = RateLimiter(settings.gateway.max_events_per_second_per_client)
        self.senders = list(senders)
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
                    forward(self.senders, accepted)
                except TransportError as error:
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
        return {"status": "ok", "forwarding_to": [s.transport for s in self.senders]} | counts

    def close(self) -> None:
        close_senders(self.senders)


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
    return Gateway(settings, open_senders(settings, target, stream, topic, check))
