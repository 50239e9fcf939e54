"""The gateway forwards valid phone events to Kinesis and Kafka and refuses bad ones clearly.

Every test talks HTTP to a real gateway in this process (or a child process) that forwards
to the embedded stack's Kinesis stream and Kafka topic `dais2023`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from iotlake.config import Settings
from services.embedded.spec import free_port
from services.gateway.forwarding import GatewayError
from services.gateway.ingest import Gateway, build_gateway
from services.gateway.validation import MAX_EVENTS_PER_REQUEST
from services.producers.transport import KinesisSender
from tests.support.gateway import KafkaTail, KinesisTail, running_gateway
from tests.support.settings import settings_env

REPO = Path(__file__).resolve().parents[3]


def new_device() -> str:
    return f"client-{secrets.token_hex(6)}"


def event(device: str, magnitude: Any = 3, offset_ms: int = 0, **extra: Any) -> dict[str, Any]:
    moment = datetime(2023, 5, 24, 18, 56, 56, 800_000, tzinfo=UTC)
    moment += timedelta(milliseconds=offset_ms)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return {"magnitude": magnitude, "time": stamp, "device": device} | extra


def compact(value: Any) -> bytes:
    """The text the page's JSON.stringify produces."""
    return json.dumps(value, separators=(",", ":")).encode()


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], http.client.HTTPMessage]:
    """POST `body` to `url`/events; the status, the JSON reply and the reply headers."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(
            "POST", "/events", body, {"Content-Type": "application/json"} | (headers or {})
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read()), response.headers
    finally:
        connection.close()


def get(url: str, path: str) -> tuple[int, bytes, http.client.HTTPMessage]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()


@pytest.fixture(scope="module")
def gateway_url(stack: Settings) -> Iterator[str]:
    with running_gateway(stack, "both") as server:
        yield server.url


# --- forwarding -----------------------------------------------------------------------


def test_valid_event_reaches_kinesis_byte_for_byte_with_partition_key(stack, gateway_url):
    device = new_device()
    body = compact(event(device, magnitude=7))
    tail = KinesisTail(stack)

    status, reply, _ = post(gateway_url, body)
    records = tail.collect(f"partition-{device}", 1)

    assert (status, reply) == (202, {"accepted": 1, "rejected": []})
    assert [record["Data"] for record in records] == [body]
    assert records[0]["PartitionKey"] == f"partition-{device}"


def test_batch_reaches_kafka_keyed_by_partition_device(stack, gateway_url):
    device = new_device()
    events = [event(device, magnitude=m, offset_ms=210 * m) for m in range(4)]
    tail = KafkaTail(stack)
    try:
        status, reply, _ = post(gateway_url, compact(events))
        messages = tail.collect(f"partition-{device}".encode(), 4)
    finally:
        tail.close()

    assert (status, reply["accepted"]) == (202, 4)
    assert messages == [(f"partition-{device}".encode(), compact(e)) for e in events]


def test_record_is_compact_json_in_page_field_order_whatever_the_spacing(stack, gateway_url):
    device = new_device()
    sent = event(device, magnitude=12)
    body = json.dumps({"device": sent["device"], "time": sent["time"], "magnitude": 12}, indent=2)
    tail = KinesisTail(stack)

    status, _, _ = post(gateway_url, body.encode())
    records = tail.collect(f"partition-{device}", 1)

    assert status == 202
    assert [record["Data"] for record in records] == [compact(sent)]


def test_mixed_batch_forwards_every_valid_event_and_lists_each_rejected_one(stack, gateway_url):
    device = new_device()
    batch = [
        event(device, 1, offset_ms=0),
        event(device, 2, offset_ms=210) | {"time": "yesterday"},
        event(device, 3, offset_ms=420),
        event(device, 4, offset_ms=630, colour="red"),
        event(device, 5, offset_ms=840),
        event(device, -5, offset_ms=1050),
    ]
    tail = KinesisTail(stack)

    status, reply, _ = post(gateway_url, compact(batch))
    records = tail.collect(f"partition-{device}", 3)

    assert status == 202
    assert reply["accepted"] == 3
    assert [(r["index"], r["field"]) for r in reply["rejected"]] == [
        (1, "time"),
        (3, "colour"),
        (5, "magnitude"),
    ]
    assert all(r["error"] for r in reply["rejected"])
    assert [record["Data"] for record in records] == [compact(batch[i]) for i in (0, 2, 4)]


# --- refusals -------------------------------------------------------------------------

DEVICE = "client-0123456789ab"
GOOD = event(DEVICE)


def without(name: str) -> dict[str, Any]:
    return {key: value for key, value in GOOD.items() if key != name}


def changed(**fields: Any) -> bytes:
    """The good event with `fields` set to other values, as the page would send it."""
    return compact(GOOD | fields)


BAD_INPUTS = {
    "malformed JSON": (b'{"magnitude": 3,', None, "not valid JSON"),
    "not UTF-8": (b'{"magnitude": "\xff"}', None, "UTF-8"),
    "event not an object": (b'["client-0123456789ab"]', None, "JSON object"),
    "empty array": (b"[]", None, "empty array"),
    "magnitude as string": (changed(magnitude="3"), "magnitude", "got string"),
    "magnitude as boolean": (changed(magnitude=True), "magnitude", "got boolean"),
    "magnitude null": (changed(magnitude=None), "magnitude", "got null"),
    "time as number": (changed(time=1684954616800), "time", "got number"),
    "device as number": (changed(device=42), "device", "got number"),
    "missing device": (compact(without("device")), "device", "missing"),
    "missing magnitude": (compact(without("magnitude")), "magnitude", "missing"),
    "unknown field": (changed(x=1.5), "x", "unknown field 'x'"),
    "duplicate field": (
        b'{"magnitude":1,"magnitude":2,"time":"2023-05-24T18:56:56.800Z",'
        b'"device":"client-0123456789ab"}',
        "magnitude",
        "twice",
    ),
    "device without prefix": (changed(device="0123456789ab"), "device", "client-"),
    "device upper-case hex": (changed(device="client-0123456789AB"), "device", "lowercase hex"),
    "device too short": (changed(device="client-0123456789a"), "device", "12"),
    "time without ms": (changed(time="2023-05-24T18:56:56Z"), "time", "milliseconds"),
    "time with offset": (changed(time="2023-05-24T18:56:56.800+00:00"), "time", "ISO-8601"),
    "time not a date": (changed(time="2023-13-24T18:56:56.800Z"), "time", "real date"),
    "negative magnitude": (changed(magnitude=-1), "magnitude", ">= 0"),
    "NaN magnitude": (
        b'{"magnitude":NaN,"time":"2023-05-24T18:56:56.800Z","device":"client-0123456789ab"}',
        "magnitude",
        "finite",
    ),
    "infinite magnitude": (changed(magnitude=float("inf")), "magnitude", "finite"),
    "magnitude beyond float": (
        compact(GOOD).replace(b'"magnitude":3', b'"magnitude":1e400'),
        "magnitude",
        "finite",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_with_400_naming_the_problem(gateway_url, case):
    body, field, reason = BAD_INPUTS[case]

    status, reply, _ = post(gateway_url, body)

    assert status == 400, reply
    assert reply["field"] == field
    assert reason in reply["error"]
    assert reply["accepted"] == 0


def test_refused_events_are_not_forwarded(stack, gateway_url):
    device = new_device()
    tail = KinesisTail(stack)
    bad = [event(device, -1), event(device, time="now"), event(device) | {"x": 1}]

    statuses = [post(gateway_url, compact(one))[0] for one in bad]
    post(gateway_url, compact(event(device, 9)))
    records = tail.collect(f"partition-{device}", 1, settle=1.0)

    assert statuses == [400, 400, 400]
    assert [record["Data"] for record in records] == [compact(event(device, 9))]


def test_body_over_the_size_limit_gets_413(stack, gateway_url):
    limit = stack.gateway.max_event_bytes * MAX_EVENTS_PER_REQUEST
    body = b"[" + compact(event(new_device())) + b"]" + b" " * limit

    status, reply, _ = post(gateway_url, body)

    assert status == 413
    assert f"at most {limit}" in reply["error"]


def test_more_events_than_one_request_may_carry_gets_413(gateway_url):
    device = new_device()
    batch = [event(device, offset_ms=i) for i in range(MAX_EVENTS_PER_REQUEST + 1)]

    status, reply, _ = post(gateway_url, compact(batch))

    assert status == 413
    assert f"at most {MAX_EVENTS_PER_REQUEST}" in reply["error"]


def test_event_over_the_per_event_size_gets_413(stack):
    small = stack.model_copy(
        update={"gateway": stack.gateway.model_copy(update={"max_event_bytes": 64})}
    )
    gateway = Gateway(small, [])

    reply = gateway.handle(compact(event(new_device())))

    assert reply.status == 413
    assert "at most 64" in reply.payload["error"]


def test_post_without_content_length_gets_411(gateway_url):
    host, port = gateway_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/events")
        connection.putheader("Content-Type", "application/json")
        connection.endheaders()
        response = connection.getresponse()
        reply = json.loads(response.read())
    finally:
        connection.close()

    assert response.status == 411
    assert "Content-Length" in reply["error"]


def test_device_over_its_rate_gets_429_while_other_devices_pass(stack, gateway_url):
    rate = int(stack.gateway.max_events_per_second_per_client)
    device, other = new_device(), new_device()
    burst = [event(device, offset_ms=i) for i in range(rate + 3)]
    tail = KinesisTail(stack)

    status, reply, _ = post(gateway_url, compact(burst))
    next_status, next_reply, next_headers = post(gateway_url, compact(event(device, 8)))
    other_status, _, _ = post(gateway_url, compact(event(other)))
    time.sleep(1.5 / rate)
    later_status, _, _ = post(gateway_url, compact(event(device, 9)))
    records = tail.collect(f"partition-{device}", rate + 1)

    assert (status, reply["accepted"]) == (202, rate)
    assert [r["index"] for r in reply["rejected"]] == [rate, rate + 1, rate + 2]
    assert all("rate limit" in r["error"] and r["field"] == "device" for r in reply["rejected"])
    assert next_status == 429
    assert next_headers["Retry-After"] == "1"
    assert "rate limit" in next_reply["error"]
    assert (other_status, later_status) == (202, 202)
    expected = [compact(e) for e in burst[:rate]] + [compact(event(device, 9))]
    assert [record["Data"] for record in records] == expected


# --- broker trouble -------------------------------------------------------------------


def test_start_fails_clearly_when_the_stream_or_topic_is_missing(stack):
    with pytest.raises(GatewayError, match="Kinesis stream 'no-such-stream' does not exist"):
        build_gateway(stack, "kinesis", stream="no-such-stream")
    with pytest.raises(GatewayError, match="iotlake provision seismograph"):
        build_gateway(stack, "kafka", topic="no-such-topic")


def test_the_configured_transport_and_stream_are_where_events_go(stack):
    configured = stack.model_copy(
        update={
            "seismograph": stack.seismograph.model_copy(
                update={"transport": "kafka", "stream": "gateway-configured"}
            )
        }
    )

    # Nothing names a target or a topic: the settings do, and the topic is checked.
    with pytest.raises(GatewayError, match="'gateway-configured'"):
        build_gateway(configured)


def test_start_fails_clearly_when_the_broker_is_down(stack):
    closed = stack.model_copy(update={"aws": stack.aws.model_copy(update={"port": free_port()})})

    with pytest.raises(GatewayError, match="cannot reach Kinesis .*`iotlake up`"):
        build_gateway(closed, "kinesis")


def test_forward_failure_answers_503_and_accepts_nothing(stack):
    gateway = Gateway(stack, [KinesisSender(stack, "no-such-stream")])
    try:
        reply = gateway.handle(compact(event(new_device())))
    finally:
        gateway.close()

    assert reply.status == 503
    assert "no-such-stream" in reply.payload["error"]
    assert "send these events again" in reply.payload["error"]
    assert gateway.health()["forward_errors"] == 1


# --- page, routes, process ------------------------------------------------------------


def test_page_and_script_are_served_with_no_external_assets(gateway_url):
    page_status, page, page_headers = get(gateway_url, "/")
    script_status, script, script_headers = get(gateway_url, "/app.js")

    assert (page_status, script_status) == (200, 200)
    assert page_headers["Content-Type"].startswith("text/html")
    assert script_headers["Content-Type"].startswith("text/javascript")
    assert b"<title>Streaming Data V1.6</title>" in page
    assert b'src="app.js"' in page
    assert b"http://" not in page + script and b"https://" not in page + script
    assert b"devicemotion" in script and b"requestPermission" in script


def test_unknown_routes_get_json_404_and_get_on_events_405(gateway_url):
    missing_status, missing, _ = get(gateway_url, "/nothing-here")
    method_status, method, method_headers = get(gateway_url, "/events")

    assert missing_status == 404 and "no page" in json.loads(missing)["error"]
    assert method_status == 405 and method_headers["Allow"] == "POST"
    assert "POST" in json.loads(method)["error"]


def test_healthz_reports_targets_and_counts(gateway_url):
    status, body, _ = get(gateway_url, "/healthz")
    health = json.loads(body)

    assert status == 200
    assert health["status"] == "ok"
    assert health["forwarding_to"] == ["kinesis", "kafka"]
    assert {"accepted", "rejected", "forward_errors"} <= set(health)


def test_serves_https_when_given_a_certificate(stack, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with running_gateway(stack, certfile=cert, keyfile=key) as server:
        host, port = server.server_address[:2]
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=30)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            health = json.loads(response.read())
        finally:
            connection.close()

    assert server.url.startswith("https://")
    assert (response.status, health["status"]) == (200, "ok")


def _listening_addresses(pid: int, port: int) -> list[str]:
    return [
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
    ]


def test_gateway_process_listens_on_loopback_by_default_and_stops_on_sigterm(stack, tmp_path):
    port = free_port()
    env = {**os.environ, **settings_env(stack), "IOTLAKE_GATEWAY__PORT": str(port)}
    log_path = tmp_path / "gateway.log"
    with log_path.open("w") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "services.gateway.server", "--target", "both"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        health = None
        while health is None and time.monotonic() < deadline and child.poll() is None:
            with contextlib.suppress(OSError):
                health = json.loads(get(f"http://127.0.0.1:{port}", "/healthz")[1])
            time.sleep(0.2)
        addresses = _listening_addresses(child.pid, port)
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    log = log_path.read_text()

    assert health and health["forwarding_to"] == ["kinesis", "kafka"], log
    assert addresses == ["127.0.0.1"]
    assert code == 0, log
    assert f"serving the phone page at http://127.0.0.1:{port}/" in log
    assert "received SIGTERM" in log and log.rstrip().endswith("stopped")
