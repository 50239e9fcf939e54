"""S3 + Kinesis emulator: moto server (default) or LocalStack in host mode.

moto keeps every bucket, object and stream in memory, so a crash of its process would lose
the Kinesis records and the S3 objects the lake keeps there. The embedded emulator
therefore writes a journal: each request that changed state (PUT/POST/DELETE on S3, a
Kinesis PutRecords or CreateStream, ...) is appended, with its body, after moto applied it
and before the client gets its answer. On start, the journal is replayed into
the fresh process, in the order the requests were applied, so streams get the same
per-shard sequence numbers and buckets the same objects, and consumers' checkpoints stay
valid across a `kill -9`. `iotlake down` deletes the journal: a stack started after it
begins empty, as before.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from iotlake.config import Settings
from services.embedded.spec import ServiceSpec

_QUICK = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 0})
JOURNAL_NAME = "aws-journal.jsonl"
# Environ keys that describe a request as moto sees it; the rest is per-connection detail.
_REQUEST_KEYS = {
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "RAW_URI",
    "REQUEST_URI",
    "SCRIPT_NAME",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
}
_READ_OPERATIONS = ("Get", "List", "Describe")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")

StartResponse = Callable[..., Callable[[bytes], Any]]
WsgiApp = Callable[[dict, StartResponse], Iterable[bytes]]


def s3_answers(settings: Settings) -> bool:
    """Healthy means S3 lists buckets; both emulators serve S3 and Kinesis from one port."""
    try:
        boto3.client("s3", config=_QUICK, **settings.aws.boto3_kwargs()).list_buckets()
    except Exception:
        return False
    return True


def journal_path(settings: Settings) -> Path:
    """Where the embedded moto server keeps its journal of state changes."""
    return settings.data_dir / JOURNAL_NAME


def forget(settings: Settings) -> None:
    """Drop the journal, so the next emulator starts empty (what `iotlake down` means)."""
    journal_path(settings).unlink(missing_ok=True)


def _operation(environ: dict) -> str:
    """The JSON/CBOR API operation name (Kinesis: `PutRecords`), or '' for REST calls (S3)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    return path.rsplit("/operation/", 1)[-1] if "/operation/" in path else ""


def changes_state(environ: dict) -> bool:
    """True for requests whose effect must be replayed: writes, never reads or moto's API."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return False
    if environ.get("PATH_INFO", "").startswith("/moto-api/"):
        return False
    return not _operation(environ).startswith(_READ_OPERATIONS)


def _read_body(environ: dict) -> bytes:
    """The whole request body; the environ gets a fresh stream so moto can read it again."""
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length.isdigit():
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()  # chunked: the server ends the stream after the last chunk
    else:
        # No length and not chunked (a DeleteObject, say): there is no body, and reading the
        # connection to its end would wait for the client, which waits for the answer.
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return body


class Journal:
    """An append-only file of applied requests, one JSON object a line.

    Each line is written with one `write` and flushed before the client is answered: the
    kernel keeps it when the process is killed (a power cut may still lose the last lines).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")

    def record(self, environ: dict, body: bytes, upload_id: bytes | None) -> None:
        entry: dict[str, Any] = {
            "environ": {
                key: value
                for key, value in environ.items()
                if isinstance(value, str) and (key in _REQUEST_KEYS or key.startswith("HTTP_"))
            },
            "body": base64.b64encode(body).decode("ascii"),
        }
        if upload_id:
            entry["upload_id"] = upload_id.decode()
        self._file.write(json.dumps(entry).encode() + b"\n")
        self._file.flush()

    def truncate(self) -> None:
        """moto's state was reset on purpose: nothing before this point is to be replayed."""
        self._file.truncate(0)
        self._file.flush()

    def entries(self) -> Iterator[dict]:
        """Recorded entries in order; a line cut short by a kill mid-write is skipped."""
        if not self.path.exists():
            return
        with self.path.open("rb") as lines:
            for line in lines:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


def _call(app: WsgiApp, environ: dict) -> tuple[str, list, bytes]:
    """Run one request through a WSGI app to the end: status line, headers, whole body."""
    answer: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        answer.update(status=status, headers=headers)
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return answer["status"], answer["headers"], b"".join(chunks)


def _succeeded(status: str) -> bool:
    return int(status.split()[0]) < 300


class SerialApp:
    """WSGI middleware: serve requests one at a time and journal those that change state.

    moto's models are not safe for threads: a GetRecords walking a shard while a PutRecords
    appends to it fails ("OrderedDict mutated during iteration", a 500 to the client), so
    one lock admits one request at a time, reads too. The same lock orders writes, so the
    journal holds them in the order moto applied them (a Kinesis sequence number is a
    per-shard counter: replaying in another order would give records other numbers). Only
    successful writes are journaled; a write the process dies in the middle of is not, and
    the client, which got no answer, retries it.
    """

    def __init__(self, app: WsgiApp, journal: Journal | None) -> None:
        self._app = app
        self._journal = journal
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/moto-api/reset" and environ["REQUEST_METHOD"] == "POST":
            with self._lock:
                if self._journal is not None:
                    self._journal.truncate()
                return self._app(environ, start_response)
        body = _read_body(environ)  # off the lock: a slow client holds up no one else
        changes = self._journal is not None and changes_state(environ)
        with self._lock:
            status, headers, content = _call(self._app, environ)
            if self._journal is not None and changes and _succeeded(status):
                self._journal.record(environ, body, _created_upload(environ, content))
        start_response(status, headers)
        return [content]


def _created_upload(environ: dict, content: bytes) -> bytes | None:
    """The UploadId moto chose for a new S3 multipart upload (random, so remapped on replay)."""
    if environ["REQUEST_METHOD"] != "POST" or "uploads" not in environ.get("QUERY_STRING", ""):
        return None
    found = _UPLOAD_ID.search(content)
    return found.group(1) if found else None


def _replay_environ(entry: dict, renamed_uploads: dict[str, str]) -> dict:
    """A WSGI environ equal to the recorded request, with upload ids of this process."""
    from werkzeug.test import EnvironBuilder

    body = base64.b64decode(entry["body"])
    environ = EnvironBuilder(method=entry["environ"]["REQUEST_METHOD"]).get_environ()
    environ.update(entry["environ"])
    for old, new in renamed_uploads.items():
        for key in ("QUERY_STRING", "RAW_URI", "REQUEST_URI"):
            if key in environ:
                environ[key] = environ[key].replace(old, new)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def replay(app: WsgiApp, journal: Journal) -> tuple[int, int]:
    """Apply every journaled request to a fresh moto; return (replayed, refused) counts."""
    renamed: dict[str, str] = {}
    replayed = refused = 0
    for entry in journal.entries():
        status, _, content = _call(app, _replay_environ(entry, renamed))
        replayed += 1
        refused += not _succeeded(status)
        if entry.get("upload_id"):
            fresh = _created_upload({"REQUEST_METHOD": "POST", "QUERY_STRING": "uploads"}, content)
            if fresh:
                renamed[entry["upload_id"]] = fresh.decode()
    return replayed, refused


def _last_sequence_number(shard: Any) -> int:
    return next(reversed(shard.records), 0)


def _first_sequence_number(shard: Any) -> int:
    return next(iter(shard.records), 0)


def records_after(
    shard: Any, last_sequence_id: str, limit: int | None
) -> tuple[list[Any], int, int]:
    """A shard's records after `last_sequence_id`, at most `limit`, with the new position and
    the milliseconds the last one is behind the shard's newest: moto's answer to GetRecords.

    moto walks the shard from its first record to find where to start, so a consumer at the
    tip of a shard some minutes into a demo costs a pass over every record it holds. A
    shard's sequence numbers are consecutive (a put numbers its record one past the last),
    so the records wanted are looked up by number.
    """
    records = shard.records
    last = int(last_sequence_id)
    newest = next(reversed(records), 0)
    start = max(last + 1, next(iter(records), 0))
    end = newest if not limit else min(newest, start + limit - 1)
    found = [records[number] for number in range(start, end + 1) if number in records]
    if not found:
        return [], last, 0
    behind = records[newest].created_at - found[-1].created_at
    return found, found[-1].sequence_number, int(behind * 1000)


class CompactRecord:
    """A Kinesis record as moto's `Record` answers for it, in ~40 % less memory (697 -> 402 bytes).

    moto holds every record of every stream for the life of the process; at the demo's 650
    events/s its own records grew the emulator by ~25 MB a minute. This one has slots
    instead of a dict, keeps the payload as bytes rather than base64 text, a single copy of
    each partition key (a phone's key repeats in every record it sends) and the arrival
    time once, as a float.
    """

    __slots__ = ("created_at", "explicit_hash_key", "partition_key", "payload", "sequence_number")

    def __init__(
        self, partition_key: str, data: str, sequence_number: int, explicit_hash_key: str | None
    ) -> None:
        self.partition_key = sys.intern(partition_key)
        self.payload = base64.b64decode(data)
        self.sequence_number = sequence_number
        self.explicit_hash_key = explicit_hash_key
        self.created_at = time.time()

    @property
    def data(self) -> str:
        """Base64 text, as moto passes it on when it splits or merges shards."""
        return base64.b64encode(self.payload).decode()

    @property
    def created_at_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.created_at, dt.UTC).replace(tzinfo=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "Data": self.payload,
            "PartitionKey": self.partition_key,
            "SequenceNumber": str(self.sequence_number),
            "ApproximateArrivalTimestamp": self.created_at_datetime,
        }


def put_compact_record(shard: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    """moto's `Shard.put_record`, numbering the record one past the shard's last, kept as a
    `CompactRecord`."""
    sequence_number = _last_sequence_number(shard) + 1
    shard.records[sequence_number] = CompactRecord(
        partition_key, data, sequence_number, explicit_hash_key
    )
    return str(sequence_number)


def _constant_time_shards() -> None:
    """Make a Kinesis put O(1) and a GetRecords O(records returned), instead of both O(records
    in the shard), and keep records compact (`CompactRecord`).

    moto finds a shard's first and last sequence numbers by listing all its keys, so ingest
    (and a journal's replay) slows down as a shard fills: ~100 s to put 100k records. Its
    records are kept in insertion order, so the ends are the first and last keys.
    """
    from moto.kinesis.models import Shard

    Shard.get_max_sequence_number = _last_sequence_number
    Shard.get_min_sequence_number = _first_sequence_number
    Shard.get_records = records_after
    Shard.put_record = put_compact_record
    moto_init = Shard.__init__

    def init_with_plain_dict(shard: Shard, *args: Any, **kwargs: Any) -> None:
        """A plain dict keeps insertion order too, in ~50 bytes less per record."""
        moto_init(shard, *args, **kwargs)
        shard.records = {}

    Shard.__init__ = init_with_plain_dict  # type: ignore[method-assign,assignment]


def serve(host: str, port: int, journal_file: Path | None) -> None:
    """moto server with a journal: replay it, then serve and keep journaling (`iotlake
    emulator`, which `iotlake up` starts)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    _constant_time_shards()
    app: WsgiApp = DomainDispatcherApplication(create_backend_app)
    journal = None
    if journal_file:
        journal = Journal(journal_file)
        began = time.monotonic()
        replayed, refused = replay(app, journal)
        print(
            f"aws: replayed {replayed} journaled requests ({refused} refused) "
            f"in {time.monotonic() - began:.1f}s from {journal_file}",
            flush=True,
        )
    served = SerialApp(app, journal)
    run_simple(host, port, served, threaded=True, request_handler=MotoRequestHandler)


def _replay_allowance(journal: Path) -> float:
    """Seconds to allow for replaying `journal`: measured ~1 s per MB on a loaded laptop."""
    size_mb = journal.stat().st_size / 2**20 if journal.exists() else 0.0
    return 3.0 * size_mb


def spec(settings: Settings) -> ServiceSpec:
    aws = settings.aws
    if aws.emulator == "localstack":
        command = [str(aws.localstack_python), "-m", "localstack.runtime.main"]
        env = {
            "GATEWAY_LISTEN": f"{aws.host}:{aws.port}",
            "DNS_ADDRESS": "0",
            "SERVICES": "s3,kinesis",
            "LOCALSTACK_VOLUME_DIR": str((settings.data_dir / "localstack").resolve()),
        }
        hint = "LocalStack runs on Python 3.13: run `make localstack` to create .venv-localstack"
        timeout = 180.0
    else:
        command = [sys.executable, "-m", "services.embedded.aws_emulator"]
        command += ["--host", aws.host, "--port", str(aws.port)]
        if aws.journal:
            command += ["--journal", str(journal_path(settings).resolve())]
        env = {}
        hint = "moto is a Python dependency: run `make venv`"
        timeout = 60.0 + (_replay_allowance(journal_path(settings)) if aws.journal else 0.0)
    return ServiceSpec(
        name="aws",
        command=command,
        endpoint=aws.endpoint_url or "aws",
        host=aws.host,
        ports=(aws.port,),
        healthy=lambda: s3_answers(settings),
        install_hint=hint,
        env=env,
        start_timeout=timeout,
    )


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("emulator")
