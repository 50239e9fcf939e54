"""Where the gateway's events go: the Kinesis stream and/or the Kafka topic, via the senders.

The gateway forwards through the same senders as every producer
(`services.producers.transport`), used request by request: `deliver` returns only once the
broker acknowledged every record, so a 202 means the events are stored, and a broker that
does not take them within `DELIVERY_TIMEOUT` turns into a 503 the phone can retry. The
senders are checked when the gateway starts, so a missing stream or a stopped stack shows
at once, with the command that fixes it, and not on the first phone event.
"""

from __future__ import annotations

from collections.abc import Sequence

from iotlake.config import Settings
from services.gateway.validation import Event
from services.producers.transport import (
    KafkaSender,
    KinesisSender,
    MissingTarget,
    Record,
    Sender,
    TransportError,
    Unreachable,
)

TARGETS = ("kinesis", "kafka", "both")
# Seconds a request waits for the brokers before its phone is told to send again.
DELIVERY_TIMEOUT = 15.0


class GatewayError(Exception):
    """The gateway cannot start; the message says what to fix."""


def open_senders(
    settings: Settings, target: str, stream: str, topic: str, check: bool = True
) -> list[Sender]:
    """Senders for `target` (kinesis, kafka or both), checked reachable when `check`."""
    if target not in TARGETS:
        raise GatewayError(f"target {target!r} is unknown; use one of {', '.join(TARGETS)}")
    senders: list[Sender] = []
    try:
        if target in ("kinesis", "both"):
            senders.append(KinesisSender(settings, stream))
        if target in ("kafka", "both"):
            senders.append(
                KafkaSender(
                    settings,
                    topic,
                    linger=0.002,
                    client_id="iotlake-gateway",
                    delivery_timeout=DELIVERY_TIMEOUT,
                )
            )
        for sender in senders if check else []:
            _check(sender)
    except GatewayError:
        close_senders(senders)
        raise
    return senders


def _check(sender: Sender) -> None:
    """The sender's start-up check, with the command that fixes what it found."""
    try:
        sender.check()
    except MissingTarget as error:
        raise GatewayError(f"{error}; run `iotlake provision seismograph`") from None
    except Unreachable as error:
        raise GatewayError(f"{error}; is the stack up (`iotlake up`)?") from None
    except TransportError as error:
        raise GatewayError(str(error)) from None


def forward(senders: Sequence[Sender], events: Sequence[Event]) -> None:
    """Deliver the events to every sender, each record keyed `partition-<device>`.

    Raises TransportError when a broker did not take them; a sender earlier in the list may
    have stored them by then, so the phone's resend can duplicate them there.
    """
    records = [Record(event.partition_key, event.record) for event in events]
    for sender in senders:
        sender.deliver(records, DELIVERY_TIMEOUT)


def close_senders(senders: Sequence[Sender]) -> None:
    for sender in senders:
        sender.close(timeout=10.0)
