"""The seismograph's ingest gateway over HTTP(S): serves the phone page, takes its events.

The DAIS 2023 page wrote each event straight to Kinesis with Cognito credentials. Locally a
phone cannot hold emulator credentials, so it POSTs to this gateway instead, which checks
every event and forwards the valid ones, unchanged in meaning, to the Kinesis stream
`seismograph.stream` (`dais2023`; PartitionKey `partition-<device>`) and/or the Kafka topic of
that name (same key), by `seismograph.transport` unless told otherwise.

This module is only the HTTP layer: routes, body limits, TLS, a thread per connection and a
clean stop. What happens to a body is `services.gateway.ingest`'s business (validation in
`validation`, rate limits in `limits`, brokers in `forwarding`).

`POST /events` takes one event object or a JSON array of them. Limits: at most
MAX_EVENTS_PER_REQUEST events per request, a body of at most `gateway.max_event_bytes` x
MAX_EVENTS_PER_REQUEST bytes, each forwarded record at most `gateway.max_event_bytes`, and per
device a token bucket of `gateway.max_events_per_second_per_client` events/s (bursts up to
one second's worth). `GET /` serves the page, `GET /healthz` the gateway's counts.
"""

from __future__ import annotations

import json
import logging
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iotlake.config import Settings
from services.gateway.forwarding import GatewayError
from services.gateway.ingest import Gateway, build_gateway
from services.gateway.validation import MAX_EVENTS_PER_REQUEST, clip

log = logging.getLogger("iotlake.gateway")

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
            message = f"no page at {clip(path)}; try / or /events"
            self._send_json(404, {"error": message, "field": None})

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path != "/events":
            self.close_connection = True  # its body was not read
            message = f"POST to /events, not {clip(path)}"
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
            message = f"bad Content-Length {clip(length)!r}"
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
    stop: threading.Event,
    target: str | None = None,
    host: str | None = None,
    port: int | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
) -> None:
    """Run the gateway until `stop` is set, then finish in-flight requests and stop."""
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
    names = ", ".join(sender.transport for sender in gateway.senders)
    log.info("serving the phone page at %s/ and forwarding events to %s", server.url, names)
    if server.scheme == "http" and server.server_address[0] not in ("127.0.0.1", "localhost"):
        log.info("phones only send motion events over HTTPS: pass --certfile and --keyfile")
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="gateway-http"
    )
    serving.start()
    try:
        stop.wait()
        log.info("received %s, stopping", getattr(stop, "received", None) or "a stop")
    finally:
        server.shutdown()
        serving.join()
        server.server_close()
        drained = gateway.drain(timeout=20)
        gateway.close()
        log.info("stopped%s", "" if drained else " (some requests were still forwarding)")


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("gateway")
