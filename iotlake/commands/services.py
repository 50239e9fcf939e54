"""The service commands besides the producers: the MQTT -> Kafka bridge, the phone-page
gateway and the S3 + Kinesis emulator. `iotlake.cli` registers them on the root app."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Literal

import typer

from iotlake.commands.common import (
    ProgressEvery,
    StopTimeout,
    fail,
    require,
    run_as_service,
)
from iotlake.config import Settings


def bridge(
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (default: arduino.bridge_client_id)")
    ] = None,
    session_expiry: Annotated[
        int,
        typer.Option(
            help="seconds the broker keeps the session and queues messages while the bridge "
            "is away (one week)"
        ),
    ] = 7 * 24 * 3600,
    progress_every: ProgressEvery = 10.0,
    stop_timeout: StopTimeout = 30.0,
) -> None:
    """Forward the Arduino MQTT topics to their Kafka topics, at least once, in order."""
    from services.arduino import bridge as mqtt_kafka

    options = mqtt_kafka.BridgeOptions(
        client_id=client_id,
        session_expiry_seconds=session_expiry,
        progress_every=progress_every,
        stop_timeout=stop_timeout,
    )
    require(["mqtt", "kafka"])
    run_as_service(lambda current, stop: mqtt_kafka.main(current, options, stop))


def gateway(
    host: Annotated[
        str | None,
        typer.Option(help="bind address (default: gateway.host); 0.0.0.0 for phones on the LAN"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: gateway.port)")] = None,
    to: Annotated[
        Literal["kinesis", "kafka", "both"] | None,
        typer.Option(
            "--to", "--target", help="kinesis, kafka or both (default: seismograph.transport)"
        ),
    ] = None,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate: phones send motion only over HTTPS")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS key (PEM)")] = None,
) -> None:
    """Serve the seismograph phone page and forward its events to `seismograph.stream`."""
    from services.gateway.forwarding import GatewayError
    from services.gateway.server import serve

    def work(current: Settings, stop: threading.Event) -> int:
        try:
            serve(
                current, stop, target=to, host=host, port=port, certfile=certfile, keyfile=keyfile
            )
        except GatewayError as error:
            raise fail(str(error)) from None
        return 0

    run_as_service(work)


def emulator(
    port: Annotated[int, typer.Option(help="port to serve S3 and Kinesis on")],
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    journal: Annotated[
        Path | None, typer.Option(help="journal file; none keeps state in memory")
    ] = None,
) -> None:
    """The embedded S3 + Kinesis emulator (moto) in the foreground; `iotlake up` starts it."""
    from services.embedded import aws_emulator

    aws_emulator.serve(host, port, journal)
